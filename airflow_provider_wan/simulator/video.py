"""Result videos of the simulator: MP4s rendered to the request's shape, synthetic videos of any size, signed links.

A rendered video has the requested width, height and seconds, and a soundtrack when the model makes sound; it is
encoded once per shape and process with PyAV (1 frame/s, tiny bitrate). Without PyAV the bundled sample is served.
Synthetic videos start with a real ``ftyp`` box and stream a precomputed block, so 1 GiB costs no memory.
"""

from __future__ import annotations

import array
import base64
import hashlib
import hmac
import io
import logging
import math
import re
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Protocol
from urllib.parse import quote

log = logging.getLogger(__name__)

OSS_ACCESS_KEY_ID = "LTAI5tSimulatorAccessKey"
BUCKET = "dashscope-result-sim"
#: One period of the synthetic filler (1 MiB of sha256-counter bytes).
PERIOD = 1024 * 1024
_FTYP = struct.pack(">I4s4sI4s4s", 24, b"ftyp", b"isom", 0x200, b"isom", b"mp41")
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


#: Frames per second of a rendered video: enough to be a video, cheap enough for 1,000 tasks.
RENDER_FPS = 1
#: Sample rate, bitrate and pitch of a rendered soundtrack (mono AAC).
AUDIO_RATE, AUDIO_BIT_RATE, AUDIO_TONE_HZ = 8000, 16000, 440.0
#: Beyond these a shape is not rendered (an allowed unknown model may ask for anything): the sample is served.
RENDER_MAX_PIXELS, RENDER_MAX_SECONDS = 4096 * 4096, 120
_RENDERED: dict[tuple[int, int, int, bool], bytes] = {}
_RENDER_LOCK = threading.Lock()


@cache
def sample_video_bytes() -> bytes:
    """The bundled sample: a 2-second 320x180 H.264 MP4 (about 7 KB), served when PyAV cannot render."""
    return resources.files("airflow_provider_wan.simulator").joinpath("data/sample.mp4").read_bytes()


@dataclass(frozen=True)
class VideoShape:
    """
    What a task's video looks like: the request's size and duration, with sound when the model makes sound.

    :param width: pixels.
    :param height: pixels.
    :param seconds: the duration.
    :param audio: whether it has a soundtrack.
    """

    width: int
    height: int
    seconds: int
    audio: bool

    @classmethod
    def of(cls, size: str, seconds: int, audio: bool) -> VideoShape:
        """
        The shape of a ``W*H`` size.

        :param size: ``W*H`` as validated at submit.
        :param seconds: the duration.
        :param audio: whether it has a soundtrack.
        """
        width, _, height = size.partition("*")
        return cls(int(width), int(height), seconds, audio)


def render_available() -> bool:
    """Whether PyAV is importable here and has an H.264 and an AAC encoder (else the sample is served)."""
    return _encoders() is not None


@cache
def _encoders() -> tuple[str, str] | None:
    try:
        import av
    except ImportError:
        log.warning("PyAV is not installed: the Wan simulator serves its 320x180 sample for every video")
        return None
    video = next((name for name in ("libx264", "libopenh264", "h264") if name in av.codecs_available), None)
    return (video, "aac") if video and "aac" in av.codecs_available else None


def rendered_video(shape: VideoShape) -> bytes:
    """
    An H.264 MP4 of this shape (encoded once per shape and process), or the sample when it cannot be rendered.

    :param shape: width, height, seconds and sound.
    """
    key = (shape.width, shape.height, shape.seconds, shape.audio)
    found = _RENDERED.get(key)
    if found is not None:
        return found
    with _RENDER_LOCK:
        found = _RENDERED.get(key)
        if found is None:
            found = _RENDERED[key] = _render_or_sample(shape)
        return found


def _render_or_sample(shape: VideoShape) -> bytes:
    encoders = _encoders()
    too_big = shape.width * shape.height > RENDER_MAX_PIXELS or not 0 < shape.seconds <= RENDER_MAX_SECONDS
    if encoders is None or too_big:
        return sample_video_bytes()
    try:
        return _render(shape, *encoders)
    except Exception:  # an encoder that refuses a shape must not break the download
        log.warning("could not render a %s video; serving the sample", shape, exc_info=True)
        return sample_video_bytes()


