"""The Wan video request (text, image, first-and-last-frame and reference inputs), the per-model capability table,
and the normalised task result.

Pure data and validation: nothing here knows about HTTP or Airflow.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from airflow_provider_wan.exceptions import WanConfigurationError, WanRequestValidationError

log = logging.getLogger(__name__)

SEED_MIN = 0
SEED_MAX = 2_147_483_647
NEGATIVE_PROMPT_MAX = 500
AUDIO_URL_SCHEMES = ("http", "https", "oss", "s3")
#: The aspect ratios of the ``resolution`` + ``ratio`` request shape (wan2.7 and newer).
RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4")
#: Region names of the capability table (the connection's ``region``, see :mod:`airflow_provider_wan.settings`).
BEIJING, SINGAPORE, VIRGINIA, FRANKFURT = "beijing", "singapore", "virginia", "frankfurt"
REGION_NAMES = (SINGAPORE, BEIJING, VIRGINIA, FRANKFURT)

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
SIZE_TO_RATIO: dict[str, str] = {size: ratio for sizes in SIZE_TIERS.values() for ratio, size in sizes.items()}


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


#: How the picture is asked for: ``size`` (``W*H``), ``resolution`` (+ ``ratio``), or ``tier`` (``resolution`` only:
#: the aspect ratio follows the input image, as for image-to-video and first-and-last-frame models).
Shape = Literal["size", "resolution", "tier"]
#: What a model generates from: text, a first frame, a first and a last frame, or reference images and videos.
Family = Literal["t2v", "i2v", "kf2v", "r2v"]
FAMILY_NAMES: dict[str, str] = {
    "t2v": "text-to-video",
    "i2v": "image-to-video",
    "kf2v": "first-and-last-frame",
    "r2v": "reference-to-video",
}
#: The submit routes below the base URL: first-and-last-frame models have their own.
VIDEO_SYNTHESIS_ROUTE = "services/aigc/video-generation/video-synthesis"
IMAGE2VIDEO_ROUTE = "services/aigc/image2video/video-synthesis"
#: The request's media inputs, in the order they are sent.
INPUT_FIELDS = ("img_url", "first_frame_url", "last_frame_url", "reference_urls")
#: Where DashScope documents inputs it fetches: https (or http) URLs, presigned ones included, and ``oss://``
#: temporary uploads; ``s3://`` URIs are presigned by the operator before the request.
INPUT_URL_SCHEMES = ("http", "https", "oss", "s3")
#: Image inputs (first frames, last frames, reference images): formats by content, pixel bounds per side, bytes.
IMAGE_FORMATS = ("jpeg", "png", "bmp", "webp")
IMAGE_MIN_PX, IMAGE_MAX_PX = 360, 2000
IMAGE_MAX_BYTES = 10 * 1024 * 1024
#: Reference videos: formats by content and bytes (their 2-30 s length is checked by DashScope).
VIDEO_FORMATS = ("mp4", "mov")
VIDEO_MAX_BYTES = 100 * 1024 * 1024
#: Soundtracks (``audio_url``): formats by content and bytes.
AUDIO_FORMATS = ("wav", "mp3")
AUDIO_MAX_BYTES = 15 * 1024 * 1024


@dataclass(frozen=True)
class ModelCapability:
    """
    What one Wan video model accepts.

    :param name: the canonical model name sent to DashScope.
    :param tiers: the resolution tiers the model renders (keys of :data:`SIZE_TIERS`).
    :param default_size: the ``W*H`` DashScope renders when no size (or resolution and ratio) is given.
    :param durations: the allowed ``duration`` values in seconds.
    :param default_duration: the duration DashScope uses when none is given.
    :param prompt_max: the prompt limit in characters (DashScope truncates silently beyond it).
    :param audio: whether the model can add sound (auto-dubbing or ``audio_url``).
    :param multi_shot: whether ``shot_type="multi"`` is supported.
    :param usage_shape: ``"v26"`` (duration/SR/size) or ``"legacy"`` (video_duration/video_ratio).
    :param returns_actual_prompt: whether a rewritten ``actual_prompt`` comes back when prompt_extend is on.
    :param submit_rps: DashScope's task submissions per second for this model, per account (rate-limit page).
    :param concurrency: tasks of this model DashScope processes at once per account; later ones wait PENDING.
    :param aliases: other spellings accepted for this model (each is sent as spelled in this table).
    :param shape: how the picture is asked for: ``size`` (``parameters.size`` = ``W*H``, wan2.6 and older) or
        ``resolution`` (``parameters.resolution`` + ``parameters.ratio``, wan2.7 and newer).
    :param ratios: the aspect ratios of a ``resolution``-shape model.
    :param negative_prompt_max: the negative prompt limit in characters.
    :param regions: the regions that offer the model, or None when unverified (then not checked).
    :param verified: False when the row's limits come from third-party material only; they are then checked
        as written, and the request logs that they are unconfirmed.
    :param family: what the model generates from (:data:`FAMILY_NAMES`): ``t2v``, ``i2v`` (``img_url``), ``kf2v``
        (``first_frame_url`` + ``last_frame_url``) or ``r2v`` (``reference_urls``).
    :param route: the submit route below the base URL (first-and-last-frame models use ``image2video``).
    :param media: True when inputs travel as one ``input.media`` list of ``{type, url}`` (wan2.7 and newer), False
        for the named ``input`` fields.
    :param prompt_required: whether a prompt must be given (image-to-video and keyframe models animate without).
    :param last_frame: whether an image-to-video model also takes a last frame (``last_frame_url``).
    :param reference_images: the most reference images (``r2v``).
    :param reference_videos: the most reference videos (``r2v``).
    :param references_max: the most references in all (``r2v``).
    :param image_max_bytes: the largest image input DashScope accepts.
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
    shape: Shape = "size"
    ratios: tuple[str, ...] = RATIOS
    negative_prompt_max: int = NEGATIVE_PROMPT_MAX
    regions: frozenset[str] | None = None
    verified: bool = True
    family: Family = "t2v"
    route: str = VIDEO_SYNTHESIS_ROUTE
    media: bool = False
    prompt_required: bool = True
    last_frame: bool = False
    reference_images: int = 0
    reference_videos: int = 0
    references_max: int = 0
    image_max_bytes: int = IMAGE_MAX_BYTES

    @property
    def inputs(self) -> tuple[str, ...]:
        """The media inputs this model takes (names of :data:`INPUT_FIELDS`)."""
        if self.family == "i2v":
            return ("img_url", "last_frame_url") if self.last_frame else ("img_url",)
        if self.family == "kf2v":
            return ("first_frame_url", "last_frame_url")
        if self.family == "r2v":
            return ("reference_urls",)
        return ()

    @property
    def required_inputs(self) -> tuple[str, ...]:
        """The media inputs that must be given."""
        return tuple(name for name in self.inputs if not (self.family == "i2v" and name == "last_frame_url"))

    @property
    def sizes(self) -> tuple[str, ...]:
        """Every concrete ``W*H`` size this model renders."""
        if self.shape == "size":
            return tuple(size for tier in self.tiers for size in SIZE_TIERS[tier].values())
        if self.shape == "tier":
            return ()  # the aspect ratio, hence the size, follows the input image
        return tuple(SIZE_TIERS[t][r] for t in self.tiers for r in self.ratios if r in SIZE_TIERS[t])

    @property
    def default_resolution(self) -> str:
        """The tier of :attr:`default_size`, e.g. ``1080P``."""
        return SIZE_TO_TIER.get(self.default_size, "1080P")

    @property
    def default_ratio(self) -> str:
        """The aspect ratio of :attr:`default_size`, e.g. ``16:9``."""
        return SIZE_TO_RATIO.get(self.default_size, "16:9")

    def describe_durations(self) -> str:
        """The allowed durations in words, for error messages."""
        ds = self.durations
        if len(ds) == 1:
            return f"only {ds[0]}"
        if list(ds) == list(range(ds[0], ds[-1] + 1)) and len(ds) > 2:
            return f"an integer from {ds[0]} to {ds[-1]}"
        return "one of " + ", ".join(str(d) for d in ds)

    def describe_shape(self) -> str:
        """What the model takes for the picture, in words, for error messages."""
        if self.shape == "size":
            return f"size {', '.join(self.sizes)} ({'/'.join(self.tiers)})"
        if self.shape == "tier":
            return f"resolution {' or '.join(self.tiers)} (the aspect ratio follows the input image)"
        return f"resolution {' or '.join(self.tiers)} with aspect_ratio {', '.join(self.ratios)}"


