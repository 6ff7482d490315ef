"""A fault-injecting reverse proxy in front of the moto S3 server, for the transfer's fault-matrix tests.

It forwards every S3 request to moto unchanged and, when told to, answers an operation with an S3 error (a 5xx on
UploadPart 2, on CompleteMultipartUpload, ...) or goes dark: from a given request on it resets or silently holds
every connection until a request of another operation (by default the HeadObject a retry starts with) arrives.
Operations are told apart the way S3 does: by method and query (``partNumber``, ``uploadId``, ``uploads``, ...).
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: Headers that describe one hop, not the request: never forwarded as they are.
_HOP = {"host", "connection", "expect", "transfer-encoding", "content-length", "keep-alive"}


def operation_of(method: str, path: str) -> tuple[str, dict[str, list[str]]]:
    """
    The S3 operation of a path-style request, and its query.

    :param method: the HTTP method.
    :param path: the request target (path and query).
    """
    query = parse_qs(urlsplit(path).query, keep_blank_values=True)
    has_key = urlsplit(path).path.strip("/").count("/") >= 1
    if method == "PUT" and "partNumber" in query:
        name = "UploadPart"
    elif method == "POST" and "uploads" in query:
        name = "CreateMultipartUpload"
    elif method == "POST" and "uploadId" in query:
        name = "CompleteMultipartUpload"
    elif method == "DELETE" and "uploadId" in query:
        name = "AbortMultipartUpload"
    elif method == "GET" and "uploads" in query:
        name = "ListMultipartUploads"
    elif "tagging" in query:
        name = "PutObjectTagging" if method == "PUT" else "GetObjectTagging"
    elif method == "HEAD":
        name = "HeadObject" if has_key else "HeadBucket"
    elif method == "PUT":
        name = "PutObject" if has_key else "CreateBucket"
    elif method == "GET":
        name = "GetObject" if has_key else "ListObjects"
    else:
        name = f"{method} {urlsplit(path).path}"
    return name, query


@dataclass
class Fault:
    """
    An S3 error answered instead of forwarding.

    :param operation: the S3 operation, e.g. ``UploadPart``.
    :param part: only this part number (UploadPart), or any.
    :param times: how many matching requests get the error (then the fault is spent); -1 for every one.
    :param status: the HTTP status.
    :param code: the S3 error code.
    """

    operation: str
    part: int | None = None
    times: int = 1
    status: int = 500
    code: str = "InternalError"

    def matches(self, operation: str, query: dict[str, list[str]]) -> bool:
        if self.times == 0 or operation != self.operation:
            return False
        return self.part is None or query.get("partNumber") == [str(self.part)]


@dataclass
class Outage:
    """
    S3 going dark: from the first request matching ``operation``/``part`` on, every request is reset (``reset``) or
    held without an answer (``hang``) until a request of ``until`` arrives, which is forwarded and ends the outage.
    """

    operation: str
    part: int | None = None
    mode: str = "reset"
    until: str = "HeadObject"
    started: bool = False
    over: bool = False


class S3FaultProxy(ThreadingHTTPServer):
    """
    The proxy: ``with S3FaultProxy(moto_endpoint) as proxy:`` then point an AWS connection at ``proxy.endpoint``.

    :param upstream: the moto endpoint, ``http://127.0.0.1:<port>``.
    """

    daemon_threads = True
    block_on_close = False

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = urlsplit(upstream).netloc
        self.faults: list[Fault] = []
        self.outage: Outage | None = None
        self.log: list[tuple[str, str, int]] = []  # (operation, path, status or -1 when not answered)
        self._lock = threading.Lock()
        self._healed = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """The proxy's URL."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def fail(
        self, operation: str, *, part: int | None = None, times: int = 1, status: int = 500, code: str = ""
    ) -> None:
        """
        Answer ``operation`` with an S3 error.

        :param operation: the S3 operation.
        :param part: only this part (UploadPart).
        :param times: how many times (-1: always).
        :param status: the HTTP status.
        :param code: the S3 error code (default by status).
        """
        code = code or ("SlowDown" if status == 503 else "InternalError")
        self.faults.append(Fault(operation, part, times, status, code))

    def go_dark(
        self, operation: str, *, part: int | None = None, mode: str = "reset", until: str = "HeadObject"
    ) -> None:
        """
        Go dark at the first ``operation`` request (``part`` of UploadPart) until an ``until`` request arrives.

        :param operation: the S3 operation that starts the outage.
        :param part: only this part (UploadPart).
        :param mode: ``reset`` (connection reset) or ``hang`` (accepted, never answered).
        :param until: the S3 operation that ends it.
        """
        self._healed.clear()
        self.outage = Outage(operation, part, mode, until)

    def operations(self) -> list[str]:
        """The operations seen, in order."""
        return [entry[0] for entry in self.log]

    def __enter__(self) -> S3FaultProxy:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True, name="s3-fault-proxy")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._healed.set()
        self.shutdown()
        self.server_close()

    # ------------------------------------------------------------------------------------------ decisions

    def decide(self, operation: str, query: dict[str, list[str]]) -> tuple[str, Any]:
        """What to do with a request: ``("forward", None)``, ``("error", Fault)``, ``("reset"|"hang", None)``."""
        with self._lock:
            outage = self.outage
            if outage is not None and not outage.over:
                if outage.started and operation == outage.until:
                    outage.over = True
                    self._healed.set()
                elif outage.started or (
                    operation == outage.operation
                    and (outage.part is None or query.get("partNumber") == [str(outage.part)])
                ):
                    outage.started = True
                    return outage.mode, None
            for fault in self.faults:
                if fault.matches(operation, query):
                    fault.times -= 1 if fault.times > 0 else 0
                    return "error", fault
        return "forward", None

    def wait_healed(self, timeout: float) -> None:
        """Block a held connection until the outage ends (or ``timeout``)."""
        self._healed.wait(timeout)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: S3FaultProxy

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reset(self) -> None:
        """Close with RST: the client sees 'connection reset by peer'."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _error(self, fault: Fault) -> None:
        body = (
            f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{fault.code}</Code>"
            f"<Message>injected by the fault proxy</Message></Error>"
        ).encode()
        self.send_response(fault.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        operation, query = operation_of(self.command, self.path)
        action, fault = self.server.decide(operation, query)
        if action == "reset":
            self.server.log.append((operation, self.path, -1))
            return self._reset()
        body = self._body()
        if action == "hang":
            self.server.log.append((operation, self.path, -1))
            self.server.wait_healed(30)
            return self._reset()
        if action == "error":
            self.server.log.append((operation, self.path, fault.status))
            return self._error(fault)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(self.server.upstream, timeout=60)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            self.server.log.append((operation, self.path, response.status))
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() in ("transfer-encoding", "connection", "content-length", "date", "server"):
                    continue
                self.send_header(name, value)
            length = response.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
            self.send_header("Content-Length", length or "0")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle
