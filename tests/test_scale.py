"""The account's limits, at test scale: queueing beyond concurrency, submit bursts, several processes on one key.

The simulator enforces DashScope's limits per key and model (5 or 2 tasks processing at once, 5 or 2 submissions
per second) and 20 queries per second per key across every client; nothing here switches them off.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from airflow_provider_wan.hooks._transport import AsyncRateLimiter
from airflow_provider_wan.hooks.wan import WanHook
from airflow_provider_wan.models import TaskStatus, WanTask
from airflow_provider_wan.triggers.wan import WanTaskTrigger
from airflow_provider_wan.waiting import DEADLINE, GENERATION_TIMEOUT, QUEUE_TIMEOUT, WaitPolicy
from tests.conftest import REPO, dashscope_conn, task_states

# --------------------------------------------------------------------------------------------- the wait policy


def read(status: str) -> WanTask:
    return WanTask(task_id="t", task_status=TaskStatus(status))


def test_queue_time_does_not_count_against_the_generation_timeout():
    state = WaitPolicy(poll_interval=5, timeout=60).start(now=0)
    state.observe(read("PENDING"), now=0)
    assert state.expired(now=3600) is None  # an hour queued: still waiting
    state.observe(read("RUNNING"), now=3600)
    assert state.expired(now=3659) is None and state.expired(now=3660) == GENERATION_TIMEOUT
    assert state.seconds_left(now=3650) == 10


def test_queue_timeout_and_the_wall_clock_deadline_are_separate_limits():
    state = WaitPolicy(queue_timeout=30, deadline=100).start(now=0)
    state.observe(read("PENDING"), now=0)
    assert state.expired(now=29) is None and state.expired(now=30) == QUEUE_TIMEOUT
    state.observe(read("RUNNING"), now=31)
    assert state.expired(now=99) is None and state.expired(now=100) == DEADLINE


def test_reads_never_sleep_past_the_nearest_limit():
    state = WaitPolicy(poll_interval=15, timeout=4).start(now=0)
    state.observe(read("RUNNING"), now=0)
    assert state.next_read_in(now=2) <= 2
    assert WaitPolicy(poll_interval=15).start(now=0).next_read_in(now=0) >= 13.5  # ±10 % jitter


# --------------------------------------------------------------------------------------------- the adaptive budget


async def test_the_budget_halves_on_a_429_and_grows_back_only_while_callers_wait():
    limiter = AsyncRateLimiter(10, ceiling=20)
    for _ in range(5):
        await limiter.acquire()
    limiter.throttled(retry_after=0.2)
    assert limiter.rate == pytest.approx(2.5)  # half of the 5 requests really sent in the last second
    started = time.monotonic()
    await limiter.acquire()
    assert time.monotonic() - started >= 0.19  # Retry-After is honoured by everyone on the loop
    limiter.throttled()
    assert limiter.rate == pytest.approx(2.5)  # one cut per second, however many 429s arrive together
    before = limiter.rate
    for _ in range(10):
        await limiter.acquire()  # saturated: callers wait on the budget
        limiter.succeeded()
    assert before < limiter.rate <= 20
    idle = AsyncRateLimiter(10, ceiling=20)
    await asyncio.sleep(1.1)
    idle.succeeded()
    assert idle.rate == 10  # a process that does not need more does not claim more


# --------------------------------------------------------------------------------------------- queueing


def test_more_generations_than_the_model_runs_at_once_queue_and_all_succeed(simulator, run_dag):
    # 8 generations on wan2.2-t2v-plus (2 at once): a burst of submits, then a queue. The account's submission quota
    # is set to one per 2 s, so the burst meets it whatever the machine's pace (dag.test() submits one per 0.2-1.5 s).
    simulator.configure(model_limits={"wan2.2-t2v-plus": {"submit_rps": 0.5}})
    dag_run = run_dag("wan_scale_queue")
    states = task_states(dag_run)
    assert len(states) == 16 and set(states.values()) == {"success"}
    assert all(try_numbers_of(dag_run, key) == [1] for key in states)  # no try failed
    counters = simulator.counters()
    assert counters["tasks_created"] == 8 and counters["tasks_canceled"] == 0  # exactly the videos asked for
    assert counters["peak_processing"]["wan2.2-t2v-plus"] == 2  # the account's concurrency, never more
    assert counters["throttled_per_route"]["submit"] > 0  # the burst met the submission limit, and was retried


def try_numbers_of(dag_run: Any, key: str) -> list[int]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    task_id, _, index = key.partition("[")
    with create_session() as session:
        ti = (
            session.query(TaskInstance)
            .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, map_index=int(index[:-1] or -1))
            .one()
        )
        return [ti.try_number]


# --------------------------------------------------------------------------------------------- many waits, one loop


async def test_many_waits_on_one_loop_use_the_task_list_instead_of_a_read_each(simulator):
    os.environ["AIRFLOW_CONN_DASHSCOPE_MANY"] = dashscope_conn(simulator.base_url)
    simulator.configure(model_limits={"*": {"concurrency": 100, "submit_rps": 100}})  # a raised quota
    hook = WanHook("dashscope_many")
    ids = [hook.submit({"prompt": f"a lantern, take {i} [[sim: pending=0.1 running=2]]"}) for i in range(30)]
    reads_before = simulator.counters()["polls"]

    async def one(task_id: str) -> str:
        async for event in WanTaskTrigger(task_id, dashscope_conn_id="dashscope_many", poll_interval=0.5).run():
            return str(event.payload["status"])
        return "none"

    statuses = await asyncio.gather(*(one(task_id) for task_id in ids))
    assert set(statuses) == {"success"}
    counters = simulator.counters()
    assert counters["lists"] > 0  # the sweep told which tasks ended
    # ~2.5 s of waiting at poll_interval=0.5 would cost ~150 reads one by one; the sweep needs one per finished task.
    assert counters["polls"] - reads_before <= 2 * len(ids)
    assert counters["throttled"] == 0


async def test_the_last_waits_of_a_batch_are_read_at_pace_once_sweeps_stop(simulator):
    # 12 waits sweep; 9 end early, and the last 3 (below the sweep threshold) must not wait for the 2-minute floor.
    os.environ["AIRFLOW_CONN_DASHSCOPE_TAIL"] = dashscope_conn(simulator.base_url)
    simulator.configure(model_limits={"*": {"concurrency": 100, "submit_rps": 100}})
    hook = WanHook("dashscope_tail")
    early = [hook.submit({"prompt": f"a gull, take {i} [[sim: pending=0.1 running=1]]"}) for i in range(9)]
    late = [hook.submit({"prompt": f"a heron, take {i} [[sim: pending=0.1 running=6]]"}) for i in range(3)]
    ended: dict[str, float] = {}

    async def one(task_id: str) -> None:
        async for event in WanTaskTrigger(task_id, dashscope_conn_id="dashscope_tail", poll_interval=0.5).run():
            assert event.payload["status"] == "success"
            ended[task_id] = time.monotonic()

    started = time.monotonic()
    await asyncio.gather(*(one(task_id) for task_id in early + late))
    assert max(ended[t] for t in late) - started < 15  # the late ones end ~6.5 s in, not at a 120 s floor


# --------------------------------------------------------------------------------------------- several processes


def test_two_trigger_processes_sharing_a_key_stay_under_its_query_limit(simulator):
    # Each process alone would read at up to 20/s (5 waits, every 0.05 s: a read each, no sweep); together they
    # must converge on the key's 20 queries per second without talking to each other.
    os.environ["AIRFLOW_CONN_DASHSCOPE_SHARED"] = dashscope_conn(simulator.base_url, poll_qps=10)
    simulator.configure(model_limits={"*": {"concurrency": 10, "submit_rps": 10}})  # all ten generate at once
    hook = WanHook("dashscope_shared")
    ids = [hook.submit({"prompt": f"a windmill, take {i} [[sim: pending=0.1 running=600]]"}) for i in range(10)]
    before = simulator.counters()
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.trigger_process", "dashscope_shared", "0.05", *chunk],
            cwd=REPO,
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for chunk in (ids[:5], ids[5:])
    ]
    deadline = time.monotonic() + 120
    while simulator.counters()["polls"] - before["polls"] < 300 and time.monotonic() < deadline:
        time.sleep(0.2)  # both processes compete for the key's budget meanwhile
    for task_id in ids:
        simulator.update_task(task_id, running=0)  # now let every generation finish
    results = [json.loads((worker.communicate(timeout=120)[0] or "{}").strip().splitlines()[-1]) for worker in workers]
    after = simulator.counters()
    assert all(set(result["statuses"]) == {"success"} for result in results)
    reads = after["polls"] - before["polls"]
    throttled = after["throttled_per_route"]["get"] - before["throttled_per_route"]["get"]
    print(f"2 processes: {reads} reads, {throttled} answered 429, final rates {[r['rate'] for r in results]}")
    assert throttled / reads < 0.05