_ALL_REGIONS = frozenset(REGION_NAMES)
_MAINLAND_AND_SINGAPORE = frozenset({BEIJING, SINGAPORE})

_WAN27_T2V = ModelCapability(
    name="wan2.7-t2v",
    tiers=("720P", "1080P"),
    default_size="1920*1080",  # [?] 1080P 16:9 as wan2.6; third-party docs agree, the official text was not re-read
    durations=tuple(range(2, 16)),
    default_duration=5,
    prompt_max=5000,
    audio=True,
    multi_shot=False,  # multi-shot is written in the prompt; there is no shot_type
    usage_shape="v26",
    returns_actual_prompt=False,
    shape="resolution",
    regions=_MAINLAND_AND_SINGAPORE,
)

# ----------------------------------------------------------------------------------------- beyond text
# Image-to-video (``input.img_url``), first-and-last-frame (``input.first_frame_url`` + ``last_frame_url``, on the
# image2video route) and reference-to-video (``input.reference_urls``). Sources: Alibaba's Model Studio pages
# "Image-to-video: first frame", "first and last frames" and "Reference-to-video" (API references, 2026-03/04) and the
# DashScope SDK; limits stated only by third parties are marked ``verified=False``. Inputs: JPEG/PNG (no
# transparency)/BMP/WEBP images of 360-2000 px per side and at most 10 MB (20 MB for the wan2.6 flash lines);
# MP4/MOV reference videos of 2-30 s and at most 100 MB; WAV/MP3 soundtracks of 3-30 s and at most 15 MB.
_WAN26_I2V = ModelCapability(
    name="wan2.6-i2v",
    family="i2v",
    shape="tier",
    tiers=("720P", "1080P"),
    default_size="1920*1080",
    durations=tuple(range(2, 16)),
    default_duration=5,
    prompt_max=1500,
    prompt_required=False,
    audio=True,
    multi_shot=True,
    usage_shape="v26",
    returns_actual_prompt=False,
    regions=_MAINLAND_AND_SINGAPORE,
)
_WAN22_I2V = replace(
    _WAN26_I2V,
    name="wan2.2-i2v-plus",
    tiers=("480P", "1080P"),
    durations=(5,),
    prompt_max=800,
    audio=False,
    multi_shot=False,
    usage_shape="legacy",
    returns_actual_prompt=True,
)
_WAN22_KF2V = replace(
    _WAN22_I2V,
    name="wan2.2-kf2v-flash",
    family="kf2v",
    route=IMAGE2VIDEO_ROUTE,
    tiers=("480P", "720P", "1080P"),
    default_size="1280*720",
)
_WAN26_R2V = ModelCapability(
    name="wan2.6-r2v",
    family="r2v",
    tiers=("720P", "1080P"),
    default_size="1920*1080",
    durations=tuple(range(2, 11)),
    default_duration=5,
    prompt_max=1500,
    audio=True,
    multi_shot=True,
    usage_shape="v26",
    returns_actual_prompt=False,
    reference_images=5,
    reference_videos=3,
    references_max=5,
    image_max_bytes=20 * 1024 * 1024,
    regions=_MAINLAND_AND_SINGAPORE,
)
_BEYOND_TEXT: tuple[ModelCapability, ...] = (
    # wan2.7 sends its inputs as input.media[] ({type: first_frame | last_frame | driving_audio, url}); the
    # limits are read from third-party docs and Alibaba's SDK, not yet from Alibaba's API reference.
    replace(
        _WAN26_I2V,
        name="wan2.7-i2v",
        media=True,
        last_frame=True,
        prompt_max=5000,
        multi_shot=False,
        verified=False,
    ),
    _WAN26_I2V,
    replace(_WAN26_I2V, name="wan2.6-i2v-flash", image_max_bytes=20 * 1024 * 1024),
    replace(
        _WAN26_I2V,
        name="wan2.5-i2v-preview",
        tiers=("480P", "720P", "1080P"),
        durations=(5, 10),
        multi_shot=False,
        usage_shape="legacy",
        returns_actual_prompt=True,
    ),
    _WAN22_I2V,
    replace(_WAN22_I2V, name="wan2.2-i2v-flash", tiers=("480P", "720P", "1080P"), default_size="1280*720"),
    replace(
        _WAN22_I2V,
        name="wanx2.1-i2v-turbo",
        aliases=("wan2.1-i2v-turbo",),
        tiers=("480P", "720P"),
        default_size="1280*720",
        durations=(3, 4, 5),
        submit_rps=2.0,
        concurrency=2,
    ),
    replace(
        _WAN22_I2V,
        name="wanx2.1-i2v-plus",
        aliases=("wan2.1-i2v-plus",),
        tiers=("720P",),
        default_size="1280*720",
        submit_rps=2.0,
        concurrency=2,
    ),
    _WAN22_KF2V,
    replace(
        _WAN22_KF2V,
        name="wanx2.1-kf2v-plus",
        aliases=("wan2.1-kf2v-plus",),
        tiers=("720P",),
        submit_rps=2.0,
        concurrency=2,
    ),
    # wan2.6-r2v is also offered in Virginia (the "Global" deployment), videos as references only there.
    replace(_WAN26_R2V, regions=frozenset({BEIJING, SINGAPORE, VIRGINIA})),
    replace(_WAN26_R2V, name="wan2.6-r2v-flash"),
)

