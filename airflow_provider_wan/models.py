"""The Wan text-to-video request, the per-model capability table, and the normalised task result.

Pure data and validation: nothing here knows about HTTP or Airflow.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from airflow_provider_wan.exceptions import WanRequestValidationError

log = logging.getLogger(__name__)

SEED_MIN = 0
SEED_MAX = 2_147_483_647
NEGATIVE_PROMPT_MAX = 500
AUDIO_URL_SCHEMES = ("http", "https", "oss")
AUDIO_URL_SUFFIXES = (".wav", ".mp3")

#: Size tiers: tier name -> {aspect ratio: "W*H"} (reference section 6).
SIZE_TIERS: dict[str, dict[str, str]] = {
    "480P": {"16:9": "832*480", "9:16": "480*832", "1:1": "624*624"},
    "720P": {
        "16:9": "1280*720",
        "9:16": "720*1280",
        "1:1": "960*960",
        "4:3": "1088*832",
        "3:4": "832*1088",
    },
    "1080P": {
        "16:9": "1920*1080",
        "9:16": "1080*1920",
        "1:1": "1440*1440",
        "4:3": "1632*1248",
        "3:4": "1248*1632",
    },
}
SIZE_TO_TIER: dict[str, str] = {size: tier for tier, sizes in SIZE_TIERS.items() for size in sizes.values()}


class TaskStatus(str, Enum):
    """A DashScope task status (``output.task_status``)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        """Whether the task can no longer change (UNKNOWN: expired after 24 h or never existed here)."""
        return self in _TERMINAL

    @property
    def is_active(self) -> bool:
        """Whether the task is still queued or generating."""
        return not self.is_terminal


_TERMINAL = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELED, TaskStatus.UNKNOWN})


@dataclass(frozen=True)
class ModelCapability:
    """
    What one Wan text-to-video model accepts.

    :param name: the canonical model name sent to DashScope.
    :param tiers: the size tiers the model renders (keys of :data:`SIZE_TIERS`).
    :param default_size: the size DashScope uses when none is given.
    :param durations: the allowed ``duration`` values in seconds.
    :param default_duration: the duration DashScope uses when none is given.
    :param prompt_max: the prompt limit in characters (DashScope truncates silently beyond it).
    :param audio: whether the model can add sound (auto-dubbing or ``audio_url``).
    :param multi_shot: whether ``shot_type="multi"`` is supported.
    :param usage_shape: ``"v26"`` (duration/SR/size) or ``"legacy"`` (video_duration/video_ratio).
    :param returns_actual_prompt: whether a rewritten ``actual_prompt`` comes back when prompt_extend is on.
    :param submit_rps: DashScope's task submissions per second for this model, per account (rate-limit page).
    :param concurrency: tasks of this model DashScope processes at once per account; later ones wait PENDING.
    :param aliases: other spellings accepted for this model.
    """

    name: str
    tiers: tuple[str, ...]
    default_size: str
    durations: tuple[int, ...]
    default_duration: int
    prompt_max: int
    audio: bool
    multi_shot: bool
    usage_shape: Literal["v26", "legacy"]
    returns_actual_prompt: bool
    submit_rps: float = 5.0
    concurrency: int = 5
    aliases: tuple[str, ...] = ()

    @property
    def sizes(self) -> tuple[str, ...]:
        """Every concrete ``W*H`` size this model accepts."""
        return tuple(size for tier in self.tiers for size in SIZE_TIERS[tier].values())

    def describe_durations(self) -> str:
        """The allowed durations in words, for error messages."""
        ds = self.durations
        if len(ds) == 1:
            return f"only {ds[0]}"
        if list(ds) == list(range(ds[0], ds[-1] + 1)) and len(ds) > 2:
            return f"an integer from {ds[0]} to {ds[-1]}"
        return "one of " + ", ".join(str(d) for d in ds)


