"""The sans-I/O wire layer: request bodies and every answer shape of both flavours, without a socket."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_wan.events import task_error
from airflow_provider_wan.exceptions import (
    WanAmbiguousSubmitError,
    WanAuthenticationError,
    WanContentModerationError,
    WanInvalidRequestError,
    WanNotFoundError,
    WanPermissionError,
    WanProtocolError,
    WanServerError,
    WanTaskCanceledError,
    WanTaskExpiredError,
    WanThrottledError,
    advice_for,
)
from airflow_provider_wan.models import TaskStatus, WanVideoRequest
from airflow_provider_wan.protocol import (
    DashScopeProtocol,
    HttpResponse,
    UnifiedProtocol,
    error_from_response,
    get_protocol,
    retry_after_seconds,
)

native = DashScopeProtocol()
unified = UnifiedProtocol()


def answer(body: Any, status: int = 200, **headers: str) -> HttpResponse:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpResponse(status, {"content-type": "application/json", **headers}, content)


def test_native_submit_body_and_headers():
    request = WanVideoRequest.build(
        prompt="侦探",
        negative_prompt="blurry",
        audio_url="oss://dashscope-instant/a.mp3",
        seed=7,
        shot_type="multi",
        extra_input={"template": "x"},
        extra_parameters={"enable_thinking": True},
    )
    http = native.submit_request(request)
    assert (http.method, http.path, http.idempotent) == (
        "POST",
        "services/aigc/video-generation/video-synthesis",
        False,
    )
    assert http.headers["X-DashScope-Async"] == "enable"
    assert http.headers["X-DashScope-OssResourceResolve"] == "enable"
    assert http.json == {
        "model": "wan2.6-t2v",
        "input": {
            "prompt": "侦探",
            "negative_prompt": "blurry",
            "audio_url": "oss://dashscope-instant/a.mp3",
            "template": "x",
        },
        "parameters": {"size": "1920*1080", "duration": 5, "seed": 7, "shot_type": "multi", "enable_thinking": True},
    }


def test_explicit_false_values_are_sent():
    http = native.submit_request(WanVideoRequest.build(prompt="x", watermark=False, prompt_extend=False, audio=False))
    assert http.json["parameters"]["watermark"] is False and http.json["parameters"]["prompt_extend"] is False
    assert http.json["parameters"]["audio"] is False


def test_native_submit_answer():
    result = native.parse_submit(answer({"output": {"task_status": "PENDING", "task_id": "t-1"}, "request_id": "r-1"}))
    assert (result.task_id, result.task_status, result.request_id) == ("t-1", TaskStatus.PENDING, "r-1")


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, "InvalidApiKey", WanAuthenticationError),
        (403, "AccessDenied", WanPermissionError),
        (403, "AccessDenied.Unpurchased", WanPermissionError),
        (400, "Arrearage", WanPermissionError),
        (429, "PrepaidBillOverdue", WanPermissionError),
        (429, "Throttling.AllocationQuota", WanThrottledError),  # a TPS/TPM limit; "Free ..." is permanent
        (400, "InvalidParameter", WanInvalidRequestError),
        (400, "BadRequest.EmptyInput", WanInvalidRequestError),
        (400, "DataInspectionFailed", WanContentModerationError),
        (400, "IPInfringementSuspect", WanContentModerationError),
        (404, "ModelNotFound", WanNotFoundError),
        (404, "Model.NotExist", WanNotFoundError),
        (429, "Throttling", WanThrottledError),
        (429, "Throttling.RateQuota", WanThrottledError),
        (429, "LimitRequests", WanThrottledError),
        (500, "InternalError", WanServerError),
        (500, "InternalError.Algo", WanServerError),
        (503, "ModelUnavailable", WanServerError),
        (502, None, WanServerError),
    ],
)
def test_error_codes_map_to_one_hierarchy(status, code, cls):
    body = {"request_id": "r-9", "message": "m"} | ({"code": code} if code else {})
    err = error_from_response(answer(body, status))
    assert type(err) is cls
    assert (err.code, err.status_code, err.request_id) == (code, status, "r-9")
    assert err.retryable is (cls in (WanThrottledError, WanServerError))


def test_submit_error_raises_the_mapped_class():
    with pytest.raises(WanAuthenticationError, match="Invalid API-key provided") as err:
        native.parse_submit(
            answer({"code": "InvalidApiKey", "message": "Invalid API-key provided.", "request_id": "r"}, 401)
        )
    assert "request_id=r" in str(err.value)


def test_non_json_answers_are_protocol_errors_not_crashes():
    with pytest.raises(WanProtocolError, match=r"not JSON.*<html>"):
        native.parse_task(HttpResponse(200, {"content-type": "text/html"}, b"<html>gateway</html>"), "t")
    err = error_from_response(HttpResponse(502, {}, b"<html>bad gateway</html>"))
    # A gateway's 5xx page is a server failure (retry helps), not a wrong base URL.
    assert isinstance(err, WanServerError) and err.retryable and "HTTP 502" in str(err)
    assert "base URL" not in (advice_for(err) or "")
    wrong_url = error_from_response(HttpResponse(404, {}, b"<html>not found</html>"))
    assert isinstance(wrong_url, WanProtocolError) and "base URL" in (advice_for(wrong_url) or "")
    throttled = error_from_response(HttpResponse(429, {"Retry-After": "3"}, b"slow down"))
    assert isinstance(throttled, WanThrottledError) and throttled.retry_after == 3


def test_http_200_with_a_top_level_error_code_is_an_error():
    with pytest.raises(WanInvalidRequestError):
        native.parse_submit(answer({"code": "InvalidParameter", "message": "bad", "request_id": "r"}))


def test_succeeded_wan26_task():
    task = native.parse_task(
        answer(
            {
                "request_id": "r",
                "output": {
                    "task_id": "t",
                    "task_status": "SUCCEEDED",
                    "submit_time": "2025-09-29 14:18:52.331",
                    "scheduled_time": "2025-09-29 14:18:59.290",
                    "end_time": "2025-09-29 14:23:39.407",
                    "orig_prompt": "p",
                    "video_url": "https://dashscope-result-sh.oss-accelerate.aliyuncs.com/x.mp4?Expires=1",
                },
                "usage": {
                    "duration": 10,
                    "size": "1280*720",
                    "input_video_duration": 0,
                    "output_video_duration": 10,
                    "video_count": 1,
                    "SR": 720,
                },
            }
        ),
        "t",
    )
    assert task.task_status is TaskStatus.SUCCEEDED and task.usage and task.usage.billed_seconds == 10
    assert task.video_url and task.video_url.startswith("https://") and task.actual_prompt is None
    assert task_error(task) is None


def test_failed_task_maps_to_the_same_classes_as_http_errors():
    task = native.parse_task(
        answer(
            {
                "request_id": "r",
                "output": {
                    "task_id": "t",
                    "task_status": "FAILED",
                    "code": "DataInspectionFailed",
                    "message": "bad content",
                },
            }
        ),
        "t",
    )
    err = task_error(task)
    assert isinstance(err, WanContentModerationError) and err.task_id == "t" and not err.retryable
    algo = native.parse_task(
        answer({"output": {"task_id": "t", "task_status": "FAILED", "code": "InternalError.Algo", "message": "x"}}), "t"
    )
    assert isinstance(task_error(algo), WanServerError)


@pytest.mark.parametrize(("status", "cls"), [("UNKNOWN", WanTaskExpiredError), ("CANCELED", WanTaskCanceledError)])
def test_unknown_and_canceled(status, cls):
    task = native.parse_task(answer({"output": {"task_id": "t", "task_status": status}}), "t")
    assert isinstance(task_error(task), cls)


def test_unexpected_status_is_named():
    with pytest.raises(WanProtocolError, match="unexpected task_status 'DONE'"):
        native.parse_task(answer({"output": {"task_id": "t", "task_status": "DONE"}}), "t")


def test_native_list_accepts_java_and_v2_shapes():
    java = native.parse_list(
        answer(
            {
                "request_id": "r",
                "data": [{"task_id": "a", "status": "SUCCEEDED", "gmt_create": 1}],
                "total": 1,
                "page_no": 1,
                "page_size": 10,
                "total_page": 1,
            }
        )
    )
    v2 = native.parse_list(answer({"tasks": [{"task_id": "b"}]}))
    assert [t.task_id for t in java.tasks] == ["a"] and java.total == 1
    assert [t.task_id for t in v2.tasks] == ["b"]


def test_task_id_must_be_an_id():
    with pytest.raises(ValueError, match="is not a DashScope task id"):
        native.get_task_request("../services")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({}, None),
        ({"Retry-After": "soon"}, None),
    ],
)
def test_retry_after(headers, expected):
    assert retry_after_seconds(headers) == expected


# --------------------------------------------------------------------------------------------- unified relay


def test_unified_submit_is_flat():
    http = unified.submit_request(
        WanVideoRequest.build(model="wan2.2-t2v-plus", prompt="dance", extra_input={"template": "t1"})
    )
    assert (http.method, http.path, http.idempotent) == ("POST", "v2/videos/generations", False)
    assert http.json == {
        "model": "wan2.2-t2v-plus",
        "prompt": "dance",
        "template": "t1",
        "size": "1920*1080",
        "duration": 5,
    }
    assert "X-DashScope-Async" not in http.headers
    assert unified.parse_submit(answer({"task_id": "e7bed961"})).task_id == "e7bed961"
    assert unified.parse_submit(answer({"data": {"task_id": "x"}})).task_id == "x"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("NOT_START", "PENDING"),
        ("SUBMITTED", "PENDING"),
        ("QUEUED", "PENDING"),
        ("IN_PROGRESS", "RUNNING"),
        ("SUCCESS", "SUCCEEDED"),
        ("FAILURE", "FAILED"),
        ("in_progress", "RUNNING"),
        ("success", "SUCCEEDED"),
    ],
)
def test_unified_statuses_normalise(raw, status):
    body = {"task_id": "t", "status": raw, "progress": "50%", "data": {"output": "https://r.example.com/v.mp4"}}
    assert unified.parse_task(answer(body), "t").task_status.value == status


def test_unified_success_reads_output_or_outputs_and_times():
    task = unified.parse_task(
        answer(
            {
                "task_id": "t",
                "status": "SUCCESS",
                "submit_time": 1700000000,
                "start_time": "1700000005",
                "finish_time": 1700000065,
                "data": {"outputs": ["https://r/v.mp4"]},
            }
        ),
        "t",
    )
    assert task.video_url == "https://r/v.mp4"
    assert task.submit_time == "2023-11-15 06:13:20.000" and task.end_time == "2023-11-15 06:14:25.000"


def test_unified_failure_reason_becomes_the_message_and_known_codes_are_kept():
    failed = unified.parse_task(
        answer({"task_id": "t", "status": "FAILURE", "fail_reason": "DataInspectionFailed: inappropriate"}), "t"
    )
    assert failed.message == "DataInspectionFailed: inappropriate" and failed.code == "DataInspectionFailed"
    assert isinstance(task_error(failed), WanContentModerationError)
    vague = unified.parse_task(answer({"task_id": "t", "status": "FAILURE", "fail_reason": "upstream timeout"}), "t")
    assert vague.code == "TaskFailed"


def test_unified_tolerates_missing_data_and_wrapped_tasks_and_404():
    assert unified.parse_task(answer({"task_id": "t", "status": "IN_PROGRESS"}), "t").video_url is None
    wrapped = unified.parse_task(answer({"code": "success", "data": {"task_id": "t", "status": "QUEUED"}}), "t")
    assert wrapped.task_status is TaskStatus.PENDING
    gone = unified.parse_task(answer({"code": "task_not_exist", "message": "task not exist"}, 404), "t")
    assert gone.task_status is TaskStatus.UNKNOWN


def test_unified_says_what_was_unexpected():
    with pytest.raises(WanProtocolError, match="unexpected status 'WEIRD'"):
        unified.parse_task(answer({"task_id": "t", "status": "WEIRD"}), "t")
    with pytest.raises(WanProtocolError, match="no task_id"):
        unified.parse_submit(answer({"ok": True}))
    assert not unified.supports_cancel
    with pytest.raises(NotImplementedError):
        unified.cancel_request("t")


def test_get_protocol():
    assert isinstance(get_protocol("Unified"), UnifiedProtocol)
    with pytest.raises(ValueError, match="protocol='grpc' is unknown; allowed: dashscope, unified, newapi, openai"):
        get_protocol("grpc")


# --------------------------------------------------------------------------------------------- ambiguous submits

SUBMIT_OK = {"output": {"task_id": "t-1", "task_status": "PENDING"}, "request_id": "r"}


@pytest.mark.parametrize(
    ("status", "body", "why"),
    [
        (200, b"<html>proxy page</html>", "a 200 that is not JSON"),
        (200, b'{"output": {"task_status": "PENDING"}', "a 200 cut mid-body"),
        (200, json.dumps({"output": {"task_status": "PENDING"}, "request_id": "r"}).encode(), "no output.task_id"),
        (200, json.dumps({"request_id": "r"}).encode(), "no output at all"),
        (502, b"<html>502 Bad Gateway</html>", "a gateway page after forwarding"),
        (504, b"", "an empty gateway timeout"),
        (500, json.dumps({"message": "boom"}).encode(), "a 5xx JSON body without a code"),
        (429, b"slow down", "a 429 without a DashScope code"),
        (403, b"<html>WAF</html>", "a 4xx page without a code"),
    ],
)
def test_submit_answers_that_do_not_prove_no_task_are_ambiguous(status, body, why):
    for protocol in (native, unified):
        with pytest.raises(WanAmbiguousSubmitError, match=rf"HTTP {status}") as err:
            protocol.read_submit(HttpResponse(status, {"content-type": "text/html"}, body))
        assert not err.value.retryable, why


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (429, "Throttling.RateQuota", WanThrottledError),
        (500, "InternalError", WanServerError),
        (400, "InvalidParameter", WanInvalidRequestError),
        (401, "InvalidApiKey", WanAuthenticationError),
        (200, "InvalidParameter", WanInvalidRequestError),  # the two-layer shape: HTTP 200 carrying an error code
    ],
)
def test_submit_refusals_with_a_service_code_prove_no_task_was_created(status, code, cls):
    with pytest.raises(cls):
        native.read_submit(answer({"code": code, "message": "no", "request_id": "r"}, status))


def test_a_readable_submit_answer_is_read():
    assert native.read_submit(answer(SUBMIT_OK)).task_id == "t-1"


def test_candidate_filters_cover_the_flight_in_dashscope_time():
    from airflow_provider_wan.protocol import candidate_filters, dashscope_time

    assert dashscope_time(0) == "19700101080000"  # UTC+8
    filters = candidate_filters("wan2.6-t2v", 1_700_000_000.0, 1_700_000_030.0)
    assert filters["model_name"] == "wan2.6-t2v"
    assert filters["start_time"] == dashscope_time(1_700_000_000.0 - 5)
    assert filters["end_time"] == dashscope_time(1_700_000_030.0 + 5)