#: The capability table: one row per model (reference section 6 and dashscope-wan-current.md). A new model is a
#: new row; a user can declare one the release does not know in the connection (:func:`declare_models`).
#: Account limits (``submit_rps``, ``concurrency``) are Alibaba's rate-limit page, per account and model: 5/5 for
#: wan2.5-2.7, 2/2 for wan2.2-t2v-plus and wan2.1, 10/5 for HappyHorse. The query API's 20 requests/s is per
#: account, for all models. Regions: the official legacy reference and rate-limit page (wan2.6-t2v in all four;
#: wan2.6-t2v-us only in Virginia; wan2.5/2.2/2.1 and wan2.7 in Beijing and Singapore).
CAPABILITIES: tuple[ModelCapability, ...] = (
    _WAN27_T2V,
    replace(_WAN27_T2V, name="wan2.7-t2v-2026-04-25"),
    # Only in third-party code so far: the same limits as its line, unconfirmed.
    replace(_WAN27_T2V, name="wan2.7-t2v-2026-06-12", verified=False),
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
        regions=_ALL_REGIONS,
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
        regions=frozenset({VIRGINIA}),
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
        regions=_MAINLAND_AND_SINGAPORE,
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
        regions=_MAINLAND_AND_SINGAPORE,
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
        regions=_MAINLAND_AND_SINGAPORE,
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
        regions=_MAINLAND_AND_SINGAPORE,
    ),
    # Newer lines on the same route with the resolution + ratio shape. UNVERIFIED: limits from third-party docs
    # and code only (Comfy, new-api, Cloudflare); regions unknown, so not checked. Declare a corrected row in the
    # connection's ``models`` extra if Alibaba documents other limits.
    ModelCapability(
        name="wan3.0-video",
        tiers=("480P", "720P", "1080P"),
        default_size="1920*1080",
        durations=tuple(range(2, 31)),  # [?] "max 30 s" only in third-party code
        default_duration=5,
        prompt_max=20_000,
        audio=True,
        multi_shot=False,
        usage_shape="v26",
        returns_actual_prompt=False,
        shape="resolution",
        verified=False,
    ),
    ModelCapability(
        name="wan3.0-video-prime",
        tiers=("480P", "720P", "1080P"),
        default_size="1920*1080",
        durations=tuple(range(2, 31)),
        default_duration=5,
        prompt_max=20_000,
        audio=True,
        multi_shot=False,
        usage_shape="v26",
        returns_actual_prompt=False,
        shape="resolution",
        verified=False,
    ),
    ModelCapability(
        name="happyhorse-1.0-t2v",
        tiers=("720P", "1080P"),
        default_size="1920*1080",
        durations=tuple(range(3, 16)),  # [?] 3-15 s per Comfy and Cloudflare
        default_duration=5,
        prompt_max=5000,  # [?] not documented anywhere we found
        audio=False,  # [?] no audio_url documented
        multi_shot=False,
        usage_shape="v26",
        returns_actual_prompt=False,
        submit_rps=10.0,
        concurrency=5,
        shape="resolution",
        verified=False,
    ),
    ModelCapability(
        name="happyhorse-1.1-t2v",
        tiers=("720P", "1080P"),
        default_size="1920*1080",
        durations=tuple(range(3, 16)),
        default_duration=5,
        prompt_max=5000,
        audio=False,
        multi_shot=False,
        usage_shape="v26",
        returns_actual_prompt=False,
        submit_rps=10.0,
        concurrency=5,
        shape="resolution",
        verified=False,
    ),
    *_BEYOND_TEXT,
)

_BY_NAME: dict[str, ModelCapability] = {name: cap for cap in CAPABILITIES for name in (cap.name, *cap.aliases)}
KNOWN_MODELS: tuple[str, ...] = tuple(_BY_NAME)
#: DashScope's task query limit (GET /tasks/{id} and GET /tasks), per account, shared by every client.
ACCOUNT_QUERY_QPS = 20.0
DEFAULT_MODEL = "wan2.6-t2v"
#: Models declared by a connection (``models`` extra): lower-cased name -> row. Declared rows win over the table.
DeclaredModels = Mapping[str, ModelCapability]