#: The capability table: one row per model (reference section 6). A new model is a new row.
#: Account limits (``submit_rps``, ``concurrency``) are Alibaba's rate-limit page, per account and model: 5/5 for
#: wan2.5-2.7, 2/2 for wan2.2-t2v-plus and wan2.1. The query API's 20 requests/s is per account, for all models.
CAPABILITIES: tuple[ModelCapability, ...] = (
    ModelCapability(
        name="wan2.6-t2v",
        tiers=("720P", "1080P"),
        default_size="1920*1080",
        durations=tuple(range(2, 16)),
        default_duration=5,
        prompt_max=1500,
        audio=True,
        multi_shot=True,
        usage_shape="v26",
        returns_actual_prompt=False,
    ),
    ModelCapability(
        name="wan2.6-t2v-us",
        tiers=("720P", "1080P"),
        default_size="1920*1080",
        durations=(5, 10),
        default_duration=5,
        prompt_max=1500,
        audio=True,
        multi_shot=True,
        usage_shape="v26",
        returns_actual_prompt=False,
    ),
    ModelCapability(
        name="wan2.5-t2v-preview",
        tiers=("480P", "720P", "1080P"),
        default_size="1920*1080",
        durations=(5, 10),
        default_duration=5,
        prompt_max=1500,
        audio=True,
        multi_shot=False,
        usage_shape="legacy",
        returns_actual_prompt=True,
    ),
    ModelCapability(
        name="wan2.2-t2v-plus",
        tiers=("480P", "1080P"),
        default_size="1920*1080",
        durations=(5,),
        default_duration=5,
        prompt_max=800,
        audio=False,
        multi_shot=False,
        usage_shape="legacy",
        returns_actual_prompt=True,
        submit_rps=2.0,
        concurrency=2,
    ),
    ModelCapability(
        name="wanx2.1-t2v-turbo",
        tiers=("480P", "720P"),
        default_size="1280*720",
        durations=(5,),
        default_duration=5,
        prompt_max=800,
        audio=False,
        multi_shot=False,
        usage_shape="legacy",
        returns_actual_prompt=True,
        submit_rps=2.0,
        concurrency=2,
        aliases=("wan2.1-t2v-turbo",),
    ),
    ModelCapability(
        name="wanx2.1-t2v-plus",
        tiers=("720P",),
        default_size="1280*720",
        durations=(5,),
        default_duration=5,
        prompt_max=800,
        audio=False,
        multi_shot=False,
        usage_shape="legacy",
        returns_actual_prompt=True,
        submit_rps=2.0,
        concurrency=2,
        aliases=("wan2.1-t2v-plus",),
    ),
)

_BY_NAME: dict[str, ModelCapability] = {name: cap for cap in CAPABILITIES for name in (cap.name, *cap.aliases)}
KNOWN_MODELS: tuple[str, ...] = tuple(_BY_NAME)
#: DashScope's task query limit (GET /tasks/{id} and GET /tasks), per account, shared by every client.
ACCOUNT_QUERY_QPS = 20.0
DEFAULT_MODEL = "wan2.6-t2v"


def get_capability(model: str) -> ModelCapability | None:
    """Return the capability row for ``model`` (any accepted spelling), or None for a model we do not know."""
    return _BY_NAME.get(model.strip().lower())


_SIZE_RE = re.compile(r"^\s*(\d+)\s*[*xX×]\s*(\d+)\s*$")


def normalize_size(value: str) -> str:
    """
    Turn what a user types (``1280x720``, ``1280×720``, ``1280 * 720``) into DashScope's ``1280*720``.

    :param value: the size as typed.
    :raises ValueError: when the value is not ``W*H``.
    """
    match = _SIZE_RE.match(value)
    if not match:
        raise ValueError(
            f"size={value!r} is not a size; use width*height such as '1280*720' "
            f"(or resolution='720P' with aspect_ratio='16:9')"
        )
    return f"{int(match.group(1))}*{int(match.group(2))}"


