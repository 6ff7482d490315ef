"""Today's Wan API (issue 12): wan2.7's request shape, regions and workspace domains, the relays people run, the
error codes added since, and a simulator as strict as DashScope about all of it.

Unit tables first (pure functions), then real HTTP to the simulator and ``dag.test()`` runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_wan.events import task_error
from airflow_provider_wan.exceptions import (
    ADVICE,
    WanAmbiguousSubmitError,
    WanAuthenticationError,
    WanConfigurationError,
    WanContentModerationError,
    WanInvalidRequestError,
    WanNotFoundError,
    WanPermissionError,
    WanRequestValidationError,
    WanServerError,
    WanTaskExpiredError,
    WanThrottledError,
    WanUnexpectedStatusError,
    advice_for,
    error_class_for,
)
from airflow_provider_wan.hooks.wan import WanHook
from airflow_provider_wan.models import (
    CAPABILITIES,
    REGION_NAMES,
    TaskStatus,
    WanVideoRequest,
    check_region,
    declare_models,
    get_capability,
)
from airflow_provider_wan.protocol import (
    DashScopeProtocol,
    HttpResponse,
    NewApiProtocol,
    OpenAIVideoProtocol,
    UnifiedProtocol,
    error_from_response,
    get_protocol,
)
from airflow_provider_wan.settings import WanConnectionSettings, region_of_host, workspace_base_url
from tests.conftest import TEST_API_KEY, task_states, xcom
from tests.media_fixtures import silent_wav

PROMPT = "a paper boat on a rainy street"
WORKSPACE = "llm-frankfurt01"


def answer(body: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(status, {"content-type": "application/json"}, json.dumps(body).encode())


def build(**fields: Any) -> WanVideoRequest:
    return WanVideoRequest.build(**{"prompt": PROMPT, **fields})


def settings_for(**extra: Any) -> WanConnectionSettings:
    return WanConnectionSettings.from_parts(
        password="sk-x", host=None, port=None, schema=None, extra=extra, source="connection 'test'"
    )


# ------------------------------------------------------------------------------------------ wan2.7 request shape


@pytest.mark.parametrize(
    ("protocol", "where"),
    [
        (DashScopeProtocol(), lambda body: body["parameters"]),
        (UnifiedProtocol(), lambda body: body),
        (NewApiProtocol(), lambda body: body["metadata"]["parameters"]),
        (OpenAIVideoProtocol(), lambda body: body["metadata"]["parameters"]),
    ],
    ids=["native", "unified", "newapi", "openai"],
)
@pytest.mark.parametrize("ratio", ["16:9", "9:16"])
def test_wan27_sends_resolution_and_ratio_never_size(protocol, where, ratio):
    request = build(model="wan2.7-t2v", resolution="720P", aspect_ratio=ratio)
    body = protocol.submit_request(request).json
    params = where(body)
    assert (params["resolution"], params["ratio"], params.get("duration", body.get("duration"))) == ("720P", ratio, 5)
    assert "size" not in params and "size" not in body


def test_a_pixel_size_for_wan27_becomes_its_tier_and_ratio():
    request = build(model="wan2.7-t2v", size="720x1280")
    params = DashScopeProtocol().submit_request(request).json["parameters"]
    assert (params["resolution"], params["ratio"]) == ("720P", "9:16") and "size" not in params
    assert request.effective_size == "720*1280"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"size": "1000*1000"}, r"size='1000\*1000' is not the size of a resolution tier.*resolution \+ ratio"),
        ({"resolution": "480P"}, r"resolution='480P' is not offered by model 'wan2.7-t2v'; allowed: resolution 720P"),
        ({"size": "1280*720", "aspect_ratio": "9:16"}, r"contradicts aspect_ratio='9:16'"),
        ({"aspect_ratio": "21:9"}, r"aspect_ratio='21:9' is not an aspect ratio; allowed: 16:9, 9:16, 1:1, 4:3, 3:4"),
        ({"duration": 16}, r"duration=16 is not allowed for model 'wan2.7-t2v'; allowed: an integer from 2 to 15"),
        ({"prompt": "x" * 5001}, r"prompt is 5001 characters, over the limit of 5000"),
        ({"negative_prompt": "n" * 501}, r"negative_prompt is 501 characters, over the limit of 500"),
        ({"shot_type": "multi"}, r"shot_type='multi' is not supported.*write the shots in the prompt"),
        ({"extra_parameters": {"ratio": "1:1"}}, r"extra_parameters sets ratio.*pass aspect_ratio=\.\.\."),
    ],
)
def test_wan27_refusals_name_the_parameter_and_what_is_allowed(fields, message):
    with pytest.raises(WanRequestValidationError, match=message):
        build(model="wan2.7-t2v", **fields)


def test_wan27_defaults_are_explicit_and_its_limits_apply():
    request = build(model="wan2.7-t2v", prompt="x" * 5000, audio_url="https://cdn.example.com/a?id=1", seed=3)
    params = DashScopeProtocol().submit_request(request).json["parameters"]
    assert (params["resolution"], params["ratio"], params["duration"], params["seed"]) == ("1080P", "16:9", 5, 3)
    cap = get_capability("wan2.7-t2v")
    assert cap is not None and (cap.submit_rps, cap.concurrency) == (5.0, 5)


@pytest.mark.parametrize("model", ["wan2.7-t2v-2026-04-25", "wan2.7-t2v-2026-06-12"])
def test_wan27_snapshots_are_sent_by_their_own_name(model, caplog):
    caplog.set_level("INFO")
    body = DashScopeProtocol().submit_request(build(model=model.upper(), aspect_ratio="1:1")).json
    assert body["model"] == model and body["parameters"]["ratio"] == "1:1"
    unverified = "not confirmed by Alibaba's documentation" in caplog.text
    assert unverified is (model == "wan2.7-t2v-2026-06-12")


@pytest.mark.parametrize(("typed", "sent"), [("WAN2.6-T2V", "wan2.6-t2v"), (" Wan2.1-T2V-Turbo ", "wan2.1-t2v-turbo")])
def test_model_names_validate_in_any_case_and_are_sent_in_canonical_form(typed, sent):
    body = DashScopeProtocol().submit_request(build(model=typed, size="1280*720")).json
    assert body["model"] == sent


@pytest.mark.parametrize("model", ["wan3.0-video", "happyhorse-1.0-t2v", "happyhorse-1.1-t2v"])
def test_newer_lines_take_the_same_shape_and_are_marked_unverified(model):
    cap = get_capability(model)
    assert cap is not None and cap.shape == "resolution" and not cap.verified and cap.regions is None
    params = DashScopeProtocol().submit_request(build(model=model, resolution="720P")).json["parameters"]
    assert (params["resolution"], params["ratio"]) == ("720P", "16:9")
    assert (cap.submit_rps, cap.concurrency) == ((10.0, 5) if model.startswith("happyhorse") else (5.0, 5))


def test_an_unknown_model_passes_with_a_warning_and_the_newer_shape(caplog):
    body = DashScopeProtocol().submit_request(build(model="wan9.9-t2v", size="1920*1080", duration=40)).json
    assert body["model"] == "wan9.9-t2v" and "size" not in body["parameters"]
    assert (body["parameters"]["resolution"], body["parameters"]["ratio"], body["parameters"]["duration"]) == (
        "1080P",
        "16:9",
        40,
    )
    assert "not in this provider's capability table" in caplog.text
    with pytest.raises(WanRequestValidationError, match=r"not the size of a resolution tier"):
        build(model="wan9.9-t2v", size="1000*500")


# ------------------------------------------------------------------------------------------ declared models


def test_a_connection_declares_a_model_the_release_does_not_know():
    settings = settings_for(
        base_url="http://127.0.0.1:9/api/v1",
        models={"wan2.8-t2v": {"like": "wan2.7-t2v", "durations": "2-20", "concurrency": 8}},
    )
    hook = WanHook(settings=settings)
    prepared = hook.prepare_request({"prompt": PROMPT, "model": "WAN2.8-T2V", "duration": 20, "aspect_ratio": "4:3"})
    assert prepared.model == "wan2.8-t2v" and prepared.capability is settings.models["wan2.8-t2v"]
    params = hook.protocol.submit_request(prepared).json["parameters"]
    assert (params["resolution"], params["ratio"], params["duration"]) == ("1080P", "4:3", 20)
    with pytest.raises(WanRequestValidationError, match=r"duration=21 is not allowed for model 'wan2\.8-t2v'"):
        hook.prepare_request({"prompt": PROMPT, "model": "wan2.8-t2v", "duration": 21})


def test_a_declared_models_account_limits_apply_unless_model_limits_raise_them():
    settings = settings_for(
        region="singapore",
        models={"Wan2.8-T2V": {"like": "wan2.7-t2v", "submit_rps": 3, "concurrency": 8}},
        model_limits={"wan2.8-t2v": {"concurrency": 20}},
    )
    assert settings.limits_for("WAN2.8-t2v") == (3.0, 20)
    assert settings_for(region="singapore").limits_for("wan2.7-t2v") == (5.0, 5)


def test_a_declared_size_shape_model_gets_a_pixel_size():
    settings = settings_for(base_url="http://127.0.0.1:9/api/v1", models='{"wan2.6-t2v-plus": {"shape": "size"}}')
    prepared = WanHook(settings=settings).prepare_request({"prompt": PROMPT, "model": "wan2.6-t2v-plus"})
    params = DashScopeProtocol().submit_request(prepared).json["parameters"]
    assert params["size"] == "1920*1080" and "resolution" not in params


def test_a_declaration_corrects_a_known_row():
    declared = declare_models({"wan2.6-t2v-us": {"durations": [5, 10, 15]}})
    assert build(model="wan2.6-t2v-us", duration=15, models=declared).duration == 15
    with pytest.raises(WanRequestValidationError):
        build(model="wan2.6-t2v-us", duration=15)
    check_region("wan2.6-t2v-us", "virginia", declared)  # the known row's regions are kept


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{not json", "is not JSON"),
        ({"m": {"durations": "soon"}}, r"durations='soon'; allowed: a list of seconds"),
        ({"m": {"speed": 2}}, r"unknown keys speed; allowed: like, shape"),
        ({"m": {"like": "wan1-t2v"}}, r"like='wan1-t2v' is not a known model"),
        ({"m": {"regions": ["mars"]}}, r"regions=\['mars'\]; allowed: region names"),
        ({"m": {"resolutions": ["8K"]}}, r"resolution='8K' is not a tier"),
        ({"m": {"default_duration": 1}}, r"default_duration=1 is not among its durations"),
    ],
)
def test_a_bad_declaration_names_the_model_key_and_value(spec, message):
    with pytest.raises(WanConfigurationError, match=message):
        settings_for(region="singapore", models=spec)


# ------------------------------------------------------------------------------------------ regions

#: Issue 12's region facts, pinned here so a table edit that breaks one shows up as a failing row.
OFFERED = {
    "wan2.6-t2v": {"beijing", "singapore", "virginia", "frankfurt"},
    "wan2.6-t2v-us": {"virginia"},
    "wan2.5-t2v-preview": {"beijing", "singapore"},
    "wan2.2-t2v-plus": {"beijing", "singapore"},
    "wanx2.1-t2v-turbo": {"beijing", "singapore"},
    "wanx2.1-t2v-plus": {"beijing", "singapore"},
    "wan2.1-t2v-turbo": {"beijing", "singapore"},
    "wan2.7-t2v": {"beijing", "singapore"},
    "wan2.7-t2v-2026-04-25": {"beijing", "singapore"},
    "wan2.7-t2v-2026-06-12": {"beijing", "singapore"},  # unverified snapshot of the same line
    # Beyond text (issue 15): Model Studio's first-frame, first-and-last-frame and reference-to-video pages.
    "wan2.7-i2v": {"beijing", "singapore"},
    "wan2.6-i2v": {"beijing", "singapore"},
    "wan2.6-i2v-flash": {"beijing", "singapore"},
    "wan2.5-i2v-preview": {"beijing", "singapore"},
    "wan2.2-i2v-plus": {"beijing", "singapore"},
    "wan2.2-i2v-flash": {"beijing", "singapore"},
    "wanx2.1-i2v-turbo": {"beijing", "singapore"},
    "wanx2.1-i2v-plus": {"beijing", "singapore"},
    "wan2.2-kf2v-flash": {"beijing", "singapore"},
    "wanx2.1-kf2v-plus": {"beijing", "singapore"},
    "wan2.6-r2v": {"beijing", "singapore", "virginia"},
    "wan2.6-r2v-flash": {"beijing", "singapore"},
}


@pytest.mark.parametrize("region", REGION_NAMES)
@pytest.mark.parametrize("model", sorted(OFFERED))
def test_every_model_in_every_region(model, region):
    if region in OFFERED[model]:
        check_region(model, region)
    else:
        with pytest.raises(WanRequestValidationError) as err:
            check_region(model, region)
        message = str(err.value)
        assert f"model={model!r} is not offered in region {region!r}" in message and "it is offered in:" in message


@pytest.mark.parametrize("cap", CAPABILITIES, ids=lambda c: c.name)
def test_the_table_and_the_pinned_facts_agree(cap):
    if cap.regions is None:
        assert not cap.verified
        for region in REGION_NAMES:
            check_region(cap.name, region)  # unverified regions are never refused
    else:
        assert cap.regions == OFFERED[cap.name]


def test_no_region_no_model_no_check():
    check_region("wan2.6-t2v-us", None)  # a gateway or the simulator: the region is unknown
    check_region("wan9.9-t2v", "frankfurt")  # an unknown model


@pytest.mark.parametrize(
    ("region", "url"),
    [
        ("frankfurt", f"https://{WORKSPACE}.eu-central-1.maas.aliyuncs.com/api/v1"),
        ("eu-central-1", f"https://{WORKSPACE}.eu-central-1.maas.aliyuncs.com/api/v1"),
        ("singapore", f"https://{WORKSPACE}.ap-southeast-1.maas.aliyuncs.com/api/v1"),
        ("beijing", f"https://{WORKSPACE}.cn-beijing.maas.aliyuncs.com/api/v1"),
    ],
)
def test_workspace_domains_are_built_from_workspace_and_region(region, url):
    assert workspace_base_url(WORKSPACE, region) == url
    assert region_of_host(url.split("/")[2]) == ("frankfurt" if region == "eu-central-1" else region)


def test_frankfurt_is_served_only_at_its_workspace_domain():
    settings = settings_for(region="frankfurt", workspace=WORKSPACE)
    assert settings.base_url == f"https://{WORKSPACE}.eu-central-1.maas.aliyuncs.com/api/v1"
    assert (settings.region, settings.workspace) == ("frankfurt", WORKSPACE)
    with pytest.raises(WanConfigurationError, match=r"needs the workspace extra.*\{WorkspaceId\}\.eu-central-1"):
        settings_for(region="eu-central-1")


@pytest.mark.parametrize("flag", [True, "true"])
def test_singapore_and_beijing_use_the_workspace_domain_on_request(flag):
    assert (
        settings_for(region="singapore", workspace=WORKSPACE).base_url == "https://dashscope-intl.aliyuncs.com/api/v1"
    )
    settings = settings_for(region="beijing", workspace=WORKSPACE, workspace_domain=flag)
    assert settings.base_url == f"https://{WORKSPACE}.cn-beijing.maas.aliyuncs.com/api/v1"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"region": "virginia", "workspace": WORKSPACE, "workspace_domain": True}, "has no workspace domain"),
        ({"region": "frankfurt", "workspace": "bad.host/name"}, "cannot name a workspace domain"),
        ({"region": "mars"}, "allowed: singapore, beijing, virginia, frankfurt"),
    ],
)
def test_bad_region_settings_say_what_is_wrong(extra, message):
    with pytest.raises(WanConfigurationError, match=message):
        settings_for(**extra)


def test_an_explicit_alibaba_base_url_keeps_its_region_for_the_check():
    assert settings_for(base_url="https://dashscope-us.aliyuncs.com/api/v1").region == "virginia"
    assert settings_for(base_url="https://gw.example.com/v1").region is None


def test_the_hook_refuses_a_model_the_region_lacks_before_any_request():
    hook = WanHook(
        settings=WanConnectionSettings(api_key="sk", base_url="http://127.0.0.1:9/api/v1", region="frankfurt")
    )
    with pytest.raises(WanRequestValidationError, match=r"'wan2\.7-t2v' is not offered in region 'frankfurt'"):
        hook.submit({"prompt": PROMPT, "model": "wan2.7-t2v"})  # port 9 would refuse: nothing was sent


# ------------------------------------------------------------------------------------------ error codes

NEW_CODES = [
    # code, HTTP status, message, class, retryable, words the advice must contain
    ("Throttling.BurstRate", 429, "Request rate increased too quickly", WanThrottledError, True, "gradually"),
    ("Endpoint.AccessDenied", 403, "Model has been retired", WanNotFoundError, False, "retired"),
    ("ModelServingError", 503, "Model serving capacity exceeded", WanServerError, True, "capacity"),
    ("ModelServiceFailed", 500, "Model service failed", WanServerError, True, "submit it again"),
    ("InternalError.Upload", 500, "Failed to upload result", WanServerError, True, "store the finished video"),
    ("InternalError.Timeout", 500, "Async task not finished in 3 hours", WanServerError, True, "3 hours"),
    ("NOT AUTHORIZED", 401, "NOT AUTHORIZED", WanAuthenticationError, False, "workspace"),
    ("InvalidFile.Duration", 400, "The audio duration is out of range", WanInvalidRequestError, False, "soundtrack"),
    ("InvalidFile.Format", 400, "The audio format is not supported", WanInvalidRequestError, False, "wav or mp3"),
    ("InvalidFile.DownloadFailed", 400, "download failed", WanInvalidRequestError, False, "download"),
    (
        "Throttling.AllocationQuota",
        429,
        "Allocated quota exceeded, please increase your quota limit.",
        WanThrottledError,
        True,
        "rate limit",
    ),
    ("Throttling.AllocationQuota", 429, "Free allocated quota exceeded.", WanPermissionError, False, "free quota"),
    ("task_not_exist", 400, "task_not_exist", WanTaskExpiredError, False, "generate it again"),
]


@pytest.mark.parametrize(("code", "status", "message", "cls", "retryable", "advice"), NEW_CODES)
def test_every_new_error_code(code, status, message, cls, retryable, advice):
    err = error_from_response(answer({"code": code, "message": message, "request_id": "r"}, status))
    assert type(err) is cls and err.retryable is retryable and err.code == code
    assert advice in (advice_for(err) or "")
    assert error_class_for(code, 200, message) is cls  # a FAILED task with the same code means the same


def test_a_retired_model_never_advises_checking_the_balance():
    err = error_from_response(answer({"code": "Endpoint.AccessDenied", "message": "retired"}, 403))
    assert "balance" not in (advice_for(err) or "")
    assert "balance" in ADVICE[WanPermissionError]  # ...which a real permission error still does


def test_a_failed_task_with_free_quota_exhausted_is_permanent_and_a_rate_limit_is_not():
    from airflow_provider_wan.models import WanTask

    free = WanTask(
        task_id="t",
        task_status=TaskStatus.FAILED,
        code="Throttling.AllocationQuota",
        message="Free allocated quota exceeded.",
    )
    busy = free.model_copy(update={"message": "Allocated quota exceeded, please increase your quota limit."})
    assert isinstance(task_error(free), WanPermissionError) and not task_error(free).retryable
    assert isinstance(task_error(busy), WanThrottledError) and task_error(busy).retryable


# ------------------------------------------------------------------------------------------ relay answers

URL = "https://dashscope-result-sh.oss-accelerate.aliyuncs.com/v.mp4?Expires=1&Signature=S"
UPSTREAM = {
    "request_id": "r-up",
    "output": {
        "task_id": "up-1",
        "task_status": "SUCCEEDED",
        "video_url": URL,
        "orig_prompt": PROMPT,
        "submit_time": "2026-01-01 10:00:00.000",
        "end_time": "2026-01-01 10:02:00.000",
    },
    "usage": {"duration": 5, "size": "1280*720", "output_video_duration": 5, "SR": 720, "video_count": 1},
}


@pytest.mark.parametrize(
    "body",
    [
        {
            "code": "success",
            "message": "",
            "data": {"task_id": "t", "status": "SUCCESS", "result_url": URL, "data": UPSTREAM},
        },
        {"code": "success", "data": {"task_id": "t", "status": "SUCCESS", "data": UPSTREAM}},
        {"task_id": "t", "status": "SUCCESS", "data": {"output": URL}},
        {"task_id": "t", "status": "SUCCESS", "data": {"outputs": [URL]}},
        {"id": "t", "object": "video", "status": "completed", "metadata": {"url": URL, "usage": UPSTREAM["usage"]}},
    ],
    ids=["newapi-result_url", "newapi-data.output-object", "v2-data.output", "v2-data.outputs", "openai-metadata.url"],
)
def test_the_video_is_read_wherever_the_relay_puts_it(body):
    task = NewApiProtocol().parse_task(answer(body), "t")
    assert task.task_status is TaskStatus.SUCCEEDED and task.video_url == URL


def test_new_apis_upstream_object_keeps_the_billed_usage_and_prompt():
    body = {"code": "success", "data": {"task_id": "t", "status": "SUCCESS", "result_url": URL, "data": UPSTREAM}}
    task = NewApiProtocol().parse_task(answer(body), "t")
    assert task.usage is not None and task.usage.billed_seconds == 5 and task.usage.output_size == "1280*720"
    assert task.orig_prompt == PROMPT and task.end_time == "2026-01-01 10:02:00.000"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        *[(s, "PENDING") for s in ("NOT_START", "SUBMITTED", "QUEUED", "queued", "pending")],
        *[(s, "RUNNING") for s in ("IN_PROGRESS", "in_progress", "processing", "running")],
        *[(s, "SUCCEEDED") for s in ("SUCCESS", "completed", "succeeded")],
        *[(s, "FAILED") for s in ("FAILURE", "failed")],
        ("cancelled", "CANCELED"),
        ("UNKNOWN", "UNKNOWN"),
    ],
)
def test_every_status_vocabulary(raw, status):
    assert NewApiProtocol().parse_task(answer({"task_id": "t", "status": raw}), "t").task_status.value == status


def test_an_unknown_status_ends_the_wait_with_a_non_retryable_error_naming_it():
    with pytest.raises(WanUnexpectedStatusError, match="unexpected status 'MODERATING'") as err:
        OpenAIVideoProtocol().parse_task(answer({"id": "t", "status": "MODERATING"}), "t")
    assert not err.value.retryable and err.value.code == "UnexpectedStatus"
    assert error_class_for("UnexpectedStatus", None) is WanUnexpectedStatusError  # the trigger's event maps back


def test_new_apis_400_task_not_exist_means_expired_not_invalid():
    body = {"code": "task_not_exist", "message": "task_not_exist", "data": None}
    assert NewApiProtocol().parse_task(answer(body, 400), "t").task_status is TaskStatus.UNKNOWN
    with pytest.raises(WanInvalidRequestError):  # any other 400 still is what it says
        NewApiProtocol().parse_task(answer({"code": "invalid_request", "message": "bad"}, 400), "t")


def test_failures_keep_dashscopes_code_through_every_relay_shape():
    generic = {
        "code": "success",
        "data": {
            "task_id": "t",
            "status": "FAILURE",
            "fail_reason": "task failed",
            "data": {"output": {"task_status": "FAILED", "code": "DataInspectionFailed", "message": "inappropriate"}},
        },
    }
    openai = {"id": "t", "status": "failed", "error": {"code": "DataInspectionFailed", "message": "inappropriate"}}
    for body in (generic, openai):
        assert isinstance(task_error(NewApiProtocol().parse_task(answer(body), "t")), WanContentModerationError)


@pytest.mark.parametrize("upstream", ["CANCELED", "UNKNOWN"])
def test_new_api_failure_of_a_canceled_or_expired_task_keeps_what_it_was(upstream):
    body = {
        "code": "success",
        "data": {
            "task_id": "t",
            "status": "FAILURE",
            "fail_reason": "task failed",
            "data": {"output": {"task_id": "up", "task_status": upstream}},
        },
    }
    assert NewApiProtocol().parse_task(answer(body), "t").task_status.value == upstream


def test_a_wrapped_dashscope_refusal_is_unwrapped():
    err = error_from_response(answer({"code": "ali_api_error", "message": "Throttling.RateQuota: slow down"}, 429))
    assert type(err) is WanThrottledError and err.code == "Throttling.RateQuota" and err.message == "slow down"
    raw = json.dumps({"request_id": "r", "code": "InvalidParameter", "message": "The size is not match"})
    err = error_from_response(answer({"code": "fail_to_fetch_task", "message": raw}, 400))
    assert type(err) is WanInvalidRequestError and err.code == "InvalidParameter"


@pytest.mark.parametrize("code", ["do_request_failed", "read_response_body_failed", "invalid_response"])
def test_a_relay_failure_after_forwarding_is_ambiguous_not_a_refusal(code):
    with pytest.raises(WanAmbiguousSubmitError):
        NewApiProtocol().read_submit(answer({"code": code, "message": "upstream hiccup", "data": None}, 500))


def test_new_api_bodies_put_what_it_does_not_map_in_metadata():
    request = build(
        model="wan2.6-t2v",
        size="1280*720",
        negative_prompt="blur",
        seed=5,
        watermark=False,
        audio_url="oss://dashscope-instant/a/track",
    )
    body = NewApiProtocol().submit_request(request).json
    assert body == {
        "model": "wan2.6-t2v",
        "prompt": PROMPT,
        "duration": 5,
        "size": "1280*720",
        "metadata": {
            "input": {"negative_prompt": "blur", "audio_url": "oss://dashscope-instant/a/track"},
            "parameters": {"watermark": False, "seed": 5},
        },
    }


@pytest.mark.parametrize(
    ("name", "path", "expected"),
    [
        ("unified", None, "v2/videos/generations"),
        ("newapi", None, "v1/video/generations"),
        ("openai", None, "v1/videos"),
        ("unified", "/api/v1/video/generations/", "api/v1/video/generations"),
    ],
)
def test_relay_paths_are_presets_or_configured(name, path, expected):
    protocol = get_protocol(name, path)
    assert protocol.submit_request(build()).path == expected
    assert protocol.get_task_request("t-1").path == f"{expected}/t-1"


def test_relay_settings_are_checked_when_the_connection_is_read():
    settings = settings_for(base_url="https://relay.example.com", protocol="newapi", unified_path="v9/video")
    assert (settings.protocol, settings.unified_path) == ("newapi", "v9/video")
    assert WanHook(settings=settings).protocol.path == "v9/video"
    with pytest.raises(WanConfigurationError, match="unified_path='v1/video' applies to the relay protocols"):
        settings_for(base_url="https://relay.example.com", unified_path="v1/video")
    with pytest.raises(WanConfigurationError, match="allowed: dashscope, unified, newapi, openai"):
        settings_for(base_url="https://relay.example.com", protocol="sora")


# ------------------------------------------------------------------------------------------ simulator strictness


def test_the_simulator_refuses_what_dashscope_refuses(simulator):
    headers = {"Authorization": f"Bearer {TEST_API_KEY}", "X-DashScope-Async": "enable"}
    url = simulator.base_url + "/services/aigc/video-generation/video-synthesis"

    def post(model: str, **params: Any) -> httpx.Response:
        body = {"model": model, "input": {"prompt": PROMPT}, "parameters": params}
        return httpx.post(url, json=body, headers=headers)

    assert post("WAN2.6-T2V").status_code == 404  # names are matched exactly
    refused = post("wan2.7-t2v", size="1280*720")
    assert refused.status_code == 400 and "parameters.size" in refused.json()["message"]
    assert post("wan2.7-t2v", resolution="480P").status_code == 400
    assert post("wan2.7-t2v", resolution="720P", ratio="21:9").status_code == 400
    assert post("wan2.7-t2v", resolution="720P", ratio="9:16", duration=16).status_code == 400
    assert simulator.counters()["tasks_created"] == 0
    assert post("wan2.7-t2v", resolution="720P", ratio="9:16").status_code == 200


def test_the_hook_sends_canonical_names_the_simulator_accepts(simulator):
    task_id = WanHook().submit({"prompt": PROMPT, "model": "WAN2.7-T2V", "aspect_ratio": "9:16", "resolution": "720p"})
    seen = simulator.task(task_id)
    assert seen["model"] == "wan2.7-t2v" and seen["effective"]["size"] == "720*1280"
    assert seen["body"]["parameters"]["resolution"] == "720P" and "size" not in seen["body"]["parameters"]


# ------------------------------------------------------------------------------------------ dag.test() end to end


@pytest.mark.parametrize(("ratio", "size"), [("16:9", "1280*720"), ("9:16", "720*1280")])
def test_wan27_dag_in_both_orientations(simulator, run_dag, ratio, size):
    dag_run = run_dag("wan_test_wan27", {"ratio": ratio, "prompt": PROMPT + " [[sim: pending=0.2 running=0.3]]"})
    assert task_states(dag_run) == {"generate": "success"}
    result = xcom(dag_run, "generate")
    assert result["task_status"] == "SUCCEEDED" and result["size"] == size and result["model"] == "wan2.7-t2v"
    seen = simulator.task(result["task_id"])
    assert seen["body"]["parameters"] == {"resolution": "720P", "ratio": ratio, "duration": 4}


def test_presigned_audio_url_without_an_extension_end_to_end(simulator, run_dag, s3_client, bucket):
    # A real presigned link to a key without an extension: DashScope (the simulator) downloads it and reads a WAV.
    s3_client.put_object(Bucket=bucket, Key="soundtracks/take-7", Body=silent_wav(5))
    link = s3_client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "soundtracks/take-7"}, ExpiresIn=3600
    )
    assert "Signature=" in link and not link.split("?")[0].endswith((".wav", ".mp3"))
    dag_run = run_dag("wan_test_presigned_audio", {"audio_url": link, "prompt": PROMPT + " [[sim: running=0.2]]"})
    assert task_states(dag_run) == {"generate": "success"}
    result = xcom(dag_run, "generate")
    task = simulator.task(result["task_id"])
    assert task["body"]["input"]["audio_url"] == link
    [soundtrack] = task["inputs"]
    assert (soundtrack["name"], soundtrack["status"], soundtrack["format"]) == ("input.audio_url", "fetched", "wav")
    assert "Signature=" not in json.dumps(result)


def test_a_frankfurt_workspace_connection_end_to_end(simulator, run_dag, monkeypatch):
    # The workspace host cannot resolve here: the simulator stands in through base_url, with the workspace header.
    monkeypatch.setenv(
        "AIRFLOW_CONN_DASHSCOPE_DEFAULT",
        json.dumps(
            {
                "conn_type": "dashscope",
                "password": TEST_API_KEY,
                "extra": {"base_url": simulator.base_url, "region": "frankfurt", "workspace": WORKSPACE},
            }
        ),
    )
    dag_run = run_dag("wan_test_deferrable", {"prompt": PROMPT + " [[sim: pending=0.2 running=0.3]]"})
    assert task_states(dag_run) == {"generate": "success"}
    task_id = xcom(dag_run, "generate")["task_id"]
    headers = {k.lower(): v for k, v in simulator.task(task_id)["headers"].items()}
    assert headers["x-dashscope-workspace"] == WORKSPACE
    # The same connection without base_url targets the workspace domain, and the model check runs there.
    settings = settings_for(region="frankfurt", workspace=WORKSPACE)
    hook = WanHook(
        settings=WanConnectionSettings(
            api_key="sk", base_url=simulator.base_url, region=settings.region, workspace=WORKSPACE
        )
    )
    with pytest.raises(WanRequestValidationError, match="not offered in region 'frankfurt'"):
        hook.submit({"prompt": PROMPT, "model": "wan2.5-t2v-preview"})
    assert hook.wait_for_task(hook.submit({"prompt": PROMPT + " [[sim: running=0.1]]"}), 0.1, 30).video_url


def relay_conn(root_url: str, protocol: str) -> str:
    extra = {"protocol": protocol, "base_url": root_url}
    return json.dumps({"conn_type": "dashscope", "password": TEST_API_KEY, "extra": extra})


@pytest.fixture
def relay(request: pytest.FixtureRequest, simulator: Any, wan_simulator_factory: Any, monkeypatch) -> Iterator[Any]:
    """``dashscope_default`` through one relay flavour; yields (simulator, protocol label in its counters)."""
    flavour = request.param
    if flavour == "qwen":
        gateway = wan_simulator_factory(prefix="/qwen/api/v1", pending_seconds=0.2, running_seconds=0.3)
        monkeypatch.setenv(
            "AIRFLOW_CONN_DASHSCOPE_DEFAULT",
            json.dumps({"conn_type": "dashscope", "password": TEST_API_KEY, "host": gateway.base_url}),
        )
        yield gateway, "dashscope"
        return
    monkeypatch.setenv("AIRFLOW_CONN_DASHSCOPE_DEFAULT", relay_conn(simulator.root_url, flavour))
    yield simulator, ("unified" if flavour == "unified" else "newapi")


@pytest.mark.parametrize("relay", ["newapi", "openai", "unified", "qwen"], indirect=True)
def test_each_relay_flavour_end_to_end(relay, run_dag):
    sim, label = relay
    dag_run = run_dag("wan_test_deferrable", {"prompt": PROMPT + " [[sim: pending=0.2 running=0.3]]"})
    assert task_states(dag_run) == {"generate": "success"}
    result = xcom(dag_run, "generate")
    assert result["task_status"] == "SUCCEEDED" and result["billed_seconds"] in (5, 5.0, None)
    counters = sim.counters()
    assert counters["tasks_created"] == 1 and counters["per_protocol"].get(label, 0) >= 2
    assert WanHook().get_task(result["task_id"]).video_url  # the billed video is found, fetched fresh


@pytest.mark.parametrize("relay", ["newapi", "openai", "unified"], indirect=True)
def test_relays_carry_wan27_failures_refusals_and_expiry(relay):
    sim, _ = relay
    hook = WanHook()
    task_id = hook.submit({"prompt": PROMPT, "model": "wan2.7-t2v", "aspect_ratio": "9:16", "resolution": "720P"})
    assert sim.task(task_id)["effective"]["size"] == "720*1280"
    assert hook.wait_for_task(task_id, 0.1, 30).task_status is TaskStatus.SUCCEEDED
    failing = hook.submit({"prompt": PROMPT + " [[sim: outcome=FAILED code=DataInspectionFailed running=0.1]]"})
    with pytest.raises(WanContentModerationError):
        hook.wait_for_task(failing, 0.1, 30)
    with pytest.raises(WanTaskExpiredError):
        hook.wait_for_task("00000000-1111-2222-3333-444444444444", 0.1, 5)
    with pytest.raises(WanInvalidRequestError, match="duration"):  # a DashScope refusal, relayed and unwrapped
        hook._call(hook.protocol.submit_request(_unchecked(model="wan2.7-t2v", duration=40)), hook.protocol.read_submit)
    assert sim.counters()["tasks_created"] == 2  # the refused one was never created


def _unchecked(**fields: Any) -> WanVideoRequest:
    """A request the client would refuse, built without the checks, to see the relay refuse it."""
    return WanVideoRequest.build(prompt=PROMPT, skip_capabilities=True, **fields)


@pytest.mark.parametrize("relay", ["newapi"], indirect=True)
def test_an_unknown_relay_status_fails_the_dag_at_once_without_retries(relay, run_dag, capfd):
    sim, _ = relay
    weird = {"code": "success", "data": {"task_id": "t", "status": "MODERATING", "progress": "10%"}}
    sim.add_fault("get", kind="body", body=weird)  # every poll: the wait must end, not run to the deadline
    dag_run = run_dag("wan_test_deferrable", {"prompt": PROMPT + " [[sim: pending=0.2 running=0.3]]"})
    assert task_states(dag_run) == {"generate": "failed"}
    logs = "".join(capfd.readouterr())
    assert "WanUnexpectedStatusError" in logs and "MODERATING" in logs
    assert sim.counters()["tasks_created"] == 1  # the retries configured on the DAG were not spent
