"""Result videos of the Wan simulator: rendered to the request, the sample, synthetic videos, ranges and links."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import subprocess
import sys
import time
from typing import Any

import av
import httpx
import pytest

from airflow_provider_wan.simulator import (
    VideoShape,
    WanSimulator,
    iter_synthetic_video,
    render_available,
    rendered_video,
    sample_video_bytes,
    synthetic_video_sha256,
)
from airflow_provider_wan.simulator.video import PERIOD, byte_range, sign, signature_ok, synthetic_header
from tests.test_simulator import create, wait_for


def probe(data: bytes) -> dict[str, Any]:
    """What a player sees: the video stream's codec and size, the duration, and whether there is sound."""
    with av.open(io.BytesIO(data), "r") as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        return {
            "codec": video.codec_context.name,
            "width": video.width,
            "height": video.height,
            "seconds": round((container.duration or 0) / 1_000_000, 1),
            "audio": len(container.streams.audio) > 0,
            "frames": frames,
        }


def download(sim: WanSimulator, task_id: str) -> bytes:
    url = wait_for(sim, task_id, "SUCCEEDED")["output"]["video_url"]
    response = httpx.get(url)
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    return response.content


# rendered to the request --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "params", "expected"),
    [
        ("wan2.6-t2v", {"size": "1280*720", "duration": 10}, (1280, 720, 10.0, True)),
        ("wan2.6-t2v", {}, (1920, 1080, 5.0, True)),
        ("wan2.6-t2v", {"size": "720*1280", "duration": 2, "audio": False}, (720, 1280, 2.0, False)),
        ("wan2.5-t2v-preview", {"size": "624*624", "duration": 5}, (624, 624, 5.0, True)),
        ("wan2.2-t2v-plus", {"size": "832*480"}, (832, 480, 5.0, False)),
        ("wanx2.1-t2v-turbo", {}, (1280, 720, 5.0, False)),
        ("wan2.7-t2v", {"resolution": "720P", "ratio": "9:16", "duration": 3}, (720, 1280, 3.0, True)),
        ("wan2.7-t2v", {}, (1920, 1080, 5.0, True)),
    ],
)
def test_the_video_matches_the_requested_size_duration_and_sound(
    wan_simulator: WanSimulator, model: str, params: dict[str, Any], expected: tuple[int, int, float, bool]
) -> None:
    task_id = create(wan_simulator, model=model, **params)
    data = download(wan_simulator, task_id)
    seen = probe(data)
    assert (seen["width"], seen["height"], seen["seconds"], seen["audio"]) == expected
    assert seen["codec"] == "h264" and seen["frames"] == int(expected[2])
    assert wan_simulator.video_bytes(task_id) == data


def test_each_shape_is_encoded_once_per_process() -> None:
    shape = VideoShape(960, 960, 7, True)
    started = time.perf_counter()
    first = rendered_video(shape)
    assert rendered_video(VideoShape(960, 960, 7, True)) is first
    assert time.perf_counter() - started < 10
    assert len(first) < 200_000  # cheap enough for 1,000 tasks of every shape


def test_many_tasks_of_one_shape_share_one_encoding(wan_simulator: WanSimulator) -> None:
    wan_simulator.configure(model_limits={"*": {"submit_rps": 1000, "concurrency": 1000}}, query_qps=1000)
    ids = [create(wan_simulator, size="1088*832", duration=3) for _ in range(20)]
    assert wait_for(wan_simulator, ids[-1], "SUCCEEDED")["output"]["task_status"] == "SUCCEEDED"
    bodies = {wan_simulator.video_bytes(task_id) for task_id in ids}
    assert len(bodies) == 1 and probe(bodies.pop())["width"] == 1088


def test_odd_sizes_of_an_unknown_model_render_too(wan_simulator_factory: Any) -> None:
    sim = wan_simulator_factory(allow_unknown_models=True)
    seen = probe(download(sim, create(sim, model="wan9-t2v-future", size="1001*501", duration=3)))
    assert (seen["width"], seen["height"], seen["seconds"], seen["audio"]) == (1001, 501, 3.0, False)


def test_shapes_too_big_to_render_fall_back_to_the_sample() -> None:
    assert rendered_video(VideoShape(8192, 8192, 5, False)) == sample_video_bytes()
    assert rendered_video(VideoShape(640, 480, 3600, False)) == sample_video_bytes()


def test_without_pyav_the_sample_is_served() -> None:
    script = (
        "import sys; sys.modules['av'] = None\n"
        "from airflow_provider_wan.simulator.video import VideoShape, render_available, rendered_video, "
        "sample_video_bytes\n"
        "assert not render_available()\n"
        "assert rendered_video(VideoShape(1280, 720, 5, True)) == sample_video_bytes()\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, env=os.environ.copy(), capture_output=True)
    assert render_available()


def test_a_synthetic_size_still_wins_over_rendering(wan_simulator: WanSimulator) -> None:
    task_id = create(wan_simulator, "x [[sim: video_bytes=64K]]")
    data = download(wan_simulator, task_id)
    assert len(data) == 64 * 1024 and hashlib.sha256(data).hexdigest() == synthetic_video_sha256(64 * 1024)
    assert wan_simulator.video_bytes(task_id) == data


# the bundled sample and synthetic videos -----------------------------------------------------------


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