def _size_from_tier(resolution: str, aspect_ratio: str) -> str:
    tier = resolution.strip().upper()
    if tier not in SIZE_TIERS:
        raise ValueError(f"resolution={resolution!r} is not a tier; allowed: {', '.join(SIZE_TIERS)}")
    ratio = aspect_ratio.strip().replace("/", ":")
    sizes = SIZE_TIERS[tier]
    if ratio not in sizes:
        raise ValueError(f"aspect_ratio={aspect_ratio!r} is not available at {tier}; allowed: {', '.join(sizes)}")
    return sizes[ratio]


class WanVideoRequest(BaseModel):
    """
    One text-to-video generation, validated against the model's capabilities before any HTTP request.

    :param model: the Wan model; unknown (newer) models are passed through with a warning.
    :param prompt: what the video shows; required and limited by the model (1500 or 800 characters).
    :param negative_prompt: what the video must not show (at most 500 characters).
    :param size: ``W*H`` (``1280x720`` and ``1280×720`` are accepted too).
    :param resolution: a tier (``480P``, ``720P``, ``1080P``) to combine with ``aspect_ratio``
        instead of ``size``.
    :param aspect_ratio: ``16:9``, ``9:16``, ``1:1``, ``4:3`` or ``3:4``, used with ``resolution``.
    :param duration: seconds of video (billed per second); allowed values depend on the model.
    :param prompt_extend: let DashScope rewrite the prompt (its default is on).
    :param watermark: add the "AI-generated" watermark (its default is off).
    :param seed: an integer in [0, 2147483647].
    :param audio: auto-dubbing on or off (wan2.5 and wan2.6 only).
    :param audio_url: an http(s) or oss:// URL of a .wav or .mp3 soundtrack (wan2.5 and wan2.6 only).
    :param shot_type: ``single`` or ``multi`` (multi-shot narrative, wan2.6 with prompt_extend on).
    :param extra_input: further ``input`` fields, passed through verbatim.
    :param extra_parameters: further ``parameters`` fields, passed through verbatim.
    :param truncate_prompt: cut over-long prompts to the model's limit instead of refusing them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = DEFAULT_MODEL
    prompt: str
    negative_prompt: str | None = None
    size: str | None = None
    resolution: str | None = None
    aspect_ratio: str | None = None
    duration: int | None = None
    prompt_extend: bool | None = None
    watermark: bool | None = None
    seed: int | None = None
    audio: bool | None = None
    audio_url: str | None = None
    shot_type: Literal["single", "multi"] | None = None
    extra_input: dict[str, Any] = Field(default_factory=dict)
    extra_parameters: dict[str, Any] = Field(default_factory=dict)
    truncate_prompt: bool = False

    @field_validator("model")
    @classmethod
    def _model_not_empty(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("model='' is empty; give a Wan model such as 'wan2.6-t2v'")
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt is empty; describe the video to generate")
        return value

    @field_validator("duration", "seed", mode="before")
    @classmethod
    def _not_a_bool(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic would read True as 1: a flag passed where a number belongs is a mistake worth naming.
        if isinstance(value, bool):
            kind = "a number of seconds" if info.field_name == "duration" else "an integer"
            raise ValueError(f"{info.field_name}={value!r} is a boolean; allowed: {kind}")
        return value

    @field_validator("shot_type", mode="before")
    @classmethod
    def _shot_type_lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("size")
    @classmethod
    def _size_format(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else normalize_size(value)

    @field_validator("seed")
    @classmethod
    def _seed_range(cls, value: int | None) -> int | None:
        if value is not None and not SEED_MIN <= value <= SEED_MAX:
            raise ValueError(f"seed={value} is out of range; allowed: an integer in [{SEED_MIN}, {SEED_MAX}]")
        return value

    @field_validator("duration")
    @classmethod
    def _duration_positive(cls, value: int | None) -> int | None:
        if value is not None and value <= 0:
            raise ValueError(f"duration={value} must be a positive number of seconds")
        return value

    @field_validator("audio_url")
    @classmethod
    def _audio_url_shape(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme.lower() not in AUDIO_URL_SCHEMES or not parts.netloc:
            raise ValueError(
                f"audio_url={_short(value)!r} is not a URL DashScope can fetch; allowed: http(s):// or oss:// URLs"
            )
        if not parts.path.lower().endswith(AUDIO_URL_SUFFIXES):
            raise ValueError(
                f"audio_url={_short(value)!r} does not name a .wav or .mp3 file; allowed formats: wav, mp3"
            )
        return value

    @classmethod
    def build(cls, *, skip_capabilities: bool = False, **fields: Any) -> WanVideoRequest:
        """
        Validate ``fields`` into a request, raising one readable error that names each bad parameter.

        :param skip_capabilities: check each field on its own but not against the model (the model is not known
            yet, for example because it is templated).
        :param fields: the request's fields; None values are treated as not given.
        """
        given = {k: v for k, v in fields.items() if v is not None}
        try:
            return cls.model_validate(given, context={"skip_capabilities": skip_capabilities})
        except ValidationError as err:
            raise WanRequestValidationError(_readable(err)) from None

    @model_validator(mode="after")
    def _check_against_model(self, info: ValidationInfo) -> WanVideoRequest:
        self._resolve_size()
        self._check_extras()
        if info.context and info.context.get("skip_capabilities"):
            return self
        cap = get_capability(self.model)
        if cap is None:
            log.warning(
                "Model %r is not in this provider's capability table (known: %s); passing it through "
                "with only generic checks.",
                self.model,
                ", ".join(c.name for c in CAPABILITIES),
            )
            return self
        self._check_size(cap)
        self._check_duration(cap)
        self._check_audio(cap)
        self._check_shot_type(cap)
        self._check_lengths(cap)
        return self

    def _resolve_size(self) -> None:
        if self.resolution is None and self.aspect_ratio is None:
            return
        cap = get_capability(self.model)
        default_tier = SIZE_TO_TIER.get(cap.default_size, "1080P") if cap else "1080P"
        derived = _size_from_tier(self.resolution or default_tier, self.aspect_ratio or "16:9")
        if self.size is not None and self.size != derived:
            raise ValueError(
                f"size={self.size!r} contradicts resolution={self.resolution!r} with "
                f"aspect_ratio={self.aspect_ratio!r} ({derived}); give one or the other"
            )
        object.__setattr__(self, "size", derived)

    def _check_extras(self) -> None:
        named_inputs = {"prompt", "negative_prompt", "audio_url"}
        named_params = {"size", "duration", "prompt_extend", "watermark", "seed", "audio", "shot_type"}
        for where, extras, named in (
            ("extra_input", self.extra_input, named_inputs),
            ("extra_parameters", self.extra_parameters, named_params),
        ):
            clash = sorted(set(extras) & named)
            if clash:
                raise ValueError(
                    f"{where} sets {', '.join(clash)}, which have their own arguments; "
                    f"pass {clash[0]}=... instead so it is validated"
                )

    def _check_size(self, cap: ModelCapability) -> None:
        if self.size is None or self.size in cap.sizes:
            return
        tier = SIZE_TO_TIER.get(self.size)
        if self.resolution is not None or self.aspect_ratio is not None:
            # The size was derived: name what the user passed, not a size they never typed.
            given = ", ".join(
                f"{name}={value!r}"
                for name, value in (("resolution", self.resolution), ("aspect_ratio", self.aspect_ratio))
                if value is not None
            )
            ratios = sorted({r for t in cap.tiers for r in SIZE_TIERS[t]})
            raise ValueError(
                f"{given} (size {self.size}) is not offered by model {self.model!r}; allowed: resolution "
                f"{' or '.join(cap.tiers)} with aspect_ratio {', '.join(ratios)}"
            )
        why = f" ({tier} is not offered by {cap.name})" if tier else ""
        raise ValueError(
            f"size={self.size!r} is not allowed for model {self.model!r}{why}; "
            f"allowed: {', '.join(cap.sizes)} ({'/'.join(cap.tiers)})"
        )

    def _check_duration(self, cap: ModelCapability) -> None:
        if self.duration is not None and self.duration not in cap.durations:
            raise ValueError(
                f"duration={self.duration} is not allowed for model {self.model!r}; "
                f"allowed: {cap.describe_durations()} seconds"
            )

    def _check_audio(self, cap: ModelCapability) -> None:
        if cap.audio:
            return
        if self.audio:
            raise ValueError(
                f"audio=True is not supported by model {self.model!r}, which makes silent video; "
                f"audio is available on: {', '.join(c.name for c in CAPABILITIES if c.audio)}"
            )
        if self.audio_url is not None:
            raise ValueError(
                f"audio_url is not supported by model {self.model!r}, which makes silent video; "
                f"audio_url is available on: {', '.join(c.name for c in CAPABILITIES if c.audio)}"
            )

    def _check_shot_type(self, cap: ModelCapability) -> None:
        if self.shot_type != "multi":
            return
        if not cap.multi_shot:
            raise ValueError(
                f"shot_type='multi' is not supported by model {self.model!r}; multi-shot is available on: "
                f"{', '.join(c.name for c in CAPABILITIES if c.multi_shot)}"
            )
        if self.prompt_extend is False:
            raise ValueError(
                "shot_type='multi' with prompt_extend=False would be silently ignored by DashScope; "
                "allowed: prompt_extend=True (or unset) for multi-shot"
            )

    def _check_lengths(self, cap: ModelCapability) -> None:
        for field, limit in (("prompt", cap.prompt_max), ("negative_prompt", NEGATIVE_PROMPT_MAX)):
            text = getattr(self, field)
            if text is None or len(text) <= limit:
                continue
            if self.truncate_prompt:
                log.warning("%s is %d characters; truncating to %s's limit of %d", field, len(text), cap.name, limit)
                object.__setattr__(self, field, text[:limit])
                continue
            raise ValueError(
                f"{field} is {len(text)} characters, over the limit of {limit} for model {self.model!r} "
                f"(DashScope would cut it silently); shorten it or pass truncate_prompt=True"
            )

    @property
    def capability(self) -> ModelCapability | None:
        """The capability row of this request's model, or None for an unknown model."""
        return get_capability(self.model)

    @property
    def effective_size(self) -> str | None:
        """The size the video will have: the one asked for, else the model's default."""
        cap = self.capability
        return self.size or (cap.default_size if cap else None)

    @property
    def effective_duration(self) -> int | None:
        """The seconds that will be billed on success: the duration asked for, else the model's default."""
        cap = self.capability
        return self.duration or (cap.default_duration if cap else None)

    def summary(self) -> dict[str, Any]:
        """A JSON-safe description for logs and manifests (the prompt is included; no secrets exist here)."""
        return {
            "model": self.model,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "size": self.effective_size,
            "duration": self.effective_duration,
            "prompt_extend": self.prompt_extend,
            "watermark": self.watermark,
            "seed": self.seed,
            "audio": self.audio,
            "audio_url": _strip_query(self.audio_url),
            "shot_type": self.shot_type,
            "extra_input": dict(self.extra_input),
            "extra_parameters": dict(self.extra_parameters),
        }


