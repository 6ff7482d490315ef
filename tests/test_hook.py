"""WanHook against the simulator over real loopback HTTP: success, every error class, retries, timeouts, twins."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from airflow_provider_wan.exceptions import (
    WanAmbiguousSubmitError,
    WanAuthenticationError,
    WanContentModerationError,
    WanInvalidRequestError,
    WanNotFoundError,
    WanPermissionError,
    WanServerError,
    WanTaskExpiredError,
    WanThrottledError,
    WanTimeoutError,
    WanTransportError,
)
from airflow_provider_wan.hooks.wan import WanHook, user_agent
from airflow_provider_wan.models import TaskStatus
from airflow_provider_wan.settings import REGIONS, WanConnectionSettings
from tests.conftest import TEST_API_KEY, free_port

PROMPT = "a paper boat drifting down a rainy street"


def make_hook(base_url: str, api_key: str = TEST_API_KEY, **extra: Any) -> WanHook:
    extra = {"read_timeout": 5, "max_retries": 3, **extra}
    settings = WanConnectionSettings.from_parts(
        password=api_key, host=None, port=None, schema=None, extra={"base_url": base_url, **extra}, source="test"
    )
    return WanHook(settings=settings)


@pytest.fixture
def hook(simulator: Any) -> WanHook:
    return make_hook(simulator.base_url)


def test_submit_sends_the_documented_request(simulator, hook):
    hook = make_hook(simulator.base_url, workspace="ws-123")
    task_id = hook.submit({"prompt": PROMPT, "size": "1280x720", "duration": 10, "seed": 42, "watermark": False})
    seen = simulator.task(task_id)
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert headers["x-dashscope-async"] == "enable"
    assert headers["x-dashscope-workspace"] == "ws-123"
    assert headers["user-agent"] == user_agent() and "airflow-provider-wan/" in headers["user-agent"]
    assert TEST_API_KEY not in json.dumps(seen["headers"])  # the simulator masks it, and so must everyone
    assert seen["body"]["parameters"] == {"size": "1280*720", "duration": 10, "seed": 42, "watermark": False}
    assert seen["body"]["input"] == {"prompt": PROMPT}
    assert simulator.counters()["tasks_created"] == 1


def test_wait_for_task_returns_the_succeeded_task(simulator, hook):
    task_id = hook.submit({"prompt": PROMPT, "duration": 3})
    task = hook.wait_for_task(task_id, poll_interval=0.1, timeout=30)
    assert task.task_status is TaskStatus.SUCCEEDED
    assert task.video_url and "Signature=" in task.video_url
    assert task.usage and task.usage.billed_seconds == 3 and task.usage.output_size == "1920*1080"
    assert task.orig_prompt == PROMPT and task.actual_prompt is None  # wan2.6 never rewrites visibly
    assert task.submit_time and len(task.submit_time) == len("2025-09-29 14:18:52.331")


def test_legacy_model_reports_legacy_usage_and_actual_prompt(simulator, hook):
    task_id = hook.submit({"prompt": PROMPT, "model": "wan2.5-t2v-preview", "size": "832*480", "duration": 10})
    task = hook.wait_for_task(task_id, poll_interval=0.1, timeout=30)
    assert task.usage and task.usage.video_duration == 10 and task.usage.video_ratio == "832*480"
    assert task.usage.billed_seconds == 10 and task.actual_prompt


@pytest.mark.parametrize(
    ("route", "status", "code", "cls"),
    [
        ("submit", 403, "AccessDenied", WanPermissionError),
        ("submit", 400, "Arrearage", WanPermissionError),
        ("submit", 400, "InvalidParameter", WanInvalidRequestError),
        ("submit", 400, "DataInspectionFailed", WanContentModerationError),
        ("submit", 404, "ModelNotFound", WanNotFoundError),
        ("get", 401, "InvalidApiKey", WanAuthenticationError),
    ],
)
def test_non_retryable_errors_are_raised_at_once(simulator, hook, route, status, code, cls):
    task_id = hook.submit({"prompt": PROMPT}) if route == "get" else None
    simulator.add_fault(route, "error", status=status, code=code)
    before = simulator.counters()["per_route"][route]
    with pytest.raises(cls) as err:
        hook.get_task(task_id) if task_id else hook.submit({"prompt": PROMPT})
    assert err.value.code == code and err.value.status_code == status and err.value.request_id
    assert simulator.counters()["per_route"][route] == before + 1  # exactly one attempt


def test_wrong_key_is_an_authentication_error(simulator):
    simulator.configure(api_keys=("sk-the-only-good-key",))
    with pytest.raises(WanAuthenticationError, match="Invalid API-key provided"):
        make_hook(simulator.base_url, api_key="sk-wrong").submit({"prompt": PROMPT})
    assert make_hook(simulator.base_url, api_key="sk-the-only-good-key").submit({"prompt": PROMPT})


def test_failed_task_maps_to_the_error_classes(simulator, hook):
    task_id = hook.submit({"prompt": PROMPT + " [[sim: outcome=FAILED code=DataInspectionFailed]]"})
    with pytest.raises(WanContentModerationError) as err:
        hook.wait_for_task(task_id, poll_interval=0.1, timeout=30)
    assert err.value.task_id == task_id and not err.value.retryable


def test_throttled_polls_are_retried_honouring_retry_after(simulator, hook):
    task_id = hook.submit({"prompt": PROMPT})
    simulator.add_fault("get", "error", status=429, code="Throttling.RateQuota", retry_after=0.4, count=2)
    started = time.monotonic()
    assert hook.get_task(task_id).task_id == task_id
    assert time.monotonic() - started >= 0.8  # two waits of at least Retry-After
    assert simulator.counters()["per_route"]["get"] == 3


def test_server_errors_and_bad_json_on_polls_are_retried(simulator, hook):
    task_id = hook.submit({"prompt": PROMPT})
    simulator.add_fault("get", "error", status=503, code="ModelUnavailable", count=1)
    simulator.add_fault("get", "html", count=1)
    assert hook.get_task(task_id).task_id == task_id
    assert simulator.counters()["per_route"]["get"] == 3


def test_retries_are_bounded_in_count(simulator):
    hook = make_hook(simulator.base_url, max_retries=2, retry_budget=30)
    task_id = hook.submit({"prompt": PROMPT})
    simulator.add_fault("get", "error", status=500, code="InternalError")
    with pytest.raises(WanServerError):
        hook.get_task(task_id)
    assert simulator.counters()["per_route"]["get"] == 3


def test_retries_are_bounded_in_time(simulator):
    hook = make_hook(simulator.base_url, max_retries=50, retry_budget=1)
    task_id = hook.submit({"prompt": PROMPT})
    simulator.add_fault("get", "error", status=429, code="Throttling", retry_after=0.6)
    started = time.monotonic()
    with pytest.raises(WanThrottledError):
        hook.get_task(task_id)
    assert time.monotonic() - started < 5


def test_submit_is_retried_when_dashscope_refused_it(simulator, hook):
    simulator.add_fault("submit", "error", status=429, code="Throttling.RateQuota", count=1, retry_after=0.1)
    simulator.add_fault("submit", "error", status=500, code="InternalError", count=1)
    assert hook.submit({"prompt": PROMPT})
    counters = simulator.counters()
    assert counters["submissions"] == 3 and counters["tasks_created"] == 1


@pytest.mark.parametrize("kind", ["drop", "latency"])
def test_ambiguous_submit_is_never_sent_twice(simulator, kind):
    hook = make_hook(simulator.base_url, read_timeout=0.5)
    simulator.add_fault("submit", kind, phase="after", latency=2.0, count=1)
    with pytest.raises(WanAmbiguousSubmitError, match="may have created a task that will be billed") as err:
        hook.submit({"prompt": PROMPT})
    assert not err.value.retryable
    counters = simulator.counters()
    assert counters["submissions"] == 1 and counters["tasks_created"] == 1


def test_an_unreadable_5xx_is_resubmitted_only_once_the_task_list_proves_no_task_exists(simulator, hook):
    hook.ambiguity_settle = 0.1
    simulator.add_fault("submit", "html", status=502, count=1)  # a gateway page; the POST never reached DashScope
    assert hook.submit({"prompt": PROMPT})
    counters = simulator.counters()
    assert counters["submissions"] == 2 and counters["tasks_created"] == 1 and counters["lists"] >= 1


def test_an_unreadable_5xx_after_the_task_was_created_names_it_instead_of_resubmitting(simulator, hook):
    hook.ambiguity_settle = 0.1
    simulator.add_fault("submit", "html", status=502, phase="after", count=1)
    with pytest.raises(WanAmbiguousSubmitError, match="adopt_task_id") as err:
        hook.submit({"prompt": PROMPT})
    [task] = simulator.tasks()
    assert [c["task_id"] for c in err.value.candidates] == [task["task_id"]] and err.value.checked
    assert simulator.counters()["submissions"] == 1


async def test_the_async_submit_follows_the_same_rule(simulator, hook):
    hook.ambiguity_settle = 0.1
    simulator.add_fault("submit", "body", body='{"output": {}}', phase="after", count=1)
    with pytest.raises(WanAmbiguousSubmitError, match="adopt_task_id"):
        await hook.asubmit({"prompt": PROMPT})
    simulator.add_fault("submit", "drop", count=1)  # before: nothing created (another model: no candidate either)
    assert await hook.asubmit({"prompt": PROMPT, "model": "wan2.5-t2v-preview"})
    assert simulator.counters()["tasks_created"] == 2  # one per call, never two for one


def test_poll_read_timeouts_are_retried(simulator):
    hook = make_hook(simulator.base_url, read_timeout=0.3)
    task_id = hook.submit({"prompt": PROMPT})
    simulator.add_fault("get", "latency", latency=1.0, count=1)
    assert hook.get_task(task_id).task_id == task_id


def test_nothing_listening_is_a_transport_error_saying_nothing_was_sent():
    hook = make_hook(f"http://127.0.0.1:{free_port()}/api/v1", max_retries=1)
    with pytest.raises(WanTransportError, match="nothing was sent") as err:
        hook.submit({"prompt": PROMPT})
    assert type(err.value) is WanTransportError


def test_invalid_request_is_refused_before_any_http(simulator, hook):
    from airflow_provider_wan.exceptions import WanRequestValidationError

    with pytest.raises(WanRequestValidationError, match="size='832\\*480' is not allowed"):
        hook.submit({"prompt": PROMPT, "size": "832*480"})
    assert simulator.counters()["submissions"] == 0


def test_cancel_pending_and_refuse_running(simulator, hook):
    pending = hook.submit({"prompt": PROMPT + " [[sim: pending=30]]"})
    hook.cancel_task(pending)
    assert hook.get_task(pending).task_status is TaskStatus.CANCELED
    running = hook.submit({"prompt": PROMPT + " [[sim: pending=0 running=30]]"})
    time.sleep(0.2)
    with pytest.raises(WanInvalidRequestError) as err:
        hook.cancel_task(running)
    assert err.value.code == "UnsupportedOperation"


def test_unknown_task_is_expired(simulator, hook):
    with pytest.raises(WanTaskExpiredError):
        hook.wait_for_task("9b0c1c1e-0000-4000-8000-000000000000", poll_interval=0.1, timeout=5)


def test_wait_for_task_times_out_on_generation_and_on_the_queue_separately(simulator, hook):
    running = hook.submit({"prompt": PROMPT + " [[sim: pending=0 running=30]]"})
    with pytest.raises(WanTimeoutError, match=r"still RUNNING 0\.5 s after it started generating") as err:
        hook.wait_for_task(running, poll_interval=0.1, timeout=0.5)
    assert err.value.task_id == running and err.value.reason == "timeout" and err.value.retryable
    queued = hook.submit({"prompt": PROMPT + " [[sim: pending=30]]"})
    with pytest.raises(WanTimeoutError, match=r"waited 0\.5 s in DashScope's queue") as err:
        hook.wait_for_task(queued, poll_interval=0.1, timeout=0.2, queue_timeout=0.5)  # queue time is not `timeout`
    assert err.value.reason == "queue_timeout" and not err.value.retryable


def test_list_tasks(simulator, hook):
    ids = {hook.submit({"prompt": f"{PROMPT} {i}"}) for i in range(3)}
    page = hook.list_tasks(page_size=10)
    assert ids <= {t.task_id for t in page.tasks}


def test_test_connection_spends_nothing(simulator, hook):
    ok, message = hook.test_connection()
    assert ok and simulator.base_url in message
    assert simulator.counters()["submissions"] == 0
    simulator.configure(api_keys=("sk-other",))
    ok, message = hook.test_connection()
    assert not ok and "WanAuthenticationError" in message and TEST_API_KEY not in message


# --------------------------------------------------------------------------------------------- async twins


async def test_async_twins_share_the_protocol_and_the_client(simulator):
    from airflow_provider_wan.hooks._transport import shared_client_count

    hook = make_hook(simulator.base_url)
    async with hook.async_session():
        task_id = await hook.asubmit({"prompt": PROMPT, "duration": 2})
        assert shared_client_count() == 1
        task = await hook.aget_task(task_id)
        assert task.task_status in (TaskStatus.PENDING, TaskStatus.RUNNING)
        page = await hook.alist_tasks(page_size=5)
        assert task_id in {t.task_id for t in page.tasks}
        pending = await hook.asubmit({"prompt": PROMPT + " [[sim: pending=30]]"})
        await hook.acancel_task(pending)
        assert (await hook.aget_task(pending)).task_status is TaskStatus.CANCELED
        assert shared_client_count() == 1
    assert shared_client_count() == 0


async def test_async_retries_and_errors_match_sync(simulator):
    hook = make_hook(simulator.base_url, read_timeout=0.5)
    task_id = await hook.asubmit({"prompt": PROMPT})
    simulator.add_fault("get", "error", status=429, code="Throttling.RateQuota", retry_after=0.2, count=2)
    assert (await hook.aget_task(task_id)).task_id == task_id
    simulator.add_fault("submit", "drop", phase="after", count=1)
    with pytest.raises(WanAmbiguousSubmitError):
        await hook.asubmit({"prompt": PROMPT})
    simulator.add_fault("submit", "error", status=400, code="DataInspectionFailed", count=1)
    with pytest.raises(WanContentModerationError):
        await hook.asubmit({"prompt": PROMPT})
    counters = simulator.counters()
    assert counters["tasks_created"] == 2 and counters["per_route"]["get"] == 3


async def test_shared_budget_spaces_polls(simulator):
    hook = make_hook(simulator.base_url, poll_qps=20)
    task_id = await hook.asubmit({"prompt": PROMPT})
    async with hook.async_session():
        started = time.monotonic()
        await asyncio.gather(*(hook.aget_task(task_id) for _ in range(21)))
        elapsed = time.monotonic() - started
    assert elapsed >= 0.9  # 21 polls at 20/s need at least a second, however many callers


# --------------------------------------------------------------------------------------------- connections


def conn_env(name: str, value: str) -> dict[str, str]:
    return {f"AIRFLOW_CONN_{name.upper()}": value}


def test_connection_json_form(simulator, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAN_JSON",
        json.dumps(
            {
                "conn_type": "dashscope",
                "password": "sk-json",
                "extra": {"base_url": simulator.base_url, "workspace": "w1"},
            }
        ),
    )
    settings = WanHook("wan_json").get_settings()
    assert (settings.base_url, settings.workspace, settings.api_key) == (simulator.base_url, "w1", "sk-json")


def test_connection_uri_form_with_host_port_and_path(simulator, monkeypatch):
    port = simulator.base_url.split(":")[2].split("/")[0]
    monkeypatch.setenv("AIRFLOW_CONN_WAN_URI", f"dashscope://:sk-uri@127.0.0.1:{port}/api/v1?workspace=w2")
    hook = WanHook("wan_uri")
    settings = hook.get_settings()
    assert settings.base_url == simulator.base_url and settings.workspace == "w2"
    assert hook.submit({"prompt": PROMPT})


@pytest.mark.parametrize(
    ("region", "url"),
    [
        (None, REGIONS["singapore"]),
        ("beijing", REGIONS["beijing"]),
        ("cn-beijing", REGIONS["beijing"]),
        ("virginia", REGIONS["virginia"]),
    ],
)
def test_regions(monkeypatch, region, url):
    extra = {"region": region} if region else {}
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAN_REGION", json.dumps({"conn_type": "dashscope", "password": "sk", "extra": extra})
    )
    assert WanHook("wan_region").get_settings().base_url == url


def test_gateway_base_url_wins_over_region(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAN_GW",
        json.dumps(
            {
                "conn_type": "dashscope",
                "password": "sk",
                "host": "https://gw.example.com/qwen/api/v1",
                "extra": {"region": "beijing"},
            }
        ),
    )
    settings = WanHook("wan_gw").get_settings()
    assert settings.base_url == "https://gw.example.com/qwen/api/v1" and settings.region is None


def test_bad_connections_say_what_is_wrong(monkeypatch):
    from airflow_provider_wan.exceptions import WanConfigurationError

    monkeypatch.setenv("AIRFLOW_CONN_WAN_NOKEY", json.dumps({"conn_type": "dashscope"}))
    with pytest.raises(WanConfigurationError, match="has no API key"):
        WanHook("wan_nokey").get_settings()
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAN_BADREGION",
        json.dumps({"conn_type": "dashscope", "password": "k", "extra": {"region": "mars"}}),
    )
    with pytest.raises(WanConfigurationError, match="region='mars' is unknown; allowed: singapore, beijing, virginia"):
        WanHook("wan_badregion").get_settings()


def test_environment_fallback_when_the_connection_is_missing(monkeypatch, caplog, capfd, simulator):
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-from-env-123")
    monkeypatch.setenv("DASHSCOPE_REGION", "beijing")
    settings = WanHook("no_such_conn").get_settings()
    assert settings.api_key == "sk-from-env-123" and settings.base_url == REGIONS["beijing"]
    logs = caplog.text + "".join(capfd.readouterr())
    assert "using DASHSCOPE_API_KEY from the environment" in logs
    assert "sk-from-env-123" not in logs


def test_missing_connection_without_env_is_a_clear_error(monkeypatch):
    from airflow_provider_wan._compat import AirflowNotFoundException

    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    with pytest.raises(AirflowNotFoundException, match="isn't defined and DASHSCOPE_API_KEY is not set"):
        WanHook("no_such_conn_2").get_settings()


def test_key_never_appears_in_reprs_or_errors(simulator):
    hook = make_hook(simulator.base_url, api_key="sk-super-secret-value")
    assert "sk-super-secret-value" not in repr(hook) + repr(hook.get_settings())
    simulator.configure(api_keys=("sk-other",))
    with pytest.raises(WanAuthenticationError) as err:
        hook.submit({"prompt": PROMPT})
    assert "sk-super-secret-value" not in str(err.value) + repr(err.value)


def test_connection_from_a_secrets_backend(tmp_path, simulator):
    conns = tmp_path / "connections.json"
    conns.write_text(
        json.dumps(
            {"wan_vault": {"conn_type": "dashscope", "password": "sk-vault", "extra": {"base_url": simulator.base_url}}}
        )
    )
    env = {
        **os.environ,
        "AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(conns)}),
    }
    code = (
        "from airflow_provider_wan.hooks.wan import WanHook; h = WanHook('wan_vault'); "
        "print(h.get_settings().base_url); print(h.submit({'prompt': 'vault'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert simulator.base_url in out.stdout
    assert simulator.counters()["tasks_created"] == 1


def test_provider_is_registered_with_airflow():
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list"], capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "airflow-provider-wan" in out.stdout
    info = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "hooks", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert "dashscope" in info.stdout and "airflow_provider_wan.hooks.wan.WanHook" in info.stdout


def test_provider_info_declares_the_ui_form():
    from airflow_provider_wan.provider_info import get_provider_info

    info = get_provider_info()
    conn = info["connection-types"][0]
    assert conn["connection-type"] == "dashscope" and conn["hook-class-name"].endswith("WanHook")
    assert {"region", "workspace", "protocol"} <= set(conn["conn-fields"])
    assert "base_url" not in conn["conn-fields"]  # the host field is the form's one Base URL
    assert conn["ui-field-behaviour"]["relabeling"]["password"] == "API Key"
    assert WanHook.get_ui_field_behaviour()["relabeling"]["password"] == "API Key"
    for key in ("hooks", "operators", "sensors", "triggers", "transfers", "versions", "package-name"):
        assert info[key]


@pytest.mark.parametrize(
    ("uri", "base_url", "workspace"),
    [
        ("dashscope://:sk-abc@?region=beijing&workspace=ws-123", REGIONS["beijing"], "ws-123"),
        ("dashscope://:sk-abc@gateway.example.com/qwen/api/v1", "https://gateway.example.com/qwen/api/v1", None),
        ("dashscope://:sk-abc@", REGIONS["singapore"], None),
    ],
)
def test_readme_uri_forms(monkeypatch, uri, base_url, workspace):
    monkeypatch.setenv("AIRFLOW_CONN_WAN_README", uri)
    settings = WanHook("wan_readme").get_settings()
    assert (settings.base_url, settings.workspace, settings.api_key) == (base_url, workspace, "sk-abc")


async def test_poll_budget_never_bunches_after_a_stall():
    from airflow_provider_wan.hooks._transport import AsyncRateLimiter

    limiter, sent = AsyncRateLimiter(20), []

    async def poll() -> None:
        await limiter.acquire()
        sent.append(time.monotonic())

    async def stall() -> None:  # a garbage-collector pause or a busy callback holding the loop
        await asyncio.sleep(0.3)
        time.sleep(0.25)  # noqa: ASYNC251 - blocking on purpose

    await asyncio.gather(stall(), *(poll() for _ in range(45)))
    busiest = max(sum(1 for t in sent if start <= t < start + 1.0) for start in sent)
    assert busiest <= 20 and min(b - a for a, b in itertools.pairwise(sent)) >= 0.049
