"""Raw ASGI responses the simulator needs beyond Starlette's: broken answers and streamed videos.

An answer that returns before its announced body is complete makes uvicorn close the connection,
which is exactly what a dropped or truncated answer looks like to a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from airflow_provider_wan.simulator.video import VideoBody


class BrokenResponse(Response):
    """
    An answer that announces ``announced`` body bytes, sends only ``sent``, then closes the connection.

    :param status_code: the status line to send.
    :param sent: the bytes actually sent.
    :param announced: the Content-Length announced.
    :param media_type: the Content-Type.
    """

    def __init__(self, status_code: int, sent: bytes, announced: int, media_type: str = "application/json") -> None:
        super().__init__(status_code=status_code, media_type=media_type)
        self.content_type = media_type
        self.sent = sent
        self.announced = announced

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", self.content_type.encode()), (b"content-length", str(self.announced).encode())]
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        if self.sent:
            await send({"type": "http.response.body", "body": self.sent, "more_body": True})
        # Returning here, before the final body message, is what closes the connection early.


def dropped(media_type: str = "application/json") -> BrokenResponse:
    """
    A connection dropped right after the status line: no usable body reaches the client.

    :param media_type: the Content-Type announced.
    """
    return BrokenResponse(200, b"", 1024, media_type)


def truncated(response: Response) -> Response:
    """
    The same answer with half its body, then the connection closed.

    :param response: a complete answer (JSON or a video stream).
    """
    if isinstance(response, VideoStreamResponse):
        response.truncate_at = (response.end - response.start) // 2
        return response
    body = bytes(response.body)
    return BrokenResponse(response.status_code, body[: len(body) // 2], len(body), response.media_type or "text/plain")


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def pause(receive: Receive, seconds: float, closing: threading.Event) -> None:
    """
    Sleep, unless the client goes away or the server stops first (shutdown never waits for a long delay).

    :param receive: the ASGI receive channel (the request body must already be read).
    :param seconds: how long.
    :param closing: set when the server is stopping.
    """
    deadline = asyncio.get_running_loop().time() + seconds
    watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        while not watcher.done() and not closing.is_set():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            await asyncio.wait([watcher], timeout=min(remaining, 0.05))
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


class VideoStreamResponse(Response):
    """
    A video body streamed in chunks from its generator, with Content-Length (206 for a range).

    :param body: what to serve.
    :param start: the first byte offset.
    :param end: one past the last byte offset.
    :param headers: headers besides Content-Length.
    :param chunk: the largest chunk.
    :param on_bytes: called with the size of each chunk handed to the server.
    :param closing: set when the server is stopping (the stream then ends early).
    :param status_code: 200, or 206 for a range.
    """

    def __init__(
        self,
        body: VideoBody,
        start: int,
        end: int,
        headers: dict[str, str],
        chunk: int,
        on_bytes: Callable[[int], Any],
        closing: threading.Event,
        status_code: int = 200,
    ) -> None:
        super().__init__(status_code=status_code, media_type="video/mp4")
        self.video, self.start, self.end, self.chunk = body, start, end, chunk
        self.extra_headers, self.on_bytes, self.closing = headers, on_bytes, closing
        self.truncate_at: int | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k.lower().encode(), v.encode()) for k, v in self.extra_headers.items()]
        headers += [(b"content-type", b"video/mp4"), (b"content-length", str(self.end - self.start).encode())]
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        if scope.get("method") == "HEAD":
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
        try:
            complete = await self._stream(send, watcher)
        finally:
            watcher.cancel()
        if complete:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _stream(self, send: Send, watcher: asyncio.Future[None]) -> bool:
        limit = self.end if self.truncate_at is None else self.start + self.truncate_at
        for piece in self.video.chunks(self.start, limit, self.chunk):
            if watcher.done() or self.closing.is_set():
                return False
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            self.on_bytes(len(piece))
        return self.truncate_at is None
