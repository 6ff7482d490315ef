"""
Streaming download of a signed video link: URL safety rules, manual redirects, size and format guards, sha256.

Nothing here holds more than one read chunk of the body; nothing here logs or raises the link's query string.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx

from airflow_provider_wan.exceptions import (
    WanVideoContentError,
    WanVideoDownloadError,
    WanVideoExpiredError,
    WanVideoTooLargeError,
    WanVideoUnavailableError,
    WanVideoURLRefusedError,
)
from airflow_provider_wan.settings import is_loopback

#: Redirects followed at most (each target is checked before it is requested).
MAX_REDIRECTS = 5
#: Bytes read from the socket at a time.
READ_CHUNK = 1024 * 1024
_REDIRECTS = (301, 302, 303, 307, 308)
#: Content types that are certainly not a video: refused before a byte of the body is read.
_NOT_VIDEO_TYPES = ("text/", "application/json", "application/xml", "application/problem")
#: Query parameters of signed links that are credentials (OSS, S3 presigned, STS tokens).
_SECRET_PARAMS = ("signature", "security-token", "securitytoken", "credential", "accesskeyid", "token", "sig")


def redact(url: str | httpx.URL) -> str:
    """
    The URL without its query string, fragment and user info: the only form of a link that may be logged.

    :param url: a URL.
    """
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    suffix = "?<redacted>" if parts.query else ""
    return f"{parts.scheme}://{netloc}{parts.path}{suffix}"


def secrets_of(url: str) -> list[str]:
    """
    The parts of a signed link that must be masked wherever they could appear.

    :param url: a signed link.
    """
    parts = urlsplit(url)
    found: list[str] = []
    if parts.query:
        found += [url, parts.query]
        for name, value in parse_qsl(parts.query, keep_blank_values=False):
            if len(value) >= 6 and any(s in name.lower() for s in _SECRET_PARAMS):
                found.append(value)
    if parts.password:
        found.append(parts.password)
    return found


@dataclass(frozen=True)
class UrlPolicy:
    """
    Which links the transfer may request.

    :param allowed_hosts: fnmatch patterns of host names (case-insensitive), e.g. ``*.aliyuncs.com``.
    :param allow_http: allow plain http to any allowed host (https only otherwise; loopback is always allowed
        http, for the simulator).
    """

    allowed_hosts: tuple[str, ...]
    allow_http: bool = False

    def check(self, url: str, what: str = "video link") -> str:
        """
        Return ``url`` when it may be requested; raise otherwise (before any connection is made).

        :param url: the absolute URL.
        :param what: how to name it in the error (``video link``, ``redirect target``).
        :raises WanVideoURLRefusedError: for another scheme, user info, plain http to a non-loopback host
            (unless ``allow_http``) or a host outside ``allowed_hosts``.
        """
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower().rstrip(".")
            _ = parts.port
        except ValueError as err:
            raise WanVideoURLRefusedError(f"the {what} is not a valid URL ({err})") from None
        shown = redact(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not host:
            raise WanVideoURLRefusedError(f"the {what} {shown} is not an http(s) URL; only https links are followed")
        if parts.username or parts.password:
            raise WanVideoURLRefusedError(f"the {what} {shown} carries user info; refused")
        if scheme == "http" and not (self.allow_http or is_loopback(host)):
            raise WanVideoURLRefusedError(
                f"the {what} {shown} is plain http to a non-loopback host; only https is followed "
                f"(pass allow_http=True to allow it)"
            )
        if not any(fnmatchcase(host, pattern.lower().strip()) for pattern in self.allowed_hosts if pattern.strip()):
            raise WanVideoURLRefusedError(
                f"the {what} {shown} is on host {host!r}, which is not allowed (allowed: "
                f"{', '.join(self.allowed_hosts) or 'none'}); add it to allowed_hosts or the connection's "
                f"download_hosts extra if it is trusted"
            )
        return url


class _RedactingFilter(logging.Filter):
    """Rewrites httpx's ``HTTP Request: GET <url>`` records so the signed query never reaches a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(redact(a) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


_FILTER = _RedactingFilter()


@contextmanager
def redacted_httpx_logs() -> Iterator[None]:
    """While inside, httpx's request log lines show links without their query string."""
    logger = logging.getLogger("httpx")
    logger.addFilter(_FILTER)
    try:
        yield
    finally:
        logger.removeFilter(_FILTER)


@dataclass
class DownloadStats:
    """
    What the download saw.

    :param content_length: the announced size (None when the server did not say).
    :param received: bytes received so far.
    :param redirects: redirects followed.
    :param final_url: the redacted URL the body came from.
    :param content_type: the announced Content-Type.
    """

    content_length: int | None = None
    received: int = 0
    redirects: int = 0
    final_url: str = ""
    content_type: str | None = None
    sha256: Any = field(default_factory=hashlib.sha256)

    @property
    def hexdigest(self) -> str:
        """The sha256 of the bytes received, as hex."""
        return str(self.sha256.hexdigest())