def get_capability(model: str, declared: DeclaredModels | None = None) -> ModelCapability | None:
    """
    Return the capability row for ``model`` (any accepted spelling, any case), or None for a model we do not know.

    :param model: the model name as typed.
    :param declared: rows a connection declares (they win over the built-in table).
    """
    key = model.strip().lower()
    if declared and key in declared:
        return declared[key]
    return _BY_NAME.get(key)


def canonical_model(model: str, declared: DeclaredModels | None = None) -> str:
    """
    The spelling DashScope expects: the table's (lower-case) spelling of a known model, else the name as typed.

    DashScope matches model names exactly: ``WAN2.6-T2V`` is a 404.

    :param model: the model name as typed.
    :param declared: rows a connection declares.
    """
    key = model.strip().lower()
    if declared and key in declared:
        return declared[key].name
    return key if key in _BY_NAME else model.strip()


def check_region(model: str, region: str | None, declared: DeclaredModels | None = None) -> None:
    """
    Refuse a model the region does not offer, before anything is sent (pure: no I/O).

    Nothing is checked when the region is not known (an explicit base URL such as a gateway or the simulator), when
    the model is unknown, or when the model's regions are unverified.

    :param model: the model name (any spelling or case).
    :param region: the connection's region name (``singapore``, ``beijing``, ``virginia``, ``frankfurt``), or None.
    :param declared: rows a connection declares.
    :raises WanRequestValidationError: naming the model, the region and where the model is offered.
    """
    cap = get_capability(model, declared)
    if region is None or cap is None or cap.regions is None:
        return
    region = region.strip().lower()
    if region in cap.regions:
        return
    offered = ", ".join(r for r in REGION_NAMES if r in cap.regions)
    here = ", ".join(c.name for c in CAPABILITIES if c.regions is not None and region in c.regions) or "none"
    raise WanRequestValidationError(
        f"Invalid Wan video request: model={model.strip()!r} is not offered in region {region!r} (model, key and "
        f"region must match); it is offered in: {offered}. Models offered in {region}: {here}"
    )


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


def _tier(resolution: str) -> str:
    tier = resolution.strip().upper()
    if tier not in SIZE_TIERS:
        raise ValueError(f"resolution={resolution!r} is not a tier; allowed: {', '.join(SIZE_TIERS)}")
    return tier


def _ratio(aspect_ratio: str) -> str:
    ratio = aspect_ratio.strip().replace("/", ":")
    if ratio not in RATIOS:
        raise ValueError(f"aspect_ratio={aspect_ratio!r} is not an aspect ratio; allowed: {', '.join(RATIOS)}")
    return ratio


def _size_from_tier(resolution: str, aspect_ratio: str) -> str:
    tier = _tier(resolution)
    ratio = aspect_ratio.strip().replace("/", ":")
    sizes = SIZE_TIERS[tier]
    if ratio not in sizes:
        raise ValueError(f"aspect_ratio={aspect_ratio!r} is not available at {tier}; allowed: {', '.join(sizes)}")
    return sizes[ratio]


