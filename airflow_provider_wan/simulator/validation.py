"""Submit-body checks of the simulator, per model, as the real service applies them.

Every wire flavour funnels into one ``SubmitRequest``; a refusal is an ``ApiError`` naming the field. Media inputs
(first frames, last frames, references, soundtracks) are checked here for what the body alone shows (which inputs a
model takes, how many, URL schemes); their content is read later, as DashScope reads it (:mod:`.fetch`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_wan.media import Kind
from airflow_provider_wan.models import (
    FAMILY_NAMES,
    IMAGE_MAX_BYTES,
    INPUT_FIELDS,
    NEGATIVE_PROMPT_MAX,
    SEED_MAX,
    SEED_MIN,
    SIZE_TIERS,
    VIDEO_SYNTHESIS_ROUTE,
    ModelCapability,
    get_capability,
    strip_query,
)
from airflow_provider_wan.simulator.scenario import Marker, MarkerError, parse_marker
from airflow_provider_wan.simulator.wire import ApiError

#: Limits used for models outside the capability table (``allow_unknown_models``).
UNKNOWN_MODEL_PROMPT_MAX = 1500
UNKNOWN_MODEL_DEFAULT_SIZE = "1920*1080"
UNKNOWN_MODEL_DEFAULT_DURATION = 5
_SIZE_RE = re.compile(r"^[1-9]\d{1,4}\*[1-9]\d{1,4}$")

Names = Callable[[str], str]

#: The wan2.7 ``input.media`` list: the field of each entry type, and the role it plays.
MEDIA_FIELD = "media"
MEDIA_TYPES: dict[str, str] = {"first_frame": "img_url", "last_frame": "last_frame_url", "driving_audio": "audio_url"}
#: The role of each named input field (what the simulator records and checks the content against).
ROLES: dict[str, str] = {
    "img_url": "first_frame",
    "first_frame_url": "first_frame",
    "last_frame_url": "last_frame",
    "reference_urls": "reference",
    "audio_url": "audio",
}
#: Schemes DashScope fetches: http(s) URLs (presigned ones included) and ``oss://`` temporary uploads.
FETCHABLE_SCHEMES = ("http", "https", "oss")

_NATIVE_WHERE = {
    "prompt": "input",
    "negative_prompt": "input",
    "audio_url": "input",
    MEDIA_FIELD: "input",
    **{name: "input" for name in INPUT_FIELDS},
}


def native_name(field_name: str) -> str:
    """
    Where a field lives in a native body, e.g. ``input.prompt`` or ``parameters.size``.

    :param field_name: the bare field name.
    """
    return f"{_NATIVE_WHERE.get(field_name, 'parameters')}.{field_name}"


def unified_name(field_name: str) -> str:
    """
    Where a field lives in a unified (flat) body: the bare name.

    :param field_name: the bare field name.
    """
    return field_name


#: A URL as it may be shown in messages, logs and records (the provider's own rule: no query, no fragment).
shown_url = strip_query


@dataclass(frozen=True)
class MediaInput:
    """
    One media input of a submission, as DashScope will fetch it.

    :param name: where it sits in the body, e.g. ``input.img_url``, ``input.reference_urls[1]``, ``input.media[0]``.
    :param role: ``first_frame``, ``last_frame``, ``reference`` or ``audio``.
    :param url: the URL as sent. A secret when presigned: show :attr:`shown` instead.
    :param kinds: the media kinds the parameter takes (``image``, ``video``, ``audio``).
    """

    name: str
    role: str
    url: str = field(repr=False)
    kinds: tuple[Kind, ...]

    @property
    def shown(self) -> str:
        """The URL without its query, for messages, logs and records."""
        return shown_url(self.url)

    @property
    def oss(self) -> bool:
        """Whether it is an ``oss://`` temporary upload (resolved by DashScope with the OssResourceResolve header)."""
        return self.url.lower().startswith("oss://")


