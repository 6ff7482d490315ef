"""
Transport policy shared by the sync and async hook: which failures are retried, for how long, and at what rate.

Also the per-event-loop pool of ``httpx.AsyncClient`` s that triggers of one connection share.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import weakref
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import httpcore  # noqa: F401  imported here, not lazily by the first client inside the triggerer's event loop
import httpx

from airflow_provider_wan.exceptions import (
    WanAmbiguousSubmitError,
    WanError,
    WanServerError,
    WanThrottledError,
    WanTransportError,
)
from airflow_provider_wan.protocol import HttpRequest

#: One TLS context for every client of the process: loading the CA bundle blocks for tens of milliseconds, so it
#: happens once at import, never inside an event loop.
TLS_CONTEXT = httpx.create_ssl_context()

#: Network failures where the request never reached the server: always safe to repeat.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def transport_error(err: httpx.HTTPError, request: HttpRequest, timeout: float | None) -> WanError:
    """
    Translate an httpx failure into our hierarchy, telling apart "never sent" from "sent, answer lost".

    :param err: what httpx raised.
    :param request: the request that failed.
    :param timeout: the read timeout in force, for the message.
    """
    kind = type(err).__name__
    if isinstance(err, _NOT_SENT):
        return WanTransportError(f"could not reach DashScope ({kind}: {err}); nothing was sent")
    if request.idempotent:
        return WanTransportError(f"{request.method} {request.path} failed ({kind}: {err})")
    timed_out = isinstance(err, httpx.TimeoutException) and timeout
    after = f" after {timeout:g} s; the connection's read_timeout may be too short" if timed_out else ""
    return WanAmbiguousSubmitError(
        f"the submit reached DashScope but its answer was lost ({kind}{after}). DashScope may have created a "
        f"task that will be billed"
    )


@dataclass(frozen=True)
class RetryPolicy:
    """
    Bounded exponential backoff with full jitter, honouring ``Retry-After``.

    :param max_attempts: how many times a call is tried in all (1 = no retry).
    :param backoff_base: the first backoff in seconds; it doubles per attempt.
    :param backoff_max: the ceiling of one backoff in seconds.
    :param budget: the ceiling of all attempts and waits of one call, in seconds.
    """

    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    budget: float = 120.0

    def delay(self, attempt: int, error: WanError, request: HttpRequest, elapsed: float) -> float | None:
        """
        Seconds to wait before trying again, or None to give up and raise ``error``.

        :param attempt: how many attempts were made (from 1).
        :param error: why the last attempt failed.
        :param request: the request being made.
        :param elapsed: seconds spent on this call so far.
        """
        if attempt >= self.max_attempts or not self.may_retry(error, request):
            return None
        backoff = random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))
        hinted = getattr(error, "retry_after", None)
        wait = max(backoff, hinted) if hinted is not None else backoff
        if elapsed + wait > self.budget:
            return None
        return wait

    @staticmethod
    def may_retry(error: WanError, request: HttpRequest) -> bool:
        """
        Whether ``error`` may be retried for ``request``.

        A submit (not idempotent) is retried only when no task can have been created: the request never left
        (connect errors), or DashScope answered with an explicit throttling or server error body.

        :param error: why the attempt failed.
        :param request: the request being made.
        """
        if not error.retryable:
            return False
        if request.idempotent:
            return True
        if isinstance(error, WanTransportError):
            return type(error) is WanTransportError  # only "nothing was sent" reaches here for a submit
        return isinstance(error, (WanThrottledError, WanServerError)) and getattr(error, "code", None) is not None


#: The rate grows only while the last USE_WINDOW seconds sent at least USE_SHARE of it.
USE_WINDOW = 5.0
USE_SHARE = 0.8


class AsyncRateLimiter:
    """
    Paces one event loop's requests to an account at an adaptive rate, in FIFO order.

    The account's query limit is shared by every triggerer, worker and tool using it, and they cannot talk to each
    other. So the rate follows AIMD, as TCP does: it grows slowly (``increase`` requests/s per second) while callers
    are actually waiting on it, and halves on a 429, pausing for the server's ``Retry-After``. Independent processes
    that each do this converge on the shared limit with few throttled requests. It never grows past ``ceiling``.

    Slots are computed from when earlier calls actually went out, not handed out in advance: a caller that wakes
    late (a busy loop, a garbage-collector pause) delays the ones behind it instead of letting them bunch up.

    :param rate: the starting rate in requests per second; 0 or less disables limiting.
    :param ceiling: the highest rate (the account's limit); default: ``rate``.
    :param floor: the lowest rate a run of 429s can push it to.
    :param increase: requests per second added per second of saturated, unthrottled sending.
    :param decrease: the factor applied on a 429 (at most once per second).
    """

    def __init__(
        self,
        rate: float,
        ceiling: float | None = None,
        floor: float = 0.5,
        increase: float = 0.25,
        decrease: float = 0.5,
    ) -> None:
        self.ceiling = max(rate, ceiling or rate)
        self.rate = rate
        self.floor = min(max(floor, self.ceiling / 20), rate) if rate > 0 else floor
        self.increase = increase
        self.decrease = decrease
        self.throttles = 0
        self._sent: deque[float] = deque()
        self._recent: deque[float] = deque()  # send times of the last USE_WINDOW seconds
        self._lock = asyncio.Lock()  # FIFO: one caller at a time computes and waits for its slot
        self._paused_until = 0.0
        self._saturated_at = -math.inf
        self._grown_at = time.monotonic()
        self._cut_at = -math.inf

    async def acquire(self) -> float:
        """Wait for this call's turn; returns the seconds waited."""
        if self.rate <= 0:
            return 0.0
        started = time.monotonic()
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._sent and now - self._sent[0] >= 1.0:
                    self._sent.popleft()
                wait = max(self._paused_until - now, self._sent[-1] + 1.0 / self.rate - now if self._sent else 0.0)
                if len(self._sent) >= max(1, math.floor(self.rate)):
                    wait = max(wait, self._sent[0] + 1.0 - now)
                if wait <= 0:
                    break
                self._saturated_at = now
                await asyncio.sleep(wait)
            sent = time.monotonic()
            self._sent.append(sent)
            self._recent.append(sent)
        return time.monotonic() - started

    def succeeded(self) -> None:
        """
        An answer that was not throttled: grow the rate, if callers were waiting on it and it was really used.

        A burst (a sweep of the task list) makes callers wait for a moment without using the rate; growing then
        would let every process claim more than it uses, and bursts that coincide would overshoot the account.
        So, as TCP does for an application-limited sender, the rate grows only while the last few seconds sent at
        least :data:`USE_SHARE` of it.
        """
        now = time.monotonic()
        while self._recent and now - self._recent[0] > USE_WINDOW:
            self._recent.popleft()
        using = len(self._recent) / USE_WINDOW >= USE_SHARE * self.rate
        if self.rate <= 0 or now - self._saturated_at > 1.0 or not using:
            self._grown_at = now  # not limited by the rate: no evidence more would be welcome
            return
        self.rate = min(self.ceiling, self.rate + self.increase * (now - self._grown_at))
        self._grown_at = now

    def throttled(self, retry_after: float | None = None) -> None:
        """
        A 429: halve the rate (once per second, however many 429s arrive together) and pause.

        :param retry_after: the seconds the server asked for, if it said.
        """
        now = time.monotonic()
        self.throttles += 1
        if self.rate > 0 and now - self._cut_at >= 1.0:
            # Cut from what was really being sent: a process sending little halves its little, not its allowance.
            sending = sum(1 for sent in self._sent if now - sent < 1.0)
            self.rate = max(self.floor, min(self.rate, max(sending, 1)) * self.decrease)
            self._cut_at = now
        self._grown_at = now
        self._paused_until = max(self._paused_until, now + (retry_after if retry_after is not None else 1.0))


@dataclass
class _SharedClient:
    client: httpx.AsyncClient
    limiter: AsyncRateLimiter
    users: int = 0
    watcher: Any = None  # the connection's TaskWatcher on this loop, made on first use


# loop -> settings key -> shared client. Weak on the loop so a finished loop takes its clients with it.
_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, _SharedClient]] = (
    weakref.WeakKeyDictionary()
)