class WanVideoRequest(BaseModel):
    """
    One video generation, validated against the model's capabilities before any HTTP request.

    The model's family says which media inputs it takes: none (text-to-video), ``img_url`` (image-to-video, plus
    ``last_frame_url`` on wan2.7), ``first_frame_url`` and ``last_frame_url`` (first-and-last-frame) or
    ``reference_urls`` (reference-to-video). Each input is an ``s3://`` URI (presigned by the operator just before
    the request), an https URL or an ``oss://`` temporary upload; the request keeps the URIs as given, and the
    fetchable URLs (:meth:`with_input_urls`) only for the wire.

    The model's row says how the picture is asked for: wan2.6 and older take a pixel ``size``; wan2.7 and newer
    take ``resolution`` + ``ratio``. Either way you may give ``size`` or ``resolution`` with ``aspect_ratio``: a
    size is turned into its tier and ratio, and a tier and ratio into their size, as the model needs.

    :param model: the Wan model (any case; sent in the spelling DashScope expects). Unknown (newer) models are
        passed through with a warning, with the newer ``resolution`` + ``ratio`` shape.
    :param prompt: what the video shows; limited by the model (5000, 1500 or 800 characters); required except for
        image-to-video and first-and-last-frame models.
    :param negative_prompt: what the video must not show (at most 500 characters).
    :param size: ``W*H`` (``1280x720`` and ``1280×720`` are accepted too).
    :param resolution: a tier (``480P``, ``720P``, ``1080P``) to combine with ``aspect_ratio``
        instead of ``size``.
    :param aspect_ratio: ``16:9``, ``9:16``, ``1:1``, ``4:3`` or ``3:4``, used with ``resolution``
        (sent as ``parameters.ratio`` to wan2.7 and newer).
    :param duration: seconds of video (billed per second); allowed values depend on the model.
    :param prompt_extend: let DashScope rewrite the prompt (its default is on).
    :param watermark: add the "AI-generated" watermark (its default is off).
    :param seed: an integer in [0, 2147483647].
    :param audio: auto-dubbing on or off (models that make sound only).
    :param audio_url: an https (or presigned) URL or an ``oss://`` resource of a soundtrack (wav or mp3 content;
        the URL needs no file extension); models that make sound only.
    :param shot_type: ``single`` or ``multi`` (multi-shot narrative, wan2.6 with prompt_extend on).
    :param extra_input: further ``input`` fields, passed through verbatim.
    :param extra_parameters: further ``parameters`` fields, passed through verbatim.
    :param truncate_prompt: cut over-long prompts to the model's limit instead of refusing them.
    :param img_url: the first frame of an image-to-video model.
    :param first_frame_url: the first frame of a first-and-last-frame model.
    :param last_frame_url: the last frame (first-and-last-frame models, wan2.7 image-to-video).
    :param reference_urls: the reference images and videos of a reference-to-video model, in the order the prompt
        names them (``character1``, ``character2``, ...).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = DEFAULT_MODEL
    prompt: str | None = None
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
    img_url: str | None = None
    first_frame_url: str | None = None
    last_frame_url: str | None = None
    reference_urls: tuple[str, ...] | None = None
    _capability: ModelCapability | None = PrivateAttr(default=None)
    _input_urls: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _model_not_empty(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("model='' is empty; give a Wan model such as 'wan2.6-t2v'")
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt_not_empty(cls, value: str | None) -> str | None:
        # Kept blank here: the model's row decides whether a prompt is required (see _check_prompt).
        return value

    @field_validator("img_url", "first_frame_url", "last_frame_url", mode="before")
    @classmethod
    def _input_url(cls, value: Any, info: ValidationInfo) -> Any:
        return _input_uri(value, str(info.field_name)) if isinstance(value, str) else value

    @field_validator("reference_urls", mode="before")
    @classmethod
    def _reference_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, (list, tuple)):
            urls = [_input_uri(v, f"reference_urls[{i}]") if isinstance(v, str) else v for i, v in enumerate(value)]
            return tuple(u for u in urls if u is not None) or None
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

    @field_validator("resolution")
    @classmethod
    def _resolution_format(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else _tier(value)

    @field_validator("aspect_ratio")
    @classmethod
    def _aspect_ratio_format(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else _ratio(value)

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
        # The format is a property of the content, not of the URL: presigned S3 keys and CDN links that route by
        # query string have no .wav/.mp3 suffix. DashScope fetches it and refuses what it cannot read.
        if value is None or not value.strip():
            return None
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme.lower() not in AUDIO_URL_SCHEMES or not parts.netloc:
            raise ValueError(
                f"audio_url={_short(value)!r} is not a URL DashScope can fetch; allowed: s3://bucket/key (presigned "
                f"for the task), https:// (or presigned) URLs and oss:// resources"
            )
        return value

    @classmethod
    def build(
        cls, *, skip_capabilities: bool = False, models: DeclaredModels | None = None, **fields: Any
    ) -> WanVideoRequest:
        """
        Validate ``fields`` into a request, raising one readable error that names each bad parameter.

        :param skip_capabilities: check each field on its own but not against the model (the model is not known
            yet, for example because it is templated).
        :param models: models a connection declares (its ``models`` extra, see :func:`declare_models`); they win
            over the built-in table.
        :param fields: the request's fields; None values are treated as not given.
        """
        given = {k: v for k, v in fields.items() if v is not None}
        try:
            return cls.model_validate(given, context={"skip_capabilities": skip_capabilities, "models": models})
        except ValidationError as err:
            raise WanRequestValidationError(_readable(err)) from None

    def fields(self) -> dict[str, Any]:
        """The fields as given (after normalisation), to build the request again, e.g. with declared models."""
        return self.model_dump(exclude_none=True)

    @model_validator(mode="after")
    def _check_against_model(self, info: ValidationInfo) -> WanVideoRequest:
        context = info.context or {}
        declared: DeclaredModels | None = context.get("models")
        self._check_extras()
        object.__setattr__(self, "model", canonical_model(self.model, declared))
        cap = get_capability(self.model, declared)
        self._capability = cap
        if context.get("skip_capabilities"):
            return self
        if cap is None:
            log.warning(
                "Model %r is not in this provider's capability table (known: %s); unless the connection declares "
                "it (models extra), it is passed through with only generic checks and the resolution + ratio shape.",
                self.model,
                ", ".join(c.name for c in CAPABILITIES),
            )
            self._check_prompt(required=not self.given_inputs, family="t2v")
            self._resolve_picture("resolution")
            return self
        if not cap.verified:
            log.info("The limits of model %r are not confirmed by Alibaba's documentation yet", cap.name)
        self._check_inputs(cap)
        self._resolve_picture(cap.shape, cap)
        self._check_picture(cap)
        self._check_duration(cap)
        self._check_audio(cap)
        self._check_shot_type(cap)
        self._check_lengths(cap)
        return self

    def _resolve_picture(self, shape: Shape, cap: ModelCapability | None = None) -> None:
        """Make ``size`` or ``resolution`` + ``aspect_ratio`` consistent for the model's request shape."""
        if shape == "size":
            self._resolve_size(cap)
        elif shape == "tier":
            self._refuse_aspect(cap)
        else:
            self._resolve_tier_and_ratio()

    def _refuse_aspect(self, cap: ModelCapability | None) -> None:
        """Image-to-video and keyframe models: the aspect ratio is the input image's; only the tier is chosen."""
        given = [(n, v) for n, v in (("size", self.size), ("aspect_ratio", self.aspect_ratio)) if v is not None]
        if given:
            name, value = given[0]
            tiers = " or ".join(cap.tiers) if cap else "480P, 720P or 1080P"
            raise ValueError(
                f"{name}={value!r} is not accepted by model {self.model!r}: the video takes the aspect ratio of its "
                f"input image; pass resolution ({tiers}) only"
            )

    @property
    def given_inputs(self) -> dict[str, str | tuple[str, ...]]:
        """The media inputs given, by parameter name, as the user wrote them (``s3://`` URIs stay URIs)."""
        return {name: getattr(self, name) for name in INPUT_FIELDS if getattr(self, name) is not None}

    def input_uris(self) -> list[tuple[str, str]]:
        """Every media input as ``(parameter, uri)``, ``audio_url`` included, one row per reference."""
        rows: list[tuple[str, str]] = []
        for name, value in self.given_inputs.items():
            if isinstance(value, tuple):
                rows.extend((f"{name}[{i}]", uri) for i, uri in enumerate(value))
            else:
                rows.append((name, value))
        if self.audio_url is not None:
            rows.append(("audio_url", self.audio_url))
        return rows

    def with_input_urls(self, urls: Mapping[str, str]) -> WanVideoRequest:
        """
        This request with the URLs DashScope fetches in place of the URIs given (for the wire only).

        :param urls: given URI -> fetchable URL (a presigned https URL for an ``s3://`` URI). Secrets: never logged
            or stored; :meth:`summary` and the fingerprint keep the URIs as given.
        """
        copy = self.model_copy()
        copy._capability = self._capability
        copy._input_urls = {**self._input_urls, **dict(urls)}
        return copy

    @property
    def input_urls(self) -> dict[str, str]:
        """Given URI -> fetchable URL, as set by :meth:`with_input_urls`."""
        return dict(self._input_urls)

    def wire_url(self, uri: str) -> str:
        """
        The URL to send for ``uri``: its fetchable form when one was set, else ``uri`` itself.

        :param uri: an input as given.
        :raises WanRequestValidationError: for an ``s3://`` URI nobody presigned (DashScope cannot read S3 URIs).
        """
        url = self._input_urls.get(uri, uri)
        if url.startswith("s3://"):
            raise WanRequestValidationError(
                f"{_short(uri)!r} is an s3:// URI that was not presigned; DashScope fetches only https and oss:// "
                f"inputs. Submit through a Wan operator (it presigns s3:// inputs) or pass a presigned URL"
            )
        return url

    def _check_prompt(self, required: bool, family: Family) -> None:
        """A prompt where the model needs one; a blank one is dropped where it does not."""
        if self.prompt is not None and self.prompt.strip():
            return
        if not required:
            object.__setattr__(self, "prompt", None)
        elif family != "t2v":
            raise ValueError(
                f"prompt is required by model {self.model!r} ({FAMILY_NAMES[family]}); describe the video, naming "
                f"the references as character1, character2, ..."
            )
        elif self.prompt is None:
            raise ValueError("prompt is required (it was not given or is None); describe the video to generate")
        else:
            raise ValueError("prompt is empty; describe the video to generate")

    def _check_inputs(self, cap: ModelCapability) -> None:
        """The media inputs the model's family takes: required ones present, foreign ones refused, counts."""
        family = FAMILY_NAMES[cap.family]
        for name in self.given_inputs:
            if name not in cap.inputs:
                takers = ", ".join(c.name for c in CAPABILITIES if name in c.inputs)
                raise ValueError(
                    f"{name} is not accepted by model {self.model!r} ({family}); {name} is taken by: {takers}"
                )
        for name in cap.required_inputs:
            if name not in self.given_inputs:
                raise ValueError(
                    f"{name} is required by model {self.model!r} ({family}); give an s3:// URI, an https URL or an "
                    f"oss:// upload"
                )
        self._check_prompt(cap.prompt_required, cap.family)
        refs = self.reference_urls or ()
        if cap.family == "r2v" and len(refs) > cap.references_max:
            raise ValueError(
                f"reference_urls has {len(refs)} references; model {self.model!r} takes 1 to {cap.references_max} "
                f"(at most {cap.reference_images} images and {cap.reference_videos} videos)"
            )

    def _resolve_size(self, cap: ModelCapability | None) -> None:
        if self.resolution is None and self.aspect_ratio is None:
            return
        default_tier = cap.default_resolution if cap else "1080P"
        derived = _size_from_tier(self.resolution or default_tier, self.aspect_ratio or "16:9")
        if self.size is not None and self.size != derived:
            raise ValueError(
                f"size={self.size!r} contradicts resolution={self.resolution!r} with "
                f"aspect_ratio={self.aspect_ratio!r} ({derived}); give one or the other"
            )
        object.__setattr__(self, "size", derived)

    def _resolve_tier_and_ratio(self) -> None:
        """wan2.7 and newer: a pixel size is turned into its tier and ratio (``1280*720`` -> 720P, 16:9)."""
        if self.size is None:
            return
        tier, ratio = SIZE_TO_TIER.get(self.size), SIZE_TO_RATIO.get(self.size)
        if tier is None or ratio is None:
            raise ValueError(
                f"size={self.size!r} is not the size of a resolution tier, and model {self.model!r} takes "
                f"resolution + ratio, not a pixel size; pass resolution (480P, 720P, 1080P) with aspect_ratio "
                f"({', '.join(RATIOS)}), or a size such as 1280*720"
            )
        for name, value, derived in (("resolution", self.resolution, tier), ("aspect_ratio", self.aspect_ratio, ratio)):
            if value is not None and value != derived:
                raise ValueError(
                    f"size={self.size!r} ({tier}, {ratio}) contradicts {name}={value!r}; give one or the other"
                )
        object.__setattr__(self, "resolution", tier)
        object.__setattr__(self, "aspect_ratio", ratio)

    def _check_extras(self) -> None:
        named_inputs = {"prompt", "negative_prompt", "audio_url", *INPUT_FIELDS, "media"}
        named_params = {
            "size",
            "resolution",
            "ratio",
            "duration",
            "prompt_extend",
            "watermark",
            "seed",
            "audio",
            "shot_type",
        }
        for where, extras, named in (
            ("extra_input", self.extra_input, named_inputs),
            ("extra_parameters", self.extra_parameters, named_params),
        ):
            clash = sorted(set(extras) & named)
            if clash:
                own = "aspect_ratio" if clash[0] == "ratio" else clash[0]
                raise ValueError(
                    f"{where} sets {', '.join(clash)}, which have their own arguments; "
                    f"pass {own}=... instead so it is validated"
                )

    def _check_picture(self, cap: ModelCapability) -> None:
        if cap.shape == "size":
            self._check_size(cap)
        elif cap.shape == "tier":
            if self.resolution is not None and self.resolution not in cap.tiers:
                raise ValueError(
                    f"resolution={self.resolution!r} is not offered by model {self.model!r}; allowed: "
                    f"{' or '.join(cap.tiers)}"
                )
        else:
            self._check_tier_and_ratio(cap)

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

    def _check_tier_and_ratio(self, cap: ModelCapability) -> None:
        tier = self.effective_resolution
        ratio = self.effective_ratio
        if tier in cap.tiers and ratio in cap.ratios and ratio in SIZE_TIERS.get(tier or "", {}):
            return
        given = ", ".join(
            f"{name}={value!r}"
            for name, value in (
                ("size", self.size),
                ("resolution", self.resolution),
                ("aspect_ratio", self.aspect_ratio),
            )
            if value is not None
        )
        raise ValueError(f"{given} is not offered by model {self.model!r}; allowed: {cap.describe_shape()}")

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
            hint = "; write the shots in the prompt instead" if cap.shape == "resolution" else ""
            raise ValueError(
                f"shot_type='multi' is not supported by model {self.model!r}{hint}; multi-shot is available on: "
                f"{', '.join(c.name for c in CAPABILITIES if c.multi_shot)}"
            )
        if self.prompt_extend is False:
            raise ValueError(
                "shot_type='multi' with prompt_extend=False would be silently ignored by DashScope; "
                "allowed: prompt_extend=True (or unset) for multi-shot"
            )

    def _check_lengths(self, cap: ModelCapability) -> None:
        for field, limit in (("prompt", cap.prompt_max), ("negative_prompt", cap.negative_prompt_max)):
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
        """The capability row of this request's model (built-in or declared), or None for an unknown model."""
        return self._capability

    @property
    def shape(self) -> Shape:
        """How the picture is sent: ``size`` (wan2.6 and older) or ``resolution`` (+ ``ratio``; newer, unknown)."""
        cap = self.capability
        return cap.shape if cap else "resolution"

    @property
    def effective_resolution(self) -> str | None:
        """The tier the video will have: the one asked for (or of the size asked for), else the model's default."""
        if self.resolution is not None:
            return self.resolution
        if self.size is not None:
            return SIZE_TO_TIER.get(self.size)
        cap = self.capability
        return cap.default_resolution if cap else None

    @property
    def effective_ratio(self) -> str | None:
        """The aspect ratio the video will have: the one asked for, else the model's default (16:9 with a tier)."""
        if self.shape == "tier":
            return None  # the input image's
        if self.aspect_ratio is not None:
            return self.aspect_ratio
        if self.size is not None:
            return SIZE_TO_RATIO.get(self.size)
        cap = self.capability
        if cap is not None:
            return "16:9" if self.resolution is not None else cap.default_ratio
        return None

    @property
    def effective_size(self) -> str | None:
        """The ``W*H`` the video will have: the one asked for (or of the tier and ratio), else the model's default."""
        if self.size is not None:
            return self.size
        if self.shape == "tier":
            return None  # the tier's size at the input image's aspect ratio: known once generated
        if self.shape == "resolution" and self.effective_resolution and self.effective_ratio:
            return SIZE_TIERS.get(self.effective_resolution, {}).get(self.effective_ratio)
        cap = self.capability
        return cap.default_size if cap else None

    @property
    def effective_duration(self) -> int | None:
        """The seconds that will be billed on success: the duration asked for, else the model's default."""
        cap = self.capability
        return self.duration or (cap.default_duration if cap else None)

    def summary(self) -> dict[str, Any]:
        """A JSON-safe description for logs and manifests (the prompt is included; no secrets exist here)."""
        summary: dict[str, Any] = {
            "model": self.model,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "size": self.effective_size,
            "duration": self.effective_duration,
            "prompt_extend": self.prompt_extend,
            "watermark": self.watermark,
            "seed": self.seed,
            "audio": self.audio,
            "audio_url": strip_query(self.audio_url) if self.audio_url else None,
            "shot_type": self.shot_type,
            "extra_input": dict(self.extra_input),
            "extra_parameters": dict(self.extra_parameters),
        }
        if self.shape == "resolution":
            # Only for the newer shape, so the fingerprint of a wan2.6 request stays what earlier versions stored.
            summary["resolution"] = self.effective_resolution
            summary["ratio"] = self.effective_ratio
        elif self.shape == "tier":
            summary["resolution"] = self.effective_resolution
        for name, value in self.given_inputs.items():
            # The URIs as given (an s3:// URI, a link without its query): never a signed URL.
            summary[name] = [strip_query(v) for v in value] if isinstance(value, tuple) else strip_query(value)
        return summary


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
    stripped = strip_query(value)
    return stripped if len(stripped) <= limit else stripped[: limit - 3] + "..."


