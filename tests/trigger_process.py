"""One "triggerer process" for the multi-process tests: N WanTaskTriggers on one event loop, as a triggerer runs them.

``python -m tests.trigger_process CONN_ID POLL_INTERVAL TASK_ID...`` prints one JSON line: the events' statuses,
the watcher's counters and the budget's final rate.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from airflow_provider_wan.hooks._transport import _SHARED
from airflow_provider_wan.triggers.wan import WanTaskTrigger


async def main(conn_id: str, poll_interval: float, task_ids: list[str]) -> dict[str, Any]:
    stats: dict[str, Any] = {}

    async def one(task_id: str) -> str:
        trigger = WanTaskTrigger(task_id, dashscope_conn_id=conn_id, poll_interval=poll_interval)
        async for event in trigger.run():
            for entry in _SHARED.get(asyncio.get_running_loop(), {}).values():  # the last one out reports
                stats.update(entry.watcher.stats if entry.watcher else {}, rate=entry.limiter.rate)
            return str(event.payload["status"])
        return "none"

    statuses = await asyncio.gather(*(one(task_id) for task_id in task_ids))
    return {"statuses": statuses, **stats}


if __name__ == "__main__":
    conn, interval, *ids = sys.argv[1:]
    print(json.dumps(asyncio.run(main(conn, float(interval), ids))))
