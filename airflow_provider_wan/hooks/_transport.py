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


class AsyncRateLimiter:
    """
    At most ``rate`` calls in any sliding second on one event loop, spaced at least ``1/rate`` apart, in FIFO order.

    Slots are computed from when earlier calls actually went out, not handed out in advance: a caller that wakes
    late (a busy loop, a garbage-collector pause) delays the ones behind it instead of letting them bunch up.

    :param rate: calls per second; 0 or less disables limiting.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._per_second = max(1, math.floor(rate))
        self._sent: deque[float] = deque()
        self._lock = asyncio.Lock()  # FIFO: one caller at a time computes and waits for its slot

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
                wait = self._sent[-1] + 1.0 / self.rate - now if self._sent else 0.0
                if len(self._sent) >= self._per_second:
                    wait = max(wait, self._sent[0] + 1.0 - now)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            self._sent.append(time.monotonic())
        return time.monotonic() - started


@dataclass
class _SharedClient:
    client: httpx.AsyncClient
    limiter: AsyncRateLimiter
    users: int = 0


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
    :param rate: the shared budget in requests per second (0 = unlimited).
    """

    def __init__(self, key: Hashable, build: Callable[[], httpx.AsyncClient], rate: float) -> None:
        self._key = key
        self._build = build
        self._rate = rate
        self._entry: _SharedClient | None = None

    async def __aenter__(self) -> _SharedClient:
        pool = _SHARED.setdefault(asyncio.get_running_loop(), {})
        entry = pool.get(self._key)
        if entry is None or entry.client.is_closed:
            entry = _SharedClient(client=self._build(), limiter=AsyncRateLimiter(self._rate))
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
            await entry.client.aclose()


def shared_client_count() -> int:
    """How many shared async clients are open on the running loop (for tests and benchmarks)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return 0
    return len(_SHARED.get(loop, {}))
