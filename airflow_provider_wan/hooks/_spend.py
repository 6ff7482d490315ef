"""
The daily spend guard: what the account has already committed today, read from DashScope's own task record.

Not a local counter: the list API (``GET /tasks``) shows every task of the account in the connection's region,
whichever worker, DAG, key or tool submitted it. Succeeded tasks count at their billed ``usage``; tasks still
PENDING or RUNNING at their estimate; failed and canceled tasks are free.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_wan.exceptions import WanBudgetExceededError
from airflow_provider_wan.models import TaskStatus, WanUsage, get_capability
from airflow_provider_wan.pricing import Cost, billed_cost, cost_of, format_money
from airflow_provider_wan.protocol import DASHSCOPE_TZ, dashscope_time

if TYPE_CHECKING:
    from airflow_provider_wan.hooks.wan import WanHook
    from airflow_provider_wan.settings import WanConnectionSettings

#: Rows asked for per page of ``GET /tasks`` (the SDKs default to 10; fewer pages means fewer queries).
PAGE_SIZE = 100
#: Pages read at most per check (10,000 tasks a day); beyond, the check refuses rather than guess low.
MAX_PAGES = 100
#: Usage reads (``GET /tasks/{id}``) at most per check; the rest count at their model's default estimate until a
#: later check reads them (every read is remembered for the process, so a busy day warms up over a few checks).
MAX_USAGE_READS = 100
#: Queries per second the guard spends at most, per process: a quarter of the account's 20 (the waits need the rest).
GUARD_QPS = 5.0
#: Finished tasks whose billed usage is remembered per process (ids are unique; older ones are forgotten first).
USAGE_CACHE_SIZE = 50_000
_ACTIVE = frozenset({TaskStatus.PENDING.value, TaskStatus.RUNNING.value, TaskStatus.SUSPENDED.value})


def day_window(now: float) -> tuple[str, str, str]:
    """
    Today in DashScope's zone (UTC+8): (the day ``YYYY-MM-DD``, its 00:00:00 and 23:59:59 as the list API's times).

    The window ends at the day's last second, not at ``now``: the list's times have second precision, and a task
    created a moment ago (or by a client whose clock runs ahead) must not fall outside it.

    :param now: epoch seconds.
    """
    local = datetime.fromtimestamp(now, tz=DASHSCOPE_TZ)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    return local.strftime("%Y-%m-%d"), dashscope_time(midnight), dashscope_time(midnight + 86_399)


@dataclass
class Committed:
    """
    What the account has committed today (UTC+8), in one currency.

    :param day: the day, ``YYYY-MM-DD`` in UTC+8.
    :param currency: the currency of ``amount``.
    :param amount: billed (succeeded) plus estimated (queued or running) cost.
    :param succeeded: succeeded tasks counted.
    :param in_flight: queued or running tasks counted at their estimate.
    :param unpriced: tasks whose cost is not known (a model or tier without a price), not counted.
    :param read_at: monotonic time of the read.
    """

    day: str
    currency: str | None
    amount: float = 0.0
    succeeded: int = 0
    in_flight: int = 0
    unpriced: list[str] = field(default_factory=list)
    read_at: float = 0.0

    def describe(self) -> str:
        """The committed amount in words, for logs and errors."""
        unpriced = f"; {len(self.unpriced)} task(s) of models without a price not counted" if self.unpriced else ""
        return (
            f"{format_money(self.amount, self.currency)} committed on {self.day} (UTC+8): {self.succeeded} succeeded "
            f"task(s) at their billed usage and {self.in_flight} queued or running at their estimate{unpriced}"
        )


class _Memory:
    """What every guard of the process shares: billed usage of finished tasks, own estimates, committed totals."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.usage: OrderedDict[str, WanUsage | None] = OrderedDict()
        self.estimates: OrderedDict[str, Cost] = OrderedDict()
        self.committed: dict[tuple[Any, ...], Committed] = {}
        self.last_query = 0.0

    def remember(self, store: OrderedDict[str, Any], key: str, value: Any) -> None:
        with self.lock:
            store[key] = value
            store.move_to_end(key)
            while len(store) > USAGE_CACHE_SIZE:
                store.popitem(last=False)


