"""
Streaming download of a signed video link: URL safety rules, manual redirects, size and format guards, the reader
boto3 pulls parts from.

The download holds one piece of the body at a time and the reader one part; nothing here logs or raises the link's
query string.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase
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
from airflow_provider_wan.transfers._digest import StreamDigest

#: Redirects followed at most (each target is checked before it is requested).
MAX_REDIRECTS = 5
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
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
    except ValueError:
        return "<malformed link>"
    if ":" in host:
        host = f"[{host}]"
    try:
        port: int | str | None = parts.port
    except ValueError:  # out of range or not a number: show it, it is not a secret
        port = parts.netloc.rsplit(":", 1)[-1]
    netloc = f"{host}:{port}" if port else host
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


#: Address ranges never requested whatever the allowlist says (cloud metadata services live in link-local).
_NEVER = ("link-local", "unspecified", "multicast", "reserved")
#: What may appear in a host name of a link (ASCII letters, digits, dots, hyphens, underscores; IPv6 in brackets).
_HOST_CHARS = re.compile(r"^[a-z0-9._-]+$|^\[[0-9a-f:.]+\]$")


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _split_pattern(pattern: str) -> tuple[str, str | None]:
    """``host``, ``host:port``, ``host:*``, ``[v6]:port`` -> (host pattern, port pattern or None)."""
    pattern = pattern.strip().lower()
    if pattern.startswith("["):
        host, _, rest = pattern.partition("]")
        return host + "]", rest[1:] if rest.startswith(":") else None
    if pattern.count(":") == 1:
        host, port = pattern.split(":")
        return host, port
    return pattern, None


def _port_matches(pattern: str | None, port: int, scheme: str) -> bool:
    if pattern is None:
        return port == _default_port(scheme)
    return pattern == "*" or pattern == str(port)


@dataclass(frozen=True)
class UrlPolicy:
    """
    Which links the transfer may request.

    :param allowed_hosts: patterns ``host`` or ``host:port`` (fnmatch on the host, case-insensitive), e.g.
        ``*.aliyuncs.com`` or ``127.0.0.1:8080``. A pattern without a port allows only the scheme's default port
        (443, or 80 for http); ``host:*`` allows every port.
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
        :raises WanVideoURLRefusedError: for a malformed link (control characters or whitespace, a non-ASCII or
            invalid host, a bad port), another scheme, user info, plain http to a non-loopback host (unless
            ``allow_http``), a link-local/metadata address, or a host:port outside ``allowed_hosts``.
        """
        scheme, host, port = _parse(url, what)
        shown = redact(url)
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            address = None
        if (
            address is not None
            and not address.is_loopback
            and any(getattr(address, f"is_{kind.replace('-', '_')}") for kind in _NEVER)
        ):
            raise WanVideoURLRefusedError(
                f"the {what} {shown} points at {address}, a link-local, unspecified, multicast or reserved address "
                f"(cloud metadata services live there); refused whatever allowed_hosts says"
            )
        if scheme == "http" and not (self.allow_http or is_loopback(host.strip("[]"))):
            raise WanVideoURLRefusedError(
                f"the {what} {shown} is plain http to a non-loopback host; only https is followed "
                f"(pass allow_http=True to allow it)"
            )
        for pattern in self.allowed_hosts:
            host_pattern, port_pattern = _split_pattern(pattern)
            if host_pattern and fnmatchcase(host, host_pattern) and _port_matches(port_pattern, port, scheme):
                return url
        raise WanVideoURLRefusedError(
            f"the {what} {shown} is on {host}:{port}, which is not allowed (allowed: "
            f"{', '.join(self.allowed_hosts) or 'none'}; a pattern without a port allows only port "
            f"{_default_port(scheme)}); add host or host:port to allowed_hosts or the connection's download_hosts "
            f"extra if it is trusted"
        )


def _parse(url: str, what: str) -> tuple[str, str, int]:
    """(scheme, lower-case host, effective port) of a well-formed http(s) link; raises on anything else."""
    if not isinstance(url, str) or not url:
        raise WanVideoURLRefusedError(f"the {what} is empty or not a string ({type(url).__name__})")
    bad = next((c for c in url if ord(c) < 0x21 or ord(c) == 0x7F or c == "\\"), None)
    if bad is not None:
        raise WanVideoURLRefusedError(
            f"the {what} contains {_char_name(bad)} at position {url.index(bad)}; a link must be one line without "
            f"spaces, control characters or backslashes (percent-encode them)"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise WanVideoURLRefusedError(f"the {what} {redact(url)} is not a valid URL: {err}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise WanVideoURLRefusedError(
            f"the {what} {redact(url)} has scheme {scheme or 'none'!r}; only https links are followed"
        )
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise WanVideoURLRefusedError(f"the {what} {redact(url)} carries user info (an '@' in its host); refused")
    netloc_host = parts.netloc.rsplit(":", 1)[0] if parts.port is not None else parts.netloc
    if not netloc_host.isascii():
        raise WanVideoURLRefusedError(
            f"the {what} has a non-ASCII host {netloc_host!r}; internationalised (IDN) host names are refused, "
            f"DashScope links are plain ASCII"
        )
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    if not host or not _HOST_CHARS.match(host):
        raise WanVideoURLRefusedError(f"the {what} {redact(url)} has no valid host name ({host!r})")
    if port is not None and port == 0:
        raise WanVideoURLRefusedError(f"the {what} {redact(url)} has port 0; refused")
    try:
        httpx.URL(url)  # the client must accept it too: no httpx.InvalidURL later
    except (httpx.InvalidURL, ValueError) as err:
        raise WanVideoURLRefusedError(f"the {what} {redact(url)} is not a valid URL: {err}") from None
    return scheme, host, port if port is not None else _default_port(scheme)


def _char_name(char: str) -> str:
    names = {
        "\r": "a carriage return (CR)",
        "\n": "a line feed (LF)",
        "\t": "a tab",
        " ": "a space",
        "\\": "a backslash",
    }
    return names.get(char, f"the control character {char!r}")


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

    def chunks(self) -> Iterator[bytes]:
        """
        The body, piece by piece as it comes off the connection, counted; the MP4 signature is checked before the
        first piece.

        The pieces are httpx's own (``iter_raw()`` without a size: whatever one read of the socket returned, up to
        64 KiB), so no byte is copied here; :class:`VideoReader` joins them into parts.

        :raises WanVideoContentError: the body does not start with an MP4 ``ftyp`` box.
        :raises WanVideoTooLargeError: more than ``max_bytes`` arrived.
        :raises WanVideoDownloadError: the connection failed or the body ended before Content-Length.
        """
        if self._response is None:
            raise RuntimeError("open() first")
        response, stats, max_bytes = self._response, self.stats, self.max_bytes
        head = b""  # the first bytes, held back until the MP4 signature can be checked
        checked = False
        received = 0
        for piece in self._read(response):
            if not checked:
                head += piece
                if len(head) < 12:
                    continue
                check_mp4(head, stats.final_url)
                piece, head, checked = head, b"", True
            received += len(piece)
            stats.received = received
            if max_bytes is not None and received > max_bytes:
                raise WanVideoTooLargeError(
                    f"the video at {stats.final_url} is larger than max_bytes={max_bytes}; stopped reading"
                )
            yield piece
        if not checked:  # fewer than 12 bytes in all
            check_mp4(head, stats.final_url)
        if stats.content_length is not None and stats.received != stats.content_length:
            raise WanVideoDownloadError(
                f"the download of {stats.final_url} ended after {stats.received} of {stats.content_length} bytes"
            )

    def _read(self, response: httpx.Response) -> Iterable[bytes]:
        try:
            yield from response.iter_raw()
        except httpx.HTTPError as err:
            raise WanVideoDownloadError(
                f"the download of {self.stats.final_url} failed after {response.num_bytes_downloaded} of "
                f"{self.stats.content_length if self.stats.content_length is not None else '?'} bytes: "
                f"{type(err).__name__}: {_safe(err, self.url)}"
            ) from None


class VideoReader:
    """
    The checked body of a :class:`VideoDownload` as a non-seekable file object, for boto3's managed upload.

    ``read(n)`` returns exactly ``n`` bytes until the end of the body (boto3 makes each read one part, and every
    part but the last must be full). Every check of :meth:`VideoDownload.chunks` runs inside ``read`` (the MP4
    signature in the first read, ``max_bytes`` while counting, Content-Length in the read that meets the end), so a
    failed check raises inside boto3's upload, which aborts the multipart upload before it can be completed.

    Each byte is copied once on its way from the socket to boto3: the pieces httpx read are joined into the part
    ``read`` returns (only the piece that straddles two parts is cut). Every part returned is handed, by reference,
    to :attr:`digest`, which hashes it in a thread of its own while the next part downloads.

    :param download: an opened :class:`VideoDownload`.
    :param digest: where the parts returned go to be hashed (default: SHA-256 in a thread).
    """

    def __init__(self, download: VideoDownload, digest: StreamDigest | None = None) -> None:
        self._pieces = download.chunks()
        self._held: deque[bytes] = deque()  # pieces read from the download and not yet returned
        self._held_bytes = 0
        self._eof = False
        self._stop: BaseException | None = None
        self.digest = digest if digest is not None else StreamDigest()
        #: Bytes returned by :meth:`read` (all of them given to :attr:`digest`).
        self.returned = 0

    @property
    def at_end(self) -> bool:
        """Whether the whole body was read and checked (what is held back is all that is left)."""
        return self._eof

    @property
    def done(self) -> bool:
        """Whether the whole body was read, checked and returned."""
        return self._eof and not self._held_bytes

    def readable(self) -> bool:
        """Always True (a file-like object boto3 reads)."""
        return True

    def seekable(self) -> bool:
        """Always False: boto3 reads the body once, part after part."""
        return False

    def stop(self, error: BaseException) -> None:
        """
        Make the next ``read`` raise ``error`` (from another thread, e.g. ``on_kill``): boto3 then aborts.

        :param error: what ``read`` raises.
        """
        self._stop = error

    def close(self) -> None:
        """Stop the digest's thread (the reader is not used after this)."""
        self.digest.close()

    def fill(self, size: int) -> bool:
        """
        Read ahead from the download until ``size`` bytes are held or the body ended; return :attr:`at_end`.

        Nothing is returned or hashed; the next :meth:`read` starts with these bytes.

        :param size: bytes to hold.
        :raises WanTransferError: a check of the download failed or :meth:`stop` was called.
        """
        self._fill(size)
        return self._eof

    def _fill(self, wanted: int) -> None:
        if self._stop is not None:
            raise self._stop
        held, pieces = self._held, self._pieces
        while not self._eof and (wanted < 0 or self._held_bytes < wanted):
            try:
                piece = next(pieces)
            except StopIteration:
                self._eof = True
                break
            if self._stop is not None:
                raise self._stop
            held.append(piece)
            self._held_bytes += len(piece)

    def read(self, size: int | None = -1) -> bytes:
        """
        Up to ``size`` bytes (all that is left for a negative or None size); fewer only at the end of the body.

        :param size: bytes wanted.
        :raises WanTransferError: a check of the download failed (see :meth:`VideoDownload.chunks`) or
            :meth:`stop` was called.
        """
        wanted = -1 if size is None or size < 0 else size
        self._fill(wanted)
        held = self._held
        if wanted < 0 or self._held_bytes <= wanted:
            taken = list(held)
            held.clear()
            self._held_bytes = 0
        else:
            taken, count = [], 0
            while count < wanted:
                piece = held.popleft()
                if count + len(piece) > wanted:  # the piece straddles the end of the part: cut it
                    cut = wanted - count
                    held.appendleft(piece[cut:])
                    piece = piece[:cut]
                taken.append(piece)
                count += len(piece)
            self._held_bytes -= count
        data = taken[0] if len(taken) == 1 else b"".join(taken)
        del taken
        if data:
            self.returned += len(data)
            self.digest.update(data)
        return data


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