class VideoDownload:
    """
    One streamed download of a video link.

    Use as a context manager; :meth:`open` resolves redirects and checks the headers, :meth:`chunks` yields the
    body (the first chunk only after the MP4 signature was checked) and raises if it ends short.

    :param url: the signed link.
    :param policy: the URL rules each request (and redirect target) must pass.
    :param max_bytes: refuse larger videos (None: no limit).
    :param connect_timeout: seconds to connect.
    :param read_timeout: seconds to wait for each piece of the body.
    :param user_agent: the User-Agent header.
    :param on_secret: called with every secret part of a redirect target before it is requested (mask it).
    """

    def __init__(
        self,
        url: str,
        policy: UrlPolicy,
        *,
        max_bytes: int | None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        user_agent: str | None = None,
        on_secret: Callable[[str], None] | None = None,
    ) -> None:
        self.url = url
        self._on_secret = on_secret
        self.policy = policy
        self.max_bytes = max_bytes
        self.stats = DownloadStats(final_url=redact(url))
        headers = {"Accept-Encoding": "identity", "Accept": "video/mp4, */*;q=0.5"}
        if user_agent:
            headers["User-Agent"] = user_agent
        self._client = httpx.Client(
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            follow_redirects=False,
            headers=headers,
            trust_env=True,
        )
        self._response: httpx.Response | None = None

    def __enter__(self) -> VideoDownload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the response and the connection pool."""
        if self._response is not None:
            self._response.close()
            self._response = None
        self._client.close()

    def open(self) -> DownloadStats:
        """
        Request the link (following up to :data:`MAX_REDIRECTS` checked redirects) and check the answer's headers.

        No byte of the body is read here.

        :raises WanVideoURLRefusedError: the link or a redirect target breaks the URL rules.
        :raises WanVideoExpiredError: the link answered 403 (expired).
        :raises WanVideoTooLargeError: Content-Length is above ``max_bytes``.
        :raises WanVideoContentError: the answer announces a non-video Content-Type.
        :raises WanVideoDownloadError: the network failed or the host answered 5xx.
        """
        url = self.policy.check(self.url)
        for hop in range(MAX_REDIRECTS + 1):
            response = self._send(url)
            if response.status_code not in _REDIRECTS:
                break
            location = response.headers.get("location")
            response.close()
            if not location:
                raise WanVideoDownloadError(f"{redact(url)} answered HTTP {response.status_code} without a Location")
            if hop == MAX_REDIRECTS:
                raise WanVideoURLRefusedError(f"more than {MAX_REDIRECTS} redirects from {redact(self.url)}; refused")
            target = urljoin(url, location)
            if self._on_secret is not None:
                for secret in secrets_of(target):
                    self._on_secret(secret)
            url = self.policy.check(target, what="redirect target")
            self.stats.redirects += 1
        self._response = response
        self.stats.final_url = redact(url)
        self._check_status(response, url)
        self._check_headers(response, url)
        return self.stats

    def _send(self, url: str) -> httpx.Response:
        try:
            return self._client.send(self._client.build_request("GET", url), stream=True)
        except httpx.HTTPError as err:
            raise WanVideoDownloadError(
                f"requesting {redact(url)} failed: {type(err).__name__}: {_safe(err, url)}"
            ) from None

    def _check_status(self, response: httpx.Response, url: str) -> None:
        status = response.status_code
        if 200 <= status < 300 and status != 206:
            return
        snippet = _safe_text(_snippet(response), url)
        response.close()
        if status == 403:
            raise WanVideoExpiredError(
                f"the video link {redact(url)} answered HTTP 403 ({snippet or 'access denied'}): it expired "
                f"(links live 24 hours); the video must be generated again",
                code="AccessDenied",
                status_code=403,
            )
        if status in (404, 410):
            raise WanVideoUnavailableError(f"the video link {redact(url)} answered HTTP {status} ({snippet}): no video")
        if status == 429 or status >= 500:
            raise WanVideoDownloadError(f"the video link {redact(url)} answered HTTP {status} ({snippet})")
        raise WanVideoUnavailableError(f"the video link {redact(url)} answered HTTP {status} ({snippet})")

    def _check_headers(self, response: httpx.Response, url: str) -> None:
        self.stats.content_type = response.headers.get("content-type")
        content_type = (self.stats.content_type or "").lower()
        if content_type.startswith(_NOT_VIDEO_TYPES):
            response.close()
            raise WanVideoContentError(
                f"the video link {redact(url)} answered Content-Type {content_type!r}, not a video; "
                f"it is probably an error page"
            )
        encoding = response.headers.get("content-encoding", "identity").lower()
        if encoding not in ("", "identity"):
            response.close()
            raise WanVideoContentError(f"the video link {redact(url)} answered Content-Encoding {encoding!r}")
        length = response.headers.get("content-length")
        if length is not None:
            try:
                self.stats.content_length = int(length)
            except ValueError:
                response.close()
                raise WanVideoDownloadError(f"{redact(url)} sent an invalid Content-Length {length!r}") from None
            if self.max_bytes is not None and self.stats.content_length > self.max_bytes:
                response.close()
                raise WanVideoTooLargeError(
                    f"the video at {redact(url)} is {self.stats.content_length} bytes, over max_bytes="
                    f"{self.max_bytes}; nothing was downloaded"
                )

    def chunks(self, size: int = READ_CHUNK) -> Iterator[bytes]:
        """
        The body, piece by piece, hashed and counted; the MP4 signature is checked before the first piece.

        :param size: bytes per piece.
        :raises WanVideoContentError: the body does not start with an MP4 ``ftyp`` box.
        :raises WanVideoTooLargeError: more than ``max_bytes`` arrived.
        :raises WanVideoDownloadError: the connection failed or the body ended before Content-Length.
        """
        if self._response is None:
            raise RuntimeError("open() first")
        response, stats = self._response, self.stats
        head = b""  # the first bytes, held back until the MP4 signature can be checked
        checked = False
        for piece in self._read(response, size):
            if not checked:
                head += piece
                if len(head) < 12:
                    continue
                check_mp4(head, stats.final_url)
                piece, head, checked = head, b"", True
            stats.received += len(piece)
            if self.max_bytes is not None and stats.received > self.max_bytes:
                raise WanVideoTooLargeError(
                    f"the video at {stats.final_url} is larger than max_bytes={self.max_bytes}; stopped reading"
                )
            stats.sha256.update(piece)
            yield piece
        if not checked:  # fewer than 12 bytes in all
            check_mp4(head, stats.final_url)
        if stats.content_length is not None and stats.received != stats.content_length:
            raise WanVideoDownloadError(
                f"the download of {stats.final_url} ended after {stats.received} of {stats.content_length} bytes"
            )

    def _read(self, response: httpx.Response, size: int) -> Iterable[bytes]:
        try:
            yield from response.iter_raw(size)
        except httpx.HTTPError as err:
            raise WanVideoDownloadError(
                f"the download of {self.stats.final_url} failed after {response.num_bytes_downloaded} of "
                f"{self.stats.content_length if self.stats.content_length is not None else '?'} bytes: "
                f"{type(err).__name__}: {_safe(err, self.url)}"
            ) from None


def check_mp4(head: bytes, where: str) -> None:
    """
    Refuse a body that does not open with an ISO-BMFF ``ftyp`` box (size, then ``ftyp`` at offset 4).

    :param head: the first bytes of the body (at least 12 when the body is that long).
    :param where: the redacted URL, for the message.
    :raises WanVideoContentError: when it is not an MP4.
    """
    if len(head) >= 12 and head[4:8] == b"ftyp" and int.from_bytes(head[:4], "big") >= 8:
        return
    preview = head[:48].decode("utf-8", "replace").replace("\n", " ").strip()
    raise WanVideoContentError(
        f"the body of {where} is not an MP4 (no 'ftyp' box at offset 4; it starts with {preview!r}); "
        f"it is probably an error page. Nothing was uploaded"
    )


def _snippet(response: httpx.Response, limit: int = 4096) -> str:
    """The start of an error body (OSS answers XML with a Code and Message), without reading more than ``limit``."""
    try:
        data = b""
        for piece in response.iter_raw(1024):
            data += piece
            if len(data) >= limit:
                break
    except httpx.HTTPError:
        return ""
    text = data[:limit].decode("utf-8", "replace")
    code, message = _xml_field(text, "Code"), _xml_field(text, "Message")
    if code or message:
        return ": ".join(part for part in (code, message) if part)
    return " ".join(text.split())[:160]


def _xml_field(text: str, tag: str) -> str | None:
    start = text.find(f"<{tag}>")
    end = text.find(f"</{tag}>")
    if start < 0 or end < start:
        return None
    return text[start + len(tag) + 2 : end].strip() or None


def _safe(err: Exception, url: str) -> str:
    """An exception's text with the link's secrets removed (httpx sometimes quotes the URL)."""
    return _safe_text(str(err), url)


def _safe_text(text: str, url: str) -> str:
    for secret in sorted(secrets_of(url), key=len, reverse=True):
        text = text.replace(secret, "<redacted>")
    return text
