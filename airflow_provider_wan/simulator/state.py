"""The simulator's thread-safe state: task store, lifecycle, account limits, faults, counters.

No HTTP here; time comes from an injectable clock, so lifecycles can be tested without sleeping.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_provider_wan.simulator.config import (
    DEFAULT_FAIL_CODE,
    ROUTES,
    FaultKind,
    FaultSpec,
    SimulatorConfig,
    TaskScenario,
    limit_key,
)
from airflow_provider_wan.simulator.fetch import FetchOutcome, FetchResult, InputFetch, plan_fetch
from airflow_provider_wan.simulator.limits import ProcessingQueue, RateWindow, realistic_pending, realistic_running
from airflow_provider_wan.simulator.scenario import Marker
from airflow_provider_wan.simulator.validation import SubmitRequest
from airflow_provider_wan.simulator.video import VideoShape
from airflow_provider_wan.simulator.wire import format_time, message_for

ANSWER_KINDS: frozenset[FaultKind] = frozenset({"error", "drop", "latency", "html", "truncate", "redirect", "body"})
#: The routes whose 429s are counted apart (``throttled_per_route``).
THROTTLED_ROUTES = ("submit", "get", "list")
COUNTER_KEYS = (
    "submissions",
    "tasks_created",
    "polls",
    "cancels",
    "tasks_canceled",
    "lists",
    "video_requests",
    "bytes_served",
    "throttled",
    "faults_injected",
    "errors",
    "input_fetches",
    "input_bytes",
)


class Clock(Protocol):
    """Where the simulator reads the time: epoch seconds."""

    def now(self) -> float:
        """The current time in epoch seconds."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> float:
        """The current time in epoch seconds."""
        return time.time()


class ManualClock:
    """
    A clock that only moves when told, for tests of TTLs and lifecycles without sleeping.

    :param start: the initial epoch seconds (default: now).
    """

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def now(self) -> float:
        """The current (frozen) time in epoch seconds."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """
        Move the clock forward.

        :param seconds: how far.
        :return: the new time.
        """
        with self._lock:
            self._now += seconds
            return self._now


@dataclass
class SimTask:
    """
    One simulated task: the validated request, its resolved scenario and its lifecycle marks.

    :param task_id: the uuid handed out at submit.
    :param request: the validated submission.
    :param scenario: the fully resolved scenario (every field set, except video_bytes for the sample).
    :param protocol: the wire flavour it was submitted on.
    :param headers: the received headers, Authorization masked.
    :param api_key_id: a stable pseudo id of the submitting key.
    :param region: the region shown in lists.
    :param submit_request_id: the request id of the submit answer.
    :param submitted_at: epoch seconds of submission.
    :param queue_key: the processing queue it waits in: (API key id, model), one account's model.
    :param slot_at: when it took a processing slot: RUNNING from there.
    :param canceled_at: when it was canceled.
    :param fetch: its media inputs and their fetching (None for a text-to-video task): it may not take a slot
        before they are all read, and fails without one when an input is refused.
    """

    task_id: str
    request: SubmitRequest
    scenario: TaskScenario
    protocol: str
    headers: dict[str, str]
    api_key_id: str
    region: str
    submit_request_id: str
    submitted_at: float
    queue_key: tuple[str, str] = ("", "")
    slot_at: float | None = None
    canceled_at: float | None = None
    fetch: InputFetch | None = None

    @property
    def model(self) -> str:
        """The model name as sent."""
        return self.request.model

    @property
    def prompt(self) -> str | None:
        """The (truncated) prompt; None when an image or keyframe model got none."""
        return self.request.prompt

    @property
    def size(self) -> str:
        """The effective ``W*H`` (a tier-shape model's: the tier at its first frame's aspect ratio, once read)."""
        fetch = self.fetch
        return fetch.output_size if fetch is not None and fetch.output_size else self.request.size

    @property
    def input_video_seconds(self) -> float:
        """Seconds of reference videos read (reference-to-video), billed as ``input_video_duration``."""
        return self.fetch.input_video_seconds if self.fetch is not None else 0.0

    @property
    def input_failed_at(self) -> float | None:
        """When an input failed the task (it is FAILED from then, without ever RUNNING), else None."""
        fetch = self.fetch
        return fetch.done_at if fetch is not None and fetch.failure is not None else None

    @property
    def duration(self) -> int:
        """The effective seconds."""
        return self.request.duration

    @property
    def video_shape(self) -> VideoShape:
        """The result video's width, height, seconds and sound, as requested."""
        return VideoShape.of(self.size, self.request.duration, self.request.audio)

    @property
    def video_bytes(self) -> int | None:
        """The size of the synthetic video served instead of a rendered one, if any."""
        return self.scenario.video_bytes

    @property
    def prompt_extend(self) -> bool:
        """Whether prompt rewriting is on."""
        return self.request.prompt_extend

    @property
    def usage_shape(self) -> str:
        """``v26`` or ``legacy``."""
        return self.request.usage_shape

    @property
    def returns_actual_prompt(self) -> bool:
        """Whether the model returns ``actual_prompt``."""
        return self.request.returns_actual_prompt

    @property
    def fail_code(self) -> str:
        """The failure code when FAILED (an input's failure first)."""
        if self.fetch is not None and self.fetch.failure is not None:
            return self.fetch.failure[0]
        return self.scenario.code or DEFAULT_FAIL_CODE

    @property
    def fail_message(self) -> str:
        """The failure message when FAILED."""
        if self.fetch is not None and self.fetch.failure is not None:
            return self.fetch.failure[1]
        return self.scenario.message or message_for(self.fail_code)

    @property
    def pending(self) -> float:
        """Seconds PENDING before the task may take a slot."""
        return self.scenario.pending or 0.0

    @property
    def running(self) -> float:
        """Seconds RUNNING."""
        return self.scenario.running or 0.0

    @property
    def ready_at(self) -> float:
        """
        When the task may take a processing slot (it waits PENDING in its queue from there): after its PENDING
        time and once its inputs are all read (never while they are being fetched).
        """
        ready = self.submitted_at + self.pending
        fetch = self.fetch
        if fetch is None:
            return ready
        return math.inf if fetch.done_at is None else max(ready, fetch.done_at)

    @property
    def release_at(self) -> float | None:
        """When the task gives its processing slot back (None while it has none)."""
        return None if self.slot_at is None else self.slot_at + self.running

    @property
    def ended_at(self) -> float | None:
        """When the task reached its terminal status (canceled, failed on an input, or done), if it has."""
        if self.canceled_at is not None:
            return self.canceled_at
        failed = self.input_failed_at
        return failed if failed is not None else self.release_at

    def expired(self, now: float) -> bool:
        """
        Whether the task is past its TTL (it then answers UNKNOWN).

        :param now: the current time.
        """
        return now - self.submitted_at >= (self.scenario.task_ttl or 0.0)

    def link_expires(self) -> int | None:
        """The ``Expires`` epoch second of the video link (None until the task ended)."""
        end = self.ended_at
        return None if end is None else int(end + (self.scenario.link_ttl or 0.0))


