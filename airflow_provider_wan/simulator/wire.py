"""Wire shapes of the simulator: error bodies, task outputs of both flavours, list items, OSS XML errors.

Pure functions from task views to JSON-ready dicts; the routes in app.py only send them.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from airflow_provider_wan.models import SIZE_TIERS, SIZE_TO_TIER, VIDEO_SYNTHESIS_ROUTE, ModelCapability

if TYPE_CHECKING:
    from airflow_provider_wan.simulator.state import TaskView

#: Documented messages of DashScope error codes (reference section 5.2); faults default to these.
MESSAGES: dict[str, str] = {
    "InvalidParameter": "Required parameter(s) missing or invalid, please check the request parameters.",
    "DataInspectionFailed": "Input or output data may contain inappropriate content.",
    "IPInfringementSuspect": "Input data is suspected of being involved in IP infringement.",
    "InvalidApiKey": "Invalid API-key provided.",
    "AccessDenied": "Access denied.",
    "AccessDenied.Unpurchased": "Access to model denied. Please make sure you are eligible for using the model.",
    "Arrearage": "Access denied, please make sure your account is in good standing.",
    "ModelNotFound": "Model can not be found.",
    "UnsupportedOperation": "The operation is unsupported on the referee object.",
    "RequestTimeOut": "Request timed out, please try again later.",
    "Throttling": "Requests throttling triggered.",
    "Throttling.RateQuota": "Requests rate limit exceeded, please try again later.",
    "Throttling.AllocationQuota": "Allocated quota exceeded, please increase your quota limit.",
    "InternalError": "An internal error has occured, please try again later or contact service support.",
    "InternalError.Algo": "An internal error has occured during execution, please try again later or contact "
    "service support.",
    "InternalError.Timeout": "An internal timeout error has occured during execution, please try again later or "
    "contact service support.",
    "SystemError": "An system error has occured, please try again later.",
    "ModelUnavailable": "Model is unavailable, please try again later.",
    "ServiceUnavailable": "Service is unavailable, please try again later.",
    "GatewayTimeout": "Gateway timeout, please try again later.",
    "NoSuchKey": "The specified key does not exist.",
}

#: The code a fault uses when only an HTTP status is given.
CODE_FOR_STATUS: dict[int, str] = {
    400: "InvalidParameter",
    401: "InvalidApiKey",
    403: "AccessDenied",
    404: "ModelNotFound",
    408: "RequestTimeOut",
    429: "Throttling.RateQuota",
    500: "InternalError",
    502: "InternalError",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

GATEWAY_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>Tengine</center></body></html>\n"
)

ACTUAL_PROMPT_SUFFIX = " Cinematic composition, natural lighting, smooth camera movement, rich realistic detail."


def message_for(code: str) -> str:
    """
    The documented message of an error code, or a generic one.

    :param code: a DashScope error code.
    """
    return MESSAGES.get(code, f"Simulated error {code}.")


def code_for_status(status: int) -> str:
    """
    A plausible DashScope code for an HTTP status.

    :param status: the HTTP status.
    """
    return CODE_FOR_STATUS.get(status, "InternalError")


def new_request_id() -> str:
    """A fresh request id (uuid4), as on every DashScope answer."""
    return str(uuid.uuid4())


@dataclass
class ApiError(Exception):
    """
    A refusal the routes turn into an HTTP error answer.

    :param status: the HTTP status.
    :param code: the DashScope error code.
    :param message: the message; default: the documented one of ``code``.
    :param retry_after: seconds for a ``Retry-After`` header.
    """

    status: int
    code: str
    message: str = ""
    retry_after: float | None = None

    def __post_init__(self) -> None:
        self.message = self.message or message_for(self.code)
        super().__init__(f"{self.status} {self.code}: {self.message}")


def native_error(code: str, message: str, request_id: str) -> dict[str, Any]:
    """
    The native flat error body ``{request_id, code, message}``.

    :param code: the error code.
    :param message: the error message.
    :param request_id: the answer's request id.
    """
    return {"request_id": request_id, "code": code, "message": message}


def unified_error(code: str, message: str) -> dict[str, Any]:
    """
    The unified-flavour error body ``{code, message}``.

    :param code: the error code.
    :param message: the error message.
    """
    return {"code": code, "message": message}


def oss_error_xml(code: str, message: str, request_id: str, extra: dict[str, str] | None = None) -> str:
    """
    An OSS-style XML error document, as the result bucket answers.

    :param code: the OSS error code, e.g. ``AccessDenied``.
    :param message: the OSS message, e.g. ``Request has expired.``.
    :param request_id: the x-oss-request-id.
    :param extra: further elements, e.g. ``Expires`` and ``ServerTime``.
    """
    fields = {"Code": code, "Message": message, "RequestId": request_id, "HostId": "dashscope-result-sim.local"}
    fields.update(extra or {})
    inner = "".join(f"\n  <{name}>{escape(value)}</{name}>" for name, value in fields.items())
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{inner}\n</Error>\n'


def format_time(epoch: float, utc_offset_hours: float) -> str:
    """
    A DashScope timestamp ``YYYY-MM-DD HH:mm:ss.SSS`` (no zone; the service uses Beijing time).

    :param epoch: seconds since the epoch.
    :param utc_offset_hours: the zone to render in.
    """
    moment = datetime.fromtimestamp(epoch, tz=timezone(timedelta(hours=utc_offset_hours)))
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def usage(view: TaskView) -> dict[str, Any]:
    """
    The ``usage`` object of a SUCCEEDED task, in its model generation's shape.

    :param view: the task.
    """
    task = view.task
    if task.usage_shape == "legacy":
        return {"video_count": 1, "video_duration": task.duration, "video_ratio": task.size}
    tier = tier_of(task.size)
    seconds = task.input_video_seconds
    input_seconds: float = int(seconds) if float(seconds).is_integer() else seconds
    return {
        "duration": task.duration + input_seconds,
        "size": task.size,
        "input_video_duration": input_seconds,
        "output_video_duration": task.duration,
        "video_count": 1,
        "SR": int(tier.rstrip("P")),
    }


def tier_of(size: str) -> str:
    """
    The resolution tier DashScope bills a ``W*H`` size at (``SR``): its tier in the size table, else the tier whose
    sizes have the nearest pixel count (an allowed unknown model's ``640*360`` is 480P, not 1080P).

    :param size: the ``W*H`` size.
    """
    if size in SIZE_TO_TIER:
        return SIZE_TO_TIER[size]
    width, _, height = size.partition("*")
    pixels = int(width) * int(height) if width.isdigit() and height.isdigit() else 0
    reference = {tier: math.prod(int(side) for side in sizes["16:9"].split("*")) for tier, sizes in SIZE_TIERS.items()}
    return min(reference, key=lambda tier: abs(math.log(max(pixels, 1) / reference[tier])))


def native_output(view: TaskView, video_url: str | None, utc_offset_hours: float) -> dict[str, Any]:
    """
    The ``output`` object of ``GET /tasks/{id}`` for a known task.

    :param view: the task as of now.
    :param video_url: the signed link (used when SUCCEEDED).
    :param utc_offset_hours: the zone of the timestamps.
    """
    task = view.task
    out: dict[str, Any] = {"task_id": task.task_id, "task_status": view.status}
    out["submit_time"] = format_time(task.submitted_at, utc_offset_hours)
    if view.scheduled_at is not None:
        out["scheduled_time"] = format_time(view.scheduled_at, utc_offset_hours)
    if view.ended_at is not None:
        out["end_time"] = format_time(view.ended_at, utc_offset_hours)
    if view.status == "SUCCEEDED":
        if task.prompt is not None:  # an image or keyframe task without a prompt has no orig_prompt
            out["orig_prompt"] = task.prompt
        if task.returns_actual_prompt and task.prompt_extend:
            # Without a prompt, the rewrite describes the first frame: the fixed sentence alone.
            out["actual_prompt"] = (task.prompt + ACTUAL_PROMPT_SUFFIX) if task.prompt else ACTUAL_PROMPT_SUFFIX.strip()
        out["video_url"] = video_url
    if view.status == "FAILED":
        out["code"] = task.fail_code
        out["message"] = task.fail_message
    return out


def native_task(view: TaskView | None, task_id: str, video_url: str | None, utc_offset_hours: float) -> dict[str, Any]:
    """
    The whole ``GET /tasks/{id}`` body; UNKNOWN for a missing or expired task.

    :param view: the task, or None when unknown or expired.
    :param task_id: the id asked for.
    :param video_url: the signed link (used when SUCCEEDED).
    :param utc_offset_hours: the zone of the timestamps.
    """
    body: dict[str, Any] = {"request_id": new_request_id()}
    if view is None:
        body["output"] = {"task_id": task_id, "task_status": "UNKNOWN"}
        return body
    body["output"] = native_output(view, video_url, utc_offset_hours)
    if view.status == "SUCCEEDED":
        body["usage"] = usage(view)
    return body


def list_item(view: TaskView) -> dict[str, Any]:
    """
    One entry of ``GET /tasks`` (flat list shape; times in epoch milliseconds).

    :param view: the task.
    """
    task = view.task

    def millis(epoch: float | None) -> int | None:
        return None if epoch is None else int(epoch * 1000)

    return {
        "api_key_id": task.api_key_id,
        "caller_parent_id": "1000000000000000",
        "caller_uid": "1000000000000000",
        "end_time": millis(view.ended_at),
        "gmt_create": millis(task.submitted_at),
        "model_name": task.model,
        "region": task.region,
        "request_id": task.submit_request_id,
        "start_time": millis(view.scheduled_at),
        "status": view.status,
        "task_id": task.task_id,
        "user_api_unique_key": f"apikey:v1:aigc:{_route_key(task.request.capability)}:{task.model}",
    }


def _route_key(cap: ModelCapability | None) -> str:
    """The route part of a list entry's ``user_api_unique_key``: ``video-generation:video-synthesis`` or
    ``image2video:video-synthesis`` (first-and-last-frame models)."""
    route = cap.route if cap is not None else VIDEO_SYNTHESIS_ROUTE
    return route.removeprefix("services/aigc/").replace("/", ":")


UNIFIED_STATUS: dict[str, str] = {
    "SUCCEEDED": "SUCCESS",
    "FAILED": "FAILURE",
    "CANCELED": "FAILURE",
    "RUNNING": "IN_PROGRESS",
}


def unified_task(view: TaskView, video_url: str | None) -> dict[str, Any]:
    """
    The unified-flavour ``GET /v2/videos/generations/{id}`` body.

    :param view: the task as of now.
    :param video_url: the signed link (used when SUCCEEDED).
    """
    status = UNIFIED_STATUS.get(view.status) or ("QUEUED" if view.queued else "SUBMITTED")
    fail_reason = ""
    if view.status == "FAILED":
        fail_reason = f"{view.task.fail_code}: {view.task.fail_message}"
    elif view.status == "CANCELED":
        fail_reason = "task canceled"
    data = {"output": video_url, "outputs": [video_url]} if view.status == "SUCCEEDED" else None
    return {
        "task_id": view.task.task_id,
        "status": status,
        "fail_reason": fail_reason,
        "submit_time": int(view.task.submitted_at),
        "start_time": None if view.scheduled_at is None else int(view.scheduled_at),
        "finish_time": None if view.ended_at is None else int(view.ended_at),
        "progress": f"{view.progress}%",
        "data": data,
    }
