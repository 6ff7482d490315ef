"""Regenerate ``sample.mp4``, the small playable H.264 video the simulator serves by default.

A maintainer tool, not imported by the simulator: ``python make_sample_video.py`` (needs PyAV).
"""

from __future__ import annotations

from pathlib import Path

import av

WIDTH, HEIGHT, FPS, SECONDS = 320, 180, 24, 2
BAR = 32


def _plane(width: int, height: int, line_size: int, value: int, bar: tuple[int, int], bar_value: int) -> bytes:
    """One plane: a horizontal gradient around ``value`` with a bright vertical bar."""
    row = bytearray((value + (x * 64 // width)) % 256 for x in range(width))
    row[bar[0] : bar[1]] = bytes([bar_value]) * (bar[1] - bar[0])
    padded = bytes(row) + bytes(line_size - width)
    return padded * height


def _frame(index: int) -> av.VideoFrame:
    """A frame whose bar sweeps left to right, so playback visibly moves."""
    frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
    left = index * (WIDTH - BAR) // (FPS * SECONDS - 1)
    specs = (
        (WIDTH, HEIGHT, 64, (left, left + BAR), 235),
        (WIDTH // 2, HEIGHT // 2, 96, (left // 2, (left + BAR) // 2), 128),
        (WIDTH // 2, HEIGHT // 2, 160, (left // 2, (left + BAR) // 2), 128),
    )
    for plane, (width, height, value, bar, bar_value) in zip(frame.planes, specs, strict=True):
        plane.update(_plane(width, height, plane.line_size, value, bar, bar_value))
    frame.pts = index
    return frame


def main(path: Path | None = None) -> None:
    """
    Encode the sample video.

    :param path: where to write the MP4 (default: ``sample.mp4`` next to this script).
    """
    path = path or Path(__file__).with_name("sample.mp4")
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "30", "preset": "veryslow"}
        for index in range(FPS * SECONDS):
            container.mux(stream.encode(_frame(index)))
        container.mux(stream.encode())


if __name__ == "__main__":
    main()