@dataclass(frozen=True)
class TaskView:
    """
    A task as of one moment.

    :param task: the task.
    :param status: PENDING, RUNNING, SUCCEEDED, FAILED or CANCELED.
    :param scheduled_at: when RUNNING began.
    :param ended_at: when the task reached its terminal status.
    :param queued: PENDING and waiting for a processing slot (the account's concurrency for the model is used up).
    :param progress: 0..100.
    """

    task: SimTask
    status: str
    scheduled_at: float | None
    ended_at: float | None
    queued: bool
    progress: int


def view_of(task: SimTask, now: float) -> TaskView:
    """
    Where a task's lifecycle stands at ``now`` (the caller has scheduled slots up to ``now``).

    :param task: the task.
    :param now: the current time.
    """
    if task.canceled_at is not None:
        return TaskView(task, "CANCELED", None, task.canceled_at, False, 100)
    failed = task.input_failed_at
    if failed is not None:
        return TaskView(task, "FAILED", None, failed, False, 100)
    if task.slot_at is None:
        return TaskView(task, "PENDING", None, None, now >= task.ready_at, 0)
    started = task.slot_at
    ended = started + task.running
    if now < ended:
        progress = min(99, max(1, int(100 * (now - started) / task.running))) if task.running else 99
        return TaskView(task, "RUNNING", started, None, False, progress)
    return TaskView(task, task.scenario.outcome or "SUCCEEDED", started, ended, False, 100)