_MEMORY = _Memory()


class SpendGuard:
    """
    Refuses a submit that would take the account past the connection's ``daily_budget``, before its POST.

    The committed amount comes from DashScope's record of the day (UTC+8 midnight to now, ``GET /tasks`` paged by
    100): succeeded tasks at their billed ``usage`` (one ``GET /tasks/{id}`` each, remembered for the process, as
    the list rows carry no usage), queued and running tasks at their estimate (this process's own estimate when it
    submitted them, else their model's default size and duration: other clients' requests are not visible until
    they finish). One process reuses a total for ``budget_refresh`` seconds (default 10) and adds its own submits to
    it; its reads are paced to 5 queries per second, a quarter of the account's 20.

    Overshoot: workers that check at the same time do not see each other's submits, so the account can pass the
    budget by at most the estimates of the tasks other workers submit between this worker's read and its own POST
    (up to ``budget_refresh`` seconds apart), and by the difference between an in-flight task's default estimate
    and its real cost.

    :param hook: the hook of the connection (its settings and its sync list/get calls).
    :param clock: epoch seconds (tests).
    """

    def __init__(self, hook: WanHook, clock: Callable[[], float] = time.time) -> None:
        self.hook = hook
        self.clock = clock

    @property
    def settings(self) -> WanConnectionSettings:
        """The connection's settings."""
        return self.hook.get_settings()

    def check(self, estimate: Cost) -> Committed | None:
        """
        Refuse the submit if its estimate would take today's committed amount past the daily budget.

        :param estimate: the request's estimate.
        :return: what was committed before this request, or None without a budget.
        :raises WanBudgetExceededError: naming the budget, the committed amount and the estimate; also when the
            budget cannot be enforced (no price, another currency, a protocol without a task list).
        """
        budget = self.settings.daily_budget
        if budget is None:
            return None
        shown = format_money(budget.amount, budget.currency or estimate.currency)
        where = f"the daily_budget of {self.settings.source} ({shown})"
        if estimate.amount is None:
            raise WanBudgetExceededError(f"{where} cannot be enforced: the request's cost is {estimate.basis}")
        if budget.currency is not None and budget.currency != estimate.currency:
            raise WanBudgetExceededError(
                f"{where} is in {budget.currency} but the request is priced in {estimate.currency} "
                f"({estimate.basis}); give the budget in {estimate.currency}"
            )
        if not self.hook.protocol.supports_list:
            raise WanBudgetExceededError(
                f"{where} cannot be enforced: the {self.hook.protocol.name} protocol cannot list the account's tasks"
            )
        committed = self.committed(estimate.currency)
        total = committed.amount + estimate.amount
        if total > budget.amount + 1e-9:
            raise WanBudgetExceededError(
                f"Refused before submitting: {where} would be exceeded. Already {committed.describe()}; this request "
                f"{estimate} ({estimate.basis}) would make {format_money(total, estimate.currency)}"
            )
        return committed

    def record(self, task_id: str, estimate: Cost) -> None:
        """
        Remember a task this process submitted: its estimate counts while it runs, and in the reused total at once.

        :param task_id: the new task's id.
        :param estimate: its estimate.
        """
        _MEMORY.remember(_MEMORY.estimates, task_id, estimate)
        with _MEMORY.lock:
            cached = _MEMORY.committed.get(self._key(estimate.currency))
            if cached is not None and estimate.amount is not None:
                cached.amount += estimate.amount
                cached.in_flight += 1

    def committed(self, currency: str | None) -> Committed:
        """
        Today's committed amount, read from DashScope (or reused for ``budget_refresh`` seconds).

        :param currency: the currency to count in (tasks priced otherwise cannot be added).
        """
        now = self.clock()
        day = day_window(now)[0]
        key = self._key(currency)
        with _MEMORY.lock:
            cached = _MEMORY.committed.get(key)
            fresh_enough = cached is not None and time.monotonic() - cached.read_at < self.settings.budget_refresh
            if cached is not None and cached.day == day and fresh_enough:
                return replace(cached, unpriced=list(cached.unpriced))
        fresh = self._read(currency, now)
        with _MEMORY.lock:
            _MEMORY.committed[key] = fresh
        return replace(fresh, unpriced=list(fresh.unpriced))

    def _key(self, currency: str | None) -> tuple[Any, ...]:
        settings = self.settings
        return (settings.base_url, settings.key_fingerprint, settings.workspace, settings.pricing_region, currency)

    def _read(self, currency: str | None, now: float) -> Committed:
        day, start, end = day_window(now)
        committed = Committed(day=day, currency=currency)
        rows = list(self._rows(start, end))
        reads = 0
        for row in rows:
            status = str(row.get("status") or "").upper()
            model = str(row.get("model_name") or "")
            if status == TaskStatus.SUCCEEDED.value:
                cost, read = self._billed(row["task_id"], model, reads < MAX_USAGE_READS)
                reads += read
                committed.succeeded += 1
            elif status in _ACTIVE:
                cost = self._in_flight(row["task_id"], model)
                committed.in_flight += 1
            else:
                continue  # FAILED, CANCELED, UNKNOWN: not billed
            if cost.amount is None or cost.currency != currency:
                if get_capability(model) is not None:
                    committed.unpriced.append(f"{row['task_id']} ({model}: {cost.basis})")
                continue
            committed.amount += cost.amount
        committed.read_at = time.monotonic()
        self.hook.log.info("Daily budget: %s", committed.describe())
        if committed.unpriced:
            self.hook.log.warning(
                "Daily budget: these tasks of today have no known price and are not counted (give their model's "
                "price in the connection's prices extra): %s",
                "; ".join(committed.unpriced[:10]),
            )
        return committed

    def _rows(self, start: str, end: str) -> Iterable[dict[str, Any]]:
        for page_no in range(1, MAX_PAGES + 1):
            self._pace()
            page = self.hook.list_tasks(start_time=start, end_time=end, page_no=page_no, page_size=PAGE_SIZE)
            yield from (row.model_dump() for row in page.tasks)
            if page.is_last(page_no):
                return
        raise WanBudgetExceededError(
            f"the daily_budget of {self.settings.source} cannot be enforced: more than {MAX_PAGES * PAGE_SIZE} tasks "
            f"today; counting them would spend the account's query limit"
        )

    def _billed(self, task_id: str, model: str, may_read: bool) -> tuple[Cost, int]:
        """(The billed cost of a succeeded task, 1 if its usage was read now else 0.)"""
        settings = self.settings
        if task_id in _MEMORY.usage:
            usage = _MEMORY.usage[task_id]
            return billed_cost(model, usage, settings.pricing_region, settings.prices, free=False), 0
        if not may_read:
            return self._default(model, "usage not read yet"), 0
        self._pace()
        usage = self.hook.get_task(task_id).usage
        _MEMORY.remember(_MEMORY.usage, task_id, usage)
        return billed_cost(model, usage, settings.pricing_region, settings.prices, free=False), 1

    def _in_flight(self, task_id: str, model: str) -> Cost:
        own = _MEMORY.estimates.get(task_id)
        return own if own is not None else self._default(model, "its request is not visible while it runs")

    def _default(self, model: str, why: str) -> Cost:
        """A task of another client still running: its model's default size and duration."""
        cap = get_capability(model, self.settings.models)
        if cap is None:
            return Cost(None, None, f"unknown: model {model!r} is not in the capability table")
        settings = self.settings
        region, prices = settings.pricing_region, settings.prices
        cost = cost_of(model, cap.default_resolution, cap.default_duration, region, prices, free=False)
        return replace(cost, basis=f"{cost.basis}; the model's default ({why})")

    def _pace(self) -> None:
        with _MEMORY.lock:
            wait = _MEMORY.last_query + 1.0 / GUARD_QPS - time.monotonic()
            _MEMORY.last_query = time.monotonic() + max(0.0, wait)
        if wait > 0:
            time.sleep(wait)


def forget_everything() -> None:
    """Drop the process's remembered usage, estimates and totals (tests)."""
    with _MEMORY.lock:
        _MEMORY.usage.clear()
        _MEMORY.estimates.clear()
        _MEMORY.committed.clear()