@dataclass(frozen=True)
class SubmitRequest:
    """
    A validated video submission (text, image, first-and-last-frame or reference), with the model's defaults filled in.

    :param model: the model name as sent.
    :param capability: its capability row (None for an allowed unknown model).
    :param prompt: the prompt, silently truncated to the model's limit (becomes ``orig_prompt``); None when the
        model animates without one (image-to-video, first-and-last-frame) and none was given.
    :param negative_prompt: the negative prompt, truncated to 500 characters.
    :param size: the effective ``W*H`` (for a resolution-shape model, the size of its resolution and ratio; for a
        tier-shape model, provisionally the tier's 16:9 size: the task's size follows its first frame once fetched).
    :param duration: the effective seconds.
    :param prompt_extend: whether the prompt is rewritten (default on).
    :param watermark: whether a watermark is added (default off).
    :param seed: the seed, if given.
    :param shot_type: ``single`` or ``multi``.
    :param audio_url: the soundtrack URL, if given (not fetched).
    :param audio: whether the video has sound: models that make sound do unless ``parameters.audio`` is false.
    :param marker: the parsed ``[[sim: ...]]`` marker, if the prompt has one.
    :param body: the JSON body as received.
    :param inputs: the media inputs DashScope fetches, in body order.
    :param resolution: the tier asked for by a tier-shape model (image-to-video, first-and-last-frame), else None.
    """

    model: str
    capability: ModelCapability | None
    prompt: str | None
    negative_prompt: str | None
    size: str
    duration: int
    prompt_extend: bool
    watermark: bool
    seed: int | None
    shot_type: str
    audio_url: str | None
    audio: bool
    marker: Marker | None
    body: dict[str, Any] = field(repr=False)
    inputs: tuple[MediaInput, ...] = ()
    resolution: str | None = None

    @property
    def family(self) -> str:
        """``t2v``, ``i2v``, ``kf2v`` or ``r2v``; an allowed unknown model's is told by the inputs it was given."""
        if self.capability is not None:
            return self.capability.family
        roles = {item.role for item in self.inputs}
        if "reference" in roles:
            return "r2v"
        if "last_frame" in roles:
            return "kf2v"
        return "i2v" if "first_frame" in roles else "t2v"

    @property
    def needs_oss_resolve(self) -> bool:
        """Whether an input is an ``oss://`` upload (the native submit must then carry the resolve header)."""
        return any(item.oss for item in self.inputs)

    @property
    def image_max_bytes(self) -> int:
        """The largest image input the model takes."""
        return self.capability.image_max_bytes if self.capability else IMAGE_MAX_BYTES

    @property
    def usage_shape(self) -> str:
        """``v26`` or ``legacy``; unknown models get the newest shape."""
        return self.capability.usage_shape if self.capability else "v26"

    @property
    def returns_actual_prompt(self) -> bool:
        """Whether the model returns a rewritten ``actual_prompt``."""
        return self.capability.returns_actual_prompt if self.capability else False


def invalid(message: str) -> ApiError:
    """
    A 400 InvalidParameter refusal.

    :param message: what is wrong, naming the field.
    """
    return ApiError(400, "InvalidParameter", message)


def _model(value: Any, allow_unknown: bool) -> tuple[str, ModelCapability | None]:
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "BadRequest.EmptyModel", 'Required parameter "model" missing from request.')
    cap = get_capability(value)
    if cap is not None and value.strip() not in (cap.name, *cap.aliases):
        cap = None  # DashScope matches model names exactly: WAN2.6-T2V is not wan2.6-t2v
    if cap is None and not allow_unknown:
        raise ApiError(404, "ModelNotFound", "Model can not be found.")
    return value.strip(), cap


def _prompt(value: Any, name: str, limit: int, required: bool = True) -> str | None:
    if not required and (value is None or (isinstance(value, str) and not value.strip())):
        return None  # image and keyframe models animate without a prompt; a relay's "" is no prompt
    if value is None:
        raise invalid(f"Field required: {name}")
    if not isinstance(value, str):
        raise invalid(f"The prompt must be a string: {name}")
    if not value.strip():
        raise invalid(f"The prompt must contain words: {name} is empty")
    return value[:limit]


