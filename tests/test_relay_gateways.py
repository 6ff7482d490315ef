"""Relay gateways: the unified ``/v2/videos/generations`` flavour, new-api's ``/v1/video/generations`` and OpenAI-style
``/v1/videos``, and the native protocol under a ``/qwen`` prefix.

Nothing above the hook changes: the same operators, trigger and transfer run against both kinds of gateway.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_wan.exceptions import WanContentModerationError, WanTaskExpiredError
from airflow_provider_wan.hooks.wan import WanHook
from airflow_provider_wan.models import TaskStatus
from airflow_provider_wan.triggers.wan import WanTaskTrigger
from tests.conftest import TEST_API_KEY, task_states, xcom

PROMPT = "dance in the rain"


def unified_conn(root_url: str, **extra: Any) -> str:
    return json.dumps(
        {
            "conn_type": "dashscope",
            "password": TEST_API_KEY,
            "extra": {"protocol": "unified", "base_url": root_url, **extra},
        }
    )


@pytest.fixture
def unified(simulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``dashscope_default`` points at the simulator's unified relay routes."""
    monkeypatch.setenv("AIRFLOW_CONN_DASHSCOPE_DEFAULT", unified_conn(simulator.root_url))
    yield simulator


@pytest.fixture
def newapi(simulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``dashscope_default`` points at the simulator's new-api routes (``protocol=newapi``)."""
    monkeypatch.setenv("AIRFLOW_CONN_DASHSCOPE_DEFAULT", unified_conn(simulator.root_url, protocol="newapi"))
    yield simulator


@pytest.fixture
def newapi_openai(simulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``dashscope_default`` points at new-api's OpenAI-style video routes (``protocol=openai``)."""
    monkeypatch.setenv("AIRFLOW_CONN_DASHSCOPE_DEFAULT", unified_conn(simulator.root_url, protocol="openai"))
    yield simulator


@pytest.fixture
def qwen_gateway(wan_simulator_factory: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A gateway serving the native protocol under ``/qwen/api/v1``; ``dashscope_default`` points at it via host."""
    gateway = wan_simulator_factory(prefix="/qwen/api/v1", pending_seconds=0.2, running_seconds=0.5)
    monkeypatch.setenv(
        "AIRFLOW_CONN_DASHSCOPE_DEFAULT",
        json.dumps({"conn_type": "dashscope", "password": TEST_API_KEY, "host": gateway.base_url}),
    )
    yield gateway


def test_unified_submit_and_wait(unified):
    hook = WanHook()
    task_id = hook.submit({"prompt": PROMPT, "model": "wan2.2-t2v-plus", "size": "832*480", "seed": 3})
    body = unified.task(task_id)["body"]
    assert body["prompt"] == PROMPT and body["model"] == "wan2.2-t2v-plus" and body["size"] == "832*480"
    assert "input" not in body and "parameters" not in body  # flat
    task = hook.wait_for_task(task_id, poll_interval=0.1, timeout=30)
    assert task.task_status is TaskStatus.SUCCEEDED and task.video_url and "Signature=" in task.video_url
    assert task.submit_time and task.end_time and len(task.end_time) == len("2025-09-29 14:23:39.407")
    assert unified.counters()["per_protocol"]["unified"] >= 2


def test_unified_failure_reason_becomes_the_error(unified):
    hook = WanHook()
    task_id = hook.submit({"prompt": PROMPT + " [[sim: outcome=FAILED code=DataInspectionFailed running=0.1]]"})
    with pytest.raises(WanContentModerationError, match="Input or output data may contain inappropriate content"):
        hook.wait_for_task(task_id, poll_interval=0.1, timeout=30)


def test_unified_unknown_task_is_expired(unified):
    with pytest.raises(WanTaskExpiredError):
        WanHook().wait_for_task("00000000-1111-2222-3333-444444444444", poll_interval=0.1, timeout=5)


def test_unified_validates_per_model_before_sending(unified):
    from airflow_provider_wan.exceptions import WanRequestValidationError

    with pytest.raises(WanRequestValidationError, match=r"duration=10 is not allowed for model 'wanx2\.1-t2v-turbo'"):
        WanHook().submit({"prompt": PROMPT, "model": "wanx2.1-t2v-turbo", "duration": 10})
    with pytest.raises(WanRequestValidationError, match="over the limit of 800"):
        WanHook().submit({"prompt": "x" * 801, "model": "wan2.2-t2v-plus"})
    assert unified.counters()["submissions"] == 0


def test_unified_test_connection(unified):
    ok, message = WanHook().test_connection()
    assert ok and "unified" in message


def test_unified_cannot_cancel_and_says_so(unified, capfd):
    hook = WanHook()
    assert not hook.protocol.supports_cancel
    with pytest.raises(NotImplementedError, match="the unified protocol has no cancel route"):
        hook.cancel_task("t")


async def test_unified_on_kill_logs_that_it_cannot_cancel(unified, capfd):
    task_id = WanHook().submit({"prompt": PROMPT + " [[sim: pending=30]]"})
    await WanTaskTrigger(task_id).on_kill()
    assert "has no cancel route" in "".join(capfd.readouterr())
    assert unified.counters()["cancels"] == 0


def test_unified_dag_end_to_end(unified, run_dag):
    dag_run = run_dag("wan_test_deferrable", {"prompt": PROMPT + " [[sim: pending=0.3 running=0.5]]"})
    assert task_states(dag_run) == {"generate": "success"}
    result = xcom(dag_run, "generate")
    assert result["task_status"] == "SUCCEEDED" and unified.counters()["per_protocol"].get("dashscope", 0) == 0


def test_unified_timeout_does_not_fail_because_cancel_is_impossible(unified, run_dag, capfd):
    # queue_timeout cancels (free) when it passes; the relay has no cancel route, and that must not be the error.
    dag_run = run_dag("wan_test_queue_timeout", {"prompt": PROMPT + " [[sim: pending=30]]"})
    assert task_states(dag_run) == {"generate": "failed"}  # failed by the timeout, not by the cancel
    logs = "".join(capfd.readouterr())
    assert "protocol cannot cancel" in logs and "WanTimeoutError" in logs


def test_native_protocol_under_a_qwen_prefix(qwen_gateway, run_dag):
    hook = WanHook()
    assert hook.get_settings().base_url.endswith("/qwen/api/v1")
    dag_run = run_dag("wan_test_deferrable", {"prompt": PROMPT + " [[sim: pending=0.3 running=0.5]]"})
    assert task_states(dag_run) == {"generate": "success"}
    assert qwen_gateway.counters()["tasks_created"] == 1


@pytest.mark.parametrize("gateway", ["unified", "newapi", "newapi_openai", "qwen_gateway"])
def test_example_text_to_video_dag_through_each_gateway(gateway, request, run_dag, s3_client, bucket):
    simulator = request.getfixturevalue(gateway)
    dag_run = run_dag(
        "example_wan_text_to_video",
        {"prompt": PROMPT + " [[sim: pending=0.3 running=0.5]]", "poll_interval": 0.2, "bucket": bucket},
    )
    states = task_states(dag_run)
    assert set(states.values()) == {"success"}, states
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert any(k.endswith(".mp4") for k in keys) and any(k.endswith(".mp4.json") for k in keys)
    assert simulator.counters()["tasks_created"] == 1
