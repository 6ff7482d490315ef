"""
The task watcher: every wait of one connection on one event loop registers here, and one scheduler spends the
account's query budget where it tells the most.

Two ways to learn a task's status, both counted against DashScope's 20 queries per second per account:

* ``GET /tasks/{id}``: one task per query, with its result. Each wait is read at its ``poll_interval``; a running
  task is not read before the shortest generation time seen so far on this watcher (it cannot be done yet).
* ``GET /tasks?status=RUNNING|PENDING`` (the list API, when the protocol has it and at least :data:`SWEEP_MIN`
  waits are registered): up to 100 statuses per query. A watched task missing from both lists has ended, and is
  read at once; the others are read only at a slow floor, so a list that misbehaves cannot starve anyone.

1,000 waits then cost a few list pages per sweep plus one read per finished task, instead of 1,000 reads per round.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx

from airflow_provider_wan.exceptions import WanError, WanThrottledError
from airflow_provider_wan.hooks._transport import AsyncRateLimiter
from airflow_provider_wan.models import TaskStatus, WanTask
from airflow_provider_wan.protocol import HttpRequest, HttpResponse, WanProtocol, dashscope_time

log = logging.getLogger(__name__)

#: Waits on one watcher from which the list sweep is used (below it, a read per task is as cheap).
SWEEP_MIN = 10
#: Rows per list page.
SWEEP_PAGE_SIZE = 100
#: With sweeps working, each task is still read by id at least this often (seconds), as a safety net.
SWEEP_FLOOR = 300.0
#: With sweeps working, safety-net reads in flight at once: reads of tasks that ended and sweep pages go first.
FLOOR_IN_FLIGHT = 2
#: Fastest and slowest sweep cadence (seconds); within them, the shortest ``poll_interval`` of the waits.
SWEEP_MIN_INTERVAL = 2.0
SWEEP_MAX_INTERVAL = 5.0
#: Sweeps may spend at most this share of the current budget.
SWEEP_BUDGET_SHARE = 0.5
#: Requests in flight at once (each still waits for its slot in the budget).
MAX_IN_FLIGHT = 8
#: Generation times remembered to learn the shortest one.
LEARNED_RUNS = 50
_ACTIVE = ("RUNNING", "PENDING")

Send = Callable[[HttpRequest], Coroutine[Any, Any, HttpResponse]]


@dataclass
class Watch:
    """
    One registered wait.

    :param task_id: the DashScope task id.
    :param poll_interval: seconds between reads by id (without sweeps).
    """

    task_id: str
    poll_interval: float
    updates: asyncio.Queue[WanTask | BaseException] = field(default_factory=asyncio.Queue)
    status: TaskStatus | None = None
    due: float = 0.0
    registered: float = field(default_factory=time.monotonic)
    running_seen: float | None = None
    suspect: bool = False  # a sweep did not find it active: it has probably ended
    failures: int = 0
    in_flight: bool = False
    floor: bool = False  # the read in flight is a safety-net read
    active: bool = True  # False once unregistered


class TaskWatcher:
    """
    Schedules the reads of every registered wait of one connection on one event loop.

    :param protocol: the connection's wire flavour.
    :param send: sends one request and returns the answer (the shared client; raises :class:`WanError`).
    :param limiter: the connection's adaptive query budget on this loop.
    """

    def __init__(self, protocol: WanProtocol, send: Send, limiter: AsyncRateLimiter) -> None:
        self.protocol = protocol
        self._send = send
        self.limiter = limiter
        self._watches: dict[str, list[Watch]] = {}
        self._count = 0
        self._in_flight = 0
        self._floor_in_flight = 0
        # (due, tiebreak, watch): every due time ever set; stale entries (due changed, unregistered) are skipped.
        self._heap: list[tuple[float, int, Watch]] = []
        self._tiebreak = itertools.count()
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._requests: set[asyncio.Task[None]] = set()
        self._sweeps_ok = protocol.supports_list
        self._sweep_mode = False  # whether reads by id are only the floor (sweeps in use)
        self._sweeping = False
        self._next_sweep = 0.0
        self._runs: deque[float] = deque(maxlen=LEARNED_RUNS)
        self._last_warning = -math.inf
        self.stats = {"reads": 0, "sweeps": 0, "sweep_pages": 0, "throttled": 0}

    # ------------------------------------------------------------------------------------------ registration

    def register(self, task_id: str, poll_interval: float) -> Watch:
        """
        Start watching a task; its updates arrive through :meth:`next`.

        :param task_id: the DashScope task id.
        :param poll_interval: seconds between reads by id.
        """
        watch = Watch(task_id, max(0.1, poll_interval))
        self._watches.setdefault(task_id, []).append(watch)
        self._count += 1
        now = time.monotonic()
        if self._use_sweeps():
            # The next sweep tells whether it is queued, generating or done; a read by id would cost a query each.
            self._set_due(watch, now + SWEEP_FLOOR * random.uniform(0.9, 1.1))
            self._next_sweep = min(self._next_sweep, now + SWEEP_MIN_INTERVAL)
        else:
            self._set_due(watch, now + random.uniform(0, min(watch.poll_interval, 5.0) * 0.2))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="wan-task-watcher")
        self._wake.set()
        return watch

    def unregister(self, watch: Watch) -> None:
        """
        Stop watching (the wait ended or was cancelled).

        :param watch: what :meth:`register` returned.
        """
        same = self._watches.get(watch.task_id, [])
        if watch in same:
            same.remove(watch)
            self._count -= 1
            watch.active = False
        if not same:
            self._watches.pop(watch.task_id, None)
        self._wake.set()

    async def next(self, watch: Watch, timeout: float | None) -> WanTask | None:
        """
        The next read of the task that changed its status (or ended it), or None after ``timeout`` seconds.

        :param watch: the registered wait.
        :param timeout: seconds to wait at most; None waits until there is news.
        :raises WanError: a non-retryable error reading the task.
        """
        try:
            update = await asyncio.wait_for(watch.updates.get(), timeout)
        except TimeoutError:
            return None
        if isinstance(update, BaseException):
            raise update
        return update

    async def close(self) -> None:
        """Stop the scheduler and every request in flight (the shared client is about to close)."""
        self._watches.clear()
        for task in [*self._requests, *([self._runner] if self._runner else [])]:
            task.cancel()
        await asyncio.gather(*self._requests, *([self._runner] if self._runner else []), return_exceptions=True)

    # ------------------------------------------------------------------------------------------ scheduling

    def _all(self) -> list[Watch]:
        return [watch for same in self._watches.values() for watch in same]

    def _use_sweeps(self) -> bool:
        return self._sweeps_ok and self._count >= SWEEP_MIN

    def _set_due(self, watch: Watch, due: float) -> None:
        watch.due = due
        if due != math.inf:
            heapq.heappush(self._heap, (due, next(self._tiebreak), watch))

    def _top(self) -> tuple[float, int, Watch] | None:
        """The earliest live entry of the heap, dropping stale ones on the way."""
        while self._heap:
            due, _, watch = self._heap[0]
            if watch.active and not watch.in_flight and due == watch.due:
                return self._heap[0]
            heapq.heappop(self._heap)
        return None

    async def _run(self) -> None:
        while self._watches:
            now = time.monotonic()
            self._follow_mode(now)
            if self._use_sweeps() and not self._sweeping and now >= self._next_sweep:
                self._sweeping = True
                self._spawn(self._sweep())
            for watch in self._due(now):
                self._spawn(self._read(watch))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._sleep_for(time.monotonic()))

    def _follow_mode(self, now: float) -> None:
        """Leaving sweeps (the last few waits of a batch, or a list that cannot be used): read by id at pace again."""
        sweeping = self._use_sweeps()
        if self._sweep_mode and not sweeping:
            for watch in self._all():
                if watch.due != math.inf:
                    self._set_due(watch, min(watch.due, now + watch.poll_interval * random.uniform(0, 1)))
        self._sweep_mode = sweeping

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._requests.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._requests.discard(task)
        self._wake.set()

    def _due(self, now: float) -> list[Watch]:
        """The watches to read now, earliest due first (a suspect is due at once), within the in-flight bound."""
        due: list[Watch] = []
        while self._in_flight < MAX_IN_FLIGHT and (top := self._top()) is not None and top[0] <= now:
            watch = top[2]
            floor = self._sweep_mode and not watch.suspect
            if floor and self._floor_in_flight >= FLOOR_IN_FLIGHT:
                break  # the safety net waits; what a sweep flagged and the sweeps themselves go first
            heapq.heappop(self._heap)
            watch.in_flight = True  # at once: a second heap entry of the same watch is now stale
            watch.floor = floor
            self._in_flight += 1
            self._floor_in_flight += floor
            due.append(watch)
        return due

    def _sleep_for(self, now: float) -> float:
        top = self._top()
        moments = [
            *([top[0]] if top else []),
            *([self._next_sweep] if self._use_sweeps() and not self._sweeping else []),
        ]
        return min(5.0, max(0.01, min(moments, default=now + 5.0) - now))

    def _reschedule(self, watch: Watch, now: float) -> None:
        if self._use_sweeps():  # sweeps find what ended; a read by id is only the floor
            self._set_due(watch, now + max(SWEEP_FLOOR, 4 * watch.poll_interval) * random.uniform(0.9, 1.1))
            return
        due = now + watch.poll_interval * random.uniform(0.9, 1.1)
        shortest = self._shortest_run()
        if watch.status is TaskStatus.RUNNING and watch.running_seen is not None and shortest is not None:
            due = max(due, watch.running_seen + shortest)  # it cannot be done before then
        self._set_due(watch, due)

    def _shortest_run(self) -> float | None:
        """Nine tenths of the shortest generation seen here (once a few were seen), or None."""
        if len(self._runs) < 3:
            return None
        return 0.9 * min(self._runs)

    # ------------------------------------------------------------------------------------------ reads

    async def _read(self, watch: Watch) -> None:
        try:
            await self.limiter.acquire()
            request = self.protocol.get_task_request(watch.task_id)
            try:
                task = self.protocol.parse_task(await self._send(request), watch.task_id)
            except WanError as err:
                self._failed(watch, err)
                return
            self.limiter.succeeded()
            self.stats["reads"] += 1
            self._observe(task)
        finally:
            watch.in_flight = False
            self._in_flight -= 1
            self._floor_in_flight -= watch.floor
            watch.floor = False
            if watch.active and watch.due != math.inf:
                self._set_due(watch, watch.due)  # back in the heap: it was popped when it went out

    def _observe(self, task: WanTask) -> None:
        now = time.monotonic()
        for watch in self._watches.get(task.task_id, []):
            watch.failures, watch.suspect = 0, False
            if task.task_status is TaskStatus.RUNNING and watch.running_seen is None:
                watch.running_seen = now
            if (
                task.task_status.is_terminal
                and watch.running_seen is not None
                and task.task_status.value == "SUCCEEDED"
            ):
                self._runs.append(now - watch.running_seen)
            if task.task_status is not watch.status or task.task_status.is_terminal:
                watch.status = task.task_status
                watch.updates.put_nowait(task)
            if task.task_status.is_terminal:
                watch.due = math.inf  # delivered: nothing more to read until its wait unregisters
                continue
            self._reschedule(watch, now)

    def _failed(self, watch: Watch, err: WanError) -> None:
        now = time.monotonic()
        if isinstance(err, WanThrottledError):
            self.stats["throttled"] += 1
            self.limiter.throttled(err.retry_after)
            watch.due = now + (err.retry_after or 1.0) + random.uniform(0, 1.0)  # re-queued by _read's finally
            return
        if not err.retryable:
            for same in self._watches.get(watch.task_id, []):
                same.updates.put_nowait(err)
                same.due = math.inf  # its wait ends with this error
            return
        watch.failures += 1
        watch.due = now + min(120.0, watch.poll_interval * 2 ** min(watch.failures, 6))  # re-queued by _read's finally
        if now - self._last_warning > 30.0:  # one line per burst, not one per task
            self._last_warning = now
            log.warning(
                "Reading DashScope tasks failed (%s: %s); the waits go on with backoff", type(err).__name__, err
            )

    # ------------------------------------------------------------------------------------------ sweeps

    async def _sweep(self) -> None:
        started = time.monotonic()
        pages = 0
        try:
            active: dict[str, TaskStatus] = {}
            for status in _ACTIVE:
                found, read = await self._list_all(status)
                pages += read
                active.update(dict.fromkeys(found, TaskStatus(status)))
            self.stats["sweeps"] += 1
            self.stats["sweep_pages"] += pages
            self._apply_sweep(active, started)
        except WanThrottledError as err:
            self.stats["throttled"] += 1
            self.limiter.throttled(err.retry_after)
        except WanError as err:
            if not err.retryable:
                self._sweeps_ok = False  # the list cannot be used here: reads by id carry on alone
                log.warning(
                    "The task list cannot be used (%s: %s); reading each task by id instead", type(err).__name__, err
                )
        finally:
            self._sweeping = False
            self._next_sweep = time.monotonic() + self._sweep_interval(pages)

    async def _list_all(self, status: str) -> tuple[set[str], int]:
        now = time.time()
        found: set[str] = set()
        page_no, pages = 1, 0
        while True:
            await self.limiter.acquire()
            request = self.protocol.list_request(
                status=status,
                start_time=dashscope_time(now - 86_340),  # the list API answers for at most 24 hours
                end_time=dashscope_time(now + 60),
                page_no=page_no,
                page_size=SWEEP_PAGE_SIZE,
            )
            page = self.protocol.parse_list(await self._send(request))
            self.limiter.succeeded()
            pages += 1
            found.update(row.task_id for row in page.tasks)
            if page.is_last(page_no):
                return found, pages
            page_no += 1

    def _apply_sweep(self, active: dict[str, TaskStatus], started: float) -> None:
        now = time.monotonic()
        for watch in self._all():
            status = active.get(watch.task_id)
            if status is not None:
                if status is TaskStatus.RUNNING and watch.running_seen is None:
                    watch.running_seen = now
                if status is not watch.status:
                    watch.status = status
                    watch.updates.put_nowait(WanTask(task_id=watch.task_id, task_status=status))
                continue
            ended = watch.status is not None and watch.status.is_terminal
            if watch.registered < started and not watch.in_flight and not ended:
                watch.suspect = True  # not queued, not generating: it has ended
                self._set_due(watch, 0.0)  # before every other due read, overdue safety-net reads included

    def _sweep_interval(self, pages: int) -> float:
        wanted = min((watch.poll_interval for watch in self._all()), default=SWEEP_MAX_INTERVAL)
        interval = min(SWEEP_MAX_INTERVAL, max(SWEEP_MIN_INTERVAL, wanted))
        affordable = pages / max(0.1, self.limiter.rate * SWEEP_BUDGET_SHARE) if self.limiter.rate > 0 else 0.0
        return max(interval, affordable)


async def send_with(
    client: httpx.AsyncClient, request: HttpRequest, to_error: Callable[[Exception], WanError]
) -> HttpResponse:
    """
    Send one request on the shared client (no retries: the watcher reschedules).

    :param client: the shared client.
    :param request: what to send.
    :param to_error: turns an httpx failure into a :class:`WanError`.
    """
    try:
        response = await client.request(
            request.method, request.path, json=request.json, params=request.params, headers=request.headers
        )
    except httpx.HTTPError as err:
        raise to_error(err) from None
    return HttpResponse(response.status_code, response.headers, response.content)
