"""
N waits on one event loop in one process, as a triggerer runs them; measured from inside the loop.

``python benchmarks/_polling_worker.py ours|baseline CONN_ID POLL_INTERVAL WARMUP_TASK_ID``

1. Warm up like a long-running triggerer (modules, secrets backends): one wait on ``WARMUP_TASK_ID``; then print
   ``READY``.
2. Read the task ids to wait for (one JSON line on stdin), start one wait per id (in batches of 20, as the
   triggerer picks up new triggers), and measure until every wait has its event.
3. Print one ``RESULT {json}`` line.

``ours`` is :class:`WanTaskTrigger` as shipped: every poll goes through the connection's shared ``AsyncClient``
and its ``poll_qps`` budget. ``baseline`` is the same trigger class (same loop, jitter, parsing and error handling)
with one change: each poll opens a fresh ``httpx.AsyncClient`` (so a fresh TCP connection) and skips the budget.
It still reuses the process-wide TLS context, so it does not also pay a CA-bundle load per poll.

Measured here: wall time, events by status, GET requests sent (timestamps, so the busiest 1-second window),
TCP connections opened (every ``loop.create_connection`` call: how httpx/anyio connect on asyncio), event-loop lag
(a 10 ms ticker), garbage-collector pauses (``gc.callbacks``; they stall the loop like any blocking code), and how
long after a task ended at the simulator its event came (``end_time`` → event).
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import json
import resource
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from airflow_provider_wan.hooks.wan import WanHook
from airflow_provider_wan.models import WanTask
from airflow_provider_wan.protocol import get_protocol
from airflow_provider_wan.triggers.wan import WanTaskTrigger

#: The simulator writes task timestamps in Beijing time (its default ``utc_offset_hours``).
SIM_ZONE = timezone(timedelta(hours=8))


class FreshClientHook(WanHook):
    """The anti-pattern: a new ``AsyncClient`` (and TCP connection) per poll, no shared budget."""

    @asynccontextmanager
    async def async_session(self) -> AsyncIterator[WanHook]:
        yield self

    async def aget_task(self, task_id: str) -> WanTask:
        settings = await self.aget_settings()
        protocol = get_protocol(settings.protocol)
        request = protocol.get_task_request(task_id)
        async with httpx.AsyncClient(**self._client_options(settings)) as client:
            response = await self._asend(client, request, settings)
        return protocol.parse_task(response, task_id)


class BaselineTrigger(WanTaskTrigger):
    def _hook(self) -> WanHook:
        return FreshClientHook(dashscope_conn_id=self.dashscope_conn_id)


class Probe:
    """Counts GETs (with timestamps), TCP connects and garbage-collector pauses of this process."""

    def __init__(self) -> None:
        self.requests: list[float] = []
        self.connects = 0
        self.inflight = 0
        self.max_inflight = 0
        self.enabled = False
        self.gc_pauses: list[tuple[int, float]] = []  # (generation, seconds)
        self._gc_started = 0.0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self.enabled:
            self.gc_pauses.append((int(info["generation"]), time.perf_counter() - self._gc_started))

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        send = httpx.AsyncClient.send
        probe = self

        async def counting_send(client: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
            if not (probe.enabled and request.method == "GET"):
                return await send(client, request, **kwargs)
            probe.requests.append(time.monotonic())
            probe.inflight += 1
            probe.max_inflight = max(probe.max_inflight, probe.inflight)
            try:
                return await send(client, request, **kwargs)
            finally:
                probe.inflight -= 1

        httpx.AsyncClient.send = counting_send  # type: ignore[method-assign]
        create_connection = loop.create_connection

        async def counting_create_connection(*args: Any, **kwargs: Any) -> Any:
            if probe.enabled:
                probe.connects += 1
            return await create_connection(*args, **kwargs)

        loop.create_connection = counting_create_connection  # type: ignore[method-assign]
        gc.callbacks.append(self._on_gc)


def busiest_window(times: list[float], window: float = 1.0) -> int:
    """The most requests sent within any ``window`` seconds (sliding)."""
    best = 0
    for i, start in enumerate(times):
        best = max(best, bisect.bisect_left(times, start + window, lo=i) - i)
    return best


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ended_at(event: dict[str, Any]) -> float | None:
    value = event.get("end_time")
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=SIM_ZONE).timestamp()
    except ValueError:
        return None


async def wait_one(cls: type[WanTaskTrigger], task_id: str, conn_id: str, poll_interval: float) -> dict[str, Any]:
    trigger = cls(task_id, dashscope_conn_id=conn_id, poll_interval=poll_interval, deadline=time.time() + 600)
    async for event in trigger.run():
        payload = dict(event.payload)
        payload["_received"] = time.time()
        return payload
    raise RuntimeError(f"no event for {task_id}")


async def main(mode: str, conn_id: str, poll_interval: float, warmup_id: str) -> dict[str, Any]:
    cls: type[WanTaskTrigger] = WanTaskTrigger if mode == "ours" else BaselineTrigger
    loop = asyncio.get_running_loop()
    probe = Probe()
    probe.install(loop)
    warm = await wait_one(cls, warmup_id, conn_id, 0.2)
    if warm["status"] != "success":
        raise RuntimeError(f"warm-up wait ended {warm}")
    print("READY", flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)
    ids: list[str] = json.loads(line)

    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - before - 0.01)

    probe.enabled = True
    cpu = cpu_seconds()
    started = time.monotonic()
    tick = asyncio.create_task(ticker())
    waits = []
    for start in range(0, len(ids), 20):
        waits += [asyncio.create_task(wait_one(cls, t, conn_id, poll_interval)) for t in ids[start : start + 20]]
        await asyncio.sleep(0)
    events = await asyncio.gather(*waits)
    seconds = time.monotonic() - started
    cpu = cpu_seconds() - cpu
    probe.enabled = False
    done.set()
    await tick

    statuses: dict[str, int] = {}
    for event in events:
        statuses[event["status"]] = statuses.get(event["status"], 0) + 1
    delays = sorted(event["_received"] - end for event in events if (end := ended_at(event)) is not None)
    requests = sorted(probe.requests)
    lags.sort()
    return {
        "mode": mode,
        "tasks": len(ids),
        "seconds": seconds,
        "cpu_s": cpu,
        "statuses": statuses,
        "gets_sent": len(requests),
        "busiest_1s_window": busiest_window(requests),
        "mean_rate": len(requests) / seconds if seconds else 0.0,
        "tcp_connects": probe.connects,
        "max_inflight": probe.max_inflight,
        "loop_lag_max_ms": lags[-1] * 1000 if lags else 0.0,
        "loop_lag_p99_ms": lags[int(0.99 * (len(lags) - 1))] * 1000 if lags else 0.0,
        "ticks": len(lags),
        "gc_max_pause_ms": max((s for _, s in probe.gc_pauses), default=0.0) * 1000,
        "gc_full_collections": sum(1 for g, _ in probe.gc_pauses if g == 2),
        "gc_objects": len(gc.get_objects()),
        "detect_delay_median_s": statistics.median(delays) if delays else None,
        "detect_delay_max_s": delays[-1] if delays else None,
    }


if __name__ == "__main__":
    mode_arg, conn_arg, interval_arg, warm_arg = sys.argv[1:5]
    result = asyncio.run(main(mode_arg, conn_arg, float(interval_arg), warm_arg))
    print("RESULT " + json.dumps(result), flush=True)