def strip_query(url: str) -> str:
    """
    A link as it may be shown in messages, logs, records and results: without its query string (a presigned URL's
    signature) and fragment; a link without either is returned as it is.

    :param url: the link as given or sent.
    """
    if "?" not in url and "#" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("?", 1)[0].split("#", 1)[0]
    return parts._replace(query="", fragment="").geturl()


_URL_QUERY = re.compile(r"((?:https?|oss)://[^\s?#'\"]+)\?[^\s'\"]*")


def redact_urls(text: str) -> str:
    """
    ``text`` with the query string of every link in it replaced by ``<redacted>`` (presigned signatures live there).

    :param text: an error message or log line.
    """
    return _URL_QUERY.sub(r"\1?<redacted>", text)


def _input_uri(value: str, name: str) -> str | None:
    """
    A media input as given: an ``s3://bucket/key`` URI, an http(s) URL or an ``oss://`` resource.

    :param value: the input as typed (blank means not given).
    :param name: the parameter's name, for the error.
    """
    value = value.strip()
    if not value:
        return None
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme not in INPUT_URL_SCHEMES or not parts.netloc or (scheme == "s3" and not parts.path.strip("/")):
        raise ValueError(
            f"{name}={_short(value)!r} is not an input DashScope can fetch; allowed: s3://bucket/key (presigned for "
            f"the task), https:// URLs and oss:// uploads"
        )
    return value


