"""Result videos of the Wan simulator: the sample MP4, synthetic videos, byte ranges and signed links."""

from __future__ import annotations

import hashlib
import io
import struct

import av
import pytest

from airflow_provider_wan.simulator import iter_synthetic_video, sample_video_bytes, synthetic_video_sha256
from airflow_provider_wan.simulator.video import PERIOD, byte_range, sign, signature_ok, synthetic_header


def test_the_sample_is_a_small_playable_h264_mp4() -> None:
    data = sample_video_bytes()
    assert len(data) < 100_000
    assert data[4:8] == b"ftyp"
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = sum(1 for _ in container.decode(stream))
    assert frames >= 24


def test_synthetic_video_opens_with_ftyp_and_an_mdat_covering_the_rest() -> None:
    size = 5000
    data = b"".join(iter_synthetic_video(size))
    assert len(data) == size
    assert struct.unpack(">I4s4s", data[:12]) == (24, b"ftyp", b"isom")
    assert struct.unpack(">I4s", data[24:32]) == (size - 24, b"mdat")


def test_synthetic_videos_past_4_gib_use_a_64_bit_mdat() -> None:
    size = 5 * 1024**3
    header = synthetic_header(size)
    assert struct.unpack(">I4sQ", header[24:40]) == (1, b"mdat", size - 24)


@pytest.mark.parametrize("size", [0, 10, 31, 32, 33, PERIOD + 100, 3 * PERIOD + 7])
def test_any_slice_matches_the_whole_and_the_digest_helper(size: int) -> None:
    whole = b"".join(iter_synthetic_video(size))
    assert len(whole) == size
    assert hashlib.sha256(whole).hexdigest() == synthetic_video_sha256(size)
    for start, end in ((0, size), (size // 3, size), (size // 2, size - size // 4)):
        assert b"".join(iter_synthetic_video(size, start, end, chunk=4096)) == whole[start:end]


def test_byte_ranges_follow_http_rules() -> None:
    assert byte_range(None, 100) is None
    assert byte_range("bytes=10-19", 100) == (10, 20)
    assert byte_range("bytes=90-", 100) == (90, 100)
    assert byte_range("bytes=-10", 100) == (90, 100)
    assert byte_range("bytes=50-500", 100) == (50, 100)
    assert byte_range("bytes=0-1,5-6", 100) is None
    with pytest.raises(ValueError):
        byte_range("bytes=100-", 100)


def test_signatures_bind_the_task_and_the_expiry() -> None:
    secret = b"s" * 32
    good = sign(secret, "task", 1000)
    assert signature_ok(secret, "task", "1000", good)
    assert not signature_ok(secret, "task", "1001", good)
    assert not signature_ok(secret, "other", "1000", good)
    assert not signature_ok(secret, "task", "soon", good)