@dataclass
class ActiveFault:
    """
    A fault waiting for matching requests.

    :param fault_id: its id for removal.
    :param spec: what it does.
    :param remaining: hits left (None: unlimited).
    :param marker_key: scoped to submissions carrying this marker.
    """

    fault_id: str
    spec: FaultSpec
    remaining: int | None
    marker_key: str | None = None

    def matches(self, route: str, protocol: str, phase: str, task_id: str | None, marker_key: str | None) -> bool:
        """
        Whether a request falls under this fault.

        :param route: the request's route.
        :param protocol: the request's wire flavour.
        :param phase: ``before`` or ``after``.
        :param task_id: the task the request is about, if any.
        :param marker_key: the marker of a submission, if any.
        """
        spec = self.spec
        return (
            spec.route in (route, "any")
            and spec.phase == phase
            and spec.protocol in (None, protocol)
            and spec.task_id in (None, task_id)
            and self.marker_key == marker_key
        )

    def describe(self) -> dict[str, Any]:
        """A JSON-safe description."""
        return {"id": self.fault_id, **self.spec.model_dump(exclude_none=True), "remaining": self.remaining}


def api_key_id(key: str) -> str:
    """
    A stable pseudo id for a key (lists show ids, never keys).

    :param key: the API key.
    """
    return str(int(hashlib.sha256(key.encode()).hexdigest()[:8], 16))


@dataclass
class _Stats:
    totals: Counter[str] = field(default_factory=Counter)
    per_route: Counter[str] = field(default_factory=Counter)
    per_protocol: Counter[str] = field(default_factory=Counter)
    per_status: Counter[str] = field(default_factory=Counter)
    throttled_per_route: Counter[str] = field(default_factory=Counter)


