"""Media for the tests beyond text: images made by Pillow, real MP4 clips and WAVs, and a loopback web server that
serves them and counts the requests (fixtures ``web``)."""

from __future__ import annotations

import io
import threading
import time
import wave
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from PIL import Image

from airflow_provider_wan.simulator import VideoShape, rendered_video


def image(fmt: str = "PNG", size: tuple[int, int] = (1280, 720), mode: str = "RGB") -> bytes:
    """An image made by Pillow."""
    out = io.BytesIO()
    Image.new(mode, size, (40, 90, 160, 255) if mode == "RGBA" else (40, 90, 160)).save(out, fmt)
    return out.getvalue()


def clip(seconds: int = 3) -> bytes:
    """A real MP4 of ``seconds``, as a reference video."""
    return rendered_video(VideoShape(480, 480, seconds, audio=False))


def silent_wav(seconds: int, rate: int = 8000) -> bytes:
    """A silent mono 16-bit WAV of ``seconds``."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\x00\x00" * rate * seconds)
    return out.getvalue()


@dataclass
class Route:
    """
    What a path answers.

    :param status: the HTTP status.
    :param body: the body.
    :param delay: seconds before answering.
    :param location: a redirect's target.
    :param then: the status from the second request on (a link that expires after its first read), if any.
    """

    status: int = 200
    body: bytes = b""
    delay: float = 0.0
    location: str | None = None
    then: int | None = None


class Web:
    """Serves files on loopback and counts the requests per path (the query is ignored, as by S3)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        web = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                with web._lock:
                    web.hits[path] += 1
                    hit = web.hits[path]
                route = web.routes.get(path, Route(404, b"<html>not found</html>"))
                time.sleep(route.delay)
                status, body = (route.then, b"gone") if route.then and hit > 1 else (route.status, route.body)
                try:
                    self.send_response(status)
                    if route.location:
                        self.send_header("Location", route.location)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (a fetch timeout)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.root = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, path: str, body: bytes = b"", **route: Any) -> str:
        """Serve ``body`` at ``path``; returns its URL."""
        self.routes[path] = Route(body=body, **route)
        return self.root + path

    def reset(self) -> None:
        self.routes.clear()
        self.hits.clear()


@pytest.fixture(scope="module")
def _web_server() -> Iterator[Web]:
    web = Web()
    yield web
    web.server.shutdown()


@pytest.fixture
def web(_web_server: Web) -> Web:
    """The loopback web server, emptied."""
    _web_server.reset()
    return _web_server
