"""The daily budget (issue 14): what the account committed today, read from DashScope's own task list.

Real HTTP to the simulator, with its account limits on. The simulator is pre-loaded with today's tasks of other
clients (another API key through a second WanHook, and a bare httpx client): succeeded ones count at their billed
usage, a queued one at its model's default estimate, a canceled one not at all.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from airflow_provider_wan.exceptions import WanBudgetExceededError
from airflow_provider_wan.hooks._spend import SpendGuard, day_window, forget_everything
from airflow_provider_wan.hooks.wan import WanHook
from airflow_provider_wan.models import WanVideoRequest
from airflow_provider_wan.pricing import billed_cost, estimate
from airflow_provider_wan.protocol import SUBMIT_PATH
from airflow_provider_wan.settings import WanConnectionSettings
from airflow_provider_wan.simulator.wire import tier_of
from tests.conftest import TEST_API_KEY, dashscope_conn, task_states, xcom
from tests.test_operator import try_numbers

OTHER_KEY = "sk-other-client-of-the-same-account"
THIRD_KEY = "sk-a-script-with-plain-httpx"
#: What the pre-loaded day commits at Singapore's list prices: 3 x $0.50 succeeded + $0.75 queued (1080P default).
PRELOADED = 2.25


def _settings(simulator: Any, key: str = TEST_API_KEY, **extra: Any) -> WanConnectionSettings:
    return WanConnectionSettings.from_parts(
        password=key,
        host=None,
        port=None,
        schema=None,
        extra={"base_url": simulator.base_url, "price_region": "singapore", **extra},
        source="connection 'budget'",
    )


@pytest.fixture(autouse=True)
def _fresh_memory() -> Iterator[None]:
    forget_everything()
    yield
    forget_everything()


@pytest.fixture
def preloaded(simulator: Any) -> dict[str, str]:
    """Today's tasks of other clients: 3 succeeded (720P, 5 s), 1 queued (default size), 1 canceled."""
    other = WanHook(settings=_settings(simulator, OTHER_KEY))
    done = [
        other.submit({"prompt": "a fox [[sim: pending=0 running=0.1]]", "size": "1280*720", "duration": 5})
        for _ in range(2)
    ]
    raw = httpx.post(
        f"{simulator.base_url}/{SUBMIT_PATH}",
        json={
            "model": "wan2.6-t2v",
            "input": {"prompt": "a hare [[sim: pending=0 running=0.1]]"},
            "parameters": {"size": "1280*720", "duration": 5},
        },
        headers={"Authorization": f"Bearer {THIRD_KEY}", "X-DashScope-Async": "enable"},
    )
    done.append(raw.json()["output"]["task_id"])
    queued = other.submit({"prompt": "an owl [[sim: pending=600]]"})
    canceled = other.submit({"prompt": "a mole [[sim: pending=600]]", "size": "1280*720", "duration": 15})
    other.cancel_task(canceled)
    for task_id in done:
        other.wait_for_task(task_id, poll_interval=0.1, timeout=30)
    other.close()
    return {"queued": queued, "canceled": canceled}


def test_the_day_is_dashscopes_utc_plus_8_from_midnight_to_midnight():
    at = datetime(2026, 11, 23, 16, 30, tzinfo=timezone.utc).timestamp()  # 00:30 on the 24th in Beijing
    assert day_window(at) == ("2026-11-24", "20261124000000", "20261124235959")
    before = datetime(2026, 11, 23, 15, 59, 59, tzinfo=timezone.utc).timestamp()
    assert day_window(before) == ("2026-11-23", "20261123000000", "20261123235959")


def test_committed_counts_every_clients_tasks_from_dashscopes_record(simulator, preloaded):
    hook = WanHook(settings=_settings(simulator, daily_budget=3))
    before = simulator.counters()
    committed = SpendGuard(hook).committed("USD")
    assert committed.amount == pytest.approx(PRELOADED)
    assert (committed.succeeded, committed.in_flight, committed.currency) == (3, 1, "USD")
    after = simulator.counters()
    assert after["lists"] - before["lists"] == 1  # one page of 100 covers the day
    assert after["polls"] - before["polls"] == 3  # the usage of each succeeded task, read once


def test_a_submit_that_fits_goes_ahead_and_the_one_that_crosses_is_refused(simulator, preloaded):
    hook = WanHook(settings=_settings(simulator, daily_budget=3))
    guard = SpendGuard(hook)
    small = hook.prepare_request({"prompt": "a boat", "size": "1280*720", "duration": 5})
    cost = estimate(small, "singapore")
    assert guard.check(cost) is not None  # 2.25 + 0.50 <= 3.00
    guard.record(hook.submit(small), cost)
    submissions = simulator.counters()["submissions"]

    large = hook.prepare_request({"prompt": "a ship"})  # wan2.6's default 1080P: $0.75
    with pytest.raises(WanBudgetExceededError) as refused:
        guard.check(estimate(large, "singapore"))
    message = str(refused.value)
    assert "daily_budget of connection 'budget' ($3.00) would be exceeded" in message
    assert "$2.75 committed on" in message and "(UTC+8)" in message
    assert "≈ $0.75" in message and "would make $3.50" in message
    assert simulator.counters()["submissions"] == submissions  # nothing sent
    assert not refused.value.retryable


