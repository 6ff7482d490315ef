"""The Wan simulator over real HTTP: every route, error, lifecycle rule, fault, limit and both wire flavours."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from airflow_provider_wan.simulator import ManualClock, WanSimulator, synthetic_video_sha256

KEY = "sk-test-anything"
HEADERS = {"Authorization": f"Bearer {KEY}", "X-DashScope-Async": "enable"}
SUBMIT = "/services/aigc/video-generation/video-synthesis"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$")
Factory = Callable[..., WanSimulator]


# helpers ------------------------------------------------------------------------------------------


def submit(
    sim: WanSimulator,
    prompt: str = "a cat",
    model: str = "wan2.6-t2v",
    headers: dict[str, str] | None = None,
    **params: Any,
) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "input": {"prompt": prompt}}
    if params:
        body["parameters"] = params
    return httpx.post(sim.base_url + SUBMIT, json=body, headers=HEADERS if headers is None else headers)


def create(sim: WanSimulator, prompt: str = "a cat", model: str = "wan2.6-t2v", **params: Any) -> str:
    response = submit(sim, prompt, model, **params)
    assert response.status_code == 200, response.text
    return str(response.json()["output"]["task_id"])


def poll(sim: WanSimulator, task_id: str) -> dict[str, Any]:
    response = httpx.get(f"{sim.base_url}/tasks/{task_id}", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert_request_id(body)
    return body


def wait_for(sim: WanSimulator, task_id: str, *statuses: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = poll(sim, task_id)
        if body["output"]["task_status"] in statuses or time.monotonic() > deadline:
            return body
        time.sleep(0.02)


def assert_request_id(body: dict[str, Any]) -> None:
    assert uuid.UUID(body["request_id"]).version == 4


def assert_error(response: httpx.Response, status: int, code: str, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"request_id", "code", "message"}
    assert body["code"] == code
    assert_request_id(body)
    for fragment in fragments:
        assert fragment in body["message"]
    return body


def video_link(sim: WanSimulator, prompt: str = "a cat") -> str:
    task_id = create(sim, prompt)
    return str(wait_for(sim, task_id, "SUCCEEDED")["output"]["video_url"])


# auth and headers ---------------------------------------------------------------------------------


def test_submit_without_a_key_is_401_no_api_key(wan_simulator: WanSimulator) -> None:
    response = submit(wan_simulator, headers={"X-DashScope-Async": "enable"})
    assert_error(response, 401, "InvalidApiKey", "No API-key provided.")
    response = submit(wan_simulator, headers={"Authorization": "Bearer", "X-DashScope-Async": "enable"})
    assert_error(response, 401, "InvalidApiKey", "No API-key provided.")


def test_a_key_outside_the_allowed_list_is_401_invalid(wan_simulator_factory: Factory) -> None:
    sim = wan_simulator_factory(api_keys=["sk-good"])
    wrong = {"Authorization": "Bearer sk-wrong", "X-DashScope-Async": "enable"}
    assert_error(submit(sim, headers=wrong), 401, "InvalidApiKey", "Invalid API-key provided.")
    assert submit(sim, headers={**wrong, "Authorization": "Bearer sk-good"}).status_code == 200


def test_submit_without_the_async_header_is_403(wan_simulator: WanSimulator) -> None:
    response = submit(wan_simulator, headers={"Authorization": f"Bearer {KEY}"})
    assert_error(response, 403, "AccessDenied", "current user api does not support synchronous calls")
    assert wan_simulator.counters()["tasks_created"] == 0


def test_the_official_sdk_headers_and_extra_keys_are_tolerated(wan_simulator: WanSimulator) -> None:
    headers = {
        **HEADERS,
        "user-agent": "dashscope/2.0.2; python/3.11.7",
        "Accept": "application/json; charset=utf-8",
        "Content-Type": "application/json; charset=utf-8",
        "X-DashScope-WorkSpace": "ws-1",
        "X-DashScope-DataInspection": "enable",
        "X-DashScope-OssResourceResolve": "enable",
        "x-dashscope-sdk-client": "python-sdk/2.0.2/aigc",
        "x-dashscope-sdk-session-id": "0" * 32,
    }
    body = {
        "model": "wan2.6-t2v",
        "input": {"prompt": "猫在弹钢琴", "extend_prompt": True, "function": "video-synthesis"},
        "parameters": {"audio": True, "size": "1280*720", "future_knob": 1},
    }
    raw = json.dumps(body, ensure_ascii=False).encode()
    response = httpx.post(wan_simulator.base_url + SUBMIT, content=raw, headers=headers)
    assert response.status_code == 200, response.text
    output = response.json()["output"]
    assert output["task_status"] == "PENDING" and uuid.UUID(output["task_id"])
    assert_request_id(response.json())
    debug = wan_simulator.task(output["task_id"])
    assert debug is not None and debug["headers"]["authorization"] == "***"
    assert debug["body"] == body


# validation ---------------------------------------------------------------------------------------


def test_an_unknown_model_is_404_model_not_found(wan_simulator: WanSimulator) -> None:
    assert_error(submit(wan_simulator, model="wan9-t2v"), 404, "ModelNotFound", "Model can not be found.")


@pytest.mark.parametrize(
    ("model", "params", "field"),
    [
        ("wan2.6-t2v", {"size": "832*480"}, "parameters.size"),
        ("wan2.6-t2v", {"size": "1280x720"}, "parameters.size"),
        ("wan2.2-t2v-plus", {"size": "1280*720"}, "parameters.size"),
        ("wan2.6-t2v", {"duration": 1}, "parameters.duration"),
        ("wan2.5-t2v-preview", {"duration": 7}, "parameters.duration"),
        ("wan2.6-t2v", {"duration": "long"}, "parameters.duration"),
        ("wan2.6-t2v", {"shot_type": "triple"}, "parameters.shot_type"),
        ("wan2.5-t2v-preview", {"shot_type": "multi"}, "parameters.shot_type"),
        ("wan2.6-t2v", {"seed": -1}, "parameters.seed"),
        ("wan2.6-t2v", {"seed": 2**31}, "parameters.seed"),
        ("wan2.6-t2v", {"prompt_extend": "sometimes"}, "parameters.prompt_extend"),
        ("wan2.7-t2v", {"size": "1280*720"}, "parameters.size"),
        ("wan2.7-t2v", {"resolution": "480P", "ratio": "16:9"}, "parameters.resolution"),
        ("wan2.7-t2v", {"resolution": "720P", "ratio": "2:1"}, "parameters.ratio"),
    ],
)
def test_invalid_parameters_are_400_naming_the_field(
    wan_simulator: WanSimulator, model: str, params: dict[str, Any], field: str
) -> None:
    body = assert_error(submit(wan_simulator, model=model, **params), 400, "InvalidParameter", field)
    if field.endswith(("size", "duration", "resolution", "ratio")) or params.get("shot_type") == "multi":
        assert f"model {model}" in body["message"]
    if "size" in field:
        assert body["message"].startswith("The size is not match")


def test_missing_and_empty_prompts_are_400(wan_simulator: WanSimulator) -> None:
    no_prompt = httpx.post(wan_simulator.base_url + SUBMIT, json={"model": "wan2.6-t2v", "input": {}}, headers=HEADERS)
    assert_error(no_prompt, 400, "InvalidParameter", "input.prompt")
    assert_error(submit(wan_simulator, prompt="   "), 400, "InvalidParameter", "input.prompt")
    no_input = httpx.post(wan_simulator.base_url + SUBMIT, json={"model": "wan2.6-t2v"}, headers=HEADERS)
    assert_error(no_input, 400, "BadRequest.EmptyInput")
    not_json = httpx.post(wan_simulator.base_url + SUBMIT, content=b"{nope", headers=HEADERS)
    assert_error(not_json, 400, "InvalidParameter", "not valid JSON")


def test_long_prompts_are_silently_truncated_per_model(wan_simulator: WanSimulator) -> None:
    long_prompt, long_negative = "p" * 2000, "n" * 900
    body = {"model": "wan2.2-t2v-plus", "input": {"prompt": long_prompt, "negative_prompt": long_negative}}
    response = httpx.post(wan_simulator.base_url + SUBMIT, json=body, headers=HEADERS)
    task_id = response.json()["output"]["task_id"]
    output = wait_for(wan_simulator, task_id, "SUCCEEDED")["output"]
    assert output["orig_prompt"] == "p" * 800
    debug = wan_simulator.task(task_id)
    assert debug is not None and debug["effective"]["negative_prompt"] == "n" * 500
    assert len(create(wan_simulator, "q" * 2000)) == 36


def test_unknown_models_can_be_allowed_and_report_the_newest_usage_shape(wan_simulator_factory: Factory) -> None:
    sim = wan_simulator_factory(allow_unknown_models=True, pending_seconds=0, running_seconds=0)
    body = wait_for(sim, create(sim, model="wan9-t2v-future", size="1000*500"), "SUCCEEDED")
    assert body["usage"]["size"] == "1000*500" and body["usage"]["output_video_duration"] == 5


# lifecycle ----------------------------------------------------------------------------------------


def test_lifecycle_pending_running_succeeded_with_timestamps(wan_simulator_factory: Factory) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    sim = wan_simulator_factory(clock=clock, pending_seconds=1, running_seconds=3)
    task_id = create(sim, "a cat [[sim: running=2.5]]")
    pending = poll(sim, task_id)["output"]
    assert pending == {"task_id": task_id, "task_status": "PENDING", "submit_time": "2027-01-15 16:00:00.000"}
    clock.advance(1.5)
    running = poll(sim, task_id)
    assert running["output"]["task_status"] == "RUNNING"
    assert running["output"]["scheduled_time"] == "2027-01-15 16:00:01.000"
    assert "end_time" not in running["output"] and "usage" not in running
    clock.advance(2)
    done = poll(sim, task_id)
    output = done["output"]
    assert output["task_status"] == "SUCCEEDED" and output["end_time"] == "2027-01-15 16:00:03.500"
    assert output["orig_prompt"] == "a cat [[sim: running=2.5]]"
    assert output["video_url"].startswith(sim.root_url + f"/oss/{task_id}.mp4?Expires={1_800_000_003 + 86_400}&")
    assert list(output) == [
        "task_id",
        "task_status",
        "submit_time",
        "scheduled_time",
        "end_time",
        "orig_prompt",
        "video_url",
    ]
    assert TIMESTAMP.match(output["end_time"])


@pytest.mark.parametrize(
    ("model", "params", "usage"),
    [
        (
            "wan2.6-t2v",
            {"size": "1280*720", "duration": 10},
            {
                "duration": 10,
                "size": "1280*720",
                "input_video_duration": 0,
                "output_video_duration": 10,
                "video_count": 1,
                "SR": 720,
            },
        ),
        (
            "wan2.6-t2v",
            {},
            {
                "duration": 5,
                "size": "1920*1080",
                "input_video_duration": 0,
                "output_video_duration": 5,
                "video_count": 1,
                "SR": 1080,
            },
        ),
        (
            "wan2.5-t2v-preview",
            {"size": "832*480", "duration": 10},
            {"video_count": 1, "video_duration": 10, "video_ratio": "832*480"},
        ),
        ("wanx2.1-t2v-turbo", {}, {"video_count": 1, "video_duration": 5, "video_ratio": "1280*720"}),
        ("wan2.1-t2v-plus", {}, {"video_count": 1, "video_duration": 5, "video_ratio": "1280*720"}),
    ],
)
def test_usage_shape_follows_the_model_generation(
    wan_simulator: WanSimulator, model: str, params: dict[str, Any], usage: dict[str, Any]
) -> None:
    body = wait_for(wan_simulator, create(wan_simulator, model=model, **params), "SUCCEEDED")
    assert body["usage"] == usage
    assert list(body["usage"]) == list(usage)


@pytest.mark.parametrize(
    ("model", "params", "has_actual_prompt"),
    [
        ("wan2.5-t2v-preview", {}, True),
        ("wan2.2-t2v-plus", {"prompt_extend": True}, True),
        ("wan2.5-t2v-preview", {"prompt_extend": False}, False),
        ("wan2.6-t2v", {"prompt_extend": True}, False),
    ],
)
def test_actual_prompt_only_with_prompt_extend_and_never_for_wan26(
    wan_simulator: WanSimulator, model: str, params: dict[str, Any], has_actual_prompt: bool
) -> None:
    output = wait_for(wan_simulator, create(wan_simulator, model=model, **params), "SUCCEEDED")["output"]
    assert ("actual_prompt" in output) is has_actual_prompt
    if has_actual_prompt:
        assert output["actual_prompt"].startswith("a cat")


def test_a_failed_task_answers_200_with_code_and_message(wan_simulator: WanSimulator) -> None:
    task_id = create(wan_simulator, "x [[sim: outcome=FAILED code=DataInspectionFailed]]")
    body = wait_for(wan_simulator, task_id, "FAILED")
    output = body["output"]
    assert output["code"] == "DataInspectionFailed"
    assert output["message"] == "Input or output data may contain inappropriate content."
    assert TIMESTAMP.match(output["end_time"])
    assert "usage" not in body and "video_url" not in output


def test_cancel_works_only_on_pending_tasks(wan_simulator: WanSimulator) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    pending = create(wan_simulator, "x [[sim: pending=30]]")
    answer = httpx.post(f"{wan_simulator.base_url}/tasks/{pending}/cancel", headers=auth)
    assert answer.status_code == 200 and set(answer.json()) == {"request_id"}
    output = poll(wan_simulator, pending)["output"]
    assert output["task_status"] == "CANCELED" and TIMESTAMP.match(output["end_time"])
    running = create(wan_simulator, "x [[sim: pending=0 running=30]]")
    for task_id in (running, pending, "0000"):
        refused = httpx.post(f"{wan_simulator.base_url}/tasks/{task_id}/cancel", headers=auth)
        assert_error(refused, 400, "UnsupportedOperation", "The operation is unsupported on the referee object.")
    counters = wan_simulator.counters()
    assert (counters["cancels"], counters["tasks_canceled"]) == (4, 1)


def test_unknown_ids_answer_unknown_with_200(wan_simulator: WanSimulator) -> None:
    body = poll(wan_simulator, "502a00b1-0000-0000-0000-000000000000")
    assert body["output"] == {"task_id": "502a00b1-0000-0000-0000-000000000000", "task_status": "UNKNOWN"}


def test_tasks_expire_to_unknown_after_the_ttl(wan_simulator_factory: Factory) -> None:
    clock = ManualClock()
    sim = wan_simulator_factory(clock=clock)
    task_id = create(sim)
    clock.advance(10)
    assert poll(sim, task_id)["output"]["task_status"] == "SUCCEEDED"
    clock.advance(86_400)
    assert poll(sim, task_id)["output"] == {"task_id": task_id, "task_status": "UNKNOWN"}


def test_a_marker_task_ttl_expires_one_task(wan_simulator: WanSimulator) -> None:
    task_id = create(wan_simulator, "x [[sim: task_ttl=0.5 pending=0 running=0]]")
    assert poll(wan_simulator, task_id)["output"]["task_status"] == "SUCCEEDED"
    time.sleep(0.55)
    assert poll(wan_simulator, task_id)["output"]["task_status"] == "UNKNOWN"


def test_tasks_are_visible_to_any_key_of_the_account(wan_simulator: WanSimulator) -> None:
    task_id = create(wan_simulator)
    other = httpx.get(f"{wan_simulator.base_url}/tasks/{task_id}", headers={"Authorization": "Bearer sk-other"})
    assert other.json()["output"]["task_status"] in ("PENDING", "RUNNING", "SUCCEEDED")


def test_list_is_flat_paged_and_filtered(wan_simulator: WanSimulator) -> None:
    ids = [create(wan_simulator, model="wan2.6-t2v") for _ in range(3)] + [
        create(wan_simulator, model="wan2.2-t2v-plus")
    ]
    auth = {"Authorization": f"Bearer {KEY}"}
    page = httpx.get(f"{wan_simulator.base_url}/tasks", params={"page_no": 2, "page_size": 3}, headers=auth).json()
    assert set(page) == {"request_id", "data", "total", "total_page", "page_no", "page_size"}
    assert (page["total"], page["total_page"], page["page_no"], page["page_size"]) == (4, 2, 2, 3)
    assert [item["task_id"] for item in page["data"]] == [ids[0]]
    item = page["data"][0]
    assert item["model_name"] == "wan2.6-t2v" and isinstance(item["gmt_create"], int)
    by_model = httpx.get(f"{wan_simulator.base_url}/tasks", params={"model_name": "wan2.2-t2v-plus"}, headers=auth)
    assert [item["task_id"] for item in by_model.json()["data"]] == [ids[3]]
    future = httpx.get(f"{wan_simulator.base_url}/tasks", params={"start_time": "20990101000000"}, headers=auth)
    assert future.json()["total"] == 0
    wait_for(wan_simulator, ids[3], "SUCCEEDED")
    done = httpx.get(f"{wan_simulator.base_url}/tasks", params={"status": "SUCCEEDED"}, headers=auth).json()
    assert ids[3] in [item["task_id"] for item in done["data"]]
    bad = httpx.get(f"{wan_simulator.base_url}/tasks", params={"page_size": "0"}, headers=auth)
    assert_error(bad, 400, "InvalidParameter", "page_size")


def test_an_unknown_native_path_is_a_json_error(wan_simulator: WanSimulator) -> None:
    response = httpx.get(f"{wan_simulator.base_url}/services/nope", headers=HEADERS)
    assert_error(response, 404, "InvalidParameter", "url error")


# videos -------------------------------------------------------------------------------------------


def test_the_video_link_serves_a_playable_h264_mp4(wan_simulator: WanSimulator) -> None:
    url = video_link(wan_simulator)
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.content[4:8] == b"ftyp"
    with av.open(io.BytesIO(response.content), "r") as container:
        assert container.streams.video[0].codec_context.name == "h264"
    head = httpx.head(url)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(response.content))
    part = httpx.get(url, headers={"Range": "bytes=0-7"})
    assert part.status_code == 206 and part.content == response.content[:8]
    assert part.headers["content-range"] == f"bytes 0-7/{len(response.content)}"
    assert wan_simulator.counters()["bytes_served"] == len(response.content) + 8


def test_a_tampered_link_is_403_with_an_oss_xml_error(wan_simulator: WanSimulator) -> None:
    url = video_link(wan_simulator)
    response = httpx.get(url.replace("Signature=", "Signature=x"))
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/xml")
    assert "<Code>SignatureDoesNotMatch</Code>" in response.text
    unsigned = httpx.get(url.split("?")[0])
    assert unsigned.status_code == 403 and "<Code>AccessDenied</Code>" in unsigned.text


def test_an_expired_link_is_403_request_has_expired(wan_simulator: WanSimulator) -> None:
    url = video_link(wan_simulator, "x [[sim: link_ttl=0]]")
    response = httpx.get(url)
    assert response.status_code == 403
    assert "<Code>AccessDenied</Code>" in response.text and "<Message>Request has expired.</Message>" in response.text


def test_a_global_link_ttl_of_zero_expires_every_link(wan_simulator: WanSimulator) -> None:
    wan_simulator.configure(link_ttl_seconds=0)
    assert httpx.get(video_link(wan_simulator)).status_code == 403


def test_a_large_synthetic_video_streams_with_length_and_digest(wan_simulator: WanSimulator) -> None:
    size = 50 * 1024 * 1024
    url = video_link(wan_simulator, "x [[sim: video_bytes=50M]]")
    digest, received = hashlib.sha256(), 0
    with httpx.stream("GET", url) as response:
        assert int(response.headers["content-length"]) == size
        for piece in response.iter_bytes():
            digest.update(piece)
            received += len(piece)
    assert received == size
    assert digest.hexdigest() == synthetic_video_sha256(size)
    assert wan_simulator.counters()["bytes_served"] == size


def test_a_truncated_video_announces_the_full_length_then_closes(wan_simulator: WanSimulator) -> None:
    url = video_link(wan_simulator, "x [[sim: truncate_video=1 video_bytes=1M]]")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url)
    assert wan_simulator.counters()["bytes_served"] == 512 * 1024
    assert len(httpx.get(url).content) == 1024 * 1024


def test_video_faults_html_redirect_drop_and_errors(wan_simulator: WanSimulator) -> None:
    html = httpx.get(video_link(wan_simulator, "x [[sim: video_html=true]]"))
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    moved = httpx.get(video_link(wan_simulator, "x [[sim: video_redirect=http://example.invalid/v.mp4]]"))
    assert moved.status_code == 302 and moved.headers["location"] == "http://example.invalid/v.mp4"
    with pytest.raises(httpx.TransportError):
        httpx.get(video_link(wan_simulator, "x [[sim: video_drops=1]]"))
    url = video_link(wan_simulator, "x [[sim: video_errors=1:503]]")
    refused = httpx.get(url)
    assert refused.status_code == 503 and "<Code>ServiceUnavailable</Code>" in refused.text
    assert httpx.get(url).status_code == 200


# faults -------------------------------------------------------------------------------------------


def test_a_submit_fault_before_creates_no_task(wan_simulator: WanSimulator) -> None:
    wan_simulator.add_fault("submit", status=500, code="InternalError", count=1)
    assert_error(submit(wan_simulator), 500, "InternalError", "internal error")
    assert submit(wan_simulator).status_code == 200
    counters = wan_simulator.counters()
    assert (counters["submissions"], counters["tasks_created"], counters["faults_injected"]) == (2, 1, 1)


def test_a_submit_fault_after_drops_the_answer_but_the_task_exists(wan_simulator: WanSimulator) -> None:
    wan_simulator.add_fault("submit", kind="drop", phase="after", count=1)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        submit(wan_simulator)
    assert wan_simulator.counters()["tasks_created"] == 1
    assert len(wan_simulator.tasks()) == 1


def test_a_submit_fault_after_can_outlast_the_client_timeout(wan_simulator: WanSimulator) -> None:
    wan_simulator.add_fault("submit", kind="latency", phase="after", latency=3, count=1)
    body = {"model": "wan2.6-t2v", "input": {"prompt": "a cat"}}
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(wan_simulator.base_url + SUBMIT, json=body, headers=HEADERS, timeout=0.3)
    assert time.monotonic() - started < 1.5
    assert wan_simulator.counters()["tasks_created"] == 1


def test_poll_errors_carry_retry_after_then_stop(wan_simulator: WanSimulator) -> None:
    task_id = create(wan_simulator)
    wan_simulator.add_fault("get", status=429, code="Throttling.RateQuota", retry_after=3, count=2, task_id=task_id)
    url, auth = f"{wan_simulator.base_url}/tasks/{task_id}", {"Authorization": f"Bearer {KEY}"}
    for _ in range(2):
        response = httpx.get(url, headers=auth)
        assert_error(response, 429, "Throttling.RateQuota", "Requests rate limit exceeded")
        assert response.headers["retry-after"] == "3"
    assert httpx.get(url, headers=auth).status_code == 200


def test_dropped_html_and_slow_answers_on_polls(wan_simulator: WanSimulator) -> None:
    task_id = create(wan_simulator)
    url, auth = f"{wan_simulator.base_url}/tasks/{task_id}", {"Authorization": f"Bearer {KEY}"}
    wan_simulator.add_fault("get", kind="drop", count=1)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        httpx.get(url, headers=auth)
    wan_simulator.add_fault("get", kind="html", count=1)
    page = httpx.get(url, headers=auth)
    assert page.status_code == 200 and page.text.lstrip().startswith("<!DOCTYPE html>")
    wan_simulator.add_fault("get", kind="latency", latency=0.3, count=1)
    started = time.monotonic()
    assert httpx.get(url, headers=auth).status_code == 200
    assert time.monotonic() - started >= 0.3
    wan_simulator.add_fault("get", kind="truncate", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url, headers=auth)
    assert wan_simulator.counters()["faults_injected"] == 4


def test_rate_based_faults_hit_some_requests(wan_simulator: WanSimulator) -> None:
    wan_simulator.configure(random_seed=3)
    wan_simulator.add_fault("list", status=503, rate=0.5)
    auth = {"Authorization": f"Bearer {KEY}"}
    statuses = [httpx.get(f"{wan_simulator.base_url}/tasks", headers=auth).status_code for _ in range(20)]
    assert set(statuses) == {200, 503}


def test_a_fail_fault_fails_the_next_task(wan_simulator: WanSimulator) -> None:
    wan_simulator.add_fault("submit", kind="fail", code="InternalError.Algo", count=1)
    failed = wait_for(wan_simulator, create(wan_simulator), "FAILED")["output"]
    assert failed["code"] == "InternalError.Algo"
    assert wait_for(wan_simulator, create(wan_simulator), "SUCCEEDED", "FAILED")["output"]["task_status"] == "SUCCEEDED"


def test_marker_poll_errors_hit_only_that_task(wan_simulator: WanSimulator) -> None:
    noisy = create(wan_simulator, "x [[sim: poll_errors=2:500:InternalError]]")
    quiet = create(wan_simulator)
    url = f"{wan_simulator.base_url}/tasks/"
    auth = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(url + quiet, headers=auth).status_code == 200
    assert [httpx.get(url + noisy, headers=auth).status_code for _ in range(3)] == [500, 500, 200]


def test_marker_submit_errors_refuse_the_first_submissions_of_that_marker(wan_simulator: WanSimulator) -> None:
    prompt = "x [[sim: submit_errors=1:503:ServiceUnavailable:2]]"
    refused = submit(wan_simulator, prompt)
    assert_error(refused, 503, "ServiceUnavailable")
    assert refused.headers["retry-after"] == "2"
    assert submit(wan_simulator, prompt).status_code == 200
    assert wan_simulator.counters()["tasks_created"] == 1


def test_marker_submit_lost_creates_the_task_and_drops_the_answer(wan_simulator: WanSimulator) -> None:
    prompt = "x [[sim: submit_lost=1]]"
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        submit(wan_simulator, prompt)
    assert wan_simulator.counters()["tasks_created"] == 1
    assert submit(wan_simulator, prompt).status_code == 200


def test_an_unparseable_marker_is_400_naming_the_marker(wan_simulator: WanSimulator) -> None:
    body = assert_error(submit(wan_simulator, "x [[sim: explode=now]]"), 400, "InvalidParameter", "[[sim: ...]]")
    assert "input.prompt" in body["message"] and "explode" in body["message"]


# limits -------------------------------------------------------------------------------------------


def test_submit_rate_limit_answers_429_with_retry_after(wan_simulator: WanSimulator) -> None:
    wan_simulator.configure(submit_rps=2)
    statuses = [submit(wan_simulator) for _ in range(3)]
    assert [r.status_code for r in statuses[:2]] == [200, 200]
    assert_error(statuses[2], 429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later.")
    assert statuses[2].headers["retry-after"] == "1"
    counters = wan_simulator.counters()
    assert (counters["throttled"], counters["tasks_created"]) == (1, 2)


def test_query_rate_limit_counts_polls_and_lists(wan_simulator: WanSimulator) -> None:
    task_id = create(wan_simulator)
    wan_simulator.configure(query_qps=2)
    auth = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(f"{wan_simulator.base_url}/tasks/{task_id}", headers=auth).status_code == 200
    assert httpx.get(f"{wan_simulator.base_url}/tasks", headers=auth).status_code == 200
    throttled = httpx.get(f"{wan_simulator.base_url}/tasks/{task_id}", headers=auth)
    assert_error(throttled, 429, "Throttling.RateQuota")


def test_concurrency_cap_keeps_extra_tasks_pending_until_a_slot_frees(wan_simulator_factory: Factory) -> None:
    clock = ManualClock()
    sim = wan_simulator_factory(clock=clock, max_concurrent_tasks=1, pending_seconds=0, running_seconds=1)
    first, second = create(sim), create(sim)
    assert poll(sim, first)["output"]["task_status"] == "RUNNING"
    assert poll(sim, second)["output"]["task_status"] == "PENDING"
    assert sim.counters()["tasks_by_status"] == {"RUNNING": 1, "PENDING": 1}
    clock.advance(1)
    done_first = poll(sim, first)["output"]
    running_second = poll(sim, second)["output"]
    assert (done_first["task_status"], running_second["task_status"]) == ("SUCCEEDED", "RUNNING")
    assert running_second["scheduled_time"] == done_first["end_time"]
    clock.advance(1)
    assert poll(sim, second)["output"]["task_status"] == "SUCCEEDED"


# unified flavour ----------------------------------------------------------------------------------


def unified_get(sim: WanSimulator, task_id: str) -> httpx.Response:
    return httpx.get(f"{sim.unified_url}/{task_id}", headers={"Authorization": f"Bearer {KEY}"})


def test_unified_lifecycle_from_submitted_to_success(wan_simulator_factory: Factory) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    sim = wan_simulator_factory(clock=clock, pending_seconds=1, running_seconds=2)
    body = {
        "model": "wan2.6-t2v",
        "prompt": "a cat",
        "size": "1280*720",
        "duration": 5,
        "watermark": False,
        "prompt_extend": True,
        "seed": 1,
        "template": "none",
    }
    response = httpx.post(sim.unified_url, json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200 and set(response.json()) == {"task_id"}
    task_id = response.json()["task_id"]
    submitted = unified_get(sim, task_id).json()
    assert submitted == {
        "task_id": task_id,
        "status": "SUBMITTED",
        "fail_reason": "",
        "submit_time": 1_800_000_000,
        "start_time": None,
        "finish_time": None,
        "progress": "0%",
        "data": None,
    }
    clock.advance(1.5)
    running = unified_get(sim, task_id).json()
    assert (running["status"], running["progress"], running["start_time"]) == ("IN_PROGRESS", "25%", 1_800_000_001)
    clock.advance(1.5)
    done = unified_get(sim, task_id).json()
    assert (done["status"], done["progress"], done["finish_time"]) == ("SUCCESS", "100%", 1_800_000_003)
    assert done["data"]["outputs"] == [done["data"]["output"]]
    assert httpx.get(done["data"]["output"]).content[4:8] == b"ftyp"
    assert sim.counters()["per_protocol"]["unified"] == 4


def test_unified_failure_unknown_ids_and_errors(wan_simulator: WanSimulator) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    failing = {"model": "wan2.6-t2v", "prompt": "x [[sim: pending=0 running=0 code=DataInspectionFailed]]"}
    task_id = httpx.post(wan_simulator.unified_url, json=failing, headers=auth).json()["task_id"]
    failed = unified_get(wan_simulator, task_id).json()
    assert failed["status"] == "FAILURE" and "DataInspectionFailed" in failed["fail_reason"] and failed["data"] is None
    missing = unified_get(wan_simulator, "nope")
    assert missing.status_code == 404 and missing.json() == {"code": "task_not_exist", "message": "task not exist"}
    no_key = httpx.post(wan_simulator.unified_url, json=failing)
    assert no_key.status_code == 401 and no_key.json() == {"code": "InvalidApiKey", "message": "No API-key provided."}
    bad_size = httpx.post(wan_simulator.unified_url, json={**failing, "size": "1x1"}, headers=auth)
    assert bad_size.status_code == 400 and bad_size.json()["code"] == "InvalidParameter"
    assert "size='1x1'" in bad_size.json()["message"]
    assert httpx.post(f"{wan_simulator.unified_url}/{task_id}/cancel", headers=auth).status_code in (404, 405)


def test_unified_tasks_queue_under_the_concurrency_cap(wan_simulator: WanSimulator) -> None:
    wan_simulator.configure(concurrency=1, pending_seconds=0, running_seconds=5)
    auth = {"Authorization": f"Bearer {KEY}"}
    body = {"model": "wan2.6-t2v", "prompt": "x"}
    ids = [httpx.post(wan_simulator.unified_url, json=body, headers=auth).json()["task_id"] for _ in range(2)]
    assert [unified_get(wan_simulator, i).json()["status"] for i in ids] == ["IN_PROGRESS", "QUEUED"]


def test_protocols_can_be_served_alone(wan_simulator_factory: Factory) -> None:
    native_only = wan_simulator_factory(protocols="dashscope")
    assert httpx.post(native_only.unified_url, json={}, headers=HEADERS).status_code == 404
    unified_only = wan_simulator_factory(protocols=["unified"])
    assert submit(unified_only).status_code == 404


def test_a_gateway_prefix_moves_the_native_routes(wan_simulator_factory: Factory) -> None:
    sim = wan_simulator_factory(prefix="/qwen/api/v1", pending_seconds=0, running_seconds=0)
    assert sim.base_url.endswith("/qwen/api/v1")
    task_id = create(sim)
    assert poll(sim, task_id)["output"]["task_status"] == "SUCCEEDED"
    assert httpx.get(f"{sim.root_url}/api/v1/tasks/{task_id}", headers=HEADERS).status_code == 404


# admin API ----------------------------------------------------------------------------------------


def test_admin_api_health_counters_config_faults_tasks_and_reset(wan_simulator: WanSimulator) -> None:
    admin = wan_simulator.root_url + "/_simulator"
    assert httpx.get(admin + "/health").json()["status"] == "ok"
    config = httpx.post(admin + "/config", json={"pending_seconds": 7, "query_qps": 20}).json()
    assert (config["pending_seconds"], config["query_qps"]) == (7, 20)
    assert httpx.post(admin + "/config", json={"prefix": "/x"}).status_code == 400
    assert httpx.post(admin + "/config", json={"pending_seconds": -1}).status_code == 400
    ids = httpx.post(admin + "/faults", json={"route": "get", "status": 500, "count": 1}).json()["ids"]
    assert [f["id"] for f in httpx.get(admin + "/faults").json()] == ids
    assert httpx.post(admin + "/faults", json={"route": "nowhere"}).status_code == 400
    assert httpx.delete(admin + f"/faults/{ids[0]}").status_code == 200
    task_id = create(wan_simulator)
    debug = httpx.get(admin + f"/tasks/{task_id}").json()
    assert debug["status"] == "PENDING" and debug["headers"]["authorization"] == "***"
    assert debug["scenario"]["pending"] == 7
    changed = httpx.post(admin + f"/tasks/{task_id}", json={"pending": 0, "running": 0, "outcome": "FAILED"}).json()
    assert changed["status"] == "FAILED"
    assert [t["task_id"] for t in httpx.get(admin + "/tasks").json()] == [task_id]
    assert httpx.get(admin + "/tasks/nope").status_code == 404
    counters = httpx.get(admin + "/counters").json()
    assert counters["submissions"] == 1 and counters["per_route"]["submit"] == 1
    assert httpx.post(admin + "/reset").status_code == 200
    assert httpx.get(admin + "/counters").json()["submissions"] == 0
    assert httpx.get(admin + "/config").json()["pending_seconds"] == wan_simulator.state.initial_config.pending_seconds


def test_config_faults_from_the_constructor_apply_from_the_start(wan_simulator_factory: Factory) -> None:
    sim = wan_simulator_factory(faults=[{"route": "submit", "status": 503, "count": 1}])
    assert_error(submit(sim), 503, "ServiceUnavailable")
    assert submit(sim).status_code == 200


# command line -------------------------------------------------------------------------------------


def test_the_cli_picks_a_free_port_writes_it_and_answers(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    command = [
        sys.executable,
        "-m",
        "airflow_provider_wan.simulator",
        "--port",
        "0",
        "--port-file",
        str(port_file),
        "--pending-seconds",
        "0",
        "--running-seconds",
        "0",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert port_file.exists(), process.stderr.read() if process.stderr else ""
        port = int(port_file.read_text())
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert f"http://127.0.0.1:{port}/api/v1" in banner
        sim_root = f"http://127.0.0.1:{port}"
        assert httpx.get(sim_root + "/_simulator/health").json()["status"] == "ok"
        body = {"model": "wan2.6-t2v", "input": {"prompt": "a cat"}}
        answer = httpx.post(sim_root + "/api/v1" + SUBMIT, json=body, headers=HEADERS)
        assert answer.json()["output"]["task_status"] == "PENDING"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
