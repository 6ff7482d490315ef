"""Settings of the Wan simulator: server-wide config, fault specs and per-task scenarios.

Plain pydantic models, so the constructor, the CLI, the admin API and prompt markers share one validation.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from airflow_provider_wan.simulator.wire import code_for_status

Protocol = Literal["dashscope", "unified"]
Route = Literal["submit", "get", "cancel", "list", "video"]
FaultRoute = Literal["submit", "get", "cancel", "list", "video", "any"]
FaultKind = Literal["error", "drop", "latency", "html", "truncate", "redirect", "fail"]
Outcome = Literal["SUCCEEDED", "FAILED"]

ROUTES: tuple[Route, ...] = ("submit", "get", "cancel", "list", "video")
PROTOCOLS: tuple[Protocol, ...] = ("dashscope", "unified")
DAY = 86_400.0
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
    "fail": 200,
}


class FaultSpec(BaseModel):
    """
    One injected failure, matched against incoming requests.

    :param route: which route it hits: ``submit``, ``get`` (poll), ``cancel``, ``list``, ``video`` or ``any``.
    :param kind: ``error`` (status + code body), ``drop`` (connection closed mid-answer), ``latency``
        (answer delayed by ``latency`` seconds), ``html`` (a non-JSON page, status 200 by default; on the
        video route a non-MP4 body), ``truncate`` (Content-Length announced, half the body sent, connection
        closed), ``redirect`` (302 to ``location``), ``fail`` (submit only: the task is created and ends
        FAILED with ``code``/``message``).
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
    :param body: the page served by ``html`` (default: a gateway error page).
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
    task_id: str | None = None
    protocol: Protocol | None = None

    @model_validator(mode="after")
    def _consistent(self) -> FaultSpec:
        if self.count is not None and self.rate is not None:
            raise ValueError("give count or rate, not both")
        if self.kind == "redirect" and not self.location:
            raise ValueError("a redirect fault needs a location")
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
    :param pending: seconds PENDING once the task holds a concurrency slot.
    :param running: seconds RUNNING.
    :param video_bytes: serve a synthetic video of this many bytes instead of the sample MP4.
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


class SimulatorConfig(BaseModel):
    """
    Server-wide behaviour of the simulator. Everything but ``prefix``/``protocols`` can change at runtime.

    :param prefix: the native API prefix (``/api/v1``; a gateway layout uses ``/qwen/api/v1``).
    :param protocols: wire flavours to serve: ``dashscope`` (native) and/or ``unified`` (``/v2/videos/...``).
    :param api_keys: accepted keys; empty means any non-empty bearer key.
    :param pending_seconds: default seconds a task stays PENDING once it holds a slot.
    :param running_seconds: default seconds a task stays RUNNING.
    :param task_ttl_seconds: seconds after submission when a task answers UNKNOWN (real: 24 h).
    :param link_ttl_seconds: seconds a video link stays valid after the task ends (real: 24 h).
    :param submit_rps: submissions allowed per second (None: unlimited); over it, 429 Throttling.RateQuota.
    :param query_qps: task queries (poll + list) per second (None: unlimited; the real account limit is 20).
    :param max_concurrent_tasks: tasks generating at once (None: unlimited); later ones stay PENDING.
    :param video_bytes: serve synthetic videos of this size instead of the sample MP4 (None: the sample).
    :param allow_unknown_models: accept models missing from the capability table (wan2.6 usage shape).
    :param public_url: root URL written into video links (default: the URL the request came in on).
    :param utc_offset_hours: time zone of the ``YYYY-MM-DD HH:mm:ss.SSS`` timestamps (Beijing: 8).
    :param region: the region shown in task lists.
    :param random_seed: seed for rate-based faults (None: unpredictable).
    :param chunk_bytes: size of each streamed video chunk.
    :param faults: server-wide faults active from the start.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    prefix: str = "/api/v1"
    protocols: tuple[Protocol, ...] = PROTOCOLS
    api_keys: tuple[str, ...] = ()
    pending_seconds: float = Field(default=1.0, ge=0)
    running_seconds: float = Field(default=3.0, ge=0)
    task_ttl_seconds: float = Field(default=DAY, ge=0)
    link_ttl_seconds: float = Field(default=DAY, ge=0)
    submit_rps: float | None = Field(default=None, gt=0)
    query_qps: float | None = Field(default=None, gt=0)
    max_concurrent_tasks: int | None = Field(default=None, ge=1)
    video_bytes: int | None = Field(default=None, ge=0)
    allow_unknown_models: bool = False
    public_url: str | None = None
    utc_offset_hours: float = 8.0
    region: str = "cn-beijing"
    random_seed: int | None = None
    chunk_bytes: int = Field(default=MIB, ge=1024)
    faults: tuple[FaultSpec, ...] = ()

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

    def updated(self, changes: dict[str, Any]) -> SimulatorConfig:
        """
        Return a validated copy with ``changes`` applied (the runtime ``configure`` path).

        :param changes: field name -> new value; ``prefix`` and ``protocols`` are refused.
        :raises ValueError: for a fixed field, an unknown field or an invalid value.
        """
        fixed = sorted(STATIC_FIELDS & set(changes))
        if fixed:
            raise ValueError(f"{', '.join(fixed)} cannot change at runtime; restart the simulator")
        return SimulatorConfig.model_validate({**self.model_dump(), **changes})
