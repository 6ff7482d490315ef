"""Settings of the Wan simulator: server-wide config, fault specs and per-task scenarios.

Plain pydantic models, so the constructor, the CLI, the admin API and prompt markers share one validation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from airflow_provider_wan.models import ACCOUNT_QUERY_QPS, get_capability
from airflow_provider_wan.simulator.wire import code_for_status

Protocol = Literal["dashscope", "unified"]
Route = Literal["submit", "get", "cancel", "list", "video"]
FaultRoute = Literal["submit", "get", "cancel", "list", "video", "any"]
FaultKind = Literal["error", "drop", "latency", "html", "truncate", "redirect", "body", "fail"]
Outcome = Literal["SUCCEEDED", "FAILED"]

ROUTES: tuple[Route, ...] = ("submit", "get", "cancel", "list", "video")
PROTOCOLS: tuple[Protocol, ...] = ("dashscope", "unified")
DAY = 86_400.0
#: The ``model_limits`` key that applies to every model.
ALL_MODELS = "*"
#: Account limits of a model outside the capability table (``allow_unknown_models``): 5 submissions/s, 5 at once.
UNKNOWN_MODEL_SUBMIT_RPS = 5.0
UNKNOWN_MODEL_CONCURRENCY = 5
DEFAULT_FAIL_CODE = "InternalError.Algo"
MIB = 1024 * 1024

#: The HTTP status each fault kind answers with unless ``status`` is given.
DEFAULT_FAULT_STATUS: dict[str, int] = {
    "error": 500,
    "drop": 200,
    "latency": 200,
    "html": 200,
    "truncate": 200,
    "redirect": 302,
    "body": 200,
    "fail": 200,
}


class FaultSpec(BaseModel):
    """
    One injected failure, matched against incoming requests.

    :param route: which route it hits: ``submit``, ``get`` (poll), ``cancel``, ``list``, ``video`` or ``any``.
    :param kind: ``error`` (status + code body), ``drop`` (connection closed mid-answer), ``latency``
        (answer delayed by ``latency`` seconds), ``html`` (a non-JSON page, status 200 by default; on the
        video route a non-MP4 body), ``truncate`` (Content-Length announced, half the body sent, connection
        closed), ``redirect`` (302 to ``location``), ``body`` (answers ``body`` as it is, with ``status`` and
        ``content_type``: e.g. a 200 JSON body without ``output.task_id``), ``fail`` (submit only: the task is
        created and ends FAILED with ``code``/``message``).
    :param status: the HTTP status (default per kind: error 500, redirect 302, others 200).
    :param code: the error code for ``error`` and ``fail`` (default: the usual code of ``status``, e.g.
        429 Throttling.RateQuota, 500 InternalError, 503 ServiceUnavailable; ``InternalError.Algo`` for ``fail``).
    :param message: the error message; default: the documented message of ``code``.
    :param retry_after: seconds sent in a ``Retry-After`` header with ``error``.
    :param count: hit only the next N matching requests (deterministic; preferred in tests).
    :param rate: hit each matching request with this probability (0..1). Without count or rate: every one.
    :param phase: ``before`` (the request is not processed: no task is created) or ``after`` (the request
        is processed - for submit the task IS created - and then its answer is lost or replaced).
        ``truncate`` and ``fail`` always act after.
    :param latency: seconds of delay for ``latency``.
    :param location: the redirect target for ``redirect``.
    :param body: the page served by ``html`` (default: a gateway error page), or the body served by ``body``
        (required; a JSON object or list is serialised).
    :param content_type: the Content-Type of a ``body`` answer (default ``application/json``).
    :param task_id: hit only requests about this task (poll, cancel, video).
    :param protocol: hit only this wire flavour (``dashscope`` or ``unified``).
    """

    model_config = ConfigDict(extra="forbid")

    route: FaultRoute
    kind: FaultKind = "error"
    status: int | None = Field(default=None, ge=100, le=599)
    code: str | None = None
    message: str | None = None
    retry_after: float | None = Field(default=None, ge=0)
    count: int | None = Field(default=None, ge=1)
    rate: float | None = Field(default=None, ge=0, le=1)
    phase: Literal["before", "after"] = "before"
    latency: float = Field(default=0.0, ge=0)
    location: str | None = None
    body: str | None = None
    content_type: str = "application/json"
    task_id: str | None = None
    protocol: Protocol | None = None

    @field_validator("body", mode="before")
    @classmethod
    def _body_text(cls, value: Any) -> Any:
        return json.dumps(value) if isinstance(value, (dict, list)) else value

    @model_validator(mode="after")
    def _consistent(self) -> FaultSpec:
        if self.count is not None and self.rate is not None:
            raise ValueError("give count or rate, not both")
        if self.kind == "redirect" and not self.location:
            raise ValueError("a redirect fault needs a location")
        if self.kind == "body" and self.body is None:
            raise ValueError("a body fault needs a body")
        if self.kind == "fail" and self.route != "submit":
            raise ValueError("a fail fault belongs to the submit route")
        if self.kind in ("truncate", "fail"):
            object.__setattr__(self, "phase", "after")
        return self

    @property
    def http_status(self) -> int:
        """The status this fault answers with."""
        return self.status if self.status is not None else DEFAULT_FAULT_STATUS[self.kind]

    @property
    def error_code(self) -> str:
        """The code this fault reports."""
        if self.code:
            return self.code
        return DEFAULT_FAIL_CODE if self.kind == "fail" else code_for_status(self.http_status)


class TaskScenario(BaseModel):
    """
    How one task behaves; unset fields take the server-wide value when the task is created.

    :param outcome: ``SUCCEEDED`` or ``FAILED`` once running is over.
    :param code: the failure code when FAILED (default ``InternalError.Algo``).
    :param message: the failure message (default: the documented message of ``code``).
    :param pending: seconds PENDING before the task may take a processing slot (time waiting in the
        account's queue for a free slot comes on top).
    :param running: seconds RUNNING (processing, holding one of the account's slots for the model).
    :param video_bytes: serve a synthetic video of this many bytes instead of the rendered MP4.
    :param link_ttl: seconds the signed video link stays valid after the task ends.
    :param task_ttl: seconds after submission when the task turns UNKNOWN.
    """

    model_config = ConfigDict(extra="forbid")

    outcome: Outcome | None = None
    code: str | None = None
    message: str | None = None
    pending: float | None = Field(default=None, ge=0)
    running: float | None = Field(default=None, ge=0)
    video_bytes: int | None = Field(default=None, ge=0)
    link_ttl: float | None = Field(default=None, ge=0)
    task_ttl: float | None = Field(default=None, ge=0)

    def merged(self, other: TaskScenario) -> TaskScenario:
        """
        Return this scenario with every field that ``other`` sets replaced.

        :param other: the overriding scenario.
        """
        return self.model_copy(update=other.model_dump(exclude_unset=True))


#: Fields that shape the routes, fixed once the app is built.
STATIC_FIELDS = frozenset({"prefix", "protocols"})
#: Input-only shorthands for ``model_limits["*"]``: ``submit_rps=2`` is ``model_limits={"*": {"submit_rps": 2}}``.
LIMIT_SHORTHANDS = {"submit_rps": "submit_rps", "max_concurrent_tasks": "concurrency", "concurrency": "concurrency"}


class ModelLimit(BaseModel):
    """
    An override of one model's account limits (an account with raised quotas); unset fields keep the table's.

    :param submit_rps: task submissions per second per API key for the model; beyond, 429 Throttling.RateQuota.
    :param concurrency: tasks of the model processing (RUNNING) at once per API key; later ones wait PENDING.
    """

    model_config = ConfigDict(extra="forbid")

    submit_rps: float | None = Field(default=None, gt=0)
    concurrency: int | None = Field(default=None, ge=1)


@dataclass(frozen=True)
class AccountLimits:
    """
    The limits in force for one model, per API key (the simulator treats one key as one account).

    :param submit_rps: submissions per second.
    :param concurrency: tasks processing at once.
    """

    submit_rps: float
    concurrency: int


def limit_key(model: str) -> str:
    """
    The name limits are kept under: ``*``, the canonical name of a known model (aliases share limits and
    queues), or the name as given.

    :param model: a model name as submitted or configured.
    """
    model = model.strip()
    cap = get_capability(model) if model != ALL_MODELS else None
    return cap.name if cap else model


class SimulatorConfig(BaseModel):
    """
    Server-wide behaviour of the simulator. Everything but ``prefix``/``protocols`` can change at runtime.

    Account limits are on by default and per API key (one key = one account): each model's ``submit_rps`` and
    ``concurrency`` come from the provider's capability table (5/5 for wan2.5-2.6, 2/2 for wan2.2 and wan2.1, 5/5
    for an allowed unknown model) unless ``model_limits`` overrides them; queries are limited to ``query_qps``.

    :param prefix: the native API prefix (``/api/v1``; a gateway layout uses ``/qwen/api/v1``).
    :param protocols: wire flavours to serve: ``dashscope`` (native) and/or ``unified`` (``/v2/videos/...``).
    :param api_keys: accepted keys; empty means any non-empty bearer key.
    :param pending_seconds: seconds a task stays PENDING before it may take a processing slot (queue time for
        a free slot comes on top); None: a realistic draw of 2-10 s, times ``time_scale``.
    :param running_seconds: seconds a task stays RUNNING; None: a realistic draw over 60-300 s (longer for
        bigger and longer videos), times ``time_scale``.
    :param time_scale: factor applied to the realistic draws only (0.01 runs 100 times faster); explicit
        ``pending_seconds``/``running_seconds`` and prompt markers are taken as they are.
    :param task_ttl_seconds: seconds after submission when a task answers UNKNOWN (real: 24 h).
    :param link_ttl_seconds: seconds a video link stays valid after the task ends (real: 24 h).
    :param query_qps: task queries (``GET /tasks/{id}``, ``GET /tasks``, the unified ``GET``) per second per API
        key, over every client; beyond, 429 Throttling.RateQuota (DashScope: 20). None: unlimited (benchmarks
        measuring offered load only; DashScope always limits).
    :param model_limits: per-model overrides of the account limits, keyed by model name or ``*`` for every
        model (a model's own entry wins over ``*``, field by field), e.g. ``{"*": {"concurrency": 1000}}``.
        The input shorthands ``submit_rps``, ``concurrency`` and ``max_concurrent_tasks`` set ``*``.
    :param video_bytes: serve synthetic videos of this size instead of the rendered MP4 (None: rendered).
    :param allow_unknown_models: accept models missing from the capability table (wan2.6 usage shape, 5/5 limits).
    :param public_url: root URL written into video links (default: the URL the request came in on).
    :param utc_offset_hours: time zone of the ``YYYY-MM-DD HH:mm:ss.SSS`` timestamps (Beijing: 8).
    :param region: the region shown in task lists.
    :param random_seed: seed for rate-based faults and the realistic timing draws (None: unpredictable).
    :param chunk_bytes: size of each streamed video chunk.
    :param faults: server-wide faults active from the start.
    :param fetch_inputs: fetch every image and video input of a task as DashScope does, and fail the task on what
        it cannot read (on by default). Off: inputs are taken unread (any URL passes, tier-shape videos are 16:9).
    :param fetch_audio: fetch soundtracks (``audio_url``, wan2.7's ``driving_audio``) too and check their format and
        size, as DashScope does (default on; off: taken unread).
    :param fetch_timeout_seconds: the time one input may take to download (DashScope's window is about 180 s);
        beyond, the task fails "Failed to download the media resource".
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    prefix: str = "/api/v1"
    protocols: tuple[Protocol, ...] = PROTOCOLS
    api_keys: tuple[str, ...] = ()
    pending_seconds: float | None = Field(default=None, ge=0)
    running_seconds: float | None = Field(default=None, ge=0)
    time_scale: float = Field(default=1.0, gt=0)
    task_ttl_seconds: float = Field(default=DAY, ge=0)
    link_ttl_seconds: float = Field(default=DAY, ge=0)
    query_qps: float | None = Field(default=ACCOUNT_QUERY_QPS, gt=0)
    model_limits: dict[str, ModelLimit] = Field(default_factory=dict)
    video_bytes: int | None = Field(default=None, ge=0)
    allow_unknown_models: bool = False
    public_url: str | None = None
    utc_offset_hours: float = 8.0
    region: str = "cn-beijing"
    random_seed: int | None = None
    chunk_bytes: int = Field(default=MIB, ge=1024)
    faults: tuple[FaultSpec, ...] = ()
    fetch_inputs: bool = True
    fetch_audio: bool = True
    fetch_timeout_seconds: float = Field(default=180.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _fold_limit_shorthands(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not LIMIT_SHORTHANDS.keys() & data.keys():
            return data
        data = dict(data)
        limits = {key: dict(value) if isinstance(value, dict) else value for key, value in _limits_dict(data)}
        wildcard = limits.setdefault(ALL_MODELS, {})
        for shorthand, name in LIMIT_SHORTHANDS.items():
            if shorthand in data:
                value = data.pop(shorthand)
                if isinstance(wildcard, dict):
                    wildcard[name] = value
        data["model_limits"] = limits
        return data

    @field_validator("model_limits", mode="before")
    @classmethod
    def _limit_keys(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        merged: dict[str, Any] = {}
        for model, limit in value.items():
            if not isinstance(model, str) or not model.strip():
                raise ValueError("model_limits keys are model names or '*'")
            merged[limit_key(model)] = limit
        return merged

    @field_validator("prefix")
    @classmethod
    def _prefix_shape(cls, value: str) -> str:
        value = "/" + value.strip().strip("/")
        return "" if value == "/" else value

    @field_validator("protocols", mode="before")
    @classmethod
    def _protocols_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not value:
            raise ValueError("serve at least one protocol: dashscope, unified")
        return tuple(dict.fromkeys(value))

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys_list(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("public_url")
    @classmethod
    def _public_url_shape(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else None

    def limits_for(self, model: str) -> AccountLimits:
        """
        The account limits of a model: its ``model_limits`` entry, then ``*``, then the capability table.

        :param model: the model name as submitted (any accepted spelling).
        """
        cap = get_capability(model)
        own = self.model_limits.get(limit_key(model), ModelLimit())
        every = self.model_limits.get(ALL_MODELS, ModelLimit())
        table_rps = cap.submit_rps if cap else UNKNOWN_MODEL_SUBMIT_RPS
        table_concurrency = cap.concurrency if cap else UNKNOWN_MODEL_CONCURRENCY
        return AccountLimits(
            submit_rps=own.submit_rps or every.submit_rps or table_rps,
            concurrency=own.concurrency or every.concurrency or table_concurrency,
        )

    def updated(self, changes: dict[str, Any]) -> SimulatorConfig:
        """
        Return a validated copy with ``changes`` applied (the runtime ``configure`` path).

        ``model_limits`` changes merge into the current overrides model by model (a model set to ``None`` drops
        its override); the shorthands ``submit_rps``/``concurrency``/``max_concurrent_tasks`` change ``*``.

        :param changes: field name -> new value; ``prefix`` and ``protocols`` are refused.
        :raises ValueError: for a fixed field, an unknown field or an invalid value.
        """
        fixed = sorted(STATIC_FIELDS & set(changes))
        if fixed:
            raise ValueError(f"{', '.join(fixed)} cannot change at runtime; restart the simulator")
        current = self.model_dump()
        if isinstance(changes.get("model_limits"), dict):
            limits = dict(current["model_limits"])
            for model, limit in changes["model_limits"].items():
                key = limit_key(model) if isinstance(model, str) else model
                if limit is None:
                    limits.pop(key, None)
                else:
                    limits[key] = limit
            changes = {**changes, "model_limits": limits}
        return SimulatorConfig.model_validate({**current, **changes})


def _limits_dict(data: dict[str, Any]) -> list[tuple[str, Any]]:
    limits = data.get("model_limits") or {}
    if isinstance(limits, ModelLimit):
        return []
    if not isinstance(limits, dict):
        raise ValueError("model_limits must map model names to {submit_rps, concurrency}")
    return [
        (limit_key(key), value.model_dump(exclude_none=True) if isinstance(value, ModelLimit) else value)
        for key, value in limits.items()
    ]
