"""
The one wait policy: when a wait for a DashScope task ends, and how long to sleep between reads of it.

Pure (no I/O, no clock of its own): the trigger drives it asynchronously through the hook's shared task watcher, and
:func:`wait_sync` drives it from a worker (``deferrable=False``, ``WanHook.wait_for_task``).

Queueing is not failure: ``timeout`` counts the time DashScope spends generating (from the first time the task is
seen RUNNING), not the time it waits PENDING in the account's queue, whose place is worth keeping. ``queue_timeout``
bounds the queue on its own, and ``deadline`` is a wall-clock bound on everything (``execution_timeout``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_wan.exceptions import WanError, WanTimeoutError
from airflow_provider_wan.models import TaskStatus, WanTask

if TYPE_CHECKING:
    from airflow_provider_wan.hooks.wan import WanHook

#: Backoff ceiling between reads while DashScope keeps failing transiently.
MAX_ERROR_BACKOFF = 120.0

#: Why a wait ended without a terminal task.
GENERATION_TIMEOUT = "timeout"
QUEUE_TIMEOUT = "queue_timeout"
DEADLINE = "deadline"


@dataclass
class WaitPolicy:
    """
    When a wait gives up, and the pace of its reads.

    :param poll_interval: seconds between reads of one task.
    :param timeout: seconds of generation (from the first RUNNING read) before giving up; None: no limit.
    :param queue_timeout: seconds PENDING in DashScope's queue before giving up; None: wait as long as it is queued.
    :param deadline: wall-clock epoch seconds after which the wait ends whatever the status; None: none.
    """

    poll_interval: float = 15.0
    timeout: float | None = None
    queue_timeout: float | None = None
    deadline: float | None = None

    def start(self, now: float | None = None) -> WaitState:
        """
        A fresh state for one wait.

        :param now: epoch seconds (default: the clock).
        """
        return WaitState(self, started=time.time() if now is None else now)


@dataclass
class WaitState:
    """
    What one wait has seen: statuses, when generation began, consecutive failures.

    :param policy: the policy it follows.
    :param started: epoch seconds when the wait began.
    """

    policy: WaitPolicy
    started: float
    last: TaskStatus | None = None
    pending_since: float | None = None
    running_since: float | None = None
    failures: int = 0
    transitions: list[tuple[TaskStatus | None, TaskStatus]] = field(default_factory=list)

    def observe(self, task: WanTask, now: float | None = None) -> bool:
        """
        Record a read of the task; True when its status changed.

        :param task: the task as read.
        :param now: epoch seconds (default: the clock).
        """
        now = time.time() if now is None else now
        self.failures = 0
        status = task.task_status
        if status is TaskStatus.PENDING and self.pending_since is None:
            self.pending_since = now
        if status is not TaskStatus.PENDING and self.running_since is None:
            # Generation began at the latest now (a task seen SUCCEEDED at once never counted against `timeout`).
            self.running_since = now
        changed = status is not self.last
        if changed:
            self.transitions.append((self.last, status))
            self.last = status
        return changed

    def failed(self) -> float:
        """Record a transient failure; returns the backoff before the next read."""
        self.failures += 1
        return min(MAX_ERROR_BACKOFF, self.policy.poll_interval * 2 ** min(self.failures, 6))

    def expired(self, now: float | None = None) -> str | None:
        """
        Why the wait must end now (``timeout``, ``queue_timeout`` or ``deadline``), or None to keep waiting.

        :param now: epoch seconds (default: the clock).
        """
        now = time.time() if now is None else now
        policy = self.policy
        if policy.deadline is not None and now >= policy.deadline:
            return DEADLINE
        if policy.timeout is not None and self.running_since is not None and now >= self.running_since + policy.timeout:
            return GENERATION_TIMEOUT
        queued_since = self.pending_since if self.last is TaskStatus.PENDING else None
        if policy.queue_timeout is not None and queued_since is not None and now >= queued_since + policy.queue_timeout:
            return QUEUE_TIMEOUT
        return None

    def seconds_left(self, now: float | None = None) -> float | None:
        """
        Seconds until the nearest limit that can end the wait, or None when none applies yet.

        :param now: epoch seconds (default: the clock).
        """
        now = time.time() if now is None else now
        policy, limits = self.policy, []
        if policy.deadline is not None:
            limits.append(policy.deadline - now)
        if policy.timeout is not None and self.running_since is not None:
            limits.append(self.running_since + policy.timeout - now)
        if policy.queue_timeout is not None and self.last is TaskStatus.PENDING and self.pending_since is not None:
            limits.append(self.pending_since + policy.queue_timeout - now)
        return max(0.0, min(limits)) if limits else None

    def next_read_in(self, now: float | None = None) -> float:
        """
        Seconds to sleep before the next read (jittered ±10 %), never past the nearest limit.

        :param now: epoch seconds (default: the clock).
        """
        pause = self.policy.poll_interval * random.uniform(0.9, 1.1)
        left = self.seconds_left(now)
        return pause if left is None else min(pause, left)

    def elapsed(self, now: float | None = None) -> float:
        """Seconds since the wait began. :param now: epoch seconds (default: the clock)."""
        return max(0.0, (time.time() if now is None else now) - self.started)

    def describe_expiry(self, reason: str, task_id: str) -> str:
        """
        The message of a wait that ended at a limit.

        :param reason: what :meth:`expired` returned.
        :param task_id: the DashScope task id.
        """
        status = self.last.value if self.last else "unconfirmed"
        if reason == GENERATION_TIMEOUT:
            return f"task {task_id} is still {status} {self.policy.timeout:g} s after it started generating"
        if reason == QUEUE_TIMEOUT:
            return f"task {task_id} waited {self.policy.queue_timeout:g} s in DashScope's queue (queue_timeout)"
        return f"task {task_id} is still {status} at the deadline, {self.elapsed():.0f} s into this wait"


def wait_sync(
    hook: WanHook,
    task_id: str,
    policy: WaitPolicy,
    log: Any,
    sleep: Callable[[float], None] = time.sleep,
) -> WanTask:
    """
    The worker-side driver of the policy: read the task until it ends, sleeping between reads.

    Transient failures (429, 5xx, network) back off and keep waiting; others raise.

    :param hook: the connection's hook.
    :param task_id: the DashScope task id.
    :param policy: when to give up.
    :param log: where transitions are logged.
    :param sleep: how to sleep (tests may shorten it).
    :return: the task once it is terminal.
    :raises WanTimeoutError: when a limit passes first (``reason`` says which).
    """
    state = policy.start()
    while True:
        try:
            task = hook.get_task(task_id)
        except WanError as err:
            if not err.retryable or state.expired() is not None:
                raise
            backoff = state.failed()
            log.warning("Reading task %s failed (%s); still waiting, next read in %.0f s", task_id, err, backoff)
            sleep(min(backoff, state.seconds_left() or backoff))
            continue
        if state.observe(task):
            log.info("Task %s is %s after %.0f s", task_id, task.task_status.value, state.elapsed())
        if task.task_status.is_terminal:
            return task
        reason = state.expired()
        if reason is not None:
            raise WanTimeoutError(state.describe_expiry(reason, task_id), task_id=task_id, reason=reason)
        sleep(state.next_read_in())
