"""
WanTaskTrigger: wait for a DashScope task on the triggerer, without a worker slot, until it ends.

``run()`` only awaits: the connection is read asynchronously and every poll goes through the hook's shared
``httpx.AsyncClient`` and polling budget.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_wan._compat import AirflowNotFoundException
from airflow_provider_wan.events import ERROR, TIMEOUT, stop_event, task_event
from airflow_provider_wan.exceptions import WanError
from airflow_provider_wan.hooks.wan import WanHook
from airflow_provider_wan.waiting import WaitPolicy, WaitState

#: Ceiling on one cancel attempt from on_kill, so a slow DashScope cannot hold up the triggerer.
CANCEL_TIMEOUT = 15.0


class WanTaskTrigger(BaseTrigger):
    """
    Wait for a DashScope task until it is SUCCEEDED, FAILED, CANCELED or UNKNOWN, or a limit passes.

    Yields exactly one event (see :mod:`airflow_provider_wan.events`): ``success``, ``failed`` (with code and
    message), ``canceled``, ``expired`` (UNKNOWN: older than 24 h or another region/account), ``timeout`` (a limit
    passed; the task was checked once more first; ``reason`` says which) or ``error`` (a non-retryable error while
    polling). Transient errors (429, 5xx, network, unreadable bodies) are retried with backoff; they never end the
    wait by themselves.

    Every wait of a connection in one triggerer registers with one task watcher that spends the account's adaptive
    query budget where it matters (:mod:`airflow_provider_wan.hooks._watch`); the limits follow the one wait policy
    (:mod:`airflow_provider_wan.waiting`): queue time does not count against ``timeout``.

    Serialized kwargs are a contract across versions: only plain values, never the API key.

    :param dashscope_task_id: the DashScope task id to wait for.
    :param dashscope_conn_id: the ``dashscope`` connection id (the key is read from it on the triggerer).
    :param poll_interval: seconds between reads of this task when it is read by id.
    :param deadline: wall-clock epoch seconds after which the wait ends with ``timeout`` whatever the status;
        None: no wall-clock limit.
    :param cancel_on_kill: cancel the DashScope task when a user clears or marks the deferred task
        (Airflow 3.3+; only PENDING tasks can be canceled).
    :param started_at: wall-clock epoch seconds when the task was first submitted, for elapsed times in logs.
    :param timeout: seconds of generation (from the first RUNNING read) before the wait ends; None: no limit.
    :param queue_timeout: seconds PENDING in DashScope's queue before the wait ends; None: no limit.
    """

    def __init__(
        self,
        dashscope_task_id: str,
        dashscope_conn_id: str = WanHook.default_conn_name,
        poll_interval: float = 15.0,
        deadline: float | None = None,
        cancel_on_kill: bool = True,
        started_at: float | None = None,
        timeout: float | None = None,
        queue_timeout: float | None = None,
    ) -> None:
        super().__init__()
        self.dashscope_task_id = dashscope_task_id
        self.dashscope_conn_id = dashscope_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = float(deadline) if deadline is not None else None
        self.cancel_on_kill = cancel_on_kill
        self.started_at = float(started_at) if started_at is not None else time.time()
        self.timeout = float(timeout) if timeout is not None else None
        self.queue_timeout = float(queue_timeout) if queue_timeout is not None else None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and plain kwargs: ids, numbers and a wall-clock deadline. Never the key."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "dashscope_task_id": self.dashscope_task_id,
                "dashscope_conn_id": self.dashscope_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "cancel_on_kill": self.cancel_on_kill,
                "started_at": self.started_at,
                "timeout": self.timeout,
                "queue_timeout": self.queue_timeout,
            },
        )

    def _hook(self) -> WanHook:
        return WanHook(dashscope_conn_id=self.dashscope_conn_id)

    def _policy(self) -> WaitPolicy:
        return WaitPolicy(
            poll_interval=self.poll_interval,
            timeout=self.timeout,
            queue_timeout=self.queue_timeout,
            deadline=self.deadline,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait until the task ends or a limit passes, then yield one event."""
        # Spread triggers deferred at once (a mapped task of hundreds of videos) before any work at all: each reads
        # its connection first, and hundreds of reads in one turn of the loop would stall it.
        await asyncio.sleep(random.uniform(0, min(self.poll_interval, 5.0) * 0.2))
        hook = self._hook()
        try:
            async with hook.async_session():
                event = await self._wait(hook)
        except (WanError, AirflowNotFoundException) as err:  # the connection is missing or unusable
            event = stop_event(ERROR, self.dashscope_task_id, f"{type(err).__name__}: {err}")
        yield TriggerEvent(event)

    async def _wait(self, hook: WanHook) -> dict[str, Any]:
        state = self._policy().start()
        async with hook.watch(self.dashscope_task_id, self.poll_interval) as watching:
            while True:
                reason = state.expired()
                if reason is not None:
                    return await self._final_check(hook, state, reason)
                try:
                    task = await watching.next(timeout=state.seconds_left())
                except WanError as err:
                    return self._error_event(err, state)
                if task is None:
                    continue
                if state.observe(task):
                    self._log_transition(state)
                if task.task_status.is_terminal:
                    return task_event(task, elapsed=self._elapsed())

    async def _final_check(self, hook: WanHook, state: WaitState, reason: str) -> dict[str, Any]:
        """Past a limit: look once more, so a task that just finished is not reported as timed out."""
        try:
            task = await hook.aget_task(self.dashscope_task_id)
            if state.observe(task):
                self._log_transition(state)
            if task.task_status.is_terminal:
                return task_event(task, elapsed=self._elapsed())
        except WanError as err:
            self.log.warning("Final check of task %s failed: %s", self.dashscope_task_id, err)
        return stop_event(
            TIMEOUT,
            self.dashscope_task_id,
            f"{state.describe_expiry(reason, self.dashscope_task_id)}; {self._elapsed():.0f} s after submission",
            task_status=state.last.value if state.last else None,
            elapsed=self._elapsed(),
            reason=reason,
        )

    def _error_event(self, err: WanError, state: WaitState) -> dict[str, Any]:
        return stop_event(
            ERROR,
            self.dashscope_task_id,
            f"{type(err).__name__}: {err}",
            task_status=state.last.value if state.last else None,
            code=getattr(err, "code", None),
            request_id=getattr(err, "request_id", None),
            elapsed=self._elapsed(),
        )

    def _log_transition(self, state: WaitState) -> None:
        before, after = state.transitions[-1]
        self.log.info(
            "Task %s: %s%s after %.0f s",
            self.dashscope_task_id,
            f"{before.value} → " if before else "",
            after.value,
            self._elapsed(),
        )

    def _elapsed(self) -> float:
        return max(0.0, time.time() - self.started_at)

    async def on_kill(self) -> None:
        """
        Cancel the DashScope task when a user clears or marks the deferred task (Airflow 3.3+).

        Best effort and bounded in time; never raises. Not called on triggerer restarts (``cleanup`` is, and it
        never cancels remote work).
        """
        if not self.cancel_on_kill:
            return
        hook = self._hook()
        try:
            settings = await hook.aget_settings()
            if settings.protocol != "dashscope":
                self.log.warning(
                    "The %s protocol has no cancel route; task %s keeps running on the relay",
                    settings.protocol,
                    self.dashscope_task_id,
                )
                return
            await asyncio.wait_for(hook.acancel_task(self.dashscope_task_id), CANCEL_TIMEOUT)
            self.log.info("Canceled DashScope task %s", self.dashscope_task_id)
        except Exception as err:  # best effort: RUNNING tasks cannot be canceled, DashScope may be slow
            self.log.warning("Could not cancel DashScope task %s: %s", self.dashscope_task_id, err)