def test_a_fresh_total_is_reused_and_finished_usage_is_never_read_twice(simulator, preloaded):
    hook = WanHook(settings=_settings(simulator, daily_budget=100, budget_refresh=0.5))
    guard = SpendGuard(hook)
    guard.committed("USD")
    first = simulator.counters()
    guard.committed("USD")  # within budget_refresh: no query at all
    assert (simulator.counters()["lists"], simulator.counters()["polls"]) == (first["lists"], first["polls"])
    time.sleep(0.6)
    again = guard.committed("USD")  # a fresh list page; the succeeded tasks' usage comes from memory
    assert again.amount == pytest.approx(PRELOADED)
    assert simulator.counters()["lists"] == first["lists"] + 1 and simulator.counters()["polls"] == first["polls"]
    assert simulator.counters()["throttled"] == 0


def test_a_budget_that_cannot_be_enforced_refuses(simulator):
    hook = WanHook(settings=_settings(simulator, daily_budget={"amount": 20, "currency": "CNY"}))
    request = hook.prepare_request({"prompt": "a boat", "size": "1280*720"})
    with pytest.raises(WanBudgetExceededError, match="in CNY but the request is priced in USD"):
        SpendGuard(hook).check(estimate(request, "singapore"))
    unpriced = WanHook(settings=_settings(simulator, daily_budget=20, price_region=""))
    with pytest.raises(WanBudgetExceededError, match=r"cannot be enforced: .*price_region"):
        SpendGuard(unpriced).check(estimate(request, None))
    relay = WanHook(settings=_settings(simulator, daily_budget=20, protocol="unified"))
    with pytest.raises(WanBudgetExceededError, match="unified protocol cannot list"):
        SpendGuard(relay).check(estimate(request, "singapore"))
    assert simulator.counters()["lists"] == 0


def test_without_a_budget_nothing_is_queried(simulator):
    hook = WanHook(settings=_settings(simulator))
    request = WanVideoRequest.build(prompt="a boat", size="1280*720")
    assert SpendGuard(hook).check(estimate(request, "singapore")) is None
    assert simulator.counters()["lists"] == 0


def test_daily_budget_end_to_end_allows_what_fits_and_refuses_what_crosses(simulator, preloaded, monkeypatch, run_dag):
    conn = dashscope_conn(simulator.base_url, price_region="singapore", daily_budget=3)
    monkeypatch.setenv("AIRFLOW_CONN_DASHSCOPE_BUDGET", conn)
    created = simulator.counters()["tasks_created"]
    dag_run = run_dag("wan_test_cost_budget")
    assert task_states(dag_run) == {"fits": "success", "crosses": "failed"}
    assert try_numbers(dag_run, "crosses") == [1]  # not retried: the same request would be refused again
    assert simulator.counters()["tasks_created"] == created + 1
    assert xcom(dag_run, "fits")["billed_cost"]["amount"] == pytest.approx(0.50)
    assert xcom(dag_run, "crosses", "estimated_cost")["amount"] == pytest.approx(0.75)


def test_the_simulator_lists_by_the_budgets_filters(simulator, preloaded):
    hook = WanHook(settings=_settings(simulator))
    _day, start, end = day_window(time.time())
    assert hook.list_tasks(start_time=start, end_time=end, page_no=1, page_size=100).total == 5
    paged = hook.list_tasks(start_time=start, end_time=end, page_no=3, page_size=2)
    assert (paged.total, paged.total_page, len(paged.tasks)) == (5, 3, 1)
    tomorrow = day_window(time.time() + 86_400)
    assert hook.list_tasks(start_time=tomorrow[1], end_time=tomorrow[2]).tasks == []


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        ("wan2.6-t2v", {"size": "1280*720", "duration": 3}),
        ("wan2.6-t2v", {}),
        ("wan2.5-t2v-preview", {"size": "832*480", "duration": 10}),
        ("wan2.2-t2v-plus", {"size": "1080*1920"}),
        ("wanx2.1-t2v-turbo", {}),
    ],
)
def test_the_simulators_usage_bills_what_was_estimated(simulator, model, fields):
    hook = WanHook(settings=_settings(simulator, price_region="beijing"))
    request = hook.prepare_request({"model": model, "prompt": "a fox [[sim: pending=0 running=0.1]]", **fields})
    task = hook.wait_for_task(hook.submit(request), poll_interval=0.1, timeout=30)
    assert task.usage is not None and task.usage.billed_seconds == request.effective_duration
    assert task.usage.output_size == request.effective_size
    billed = billed_cost(model, task.usage, "beijing")
    assert billed.amount == pytest.approx(estimate(request, "beijing").amount)
    assert billed.tier == request.effective_resolution


@pytest.mark.parametrize(
    ("size", "tier"),
    [("1280*720", "720P"), ("1440*1440", "1080P"), ("624*624", "480P"), ("640*360", "480P"), ("2560*1440", "1080P")],
)
def test_the_simulator_reports_the_tier_a_size_is_billed_at(size, tier):
    assert tier_of(size) == tier