def _optional_str(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise invalid(f"{name} must be a string")


def _integer(value: Any) -> int | None:
    """Coerce like the service's JSON binder: 5, 5.0 and "5" are 5; anything else is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def _bool(value: Any, default: bool, name: str) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise invalid(f"The {name.rsplit('.', 1)[-1]} must be a boolean: {name}={value!r}")


def _size(value: Any, cap: ModelCapability | None, model: str, name: str) -> str:
    if value is None:
        return cap.default_size if cap else UNKNOWN_MODEL_DEFAULT_SIZE
    allowed = cap.sizes if cap else None
    if isinstance(value, str) and _SIZE_RE.match(value) and (allowed is None or value in allowed):
        return value
    hint = ", ".join(allowed) if allowed else "width*height such as 1280*720"
    raise invalid(f"The size is not match the allowed sizes of model {model}: {name}={value!r}; allowed: {hint}")


def _picture(params: dict[str, Any], cap: ModelCapability | None, model: str, names: Names) -> str:
    """The ``W*H`` asked for: ``size`` (wan2.6 and older), or ``resolution`` + ``ratio`` (wan2.7 and newer)."""
    if cap is None and params.get("size") is None and params.get("resolution") is not None:
        return _unknown_model_tier(params, model, names)
    if cap is None or cap.shape == "size":
        return _size(params.get("size"), cap, model, names("size"))
    if cap.shape == "tier":
        return SIZE_TIERS[_tier(params, cap, model, names)]["16:9"]  # provisional: the first frame decides the ratio
    if params.get("size") is not None:
        raise invalid(
            f"The size is not match the request shape of model {model}: {names('size')}={params['size']!r}; "
            f"give {names('resolution')} ({', '.join(cap.tiers)}) and {names('ratio')} ({', '.join(cap.ratios)})"
        )
    tier = params.get("resolution", cap.default_resolution)
    if not isinstance(tier, str) or tier.upper() not in cap.tiers:
        raise invalid(
            f"The resolution is not match the allowed resolutions of model {model}: "
            f"{names('resolution')}={tier!r}; allowed: {', '.join(cap.tiers)}"
        )
    ratio = params.get("ratio", cap.default_ratio)
    sizes = SIZE_TIERS[tier.upper()]
    if ratio not in cap.ratios or ratio not in sizes:
        allowed = ", ".join(r for r in cap.ratios if r in sizes)
        raise invalid(
            f"The ratio is not match the allowed ratios of model {model} at {tier.upper()}: "
            f"{names('ratio')}={ratio!r}; allowed: {allowed}"
        )
    return sizes[ratio]


def _tier(params: dict[str, Any], cap: ModelCapability, model: str, names: Names) -> str:
    """
    The tier of an image-to-video or first-and-last-frame model: ``resolution`` only, since the video takes the
    aspect ratio of its first frame; ``size`` and ``ratio`` are refused (assumed: DashScope's documentation lists
    neither for these models, and its answer to them is not documented).
    """
    for key in ("size", "ratio"):
        if params.get(key) is not None:
            raise invalid(
                f"The {key} is not supported by model {model}: {names(key)}={params[key]!r}; the video takes the "
                f"aspect ratio of its first frame: give {names('resolution')} ({', '.join(cap.tiers)}) only"
            )
    tier = params.get("resolution", cap.default_resolution)
    if not isinstance(tier, str) or tier.strip().upper() not in cap.tiers:
        raise invalid(
            f"The resolution is not match the allowed resolutions of model {model}: "
            f"{names('resolution')}={tier!r}; allowed: {', '.join(cap.tiers)}"
        )
    return tier.strip().upper()


def _unknown_model_tier(params: dict[str, Any], model: str, names: Names) -> str:
    """An allowed unknown model asked for with the newer shape: any tier and ratio of the size table."""
    tier, ratio = params.get("resolution"), params.get("ratio", "16:9")
    sizes = SIZE_TIERS.get(tier.upper(), {}) if isinstance(tier, str) else {}
    if ratio not in sizes:
        raise invalid(
            f"The resolution and ratio are not match any size of model {model}: {names('resolution')}={tier!r}, "
            f"{names('ratio')}={ratio!r}; allowed: {', '.join(SIZE_TIERS)} with {', '.join(SIZE_TIERS['720P'])}"
        )
    return sizes[ratio]


def _duration(value: Any, cap: ModelCapability | None, model: str, name: str) -> int:
    if value is None:
        return cap.default_duration if cap else UNKNOWN_MODEL_DEFAULT_DURATION
    seconds = _integer(value)
    if seconds is not None and (seconds in cap.durations if cap else seconds > 0):
        return seconds
    hint = f"{cap.describe_durations()} seconds" if cap else "a positive integer of seconds"
    raise invalid(
        f"The duration is not match the allowed durations of model {model}: {name}={value!r}; allowed: {hint}"
    )


def _shot_type(value: Any, cap: ModelCapability | None, model: str, name: str) -> str:
    if value is None:
        return "single"
    if value not in ("single", "multi"):
        raise invalid(f"The shot_type is invalid: {name}={value!r}; allowed: single, multi")
    if value == "multi" and cap is not None and not cap.multi_shot:
        raise invalid(f"The shot_type is not supported by model {model}: {name}='multi'; multi-shot needs wan2.6")
    return str(value)


def _seed(value: Any, name: str) -> int | None:
    if value is None:
        return None
    seed = _integer(value)
    if seed is None or not SEED_MIN <= seed <= SEED_MAX:
        raise invalid(f"The seed is out of range: {name}={value!r}; allowed: an integer in [{SEED_MIN}, {SEED_MAX}]")
    return seed


def _audio(value: Any, audio_url: str | None, cap: ModelCapability | None) -> bool:
    """Sound when the model makes sound (unknown models: when asked); ``audio: false`` silences it."""
    if isinstance(value, str):
        value = {"true": True, "false": False}.get(value.strip().lower())
    if value is False:
        return False
    if cap is not None:
        return cap.audio
    return value is True or bool(audio_url)


def _given(value: Any) -> bool:
    """Whether an input field was given: None, blank strings and empty lists count as absent."""
    return not (value is None or (isinstance(value, (str, list, tuple)) and not value))


def _kinds(role: str, cap: ModelCapability | None) -> tuple[Kind, ...]:
    if role == "audio":
        return ("audio",)
    if role == "reference" and (cap is None or cap.reference_videos > 0):
        return ("image", "video")
    return ("image",)


def _url(value: Any, name: str) -> str:
    """An input URL DashScope can fetch: http(s) or ``oss://``; the message never shows a query string."""
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"The url must be a non-empty string: {name}")
    url = value.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in FETCHABLE_SCHEMES or not parts.netloc:
        raise invalid(
            f"The url is invalid: {name}={shown_url(url)!r}; allowed: http(s) URLs (presigned ones included) and "
            f"oss:// temporary uploads"
        )
    return url