class SharedAsyncClient:
    """
    A reference-counted ``httpx.AsyncClient`` and rate budget shared by every user of one connection on one loop.

    1,000 deferred videos on one triggerer then share one connection pool (no TLS handshake per poll) and one
    query budget, so together they stay under the account's query limit.

    :param key: identifies the connection settings (holds a digest of the key, never the key).
    :param build: makes the client the first time it is needed on a loop.
    :param rate: the starting budget in requests per second (0 = unlimited).
    :param ceiling: the most the adaptive budget grows to (the account's query limit).
    """

    def __init__(
        self, key: Hashable, build: Callable[[], httpx.AsyncClient], rate: float, ceiling: float | None = None
    ) -> None:
        self._key = key
        self._build = build
        self._rate = rate
        self._ceiling = ceiling
        self._entry: _SharedClient | None = None

    async def __aenter__(self) -> _SharedClient:
        pool = _SHARED.setdefault(asyncio.get_running_loop(), {})
        entry = pool.get(self._key)
        if entry is None or entry.client.is_closed:
            entry = _SharedClient(client=self._build(), limiter=AsyncRateLimiter(self._rate, self._ceiling))
            pool[self._key] = entry
        entry.users += 1
        self._entry = entry
        return entry

    async def __aexit__(self, *exc: object) -> None:
        entry, self._entry = self._entry, None
        if entry is None:
            return
        entry.users -= 1
        if entry.users <= 0:
            pool = _SHARED.get(asyncio.get_running_loop(), {})
            if pool.get(self._key) is entry:
                del pool[self._key]
            if entry.watcher is not None:
                await entry.watcher.close()
            await entry.client.aclose()


def shared_client_count() -> int:
    """How many shared async clients are open on the running loop (for tests and benchmarks)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return 0
    return len(_SHARED.get(loop, {}))