#: Keys of a declared model (the connection's ``models`` extra) -> what they hold, for error messages.
DECLARABLE: dict[str, str] = {
    "like": "a known model to start from (default: wan2.7-t2v for the resolution shape, wan2.6-t2v for size)",
    "shape": "'resolution' (resolution + ratio) or 'size' (W*H)",
    "resolutions": "tiers such as ['720P', '1080P']",
    "ratios": f"aspect ratios among {', '.join(RATIOS)}",
    "durations": "a list of seconds, or 'min-max' such as '2-15'",
    "default_duration": "seconds",
    "default_resolution": "a tier such as '1080P'",
    "default_ratio": "an aspect ratio such as '16:9'",
    "prompt_max": "characters",
    "negative_prompt_max": "characters",
    "audio": "true or false",
    "multi_shot": "true or false",
    "regions": f"region names among {', '.join(REGION_NAMES)}",
    "submit_rps": "task submissions per second for the account",
    "concurrency": "tasks processing at once for the account",
}


def declare_models(spec: Any, source: str = "the connection") -> dict[str, ModelCapability]:
    """
    Read the ``models`` extra: rows for models this release does not know (or corrections of known rows).

    Example: ``{"wan2.8-t2v": {"like": "wan2.7-t2v", "durations": "2-20"}}``. Unset keys come from ``like`` (or the
    known row of the same name); a new model's regions are not checked unless given.

    :param spec: a dict of model name -> keys of :data:`DECLARABLE`, or its JSON text (from a form field).
    :param source: where it came from, for messages.
    :raises WanConfigurationError: naming the model, the key, the value and what is allowed.
    """
    if spec in (None, "", {}):
        return {}
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except ValueError:
            raise WanConfigurationError(f"models={_short(spec)!r} in {source} is not JSON") from None
    if not isinstance(spec, Mapping):
        raise WanConfigurationError(f"models in {source} must map model names to their limits, got {spec!r}")
    declared: dict[str, ModelCapability] = {}
    for name, fields in spec.items():
        where = f"models[{name!r}] in {source}"
        if not isinstance(name, str) or not name.strip():
            raise WanConfigurationError(f"{where}: a model name must be a non-empty string")
        if not isinstance(fields, Mapping):
            raise WanConfigurationError(f"{where} must be an object of {', '.join(DECLARABLE)}; got {fields!r}")
        unknown = sorted(set(fields) - set(DECLARABLE))
        if unknown:
            raise WanConfigurationError(
                f"{where} has unknown keys {', '.join(unknown)}; allowed: {', '.join(DECLARABLE)}"
            )
        try:
            declared[name.strip().lower()] = _declared_row(name.strip(), dict(fields))
        except (TypeError, ValueError) as err:
            raise WanConfigurationError(f"{where}: {err}") from None
    return declared


