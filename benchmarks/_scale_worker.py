"""
One triggerer process of the account-scale benchmark: N waits on one event loop, measured from inside the loop.

``python benchmarks/_scale_worker.py ours|sdk CONN_ID BASE_URL API_KEY WARMUP_TASK_ID``

Prints ``READY`` once warm, reads the task ids (one JSON line on stdin), waits for all of them, prints
``RESULT {json}``: statuses, requests sent (GET, lists included), CPU, loop lag, and each event's delay after the
video was ready at the simulator (its ``end_time``).

``ours`` is :class:`WanTaskTrigger` as shipped (the connection's task watcher, adaptive budget, list sweeps).
``sdk`` is the official SDK's ``AioVideoSynthesis.wait`` per task, the baseline: it polls each task every 1-5 s and
returns the first non-200 answer (a 429 included) as the result.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import Any

from _polling_worker import Probe, cpu_seconds, ended_at

from airflow_provider_wan.triggers.wan import WanTaskTrigger


async def wait_ours(task_id: str, conn_id: str) -> dict[str, Any]:
    async for event in WanTaskTrigger(task_id, dashscope_conn_id=conn_id).run():  # the defaults a user gets
        return {**event.payload, "_received": time.time()}
    raise RuntimeError(f"no event for {task_id}")


async def wait_sdk(task_id: str, api_key: str) -> dict[str, Any]:
    from dashscope.aigc.video_synthesis import AioVideoSynthesis

    response = await AioVideoSynthesis.wait(task_id, api_key=api_key)
    output = response.output or {}
    ok = response.status_code == 200 and getattr(output, "task_status", None) == "SUCCEEDED"
    end = getattr(output, "end_time", None) if ok else None
    return {"status": "success" if ok else f"http_{response.status_code}", "end_time": end, "_received": time.time()}


async def main(mode: str, conn_id: str, base_url: str, api_key: str, warmup_id: str) -> dict[str, Any]:
    import dashscope

    dashscope.base_http_api_url = base_url
    loop = asyncio.get_running_loop()
    probe = Probe()
    probe.install(loop)

    def wait(task_id: str) -> Any:
        return wait_ours(task_id, conn_id) if mode == "ours" else wait_sdk(task_id, api_key)

    warm = await wait(warmup_id)
    if warm["status"] != "success":
        raise RuntimeError(f"warm-up wait ended {warm}")
    print("READY", flush=True)
    ids: list[str] = json.loads(await loop.run_in_executor(None, sys.stdin.readline))

    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - before - 0.01)

    probe.enabled = True
    cpu, started = cpu_seconds(), time.monotonic()
    tick = asyncio.create_task(ticker())
    waits = []
    for start in range(0, len(ids), 20):  # the triggerer, too, starts the triggers it picks up in batches
        waits += [asyncio.create_task(wait(t)) for t in ids[start : start + 20]]
        await asyncio.sleep(0)
    events = await asyncio.gather(*waits)
    seconds, cpu = time.monotonic() - started, cpu_seconds() - cpu
    probe.enabled = False
    done.set()
    await tick
    statuses: dict[str, int] = {}
    for event in events:
        statuses[event["status"]] = statuses.get(event["status"], 0) + 1
    lags.sort()
    return {
        "mode": mode,
        "tasks": len(ids),
        "seconds": seconds,
        "cpu_s": cpu,
        "statuses": statuses,
        "requests_sent": len(probe.requests),
        "loop_lag_max_ms": lags[-1] * 1000 if lags else 0.0,
        "loop_lag_p99_ms": lags[int(0.99 * (len(lags) - 1))] * 1000 if lags else 0.0,
        "gc_max_pause_ms": max((s for _, s in probe.gc_pauses), default=0.0) * 1000,
        "delays": [event["_received"] - end for event in events if (end := ended_at(event)) is not None],
        "lag_median_ms": statistics.median(lags) * 1000 if lags else 0.0,
    }


if __name__ == "__main__":
    result = asyncio.run(main(*sys.argv[1:6]))
    print("RESULT " + json.dumps(result), flush=True)