def _readable(err: ValidationError) -> str:
    problems = []
    for item in err.errors():
        field = ".".join(str(p) for p in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "value_error" or not field:
            problems.append(message)
        elif item["type"] == "missing":
            what = "describe the video to generate" if field == "prompt" else "give a value"
            problems.append(f"{field} is required (it was not given or is None); {what}")
        elif item["type"] == "extra_forbidden":
            problems.append(f"{field} is not a Wan request parameter; use extra_input or extra_parameters")
        else:
            problems.append(f"{field}={_short(str(item.get('input')))!r}: {message}")
    return "Invalid Wan video request: " + "; ".join(problems)


def _short(value: str, limit: int = 80) -> str:
    stripped = _strip_query(value) or ""
    return stripped if len(stripped) <= limit else stripped[: limit - 3] + "..."


def _strip_query(url: str | None) -> str | None:
    """Drop a URL's query string: presigned URLs carry credentials there."""
    if url is None:
        return None
    parts = urlsplit(url)
    return parts._replace(query="", fragment="").geturl() if parts.query else url


class WanUsage(BaseModel):
    """
    What DashScope counted for a successful task; wan2.6 and <=2.5 report different fields.

    :param duration: wan2.6: total seconds (input + output video).
    :param output_video_duration: wan2.6: seconds of generated video.
    :param input_video_duration: wan2.6: seconds of input video (0 for text-to-video).
    :param size: wan2.6: ``W*H`` of the output.
    :param SR: wan2.6: the resolution tier, for example 720.
    :param video_count: number of videos (1).
    :param video_duration: <=2.5: seconds of generated video.
    :param video_ratio: <=2.5: despite the name, the ``W*H`` size.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    duration: float | None = None
    output_video_duration: float | None = None
    input_video_duration: float | None = None
    size: str | None = None
    SR: int | None = None
    video_count: int | None = None
    video_duration: float | None = None
    video_ratio: str | None = None

    @field_validator("SR", mode="before")
    @classmethod
    def _sr_int(cls, value: Any) -> Any:
        # The Java SDK example shows "720" as a string.
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    @property
    def billed_seconds(self) -> float | None:
        """Seconds of generated video, whichever usage shape DashScope returned."""
        for value in (self.output_video_duration, self.video_duration, self.duration):
            if value is not None and not math.isnan(value):
                return value
        return None

    @property
    def output_size(self) -> str | None:
        """The ``W*H`` size of the generated video, whichever usage shape DashScope returned."""
        return self.size or self.video_ratio


class WanTask(BaseModel):
    """
    A DashScope task as read from ``GET /tasks/{task_id}``, normalised across wire flavours.

    :param task_id: the DashScope task id.
    :param task_status: PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED or UNKNOWN.
    :param video_url: the signed 24-hour link to the MP4 (SUCCEEDED only). A bearer secret: never log it.
    :param code: the failure code (FAILED only).
    :param message: the failure message (FAILED only).
    :param usage: what was billed (SUCCEEDED only).
    :param submit_time: when DashScope accepted the task (``YYYY-MM-DD HH:mm:ss.SSS``).
    :param scheduled_time: when generation started.
    :param end_time: when the task ended.
    :param orig_prompt: the prompt as submitted.
    :param actual_prompt: the rewritten prompt (prompt_extend on; never for wan2.6).
    :param request_id: the id of the HTTP exchange this was read from.
    """

    model_config = ConfigDict(extra="ignore")

    task_id: str
    task_status: TaskStatus
    video_url: str | None = Field(default=None, repr=False)
    code: str | None = None
    message: str | None = None
    usage: WanUsage | None = None
    submit_time: str | None = None
    scheduled_time: str | None = None
    end_time: str | None = None
    orig_prompt: str | None = None
    actual_prompt: str | None = None
    request_id: str | None = None

    def to_result(self) -> dict[str, Any]:
        """A JSON-safe dict for XCom: everything except the signed ``video_url``."""
        usage = self.usage
        return {
            "task_id": self.task_id,
            "task_status": self.task_status.value,
            "code": self.code,
            "message": self.message,
            "size": usage.output_size if usage else None,
            "billed_seconds": usage.billed_seconds if usage else None,
            "usage": usage.model_dump(exclude_none=True) if usage else None,
            "orig_prompt": self.orig_prompt,
            "actual_prompt": self.actual_prompt,
            "submit_time": self.submit_time,
            "scheduled_time": self.scheduled_time,
            "end_time": self.end_time,
            "request_id": self.request_id,
        }
