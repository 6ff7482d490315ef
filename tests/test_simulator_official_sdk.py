"""The official ``dashscope`` SDK, unchanged, against the Wan simulator: if they disagree, the simulator is wrong."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import av
import dashscope
import httpx
import pytest
from dashscope import VideoSynthesis
from dashscope.common.error import InvalidTask

from airflow_provider_wan.simulator import SimulatorConfig, WanSimulator

KEY = "sk-sdk-test"


@pytest.fixture(scope="module")
def sdk_server() -> Iterator[WanSimulator]:
    """Short lifecycles: the SDK's ``wait`` sleeps 1, 1, 2, 2, ... seconds between polls."""
    with WanSimulator(SimulatorConfig(pending_seconds=0.1, running_seconds=0.3)) as simulator:
        yield simulator


@pytest.fixture
def sdk_sim(sdk_server: WanSimulator) -> Iterator[WanSimulator]:
    """The simulator, reset, with the SDK's global base URL pointed at it for the test."""
    sdk_server.reset()
    previous = dashscope.base_http_api_url
    dashscope.base_http_api_url = sdk_server.base_url
    yield sdk_server
    dashscope.base_http_api_url = previous


def test_call_succeeds_and_the_video_url_downloads_a_playable_h264_mp4(sdk_sim: WanSimulator) -> None:
    # The first poll answers 503, which the SDK's wait treats as repeatable: it must sleep and poll again.
    rsp = VideoSynthesis.call(
        model="wan2.6-t2v",
        prompt="a cat playing piano [[sim: poll_errors=1:503]]",
        api_key=KEY,
        size="1280*720",
        duration=10,
        shot_type="multi",
        audio=True,
        negative_prompt="blurry",
        seed=12345,
        watermark=False,
        prompt_extend=True,
    )
    assert rsp.status_code == 200, rsp
    assert rsp.output.task_status == "SUCCEEDED"
    assert rsp.usage["SR"] == 720 and rsp.usage["output_video_duration"] == 10
    video = httpx.get(rsp.output.video_url)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    with av.open(io.BytesIO(video.content), "r") as container:
        assert container.streams.video[0].codec_context.name == "h264"
    task = sdk_sim.task(rsp.output.task_id)
    assert task is not None
    assert task["body"]["input"]["function"] == "video-synthesis"  # the SDK's leaked extra key was accepted
    assert sdk_sim.counters()["per_status"]["503"] == 1


def test_async_call_fetch_and_cancel_a_pending_task(sdk_sim: WanSimulator) -> None:
    submitted = VideoSynthesis.async_call(model="wan2.6-t2v", prompt="a dog [[sim: pending=30]]", api_key=KEY)
    assert submitted.status_code == 200 and submitted.output.task_status == "PENDING"
    fetched = VideoSynthesis.fetch(submitted, api_key=KEY)
    assert fetched.status_code == 200 and fetched.output.task_status == "PENDING"
    canceled = VideoSynthesis.cancel(submitted, api_key=KEY)
    assert canceled.status_code == 200
    after = VideoSynthesis.fetch(submitted.output.task_id, api_key=KEY)
    assert after.output.task_status == "CANCELED"
    again = VideoSynthesis.cancel(submitted, api_key=KEY)
    assert (again.status_code, again.code) == (400, "UnsupportedOperation")


def test_a_bad_key_is_401_when_the_simulator_restricts_keys(sdk_sim: WanSimulator) -> None:
    sdk_sim.configure(api_keys=["sk-the-only-good-one"])
    rsp = VideoSynthesis.async_call(model="wan2.6-t2v", prompt="a dog", api_key="sk-bad")
    assert (rsp.status_code, rsp.code, rsp.message) == (401, "InvalidApiKey", "Invalid API-key provided.")
    assert sdk_sim.counters()["tasks_created"] == 0


def test_wait_returns_a_failed_task_with_its_code(sdk_sim: WanSimulator) -> None:
    prompt = "x [[sim: pending=0 running=0 code=DataInspectionFailed]]"
    rsp = VideoSynthesis.call(model="wan2.5-t2v-preview", prompt=prompt, api_key=KEY)
    assert rsp.status_code == 200 and rsp.code is None
    assert rsp.output.task_status == "FAILED"
    assert rsp.output["code"] == "DataInspectionFailed"


def test_legacy_models_report_their_usage_and_actual_prompt(sdk_sim: WanSimulator) -> None:
    rsp = VideoSynthesis.call(model="wan2.5-t2v-preview", prompt="a fox", size="832*480", api_key=KEY)
    assert rsp.output.task_status == "SUCCEEDED"
    assert (rsp.usage.video_duration, rsp.usage.video_ratio, rsp.usage.video_count) == (5, "832*480", 1)
    assert rsp.output["actual_prompt"].startswith("a fox")


def test_invalid_submissions_and_throttling_surface_as_the_sdk_expects(sdk_sim: WanSimulator) -> None:
    bad = VideoSynthesis.async_call(model="wan2.6-t2v", prompt="a dog", size="832*480", api_key=KEY)
    assert (bad.status_code, bad.code) == (400, "InvalidParameter") and "size" in bad.message
    unknown = VideoSynthesis.async_call(model="wan9-t2v", prompt="a dog", api_key=KEY)
    assert (unknown.status_code, unknown.code) == (404, "ModelNotFound")
    sdk_sim.add_fault("submit", status=429, count=1)
    with pytest.raises(InvalidTask):
        VideoSynthesis.call(model="wan2.6-t2v", prompt="a dog", api_key=KEY)


def test_list_reads_the_flat_page(sdk_sim: WanSimulator) -> None:
    for _ in range(3):
        VideoSynthesis.async_call(model="wan2.6-t2v", prompt="a dog", api_key=KEY)
    listed = VideoSynthesis.list(page_size=2, api_key=KEY)  # type: ignore[attr-defined]
    assert listed.status_code == 200
    assert (listed.output["total"], listed.output["total_page"], len(listed.output["data"])) == (3, 2, 2)


def test_the_v2_client_creates_waits_and_maps_errors(sdk_sim: WanSimulator) -> None:
    client = dashscope.v2.Client(api_key=KEY, base_url=sdk_sim.base_url, max_retries=0)
    job = client.videos.jobs.create(model="wan2.6-t2v", prompt="a cat", size="1280*720", duration=5)
    done = client.videos.jobs.wait(job, _sleep=lambda _: time.sleep(0.1))
    assert done.succeeded and done.video_url and done.usage is not None and getattr(done.usage, "SR", None) == 720
    failing = client.videos.jobs.create(
        model="wan2.6-t2v", prompt="x [[sim: pending=0 running=0 code=DataInspectionFailed]]"
    )
    with pytest.raises(dashscope.v2.errors.ContentFilterError):
        client.videos.jobs.wait(failing, _sleep=lambda _: None)
    bad_key = dashscope.v2.Client(api_key="sk-x", base_url=sdk_sim.base_url, max_retries=0)
    sdk_sim.configure(api_keys=[KEY])
    with pytest.raises(dashscope.v2.errors.AuthenticationError):
        bad_key.videos.jobs.create(model="wan2.6-t2v", prompt="a cat")