class SimulatorState:
    """
    Everything the simulator remembers, guarded by one lock (uvicorn thread vs test thread).

    :param config: the startup configuration (``reset`` returns to it).
    :param clock: the time source (default: the wall clock).
    """

    def __init__(self, config: SimulatorConfig | None = None, clock: Clock | None = None) -> None:
        self.initial_config = config or SimulatorConfig()
        self.clock: Clock = clock or SystemClock()
        self.link_secret = secrets.token_bytes(32)
        #: Set while the server stops, so injected delays and streams end at once.
        self.closing = threading.Event()
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._install(self.initial_config)

    def _install(self, config: SimulatorConfig) -> None:
        self._config = config
        self._tasks: dict[str, SimTask] = {}
        self._faults: list[ActiveFault] = []
        self._seen_markers: set[str] = set()
        self._stats = _Stats()
        self._rng = random.Random(config.random_seed)
        self._timing_rng = _timing_random(config.random_seed)
        self._queues: dict[tuple[str, str], ProcessingQueue] = {}
        self._windows: dict[tuple[str, str], RateWindow] = {}
        self._next_purge = 0.0
        for spec in config.faults:
            self._faults.append(self._activate(spec))

    def _activate(self, spec: FaultSpec, marker_key: str | None = None) -> ActiveFault:
        return ActiveFault(f"f{next(self._ids)}", spec, spec.count, marker_key)

    # configuration ------------------------------------------------------------------------------

    @property
    def config(self) -> SimulatorConfig:
        """The configuration in force."""
        with self._lock:
            return self._config

    def reset(self) -> None:
        """Forget tasks, counters, faults and markers, and return to the startup configuration."""
        with self._lock:
            self._install(self.initial_config)

    def configure(self, changes: dict[str, Any]) -> SimulatorConfig:
        """
        Change settings at runtime; ``faults`` replaces the server-wide faults.

        :param changes: field name -> value, as in :class:`SimulatorConfig`.
        :raises ValueError: for a fixed, unknown or invalid field.
        """
        with self._lock:
            new = self._config.updated(changes)
            if "faults" in changes:
                kept = [fault for fault in self._faults if fault.spec.task_id or fault.marker_key]
                self._faults = kept + [self._activate(spec) for spec in new.faults]
            if "random_seed" in changes:
                self._rng = random.Random(new.random_seed)
                self._timing_rng = _timing_random(new.random_seed)
            self._config = new
            return new

    # counters -----------------------------------------------------------------------------------

    def count_request(self, route: str, protocol: str) -> None:
        """
        Count an incoming API request.

        :param route: submit, get, cancel, list or video.
        :param protocol: dashscope or unified.
        """
        total = {"submit": "submissions", "get": "polls", "cancel": "cancels", "list": "lists"}
        with self._lock:
            self._stats.totals[total.get(route, "video_requests")] += 1
            self._stats.per_route[route] += 1
            self._stats.per_protocol[protocol] += 1

    def count(self, key: str, amount: int = 1) -> None:
        """
        Add to one of the totals (``bytes_served``, ``errors``, ...).

        :param key: the counter.
        :param amount: how much.
        """
        with self._lock:
            self._stats.totals[key] += amount

    def count_status(self, status: int) -> None:
        """
        Count an answer by HTTP status (4xx and 5xx also count as ``errors``).

        :param status: the status sent.
        """
        with self._lock:
            self._stats.per_status[str(status)] += 1
            if status >= 400:
                self._stats.totals["errors"] += 1

    def counters(self) -> dict[str, Any]:
        """
        Every counter, the live tasks per status, and per model: ``queue_length`` (PENDING now),
        ``processing`` (RUNNING now) and ``peak_processing`` (the most RUNNING at once for one API key).
        """
        with self._lock:
            now = self._schedule()
            stats = self._stats
            snapshot: dict[str, Any] = {key: stats.totals[key] for key in COUNTER_KEYS}
            snapshot["per_route"] = {route: stats.per_route[route] for route in ROUTES}
            snapshot["per_protocol"] = dict(stats.per_protocol)
            snapshot["per_status"] = dict(stats.per_status)
            snapshot["throttled_per_route"] = {route: stats.throttled_per_route[route] for route in THROTTLED_ROUTES}
            live = (view_of(task, now).status for task in self._tasks.values() if not task.expired(now))
            snapshot["tasks_by_status"] = dict(Counter(live))
            queue_length: Counter[str] = Counter()
            processing: Counter[str] = Counter()
            peak: dict[str, int] = {}
            for (_, model), queue in self._queues.items():
                queue_length[model] += len(queue.waiting)
                processing[model] += queue.processing(now)
                peak[model] = max(peak.get(model, 0), queue.peak)
            snapshot["queue_length"] = {model: queue_length[model] for model in peak}
            snapshot["processing"] = {model: processing[model] for model in peak}
            snapshot["peak_processing"] = peak
            return snapshot

    # limits -------------------------------------------------------------------------------------

    def throttle_submit(self, api_key: str, model: str) -> float | None:
        """
        Take a place in the submission rate of one account (API key) and model; counts a refusal.

        :param api_key: the submitting key.
        :param model: the model as submitted.
        :return: None when allowed, else seconds until a retry can pass.
        """
        with self._lock:
            key = api_key_id(api_key) + "/" + limit_key(model)
            return self._acquire(("submit", key), self._config.limits_for(model).submit_rps, "submit")

    def throttle_query(self, api_key: str, route: str) -> float | None:
        """
        Take a place in the query rate of one account (API key), shared by polls and lists; counts a refusal.

        :param api_key: the querying key.
        :param route: ``get`` or ``list`` (for ``throttled_per_route``).
        :return: None when allowed, else seconds until a retry can pass.
        """
        with self._lock:
            rate = self._config.query_qps
            return None if rate is None else self._acquire(("query", api_key_id(api_key)), rate, route)

    def _acquire(self, key: tuple[str, str], rate: float, route: str) -> float | None:
        window = self._windows.get(key)
        if window is None or window.rate != rate:
            window = self._windows[key] = RateWindow(rate)
        wait = window.acquire(self.clock.now())
        if wait is not None:
            self._stats.totals["throttled"] += 1
            self._stats.throttled_per_route[route] += 1
        return wait

    # faults -------------------------------------------------------------------------------------

    def add_fault(self, spec: FaultSpec) -> str:
        """
        Activate a fault.

        :param spec: what it does and which requests it hits.
        :return: its id.
        """
        with self._lock:
            fault = self._activate(spec)
            self._faults.append(fault)
            return fault.fault_id

    def remove_fault(self, fault_id: str) -> bool:
        """
        Deactivate one fault.

        :param fault_id: the id from :meth:`add_fault`.
        :return: whether it existed.
        """
        with self._lock:
            before = len(self._faults)
            self._faults = [fault for fault in self._faults if fault.fault_id != fault_id]
            return len(self._faults) != before

    def clear_faults(self) -> None:
        """Deactivate every fault (server-wide, per task and per marker)."""
        with self._lock:
            self._faults = []

    def faults(self) -> list[dict[str, Any]]:
        """The active faults."""
        with self._lock:
            return [fault.describe() for fault in self._faults]

    def take_fault(
        self,
        route: str,
        protocol: str,
        phase: str,
        task_id: str | None = None,
        marker_key: str | None = None,
        kinds: Iterable[str] = ANSWER_KINDS,
    ) -> FaultSpec | None:
        """
        Find the fault that hits this request, use one of its hits and count it.

        Faults scoped to a task or marker win over server-wide ones.

        :param route: the request's route.
        :param protocol: the request's wire flavour.
        :param phase: ``before`` (request not yet processed) or ``after`` (processed, answer pending).
        :param task_id: the task the request is about, if any.
        :param marker_key: only faults of this submission marker (None: only unscoped faults).
        :param kinds: the fault kinds to consider.
        """
        wanted = set(kinds)
        with self._lock:
            candidates = sorted(
                (
                    f
                    for f in self._faults
                    if f.spec.kind in wanted and f.matches(route, protocol, phase, task_id, marker_key)
                ),
                key=lambda f: f.spec.task_id is None,
            )
            for fault in candidates:
                if fault.spec.rate is not None and self._rng.random() >= fault.spec.rate:
                    continue
                self._use(fault)
                return fault.spec
            return None

    def _use(self, fault: ActiveFault) -> None:
        self._stats.totals["faults_injected"] += 1
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)

    def register_marker(self, marker: Marker) -> None:
        """
        Activate a marker's submission faults the first time the marker is seen.

        :param marker: the parsed marker.
        """
        with self._lock:
            if marker.key in self._seen_markers:
                return
            self._seen_markers.add(marker.key)
            self._faults.extend(self._activate(spec, marker.key) for spec in marker.submit_faults)

    # tasks --------------------------------------------------------------------------------------

    def create_task(self, request: SubmitRequest, protocol: str, headers: dict[str, str], api_key: str) -> SimTask:
        """
        Store a new task; its marker's task faults and any server-wide ``fail`` fault apply to it.

        :param request: the validated submission.
        :param protocol: the wire flavour it came on.
        :param headers: the received headers, Authorization masked.
        :param api_key: the key it was submitted with (only a pseudo id is kept).
        """
        with self._lock:
            config = self._config
            task_id = str(uuid.uuid4())
            scenario = self._scenario(request, protocol, task_id)
            key_id = api_key_id(api_key)
            now = self.clock.now()
            task = SimTask(
                task_id=task_id,
                request=request,
                scenario=scenario,
                protocol=protocol,
                headers=headers,
                api_key_id=key_id,
                region=config.region,
                submit_request_id=str(uuid.uuid4()),
                submitted_at=now,
                queue_key=(key_id, limit_key(request.model)),
                fetch=plan_fetch(request, now, config.fetch_inputs, config.fetch_audio),
            )
            self._tasks[task_id] = task
            self._queues.setdefault(task.queue_key, ProcessingQueue()).add(task)
            self._stats.totals["tasks_created"] += 1
            for spec in request.marker.task_faults if request.marker else ():
                self._faults.append(self._activate(spec.model_copy(update={"task_id": task_id})))
            self._schedule()
            return task

    def finish_fetch(self, task_id: str, results: Mapping[int, FetchResult], outcome: FetchOutcome) -> None:
        """
        Record that a task's inputs are fetched: it may take a slot from now, or it fails now without one.

        :param task_id: the task (gone after a reset: then nothing happens).
        :param results: input index -> what its fetch gave.
        :param outcome: what the inputs mean for the task.
        """
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or task.fetch is None or task.fetch.done:
                return
            if task.canceled_at is not None and outcome.failure is not None:
                outcome = FetchOutcome(None, None, outcome.output_size, outcome.input_video_seconds)
            task.fetch.finish(self.clock.now(), results, outcome)
            queue = self._queues.get(task.queue_key)
            if queue is not None:
                if outcome.failure is not None:
                    queue.remove(task)
                else:
                    queue.reorder()
            self._schedule()

    def fetch_view(self, task: SimTask) -> dict[str, Any] | None:
        """
        A task's inputs as the admin view shows them (``fetch`` and ``inputs``), or None without inputs.

        :param task: the task.
        """
        with self._lock:
            fetch = task.fetch
            if fetch is None:
                return None
            offset = self._config.utc_offset_hours
            described = fetch.describe(lambda epoch: format_time(epoch, offset))
            return {"fetch": described, "inputs": [record.to_dict() for record in fetch.records]}

    def fetch_done(self, task_id: str) -> bool | None:
        """
        Whether a task's inputs are all fetched (None when the task is not stored; True without inputs).

        :param task_id: the task.
        """
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return None
            return task.fetch is None or task.fetch.done

    def _scenario(self, request: SubmitRequest, protocol: str, task_id: str) -> TaskScenario:
        config = self._config
        # Draw both for every task, so a seed gives the same timings whatever the settings and markers say.
        drawn_pending = realistic_pending(self._timing_rng) * config.time_scale
        drawn_running = realistic_running(self._timing_rng, request.size, request.duration) * config.time_scale
        scenario = TaskScenario(
            outcome="SUCCEEDED",
            pending=drawn_pending if config.pending_seconds is None else config.pending_seconds,
            running=drawn_running if config.running_seconds is None else config.running_seconds,
            video_bytes=config.video_bytes,
            link_ttl=config.link_ttl_seconds,
            task_ttl=config.task_ttl_seconds,
        )
        fail = self.take_fault("submit", protocol, "after", task_id, kinds=("fail",))
        if fail is not None:
            scenario = scenario.merged(TaskScenario(outcome="FAILED", code=fail.error_code, message=fail.message))
        return scenario.merged(request.marker.scenario) if request.marker else scenario

    def update_task(self, task_id: str, changes: TaskScenario) -> SimTask | None:
        """
        Change a task's scenario after submission (timings, outcome, TTLs, video size).

        :param task_id: the task.
        :param changes: the fields to change.
        :return: the task, or None when unknown.
        """
        with self._lock:
            task = self._tasks.get(task_id)
            if task is not None:
                task.scenario = task.scenario.merged(changes)
                queue = self._queues.get(task.queue_key)
                if queue is not None and task.slot_at is None:
                    queue.reorder()
            return task

    def view(self, task_id: str) -> TaskView | None:
        """
        A task as of now, or None when unknown or past its TTL (the API answers UNKNOWN).

        :param task_id: the task.
        """
        with self._lock:
            now = self._schedule()
            task = self._tasks.get(task_id)
            return None if task is None or task.expired(now) else view_of(task, now)

    def cancel(self, task_id: str) -> bool:
        """
        Cancel a PENDING task (counts ``tasks_canceled``).

        :param task_id: the task.
        :return: False when the task is unknown, expired or no longer PENDING.
        """
        with self._lock:
            now = self._schedule()
            task = self._tasks.get(task_id)
            if task is None or task.expired(now) or view_of(task, now).status != "PENDING":
                return False
            task.canceled_at = now
            queue = self._queues.get(task.queue_key)
            if queue is not None:
                queue.remove(task)
            self._stats.totals["tasks_canceled"] += 1
            return True

    def succeeded_task(self, task_id: str) -> SimTask | None:
        """
        A SUCCEEDED task whose video can be served (the video outlives the task's TTL).

        :param task_id: the task.
        """
        with self._lock:
            now = self._schedule()
            task = self._tasks.get(task_id)
            return task if task is not None and view_of(task, now).status == "SUCCEEDED" else None

    def list_views(self) -> list[TaskView]:
        """Every live (not expired) task as of now, newest first."""
        with self._lock:
            now = self._schedule()
            live = [view_of(task, now) for task in self._tasks.values() if not task.expired(now)]
            return live[::-1]

    def inspect(self, task_id: str) -> tuple[TaskView, bool] | None:
        """
        A stored task as of now, expired or not, for the debug view.

        :param task_id: the task.
        :return: (its view, whether it is past its TTL), or None when not stored.
        """
        with self._lock:
            now = self._schedule()
            task = self._tasks.get(task_id)
            return None if task is None else (view_of(task, now), task.expired(now))

    def inspect_all(self) -> list[tuple[TaskView, bool]]:
        """Every stored task as of now, oldest first, with whether it is past its TTL (debug view)."""
        with self._lock:
            now = self._schedule()
            return [(view_of(task, now), task.expired(now)) for task in self._tasks.values()]

    def now(self) -> float:
        """The simulator's current time."""
        return self.clock.now()

    # scheduling ---------------------------------------------------------------------------------

    def _schedule(self) -> float:
        """Hand out processing slots, per account and model, in order, as of now; drop long-dead tasks."""
        now = self.clock.now()
        if now >= self._next_purge:
            self._purge(now)
            self._next_purge = now + 1.0
        for (_, model), queue in self._queues.items():
            if queue.waiting:
                queue.fill(self._config.limits_for(model).concurrency, now)
        return now

    def _purge(self, now: float) -> None:
        def dead(task: SimTask) -> bool:
            link, ended = task.link_expires(), task.ended_at
            return task.expired(now) and (link is None or now > link) and ended is not None and ended < now

        for task_id in [task_id for task_id, task in self._tasks.items() if dead(task)]:
            del self._tasks[task_id]


def _timing_random(seed: int | None) -> random.Random:
    """The random source of the timing draws, apart from the faults' so one does not shift the other."""
    return random.Random(None if seed is None else f"timing:{seed}")
