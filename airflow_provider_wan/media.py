"""
What a media input is, read from its first bytes: the format by content (not by name), and an image's pixel size.

Pure functions over bytes, shared by the operators' checks before the request and by the simulator, which reads its
inputs the way DashScope does. A format is told by its magic bytes; an image's width and height come from its header
(PNG ``IHDR``, JPEG ``SOFn``, WEBP ``VP8``/``VP8L``/``VP8X``, BMP ``BITMAPINFOHEADER``), all within the first 64 KiB
of any real file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

from airflow_provider_wan.models import (
    AUDIO_FORMATS,
    AUDIO_MAX_BYTES,
    IMAGE_FORMATS,
    IMAGE_MAX_BYTES,
    IMAGE_MAX_PX,
    IMAGE_MIN_PX,
    VIDEO_FORMATS,
    VIDEO_MAX_BYTES,
)

#: How many leading bytes :func:`sniff` needs at most.
HEAD_BYTES = 64 * 1024
Kind = Literal["image", "video", "audio"]


@dataclass(frozen=True)
class MediaInfo:
    """
    A media input as read from its first bytes.

    :param kind: ``image``, ``video`` or ``audio``; None when the format is not one DashScope takes.
    :param format: ``jpeg``, ``png``, ``bmp``, ``webp``, ``mp4``, ``mov``, ``wav`` or ``mp3``; None if unknown.
    :param width: an image's width in pixels, when its header says.
    :param height: an image's height in pixels.
    :param alpha: whether a PNG has a transparency channel (DashScope refuses those).
    """

    kind: Kind | None
    format: str | None
    width: int | None = None
    height: int | None = None
    alpha: bool = False

    def describe(self) -> str:
        """The format and, for an image, its size, e.g. ``png 1280x720``."""
        size = f" {self.width}x{self.height}" if self.width and self.height else ""
        return f"{self.format or 'unknown format'}{size}"


def sniff(head: bytes) -> MediaInfo:
    """
    Tell the format (and an image's pixel size) from a file's first bytes.

    :param head: the first bytes of the file (up to :data:`HEAD_BYTES`; fewer for a smaller file).
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 26 and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return MediaInfo("image", "png", width, height, alpha=head[25] in (4, 6))
    if head.startswith(b"\xff\xd8\xff"):
        width, height = _jpeg_size(head)
        return MediaInfo("image", "jpeg", width, height)
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        width, height = _webp_size(head)
        return MediaInfo("image", "webp", width, height)
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return MediaInfo("audio", "wav")
    if head.startswith(b"BM") and len(head) >= 26:
        width, height = struct.unpack("<ii", head[18:26])
        return MediaInfo("image", "bmp", abs(width), abs(height))
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return MediaInfo("video", "mov" if brand == b"qt  " else "mp4")
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return MediaInfo("audio", "mp3")
    return MediaInfo(None, None)


def _jpeg_size(head: bytes) -> tuple[int | None, int | None]:
    """Walk the JPEG markers to the first start-of-frame (SOF0-SOF15 but DHT, JPG, DAC)."""
    i = 2
    while i + 9 < len(head):
        if head[i] != 0xFF:
            i += 1
            continue
        marker = head[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack(">H", head[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", head[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None, None


def _webp_size(head: bytes) -> tuple[int | None, int | None]:
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30:
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(head) >= 30:
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None, None


def problem(
    name: str,
    shown: str,
    info: MediaInfo,
    size: int | None,
    want: Kind | tuple[Kind, ...],
    image_max_bytes: int = IMAGE_MAX_BYTES,
) -> str | None:
    """
    What DashScope would refuse about this input, in words naming the parameter, or None when it looks right.

    :param name: the parameter, e.g. ``img_url`` or ``reference_urls[1]``.
    :param shown: the input as it may be shown (an ``s3://`` URI or a link without its query).
    :param info: what :func:`sniff` read.
    :param size: the file's size in bytes, when known.
    :param want: the kind (or kinds) the parameter takes.
    :param image_max_bytes: the model's image limit (20 MB for some, 10 MB for most).
    """
    kinds = (want,) if isinstance(want, str) else want
    allowed = {"image": IMAGE_FORMATS, "video": VIDEO_FORMATS, "audio": AUDIO_FORMATS}
    if info.kind not in kinds:
        formats = ", ".join(f for k in kinds for f in allowed[k])
        return f"{name}={shown!r} is {info.describe()} by its content; allowed: {formats}"
    limit = {"image": image_max_bytes, "video": VIDEO_MAX_BYTES, "audio": AUDIO_MAX_BYTES}[info.kind]
    if size is not None and size > limit:
        return f"{name}={shown!r} is {size / 2**20:.1f} MiB; allowed: at most {limit // 2**20} MiB for {info.kind}s"
    if info.kind == "image":
        if info.alpha:
            return f"{name}={shown!r} is a PNG with transparency; allowed: images without an alpha channel"
        sides = [s for s in (info.width, info.height) if s is not None]
        if any(not IMAGE_MIN_PX <= s <= IMAGE_MAX_PX for s in sides):
            return (
                f"{name}={shown!r} is {info.width}x{info.height} pixels; allowed: width and height from "
                f"{IMAGE_MIN_PX} to {IMAGE_MAX_PX}"
            )
    return None
