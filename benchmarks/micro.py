"""
Benchmark 3: CPU micro-benchmarks of code that runs per request, in this process (no servers).

* ``WanVideoRequest.build``: validation against the capability table, at DAG parse time and before every submit.
* ``parse_task``: one poll answer (a SUCCEEDED task body) into a ``WanTask``; it runs on the triggerer's loop
  for every poll of every wait.
* ``httpx.AsyncClient`` construction, with the shared TLS context (what the package does once per connection and
  loop) and with httpx's default ``verify=True`` (what naive code pays per poll when it opens a client per poll:
  the CA bundle is loaded synchronously, blocking the event loop).

Each figure is the median of several timed rounds.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

ROUNDS = 7


def _rate(fn: Callable[[], Any], seconds: float) -> float:
    """Calls per second of ``fn``: the median over ``ROUNDS`` rounds of about ``seconds`` each."""
    fn()
    rates = []
    for _ in range(ROUNDS):
        calls, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            for _ in range(50):
                fn()
            calls += 50
        rates.append(calls / elapsed)
    return float(statistics.median(rates))


def _task_body() -> bytes:
    return json.dumps(
        {
            "request_id": "2b1a6c3e-1111-2222-3333-444455556666",
            "output": {
                "task_id": "0385dc79-5ff8-4d82-bcb6-xxxxxxxxxxxx",
                "task_status": "SUCCEEDED",
                "submit_time": "2026-01-02 10:00:00.000",
                "scheduled_time": "2026-01-02 10:00:01.000",
                "end_time": "2026-01-02 10:03:00.000",
                "orig_prompt": "a paper boat drifting down a rainy street at night",
                "video_url": "https://dashscope-result.oss-cn-beijing.aliyuncs.com/x.mp4?Expires=1&Signature=abc",
            },
            "usage": {
                "duration": 5,
                "size": "1920*1080",
                "input_video_duration": 0,
                "output_video_duration": 5,
                "video_count": 1,
                "SR": 1080,
            },
        }
    ).encode()


def run(quick: bool, log: Any = print) -> dict[str, Any]:
    import httpx

    from airflow_provider_wan.hooks._transport import TLS_CONTEXT
    from airflow_provider_wan.models import WanVideoRequest
    from airflow_provider_wan.protocol import HttpResponse, get_protocol

    seconds = 0.1 if quick else 0.3
    fields = {
        "prompt": "a paper boat drifting down a rainy street at night, neon reflections",
        "model": "wan2.6-t2v",
        "size": "1920*1080",
        "duration": 10,
        "seed": 42,
        "prompt_extend": False,
    }
    protocol = get_protocol("dashscope")
    response = HttpResponse(200, {"content-type": "application/json"}, _task_body())

    async def clients(verify: Any, count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            async with httpx.AsyncClient(verify=verify):
                pass
        return (time.perf_counter() - started) / count * 1000

    def client_ms(verify: Any, count: int) -> float:
        return float(statistics.median(asyncio.run(clients(verify, count)) for _ in range(5)))

    results = {
        "request_build_per_s": _rate(lambda: WanVideoRequest.build(**fields), seconds),
        "parse_task_per_s": _rate(lambda: protocol.parse_task(response, "t"), seconds),
        "async_client_shared_tls_ms": client_ms(TLS_CONTEXT, 20),
        "async_client_default_verify_ms": client_ms(True, 5 if quick else 10),
    }
    log("micro: " + ", ".join(f"{k} {v:,.1f}" if v < 1000 else f"{k} {v:,.0f}" for k, v in results.items()))
    return results
