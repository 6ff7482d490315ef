"""WanTaskTrigger: one event per run, transient errors survived, a deadline honoured, the loop never blocked."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_wan.events import EVENT_STATUSES, event_error, validate_event
from airflow_provider_wan.exceptions import WanContentModerationError, WanProtocolError
from airflow_provider_wan.hooks._transport import shared_client_count
from airflow_provider_wan.hooks.wan import WanHook
from airflow_provider_wan.triggers.wan import WanTaskTrigger
from tests.conftest import TEST_API_KEY, dashscope_conn, free_port

PROMPT = "a kite over a wheat field"


def submit(prompt_suffix: str = "") -> str:
    return WanHook().submit({"prompt": f"{PROMPT} {prompt_suffix}"})


async def run_trigger(trigger: WanTaskTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def test_serialization_round_trip_through_airflows_trigger_model(simulator):
    import importlib

    from airflow.models.trigger import Trigger

    trigger = WanTaskTrigger(
        "t-123", dashscope_conn_id="dashscope_default", poll_interval=7.5, deadline=1_900_000_000.5
    )
    row = Trigger.from_object(trigger)
    assert row.classpath == "airflow_provider_wan.triggers.wan.WanTaskTrigger"
    assert set(row.kwargs) == {
        "dashscope_task_id",
        "dashscope_conn_id",
        "poll_interval",
        "deadline",
        "cancel_on_kill",
        "started_at",
        "timeout",
        "queue_timeout",
    }
    assert TEST_API_KEY not in json.dumps(row.kwargs, default=str) + repr(trigger)
    module, _, name = row.classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**row.kwargs)
    assert rebuilt.serialize() == trigger.serialize()


def test_kwargs_of_an_older_version_still_load():
    # The serialized kwargs are a contract: a trigger written by 0.1.0 must load in later versions.
    old = {
        "dashscope_task_id": "t",
        "dashscope_conn_id": "c",
        "poll_interval": 15.0,
        "deadline": None,
        "cancel_on_kill": True,
    }
    assert WanTaskTrigger(**old).dashscope_task_id == "t"


async def test_success_event_carries_the_result_but_not_the_url(simulator):
    task_id = submit("[[sim: pending=0.1 running=0.3]]")
    [event] = await run_trigger(WanTaskTrigger(task_id, poll_interval=0.1, deadline=time.time() + 30))
    assert event["status"] == "success" and event["task_id"] == task_id and event["task_status"] == "SUCCEEDED"
    assert event["billed_seconds"] == 5 and "video_url" not in event
    assert validate_event(event) is event and event_error(event) is None


@pytest.mark.parametrize(
    ("marker", "status", "code"),
    [
        ("[[sim: outcome=FAILED code=DataInspectionFailed running=0.1]]", "failed", "DataInspectionFailed"),
        ("[[sim: pending=5 task_ttl=0.3]]", "expired", "UNKNOWN"),
    ],
)
async def test_terminal_statuses_become_events(simulator, marker, status, code):
    task_id = submit(marker)
    [event] = await run_trigger(WanTaskTrigger(task_id, poll_interval=0.1, deadline=time.time() + 30))
    assert event["status"] == status
    assert (event.get("code") or event_error(event).code) == code  # type: ignore[union-attr]


async def test_canceled_task_becomes_a_canceled_event(simulator):
    task_id = submit("[[sim: pending=30]]")
    WanHook().cancel_task(task_id)
    [event] = await run_trigger(WanTaskTrigger(task_id, poll_interval=0.1))
    assert event["status"] == "canceled"


async def test_failed_event_maps_to_the_non_retryable_class(simulator):
    task_id = submit("[[sim: outcome=FAILED code=IPInfringementSuspect running=0]]")
    [event] = await run_trigger(WanTaskTrigger(task_id, poll_interval=0.1))
    error = event_error(event)
    assert isinstance(error, WanContentModerationError) and not error.retryable


async def test_deadline_gives_timeout_after_one_more_check(simulator):
    task_id = submit("[[sim: pending=30]]")
    started = time.monotonic()
    [event] = await run_trigger(WanTaskTrigger(task_id, poll_interval=0.2, deadline=time.time() + 0.6))
    assert event["status"] == "timeout" and event["task_status"] == "PENDING"
    assert time.monotonic() - started < 5


async def test_a_task_that_finished_at_the_deadline_is_not_reported_as_timed_out(simulator):
    task_id = submit("[[sim: pending=0 running=0]]")
    [event] = await run_trigger(WanTaskTrigger(task_id, poll_interval=10, deadline=time.time() - 1))
    assert event["status"] == "success"


async def test_transient_errors_never_end_the_wait(simulator, caplog):
    task_id = submit("[[sim: pending=0.3 running=0.3]]")
    simulator.configure(faults=())
    simulator.add_fault("get", "error", status=429, code="Throttling.RateQuota", count=3, retry_after=0.1)
    simulator.add_fault("get", "error", status=500, code="InternalError", count=3)
    simulator.add_fault("get", "drop", count=2)
    simulator.add_fault("get", "html", count=2)
    os.environ["AIRFLOW_CONN_DASHSCOPE_FLAKY"] = dashscope_conn(simulator.base_url, max_retries=1, retry_budget=5)
    [event] = await run_trigger(
        WanTaskTrigger(task_id, dashscope_conn_id="dashscope_flaky", poll_interval=0.05, deadline=time.time() + 60)
    )
    assert event["status"] == "success"
    warnings = [r.getMessage() for r in caplog.records if "the waits go on with backoff" in r.getMessage()]
    assert len(warnings) == 1  # said once per burst of failures, not once per failed poll


async def test_a_non_retryable_error_while_polling_ends_with_an_error_event(simulator):
    task_id = submit()
    simulator.add_fault("get", "error", status=401, code="InvalidApiKey")
    [event] = await run_trigger(WanTaskTrigger(task_id, poll_interval=0.1, deadline=time.time() + 30))
    assert event["status"] == "error" and event["code"] == "InvalidApiKey"


async def test_missing_connection_ends_with_an_error_event_not_a_crash(simulator):
    os.environ.pop("DASHSCOPE_API_KEY", None)
    [event] = await run_trigger(WanTaskTrigger("t", dashscope_conn_id="no_such_connection"))
    assert event["status"] == "error" and "no_such_connection" in event["message"]


async def test_status_transitions_are_logged_with_elapsed_time(simulator, capfd):
    task_id = submit("[[sim: pending=0.3 running=0.3]]")
    await run_trigger(WanTaskTrigger(task_id, poll_interval=0.1))
    logs = "".join(capfd.readouterr())
    assert f"Task {task_id}: PENDING → RUNNING after" in logs and "RUNNING → SUCCEEDED after" in logs


async def test_on_kill_cancels_a_pending_task_and_cleanup_does_not(simulator):
    task_id = submit("[[sim: pending=30]]")
    trigger = WanTaskTrigger(task_id, poll_interval=0.1)
    await trigger.cleanup()
    assert WanHook().get_task(task_id).task_status.value == "PENDING"
    await trigger.on_kill()
    assert WanHook().get_task(task_id).task_status.value == "CANCELED"


async def test_on_kill_is_best_effort_and_respects_cancel_on_kill(simulator):
    running = submit("[[sim: pending=0 running=30]]")
    await asyncio.sleep(0.2)
    await WanTaskTrigger(running).on_kill()  # RUNNING cannot be canceled: logged, not raised
    pending = submit("[[sim: pending=30]]")
    await WanTaskTrigger(pending, cancel_on_kill=False).on_kill()
    assert simulator.counters()["tasks_canceled"] == 0


def test_event_vocabulary_is_validated():
    for bad in (None, "success", {"status": "done", "task_id": "t"}, {"status": "success"}):
        with pytest.raises(WanProtocolError):
            validate_event(bad)
    assert {"success", "failed", "canceled", "expired", "timeout", "error"} == EVENT_STATUSES


# --------------------------------------------------------------------------------------------- scale


@pytest.fixture
def external_simulator(tmp_path: Path) -> Iterator[str]:
    """The simulator in its own process, so its work does not compete with the loop under test for the GIL."""
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_wan.simulator",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--model-limit",  # an account with raised quotas, so all 200 run at once; 20 queries/s still hold
            "*:concurrency=1000,submit_rps=1000",
            "--pending-seconds",
            "0.5",
            "--running-seconds",
            "1.5",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None and time.time() < deadline, "simulator did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{int(port_file.read_text())}/api/v1"
    finally:
        proc.terminate()
        proc.wait(10)


async def test_200_triggers_never_block_the_loop_and_share_one_client(external_simulator):
    os.environ["AIRFLOW_CONN_DASHSCOPE_SCALE"] = dashscope_conn(external_simulator)

    def submit_many(n: int) -> list[str]:
        headers = {"Authorization": "Bearer k", "X-DashScope-Async": "enable"}
        with httpx.Client(base_url=external_simulator + "/", headers=headers) as client:
            return [
                client.post(
                    "services/aigc/video-generation/video-synthesis",
                    json={"model": "wan2.6-t2v", "input": {"prompt": f"p{i}"}},
                ).json()["output"]["task_id"]
                for i in range(n)
            ]

    lags: list[float] = []
    clients: set[int] = set()
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - before - 0.01)
            clients.add(shared_client_count())

    async def one(task_id: str) -> dict[str, Any]:
        [event] = await run_trigger(
            WanTaskTrigger(task_id, dashscope_conn_id="dashscope_scale", poll_interval=0.5, deadline=time.time() + 120)
        )
        return event

    # A triggerer has loaded its secrets backends and modules long before; warm this process up the same way
    # (Airflow imports its supervisor module lazily, inside the loop, on a connection lookup).
    import airflow.sdk.execution_time.supervisor  # noqa: F401

    await one(submit_many(1)[0])
    ids = submit_many(200)
    # The test process holds all of Airflow and every test module: a full collection of that heap stalls any loop
    # for ~200 ms. Freeze what is already loaded (as `gc.freeze()` in a forked server does), so the lag measured is
    # this code's, allocations of the 200 waits included.
    gc.collect()
    gc.freeze()
    tick = asyncio.create_task(ticker())
    waits = []
    for start in range(0, len(ids), 20):  # the triggerer, too, starts the triggers it picks up in batches
        waits += [asyncio.create_task(one(t)) for t in ids[start : start + 20]]
        await asyncio.sleep(0)
    try:
        events = await asyncio.gather(*waits)
    finally:
        gc.unfreeze()
    done.set()
    await tick
    assert {e["status"] for e in events} == {"success"}
    assert max(lags) < 0.05, f"event loop blocked for {max(lags) * 1000:.0f} ms"
    print(f"200 triggers: {len(lags)} ticks, max lag {max(lags) * 1000:.1f} ms")
    assert clients <= {0, 1}  # one shared AsyncClient for 200 waits on one connection
    assert free_port()


async def test_waits_starting_together_read_their_connection_once(simulator, monkeypatch):
    import airflow_provider_wan.hooks.wan as wan_module

    real, calls = wan_module._aget_connection, []

    async def counting(conn_id: str) -> Any:  # the real lookup, counted
        calls.append(conn_id)
        return await real(conn_id)

    monkeypatch.setattr(wan_module, "_aget_connection", counting)
    settings = await asyncio.gather(*(WanHook().aget_settings() for _ in range(50)))
    assert calls == ["dashscope_default"]  # one read of the secrets backend, not fifty
    assert len({s.base_url for s in settings}) == 1 and TEST_API_KEY not in repr(settings[0])
    cache = wan_module._SETTINGS[asyncio.get_running_loop()]
    cache["dashscope_default"] = (0.0, cache["dashscope_default"][1])  # its SETTINGS_TTL has passed
    await WanHook().aget_settings()
    assert len(calls) == 2  # after the TTL the connection is read again (a rotated key is picked up)
