"""Account limits of the simulator: sliding rate windows (429s) and per-model processing queues (concurrency).

DashScope limits an account per model: a few submissions per second and a few tasks processing at once, with
the rest waiting PENDING in order. The simulator keeps one queue per (API key, model) and one window per limit.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

#: Realistic PENDING before a task may take a slot (DashScope's example: 7 s from submit_time to scheduled_time).
REALISTIC_PENDING = (2.0, 10.0)
#: Realistic RUNNING: "generation typically 1-5 minutes" (the reference's section 6).
REALISTIC_RUNNING = (60.0, 300.0)
#: The work (seconds x pixels) that takes the longest: 10 s of 1920*1080 and beyond.
_LONGEST_WORK = 10 * 1920 * 1080


class RateWindow:
    """
    A sliding one-second window: at most ``rate`` events per second (a fractional rate spreads one event).

    :param rate: events per second.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1, int(rate))
        self.window = self.capacity / rate
        self._stamps: deque[float] = deque()

    def acquire(self, now: float) -> float | None:
        """
        Take a place in the window.

        :param now: the current time.
        :return: None when allowed, else the seconds until a place frees.
        """
        while self._stamps and self._stamps[0] <= now - self.window:
            self._stamps.popleft()
        if len(self._stamps) < self.capacity:
            self._stamps.append(now)
            return None
        return self._stamps[0] + self.window - now


class Slotted(Protocol):
    """What a queue needs of a task: when it may start, when it started and when it gives its slot back."""

    slot_at: float | None

    @property
    def ready_at(self) -> float:
        """When the task may take a slot."""
        ...

    @property
    def release_at(self) -> float | None:
        """When the task's slot frees (None without a slot)."""
        ...


@dataclass
class ProcessingQueue:
    """
    One account's tasks of one model: at most ``cap`` processing at once, the others waiting in order.

    Slots are handed out "as of now", retroactively: a task gets the moment the previous holder ended, so a
    lifecycle is exact however rarely the simulator is asked.

    :param waiting: tasks without a slot, in the order they became ready (then submission order).
    :param holders: tasks with a slot that may still hold it at ``floor`` or later.
    :param floor: the last slot handed out (later tasks never start before it: first in, first out).
    :param peak: the most tasks that held a slot at once.
    """

    waiting: list[Slotted] = field(default_factory=list)
    holders: list[Slotted] = field(default_factory=list)
    floor: float = -math.inf
    peak: int = 0

    def add(self, task: Slotted) -> None:
        """
        Queue a task (kept in ready order; equal times keep submission order).

        :param task: the task, without a slot.
        """
        index = len(self.waiting)
        while index and self.waiting[index - 1].ready_at > task.ready_at:
            index -= 1
        self.waiting.insert(index, task)

    def remove(self, task: Slotted) -> None:
        """
        Take a waiting task out (canceled).

        :param task: the task.
        """
        if task in self.waiting:
            self.waiting.remove(task)

    def reorder(self) -> None:
        """Sort the waiting tasks again after a ready time changed."""
        self.waiting.sort(key=lambda task: task.ready_at)

    def fill(self, cap: int, now: float) -> None:
        """
        Give slots to waiting tasks, in order, up to ``now``.

        :param cap: tasks processing at once.
        :param now: the current time.
        """
        while self.waiting:
            task = self.waiting[0]
            start = max(task.ready_at, self.floor)
            if start > now:
                return
            self.holders = [t for t in self.holders if (t.release_at or 0.0) > self.floor]
            found = first_free_slot(self.holders, start, now, cap)
            if found is None:
                return
            moment, busy = found
            task.slot_at = self.floor = moment
            self.holders.append(self.waiting.pop(0))
            self.peak = max(self.peak, busy + 1)

    def processing(self, now: float) -> int:
        """
        Tasks holding a slot at ``now``.

        :param now: the current time.
        """
        return sum(1 for t in self.holders if (t.slot_at or 0.0) <= now < (t.release_at or math.inf))


def first_free_slot(holders: list[Slotted], start: float, now: float, cap: int) -> tuple[float, int] | None:
    """
    The earliest moment in [start, now] when fewer than ``cap`` holders are active.

    :param holders: the tasks holding (or having held) slots.
    :param start: the earliest moment the task may start.
    :param now: the current time (slots are never handed out in the future).
    :param cap: tasks processing at once.
    :return: (the moment, how many were busy then), or None.
    """
    active = [t for t in holders if (t.release_at or math.inf) > start]
    ends = (t.release_at for t in active if t.release_at is not None and t.release_at <= now)
    for moment in sorted({start, *ends}):
        if moment > now:
            break
        busy = sum(1 for t in active if (t.slot_at or 0.0) <= moment < (t.release_at or math.inf))
        if busy < cap:
            return moment, busy
    return None


def realistic_pending(rng: random.Random) -> float:
    """
    Seconds PENDING before a task may take a slot, drawn uniformly over :data:`REALISTIC_PENDING`.

    :param rng: the timing random source.
    """
    return rng.uniform(*REALISTIC_PENDING)


def realistic_running(rng: random.Random, size: str, duration: int) -> float:
    """
    Seconds RUNNING, drawn over :data:`REALISTIC_RUNNING`: a triangular law whose peak moves from 60 s towards
    300 s with the video's work (seconds x pixels): 10 s of 1080P average about 220 s, 5 s of 480P about 150 s.

    :param rng: the timing random source.
    :param size: the video's ``W*H``.
    :param duration: the video's seconds.
    """
    width, _, height = size.partition("*")
    work = duration * int(width) * int(height) if width.isdigit() and height.isdigit() else _LONGEST_WORK
    low, high = REALISTIC_RUNNING
    mode = low + (high - low) * min(1.0, work / _LONGEST_WORK)
    return rng.triangular(low, high, mode)