def _declared_row(name: str, fields: dict[str, Any]) -> ModelCapability:
    known = _BY_NAME.get(name.lower())
    shape = fields.get("shape")
    if shape is not None and shape not in ("size", "resolution"):
        raise ValueError(f"shape={shape!r}; allowed: {DECLARABLE['shape']}")
    like_name = fields.get("like") or ("wan2.6-t2v" if shape == "size" else "wan2.7-t2v")
    base = known or _BY_NAME.get(str(like_name).strip().lower())
    if base is None:
        raise ValueError(f"like={like_name!r} is not a known model; allowed: {', '.join(c.name for c in CAPABILITIES)}")
    tiers = tuple(_tier(str(t)) for t in _listed(fields, "resolutions", base.tiers))
    ratios = tuple(_ratio(str(r)) for r in _listed(fields, "ratios", base.ratios))
    durations = _durations(fields.get("durations"), base.durations)
    default_resolution = _tier(str(fields.get("default_resolution") or base.default_resolution))
    default_ratio = _ratio(str(fields.get("default_ratio") or base.default_ratio))
    regions = _regions(fields["regions"]) if "regions" in fields else (base.regions if known else None)
    row = replace(
        base,
        name=known.name if known else name,
        aliases=(),
        shape=shape or base.shape,
        tiers=tiers,
        ratios=ratios,
        durations=durations,
        default_duration=_positive_int(fields.get("default_duration", base.default_duration), "default_duration"),
        default_size=_size_from_tier(default_resolution, default_ratio),
        prompt_max=_positive_int(fields.get("prompt_max", base.prompt_max), "prompt_max"),
        negative_prompt_max=_positive_int(
            fields.get("negative_prompt_max", base.negative_prompt_max), "negative_prompt_max"
        ),
        audio=_flag(fields.get("audio", base.audio), "audio"),
        multi_shot=_flag(fields.get("multi_shot", base.multi_shot), "multi_shot"),
        regions=regions,
        submit_rps=_positive_number(fields.get("submit_rps", base.submit_rps), "submit_rps"),
        concurrency=_positive_int(fields.get("concurrency", base.concurrency), "concurrency"),
        verified=True,
    )
    if row.default_duration not in row.durations:
        raise ValueError(
            f"default_duration={row.default_duration} is not among its durations ({row.describe_durations()})"
        )
    if row.default_resolution not in row.tiers:
        raise ValueError(f"default_resolution={default_resolution!r} is not among its resolutions {list(row.tiers)}")
    return row


def _listed(fields: dict[str, Any], key: str, default: tuple[str, ...]) -> tuple[Any, ...]:
    value = fields.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{key}={value!r}; allowed: {DECLARABLE[key]}")
    return tuple(value)


def _durations(value: Any, default: tuple[int, ...]) -> tuple[int, ...]:
    if value is None:
        return default
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*-\s*\d+\s*", value):
        low, high = (int(part) for part in value.split("-"))
        if 0 < low <= high:
            return tuple(range(low, high + 1))
    if isinstance(value, (list, tuple)) and value and all(type(v) is int and v > 0 for v in value):
        return tuple(sorted(set(value)))
    raise ValueError(f"durations={value!r}; allowed: {DECLARABLE['durations']}")


def _regions(value: Any) -> frozenset[str]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(
        isinstance(n, str) and n.strip().lower() in REGION_NAMES for n in names
    ):
        raise ValueError(f"regions={value!r}; allowed: {DECLARABLE['regions']}")
    return frozenset(n.strip().lower() for n in names)


def _positive_int(value: Any, key: str) -> int:
    if type(value) is int and value > 0:
        return value
    raise ValueError(f"{key}={value!r}; allowed: a positive integer ({DECLARABLE.get(key, key)})")


def _positive_number(value: Any, key: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise ValueError(f"{key}={value!r}; allowed: a positive number ({DECLARABLE[key]})")


def _flag(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"{key}={value!r}; allowed: true or false")


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

    @field_validator("message")
    @classmethod
    def _no_signatures(cls, value: str | None) -> str | None:
        # "Failed to download https://...?X-Amz-Signature=...": the input's signature must not reach events or logs.
        return redact_urls(value) if value else value

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