def _media_list(value: Any, cap: ModelCapability | None, model: str, names: Names) -> list[MediaInput]:
    """wan2.7's ``input.media``: ``[{type, url}]``, one entry per type, a ``first_frame`` required."""
    where = names(MEDIA_FIELD)
    if not isinstance(value, list):
        raise invalid(f"The media must be an array of {{type, url}} objects: {where}")
    allowed = [
        kind
        for kind in MEDIA_TYPES
        if cap is None
        or kind == "first_frame"
        or (kind == "last_frame" and cap.last_frame)
        or (kind == "driving_audio" and cap.audio)
    ]
    found: list[MediaInput] = []
    for index, entry in enumerate(value):
        name = f"{where}[{index}]"
        kind = entry.get("type") if isinstance(entry, dict) else None
        if kind not in allowed:
            raise invalid(
                f"The media type is not supported by model {model}: {name}.type={kind!r}; allowed: {', '.join(allowed)}"
            )
        if any(item.role == ("audio" if kind == "driving_audio" else kind) for item in found):
            raise invalid(f"The media type is duplicated: {name}.type={kind!r}; give one {kind} at most")
        role = "audio" if kind == "driving_audio" else str(kind)
        found.append(MediaInput(name, role, _url(entry.get("url"), f"{name}.url"), _kinds(role, cap)))
    if not any(item.role == "first_frame" for item in found):
        raise invalid(f"Field required: {where} (an entry of type first_frame)")
    return found


def _references(value: Any, cap: ModelCapability | None, model: str, name: str) -> list[MediaInput]:
    if not isinstance(value, list):
        raise invalid(f"The reference_urls must be an array of URLs: {name}")
    if cap is not None and len(value) > cap.references_max:
        raise invalid(
            f"The reference_urls has too many references for model {model}: {name} has {len(value)}; allowed: 1 to "
            f"{cap.references_max} (at most {cap.reference_images} images and {cap.reference_videos} videos)"
        )
    return [
        MediaInput(f"{name}[{i}]", "reference", _url(url, f"{name}[{i}]"), _kinds("reference", cap))
        for i, url in enumerate(value)
    ]


