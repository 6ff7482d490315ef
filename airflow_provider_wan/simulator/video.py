"""Result videos of the simulator: the bundled sample MP4, synthetic videos of any size, signed links.

Synthetic videos start with a real ``ftyp`` box and stream a precomputed block, so 1 GiB costs no memory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from urllib.parse import quote

OSS_ACCESS_KEY_ID = "LTAI5tSimulatorAccessKey"
BUCKET = "dashscope-result-sim"
#: One period of the synthetic filler (1 MiB of sha256-counter bytes).
PERIOD = 1024 * 1024
_FTYP = struct.pack(">I4s4sI4s4s", 24, b"ftyp", b"isom", 0x200, b"isom", b"mp41")
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


@cache
def sample_video_bytes() -> bytes:
    """The bundled sample: a 2-second 320x180 H.264 MP4 (about 7 KB)."""
    return resources.files("airflow_provider_wan.simulator").joinpath("data/sample.mp4").read_bytes()


@cache
def _filler() -> bytes:
    """Two periods back to back, so any slice of up to one period is a single memory view."""
    period = b"".join(hashlib.sha256(b"wan-simulator:%d" % i).digest() for i in range(PERIOD // 32))
    return period + period


def synthetic_header(size: int) -> bytes:
    """
    The boxes that open a synthetic video: ``ftyp`` then an ``mdat`` header covering the rest.

    :param size: the total size of the video in bytes.
    """
    rest = size - len(_FTYP)
    # Past 4 GiB the box needs the 64-bit "largesize" form.
    small = rest < 2**32
    mdat = struct.pack(">I4s", max(rest, 0), b"mdat") if small else struct.pack(">I4sQ", 1, b"mdat", rest)
    return (_FTYP + mdat)[:size]


def iter_synthetic_video(size: int, start: int = 0, end: int | None = None, chunk: int = PERIOD) -> Iterator[bytes]:
    """
    The bytes of the synthetic video of ``size`` bytes, from ``start`` up to ``end`` (exclusive).

    :param size: the total size of the video.
    :param start: the first byte offset.
    :param end: one past the last byte offset (default: ``size``).
    :param chunk: the largest chunk to yield (at most one period).
    """
    end = size if end is None else min(end, size)
    header = synthetic_header(size)
    chunk = min(chunk, PERIOD)
    position = start
    if position < len(header):
        yield header[position : min(end, len(header))]
        position = len(header)
    filler = memoryview(_filler())
    while position < end:
        offset = (position - len(header)) % PERIOD
        length = min(chunk, end - position)
        yield bytes(filler[offset : offset + length])
        position += length


def synthetic_video_sha256(size: int) -> str:
    """
    The sha256 hex digest of the synthetic video of ``size`` bytes, without any download.

    :param size: the video's size in bytes.
    """
    digest = hashlib.sha256()
    for piece in iter_synthetic_video(size):
        digest.update(piece)
    return digest.hexdigest()


@dataclass(frozen=True)
class VideoBody:
    """
    What one task's video link serves.

    :param size: total bytes.
    :param synthetic: a synthetic video (else the sample MP4).
    """

    size: int
    synthetic: bool

    @classmethod
    def for_task(cls, video_bytes: int | None) -> VideoBody:
        """
        The sample MP4, or a synthetic video of ``video_bytes`` bytes.

        :param video_bytes: the requested size (None: the sample).
        """
        if video_bytes is None:
            return cls(len(sample_video_bytes()), synthetic=False)
        return cls(video_bytes, synthetic=True)

    def chunks(self, start: int, end: int, chunk: int) -> Iterator[bytes]:
        """
        The bytes in [start, end).

        :param start: the first offset.
        :param end: one past the last offset.
        :param chunk: the largest chunk.
        """
        if self.synthetic:
            yield from iter_synthetic_video(self.size, start, end, chunk)
            return
        data = sample_video_bytes()
        for offset in range(start, end, chunk):
            yield data[offset : min(offset + chunk, end)]


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """
    The [start, end) a ``Range`` header asks for; None means the whole body.

    :param header: the Range header (only one ``bytes=`` range is honoured, like OSS).
    :param size: the body size.
    :raises ValueError: when the range cannot be satisfied (answer 416).
    """
    match = _RANGE_RE.match(header.strip()) if header else None
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        start, end = max(size - int(last), 0), size
    else:
        start, end = int(first), min(int(last) + 1, size) if last else size
    if start >= size or start >= end:
        raise ValueError(f"bytes {start}-{end - 1} of {size}")
    return start, end


def _string_to_sign(task_id: str, expires: int) -> bytes:
    return f"GET\n\n\n{expires}\n/{BUCKET}/{task_id}.mp4".encode()


def sign(secret: bytes, task_id: str, expires: int) -> str:
    """
    The OSS-style signature of a video link.

    :param secret: the server's signing secret.
    :param task_id: the task.
    :param expires: the link's expiry in epoch seconds.
    """
    mac = hmac.new(secret, _string_to_sign(task_id, expires), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def signature_ok(secret: bytes, task_id: str, expires: str, signature: str) -> bool:
    """
    Whether a link's signature is the one this server issued.

    :param secret: the server's signing secret.
    :param task_id: the task in the path.
    :param expires: the ``Expires`` query value.
    :param signature: the ``Signature`` query value.
    """
    if not expires.isdigit():
        return False
    return hmac.compare_digest(sign(secret, task_id, int(expires)), signature)


def video_url(root: str, secret: bytes, task_id: str, expires: int) -> str:
    """
    The signed, expiring link of a task's video on the simulator's own file route.

    :param root: the simulator's root URL.
    :param secret: the server's signing secret.
    :param task_id: the task.
    :param expires: the expiry in epoch seconds.
    """
    signature = quote(sign(secret, task_id, expires), safe="")
    return f"{root}/oss/{task_id}.mp4?Expires={expires}&OSSAccessKeyId={OSS_ACCESS_KEY_ID}&Signature={signature}"