def _render(shape: VideoShape, video_codec: str, audio_codec: str) -> bytes:
    import av

    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        video: Any = container.add_stream(video_codec, rate=RENDER_FPS)
        even = shape.width % 2 == 0 and shape.height % 2 == 0
        video.width, video.height, video.pix_fmt = shape.width, shape.height, "yuv420p" if even else "yuv444p"
        video.options = {"preset": "ultrafast", "crf": "40", "g": str(RENDER_FPS * shape.seconds)}
        sound: Any = container.add_stream(audio_codec, rate=AUDIO_RATE, layout="mono") if shape.audio else None
        if sound is not None:
            sound.bit_rate = AUDIO_BIT_RATE
        frames = RENDER_FPS * shape.seconds
        for index in range(frames):
            container.mux(video.encode(_frame(av, video, index, frames)))
        container.mux(video.encode())
        if sound is not None:
            for frame in _tone(av, shape.seconds):
                container.mux(sound.encode(frame))
            container.mux(sound.encode())
    return out.getvalue()


def _frame(av: Any, stream: Any, index: int, frames: int) -> Any:
    """A frame with a bright bar that sweeps left to right over the video, on a soft gradient."""
    frame = av.VideoFrame(stream.width, stream.height, stream.pix_fmt)
    bar = max(2, stream.width // 10)
    left = index * (stream.width - bar) // max(1, frames - 1)
    for number, plane in enumerate(frame.planes):
        width = plane.width
        scale = width / stream.width
        row = bytearray((64 + x * 64 // width) % 256 for x in range(width)) if number == 0 else bytearray([128]) * width
        start, end = int(left * scale), int((left + bar) * scale)
        row[start:end] = bytes([235 if number == 0 else 128]) * (end - start)
        plane.update((bytes(row) + bytes(plane.line_size - width)) * plane.height)
    frame.pts = index
    return frame


def _tone(av: Any, seconds: int, chunk: int = 1024) -> Iterator[Any]:
    """A quiet 440 Hz tone of ``seconds``, as float-planar audio frames."""
    total = AUDIO_RATE * seconds
    step = 2 * math.pi * AUDIO_TONE_HZ / AUDIO_RATE
    for start in range(0, total, chunk):
        count = min(chunk, total - start)
        frame = av.AudioFrame(format="fltp", layout="mono", samples=count)
        samples = array.array("f", (0.1 * math.sin(step * (start + i)) for i in range(count))).tobytes()
        plane = frame.planes[0]
        plane.update(samples + bytes(plane.buffer_size - len(samples)))
        frame.sample_rate, frame.pts = AUDIO_RATE, start
        yield frame


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
    :param data: the rendered MP4 (None for a synthetic video).
    """

    size: int
    data: bytes | None = None

    @property
    def synthetic(self) -> bool:
        """Whether this is a synthetic video (else a rendered or sample MP4)."""
        return self.data is None

    @classmethod
    def for_task(cls, video_bytes: int | None, shape: VideoShape) -> VideoBody:
        """
        The MP4 rendered to the task's shape, or a synthetic video of ``video_bytes`` bytes.

        :param video_bytes: the synthetic size (None: render).
        :param shape: the task's width, height, seconds and sound.
        """
        if video_bytes is None:
            data = rendered_video(shape)
            return cls(len(data), data)
        return cls(video_bytes)

    def read(self) -> bytes:
        """The whole body in memory (a synthetic video is joined: mind its size)."""
        return self.data if self.data is not None else b"".join(iter_synthetic_video(self.size))

    def chunks(self, start: int, end: int, chunk: int) -> Iterator[bytes]:
        """
        The bytes in [start, end).

        :param start: the first offset.
        :param end: one past the last offset.
        :param chunk: the largest chunk.
        """
        data = self.data
        if data is None:
            yield from iter_synthetic_video(self.size, start, end, chunk)
            return
        for offset in range(start, end, chunk):
            yield data[offset : min(offset + chunk, end)]


class ShapedTask(Protocol):
    """What :func:`video_body` needs of a task."""

    @property
    def video_shape(self) -> VideoShape:
        """The task's video shape."""
        ...

    @property
    def video_bytes(self) -> int | None:
        """The synthetic video size, if any."""
        ...


def video_body(task: ShapedTask) -> VideoBody:
    """
    What a task's video link serves.

    :param task: the task.
    """
    return VideoBody.for_task(task.video_bytes, task.video_shape)


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