def _media_inputs(
    inputs: dict[str, Any], cap: ModelCapability | None, model: str, names: Names
) -> tuple[MediaInput, ...]:
    """
    The media inputs of a submission: only those the model's family takes, the required ones present.

    :param inputs: the input fields.
    :param cap: the model's row (None: an allowed unknown model takes any input, none required).
    :param model: the model name as sent.
    :param names: how fields are named in messages.
    """
    fields = (*INPUT_FIELDS, MEDIA_FIELD, "audio_url")
    given = [name for name in fields if _given(inputs.get(name))]
    if cap is not None:
        takes = (MEDIA_FIELD,) if cap.media else (*cap.inputs, "audio_url")
        for name in given:
            if name not in takes:
                family = FAMILY_NAMES[cap.family]
                wanted = ", ".join(names(n) for n in takes if n != "audio_url") or "no media inputs (text only)"
                raise invalid(
                    f"The {name} is not supported by model {model} ({family}): {names(name)}; it takes {wanted}"
                )
        for name in () if cap.media else cap.required_inputs:
            if name not in given:
                raise invalid(f"Field required: {names(name)} (model {model} is {FAMILY_NAMES[cap.family]})")
        if cap.media and MEDIA_FIELD not in given:
            raise invalid(f"Field required: {names(MEDIA_FIELD)} (an entry of type first_frame)")
    found: list[MediaInput] = []
    for name in given:
        value = inputs[name]
        if name == MEDIA_FIELD:
            found.extend(_media_list(value, cap, model, names))
        elif name == "reference_urls":
            found.extend(_references(value, cap, model, names(name)))
        else:
            role = ROLES[name]
            found.append(MediaInput(names(name), role, _url(value, names(name)), _kinds(role, cap)))
    return tuple(found)


def _check_route(cap: ModelCapability | None, route: str | None) -> None:
    """
    A model on another model family's route (first-and-last-frame models answer on ``image2video`` only).

    Assumed: DashScope answers a model posted to a route that does not serve it like an unknown model of that route,
    400 ``InvalidParameter`` "Model not exist." (its answer for a model outside an endpoint); not observed for Wan.
    """
    if cap is not None and route is not None and cap.route != route:
        raise invalid("Model not exist.")


def _marker(prompt: str, name: str) -> Marker | None:
    try:
        return parse_marker(prompt)
    except MarkerError as err:
        raise invalid(f"The [[sim: ...]] marker in {name} is invalid: {err}") from None


def build_request(
    model_value: Any,
    inputs: dict[str, Any],
    params: dict[str, Any],
    body: dict[str, Any],
    names: Names,
    allow_unknown: bool,
    route: str | None = None,
) -> SubmitRequest:
    """
    Validate one submission against its model and fill in the model's defaults.

    :param model_value: the ``model`` as sent.
    :param inputs: the input fields (``prompt``, ``negative_prompt``, ``audio_url``, the media inputs ``img_url``,
        ``first_frame_url``, ``last_frame_url``, ``reference_urls`` or wan2.7's ``media``; others are ignored).
    :param params: the parameters (``size``, or ``resolution`` + ``ratio`` for wan2.7 and newer, ``duration``,
        ``prompt_extend``, ``watermark``, ``seed``, ``shot_type``, ``audio``; others are ignored).
    :param body: the whole body, kept for the debug view.
    :param names: how fields are named in messages for this wire flavour.
    :param allow_unknown: accept models outside the capability table.
    :param route: the native submit route it came on (a model answers on its own only); None for relays, which
        choose the upstream route themselves.
    :raises ApiError: the refusal the service would answer.
    """
    model, cap = _model(model_value, allow_unknown)
    _check_route(cap, route)
    media = _media_inputs(inputs, cap, model, names)
    raw_prompt = inputs.get("prompt")
    required = cap.prompt_required if cap else not any(item.role != "audio" for item in media)
    prompt = _prompt(raw_prompt, names("prompt"), cap.prompt_max if cap else UNKNOWN_MODEL_PROMPT_MAX, required)
    negative = _optional_str(inputs.get("negative_prompt"), names("negative_prompt"))
    audio_url = _optional_str(inputs.get("audio_url"), names("audio_url"))
    return SubmitRequest(
        model=model,
        capability=cap,
        prompt=prompt,
        negative_prompt=negative[:NEGATIVE_PROMPT_MAX] if negative else negative,
        size=_picture(params, cap, model, names),
        duration=_duration(params.get("duration"), cap, model, names("duration")),
        prompt_extend=_bool(params.get("prompt_extend"), True, names("prompt_extend")),
        watermark=_bool(params.get("watermark"), False, names("watermark")),
        seed=_seed(params.get("seed"), names("seed")),
        shot_type=_shot_type(params.get("shot_type"), cap, model, names("shot_type")),
        audio_url=audio_url,
        audio=_audio(params.get("audio"), audio_url, cap),
        marker=_marker(str(raw_prompt), names("prompt")) if prompt is not None else None,
        body=body,
        inputs=media,
        resolution=_tier(params, cap, model, names) if cap is not None and cap.shape == "tier" else None,
    )


def parse_native(body: Any, allow_unknown: bool, route: str = VIDEO_SYNTHESIS_ROUTE) -> SubmitRequest:
    """
    Validate a native ``{"model", "input", "parameters"}`` body.

    :param body: the decoded JSON.
    :param allow_unknown: accept models outside the capability table.
    :param route: the submit route below the prefix it came on (``services/aigc/video-generation/video-synthesis``
        or, for first-and-last-frame models, ``services/aigc/image2video/video-synthesis``).
    :raises ApiError: the refusal the service would answer.
    """
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    _model(body.get("model"), allow_unknown)
    inputs = body.get("input")
    if not isinstance(inputs, dict):
        raise ApiError(400, "BadRequest.EmptyInput", "Required input parameter missing from request.")
    params = body.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise invalid("parameters must be a JSON object")
    return build_request(body.get("model"), inputs, params or {}, body, native_name, allow_unknown, route)


_UNIFIED_INPUTS = ("prompt", "negative_prompt", "audio_url", *INPUT_FIELDS, MEDIA_FIELD)


def parse_unified(body: Any, allow_unknown: bool) -> SubmitRequest:
    """
    Validate a unified flat body (``prompt``, ``model``, ``size``, ``duration``, ...).

    :param body: the decoded JSON.
    :param allow_unknown: accept models outside the capability table.
    :raises ApiError: the refusal the relay would answer.
    """
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    if body.get("images") or body.get("videos"):
        raise invalid(
            "images/videos are not fields of this flavour: give img_url, first_frame_url + last_frame_url, "
            "reference_urls or media"
        )
    inputs = {key: body.get(key) for key in _UNIFIED_INPUTS}
    params = {key: value for key, value in body.items() if key not in _UNIFIED_INPUTS and key != "model"}
    return build_request(body.get("model"), inputs, params, body, unified_name, allow_unknown)


def newapi_name(field_name: str) -> str:
    """
    Where a field lives in a new-api task body: ``prompt`` at the top, the rest under ``metadata``.

    :param field_name: the bare field name.
    """
    if field_name in ("prompt", "model"):
        return field_name
    return f"metadata.{_NATIVE_WHERE.get(field_name, 'parameters')}.{field_name}"


def parse_newapi(body: Any, allow_unknown: bool) -> SubmitRequest:
    """
    Validate a new-api task body (``/v1/video/generations`` and ``/v1/videos``), as new-api turns it into DashScope's.

    ``model``, ``prompt``, ``duration`` (or OpenAI's ``seconds``) and ``size`` sit at the top: a ``W*H`` size is
    sent on as ``size``, a tier such as ``720p`` as ``resolution``. ``metadata`` (``input`` and ``parameters``) is
    merged over them, as new-api merges it into the upstream request.

    :param body: the decoded JSON.
    :param allow_unknown: accept models outside the capability table.
    :raises ApiError: the refusal DashScope would answer (the routes wrap it as new-api does).
    """
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise invalid("metadata must be a JSON object")
    meta_input, meta_params = metadata.get("input") or {}, metadata.get("parameters") or {}
    if not isinstance(meta_input, dict) or not isinstance(meta_params, dict):
        raise invalid("metadata.input and metadata.parameters must be JSON objects")
    inputs = {"prompt": body.get("prompt"), **meta_input}
    params: dict[str, Any] = {}
    size = body.get("size")
    if isinstance(size, str) and size.strip():
        if "*" in size:
            params["size"] = size.strip()
        else:
            tier = size.strip().upper()
            params["resolution"] = tier if tier.endswith("P") else tier + "P"
    seconds = body.get("duration") or body.get("seconds")
    if seconds:
        params["duration"] = seconds
    params.update(meta_params)
    return build_request(body.get("model"), inputs, params, body, newapi_name, allow_unknown)
