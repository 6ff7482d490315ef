"""
Sans-I/O wire flavours: build DashScope requests and read their answers without touching a socket.

The sync hook, the async hook and the trigger all go through here, so a wire quirk is fixed once.
"""

from __future__ import annotations

import email.utils
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from airflow_provider_wan.exceptions import (
    WanAmbiguousSubmitError,
    WanAPIError,
    WanProtocolError,
    WanServerError,
    WanThrottledError,
    WanUnexpectedStatusError,
    error_class_for,
)
from airflow_provider_wan.models import TaskStatus, WanTask, WanUsage, WanVideoRequest, redact_urls

SUBMIT_PATH = "services/aigc/video-generation/video-synthesis"
#: The relay flavours' default paths (the connection's ``unified_path`` extra overrides them).
UNIFIED_PATH = "v2/videos/generations"
NEWAPI_PATH = "v1/video/generations"
OPENAI_VIDEOS_PATH = "v1/videos"
#: DashScope's timestamps carry no zone; the service runs on China Standard Time.
DASHSCOPE_TZ = timezone(timedelta(hours=8))
_SNIPPET = 200
#: Codes some relays put on successful answers.
_OK_CODES = frozenset({"success", "ok", "0", "200"})


@dataclass(frozen=True)
class HttpRequest:
    """
    One HTTP request to make, relative to the connection's base URL.

    :param method: ``GET`` or ``POST``.
    :param path: the path below the base URL, without a leading slash.
    :param json: the JSON body, if any.
    :param params: the query parameters, if any.
    :param headers: headers beyond authorization and user agent.
    :param idempotent: whether repeating the request after it may have been processed is harmless.
        A submit is not: a second POST can create a second billed task.
    """

    method: str
    path: str
    json: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    idempotent: bool = True


@dataclass(frozen=True)
class HttpResponse:
    """
    An HTTP answer, independent of the client library.

    :param status_code: the HTTP status.
    :param headers: the response headers (case-insensitive mapping preferred).
    :param content: the raw body.
    """

    status_code: int
    headers: Mapping[str, str]
    content: bytes


class SubmitResult(BaseModel):
    """
    What a submit returns.

    :param task_id: the new DashScope task id.
    :param task_status: its first status (PENDING).
    :param request_id: the id of the HTTP exchange.
    """

    task_id: str
    task_status: TaskStatus = TaskStatus.PENDING
    request_id: str | None = None


class WanTaskSummary(BaseModel):
    """
    One row of ``GET /tasks``: a task without its result.

    :param task_id: the DashScope task id.
    :param status: its status.
    :param model_name: the model it ran.
    :param gmt_create: creation time, epoch milliseconds.
    :param start_time: start time, epoch milliseconds.
    :param end_time: end time, epoch milliseconds.
    """

    model_config = ConfigDict(extra="allow")

    task_id: str
    status: str | None = None
    model_name: str | None = None
    gmt_create: int | None = None
    start_time: int | None = None
    end_time: int | None = None


class WanTaskPage(BaseModel):
    """
    A page of ``GET /tasks``.

    :param tasks: the tasks on this page.
    :param total: how many tasks match in all.
    :param page_no: this page's number (from 1).
    :param page_size: the page size.
    :param total_page: how many pages there are.
    :param request_id: the id of the HTTP exchange.
    """

    tasks: list[WanTaskSummary]
    total: int | None = None
    page_no: int | None = None
    page_size: int | None = None
    total_page: int | None = None
    request_id: str | None = None

    def is_last(self, page_no: int) -> bool:
        """
        Whether no page follows page ``page_no`` (an empty page, or the last of ``total_page``).

        :param page_no: the number of this page, as asked for.
        """
        return not self.tasks or (self.total_page or 1) <= page_no


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """
    Read how long the server asked us to wait: ``retry-after-ms``, or ``Retry-After`` in seconds or as a date.

    :param headers: the response headers.
    :param now: the current epoch time (for HTTP dates); defaults to the clock.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    if (ms := lowered.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _body_snippet(response: HttpResponse) -> str:
    return " ".join(response.content[:_SNIPPET].decode("utf-8", "replace").split())


def read_json(response: HttpResponse) -> Any:
    """
    Decode a JSON body, or raise :class:`WanProtocolError` quoting what arrived instead.

    :param response: the answer to decode.
    """
    try:
        return json.loads(response.content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        snippet = response.content[:_SNIPPET].decode("utf-8", "replace").strip()
        content_type = response.headers.get("content-type", "unknown")
        raise WanProtocolError(
            f"HTTP {response.status_code} answer is not JSON (content-type {content_type}): {snippet!r}",
            status_code=response.status_code,
        ) from None


def error_from_response(response: HttpResponse) -> WanAPIError:
    """
    Turn a non-2xx answer into the matching :class:`WanAPIError` subclass.

    Reads ``{"code", "message", "request_id"}`` (also ``msg`` and a nested ``error`` object, as relays send).
    A body that is not JSON becomes :class:`WanProtocolError`, except for HTTP 429, which is throttling whatever
    the body says.

    :param response: the answer to read.
    """
    try:
        body = read_json(response)
    except WanProtocolError as err:
        if response.status_code >= 500:
            # A gateway's error page (502/503/504 HTML): the service or a proxy failed, not the base URL.
            return WanServerError(
                f"HTTP {response.status_code} from DashScope or a gateway in front of it, not JSON: "
                f"{_body_snippet(response)!r}",
                status_code=response.status_code,
            )
        if response.status_code != 429:
            return err
        body = {}
    if not isinstance(body, dict):
        body = {}
    nested: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
    code = _text(body.get("code")) or _text(nested.get("code")) or _text(nested.get("type"))
    message = (
        _text(body.get("message"))
        or _text(body.get("msg"))
        or _text(nested.get("message"))
        or f"HTTP {response.status_code} without an error message"
    )
    request_id = _text(body.get("request_id")) or response.headers.get("x-request-id")
    code, message = _upstream_error(code, message)
    message = redact_urls(message)
    cls = error_class_for(code, response.status_code, message)
    error = cls(message, code=code, request_id=request_id, status_code=response.status_code)
    if isinstance(error, WanThrottledError):
        error.retry_after = retry_after_seconds(response.headers)
    return error


def _known_code(code: str) -> bool:
    return error_class_for(code, None) is not WanAPIError


def _upstream_error(code: str | None, message: str) -> tuple[str | None, str]:
    """
    DashScope's own code and message when a relay wraps them in its own code.

    new-api answers ``{"code": "ali_api_error", "message": "InvalidParameter: ..."}`` or puts DashScope's whole
    error body in ``message``; the DashScope code decides what the error means.
    """
    if code is not None and _known_code(code):
        return code, message
    text = message.strip()
    if text.startswith("{"):
        try:
            inner = json.loads(text)
        except ValueError:
            inner = None
        if isinstance(inner, dict) and (inner_code := _text(inner.get("code"))) and _known_code(inner_code):
            return inner_code, _text(inner.get("message")) or message
    head, sep, rest = text.partition(":")
    if sep and head.strip() and " " not in head.strip() and _known_code(head.strip()):
        return head.strip(), rest.strip() or message
    return code, message


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _ok_json(response: HttpResponse) -> dict[str, Any]:
    """Check the status, decode the body, and surface an error carried inside an HTTP 200."""
    if not 200 <= response.status_code < 300:
        raise error_from_response(response)
    body = read_json(response)
    if not isinstance(body, dict):
        raise WanProtocolError(f"expected a JSON object, got {type(body).__name__}", status_code=response.status_code)
    code = str(body.get("code") or "").strip().lower()
    has_payload = (
        isinstance(body.get("output"), dict) or "task_id" in body or isinstance(body.get("data"), (dict, list))
    )
    if code and code not in _OK_CODES and not has_payload:
        # The v2 SDK's two-layer model: an HTTP 200 can still carry a top-level error code.
        raise error_from_response(HttpResponse(400, response.headers, response.content))
    return body


class WanProtocol(ABC):
    """
    One wire flavour: how requests are built and answers read.

    :cvar name: the value of the connection's ``protocol`` extra.
    :cvar supports_cancel: whether the flavour has a cancel route.
    :cvar supports_list: whether the flavour can list tasks.
    """

    name: str
    supports_cancel: bool = True
    supports_list: bool = True

    @abstractmethod
    def submit_request(self, request: WanVideoRequest) -> HttpRequest:
        """Build the POST that creates a task. :param request: the validated request."""

    @abstractmethod
    def parse_submit(self, response: HttpResponse) -> SubmitResult:
        """Read the submit's answer. :param response: the answer."""

    def read_submit(self, response: HttpResponse) -> SubmitResult:
        """
        Read the submit's answer, telling a refusal that proves no task exists from an answer that does not.

        Only an error carrying a service error ``code`` (JSON) proves the submit was refused. Everything else
        (a 2xx without a readable task id, a gateway page, a 4xx/5xx without a code) may follow a task that was
        created and will be billed: :class:`WanAmbiguousSubmitError`, which is never retried automatically.

        :param response: the answer.
        """
        try:
            return self.parse_submit(response)
        except WanAPIError as err:
            if err.code is not None and not isinstance(err, WanProtocolError):
                raise
            raise WanAmbiguousSubmitError(
                f"the submit's answer does not say whether a task was created (HTTP {response.status_code}: "
                f"{err.message}). DashScope may have created a task that will be billed"
            ) from None

    @abstractmethod
    def get_task_request(self, task_id: str) -> HttpRequest:
        """Build the GET that reads a task. :param task_id: the DashScope task id."""

    @abstractmethod
    def parse_task(self, response: HttpResponse, task_id: str) -> WanTask:
        """Read a task. :param response: the answer. :param task_id: the id asked for."""

    def cancel_request(self, task_id: str) -> HttpRequest:
        """Build the POST that cancels a PENDING task. :param task_id: the DashScope task id."""
        raise NotImplementedError(f"the {self.name} protocol has no cancel route")

    def parse_cancel(self, response: HttpResponse) -> str | None:
        """Read a cancel's answer; returns the request id. :param response: the answer."""
        return _text(_ok_json(response).get("request_id"))

    def list_request(self, **filters: Any) -> HttpRequest:
        """Build the GET that lists tasks. :param filters: page_no, page_size, status, model_name, times."""
        raise NotImplementedError(f"the {self.name} protocol cannot list tasks")

    def parse_list(self, response: HttpResponse) -> WanTaskPage:
        """Read a page of tasks. :param response: the answer."""
        raise NotImplementedError(f"the {self.name} protocol cannot list tasks")

    def probe_request(self) -> HttpRequest:
        """A request that needs a valid key but spends nothing: reading a task that does not exist."""
        return self.get_task_request("00000000-0000-0000-0000-000000000000")


class DashScopeProtocol(WanProtocol):
    """The native DashScope protocol: ``/services/aigc/video-generation/video-synthesis`` and ``/tasks``."""

    name = "dashscope"

    def submit_request(self, request: WanVideoRequest) -> HttpRequest:
        """
        Build the native submit: ``{"model", "input", "parameters"}`` with ``X-DashScope-Async: enable``, on the
        model's route (first-and-last-frame models: ``image2video``), its media inputs in ``input``.
        """
        body_input: dict[str, Any] = {"prompt": request.prompt} if request.prompt is not None else {}
        if request.negative_prompt:
            body_input["negative_prompt"] = request.negative_prompt
        body_input.update(media_inputs(request))
        body_input.update(request.extra_input)
        body = {"model": request.model, "input": body_input, "parameters": _parameters(request)}
        headers = {"X-DashScope-Async": "enable", "Content-Type": "application/json"}
        if any(uri.startswith("oss://") for _, uri in request.input_uris()):
            headers["X-DashScope-OssResourceResolve"] = "enable"
        route = request.capability.route if request.capability else SUBMIT_PATH
        return HttpRequest("POST", route, json=body, headers=headers, idempotent=False)

    def parse_submit(self, response: HttpResponse) -> SubmitResult:
        """Read ``{"output": {"task_id", "task_status"}, "request_id"}``."""
        body = _ok_json(response)
        output = body.get("output")
        if not isinstance(output, dict) or not _text(output.get("task_id")):
            raise WanProtocolError(
                f"submit answer has no output.task_id: {_snippet(body)}", status_code=response.status_code
            )
        return SubmitResult(
            task_id=str(output["task_id"]),
            task_status=_status(output.get("task_status") or "PENDING"),
            request_id=_text(body.get("request_id")),
        )

    def get_task_request(self, task_id: str) -> HttpRequest:
        """Build ``GET /tasks/{task_id}``."""
        return HttpRequest("GET", f"tasks/{_safe_id(task_id)}")

    def parse_task(self, response: HttpResponse, task_id: str) -> WanTask:
        """Read ``{"output": {...}, "usage": {...}, "request_id"}``; a FAILED task is data, not an exception."""
        body = _ok_json(response)
        output = body.get("output")
        if not isinstance(output, dict):
            raise WanProtocolError(f"task answer has no output: {_snippet(body)}", status_code=response.status_code)
        usage = body.get("usage")
        try:
            fields = {
                **output,
                "task_id": _text(output.get("task_id")) or task_id,
                "task_status": _status(output.get("task_status")),
                "usage": WanUsage.model_validate(usage) if isinstance(usage, dict) and usage else None,
                "request_id": _text(body.get("request_id")),
            }
            return WanTask.model_validate(fields)
        except ValidationError as err:
            raise WanProtocolError(
                f"task answer cannot be read ({_first_error(err)}): {_snippet(body)}",
                status_code=response.status_code,
            ) from None

    def cancel_request(self, task_id: str) -> HttpRequest:
        """Build ``POST /tasks/{task_id}/cancel`` (no body); only PENDING tasks can be canceled."""
        return HttpRequest("POST", f"tasks/{_safe_id(task_id)}/cancel", idempotent=True)

    def list_request(self, **filters: Any) -> HttpRequest:
        """Build ``GET /tasks`` with the given filters (None values dropped)."""
        params = {k: v for k, v in filters.items() if v is not None}
        return HttpRequest("GET", "tasks", params=params)

    def parse_list(self, response: HttpResponse) -> WanTaskPage:
        """Read the flat list shape (``data`` per the Java SDK, ``tasks`` per the v2 SDK)."""
        body = _ok_json(response)
        rows = body.get("data", body.get("tasks")) or []
        if not isinstance(rows, list):
            raise WanProtocolError(f"task list has no data array: {_snippet(body)}", status_code=response.status_code)
        try:
            tasks = [WanTaskSummary.model_validate(row) for row in rows if isinstance(row, dict)]
            return WanTaskPage(
                tasks=tasks,
                total=body.get("total"),
                page_no=body.get("page_no"),
                page_size=body.get("page_size"),
                total_page=body.get("total_page"),
                request_id=_text(body.get("request_id")),
            )
        except ValidationError as err:
            raise WanProtocolError(f"task list cannot be read ({_first_error(err)})") from None


def media_inputs(request: WanVideoRequest) -> dict[str, Any]:
    """
    The request's media inputs as ``input`` fields, with the fetchable URLs (presigned for ``s3://`` URIs).

    Named fields (``img_url``, ``first_frame_url``, ``last_frame_url``, ``reference_urls``, ``audio_url``) for
    wan2.6 and older; one ``media`` list of ``{type, url}`` for wan2.7 and newer (``first_frame``, ``last_frame``,
    ``driving_audio``). The values are secrets when presigned: never log the result.

    :param request: the validated request.
    """
    cap = request.capability
    if cap is not None and cap.media:
        kinds = {"img_url": "first_frame", "last_frame_url": "last_frame", "audio_url": "driving_audio"}
        media = [
            {"type": kinds[name], "url": request.wire_url(getattr(request, name))}
            for name in kinds
            if getattr(request, name) is not None
        ]
        return {"media": media} if media else {}
    fields: dict[str, Any] = {}
    for name, value in request.given_inputs.items():
        fields[name] = [request.wire_url(v) for v in value] if isinstance(value, tuple) else request.wire_url(value)
    if request.audio_url:
        fields["audio_url"] = request.wire_url(request.audio_url)
    return fields


def _picture(request: WanVideoRequest) -> tuple[tuple[str, Any], ...]:
    """
    The picture in the model's request shape: ``size`` (wan2.6 and older), ``resolution`` + ``ratio`` (wan2.7 and
    newer) or ``resolution`` alone (image and keyframe models: the ratio is the input image's).
    """
    if request.shape == "size":
        return (("size", request.effective_size),)
    if request.shape == "tier":
        return (("resolution", request.effective_resolution),)
    return (("resolution", request.effective_resolution), ("ratio", request.effective_ratio))


def _parameters(request: WanVideoRequest) -> dict[str, Any]:
    params: dict[str, Any] = {}
    # The picture and the duration are always explicit for a known model, so what we log as billed is what
    # DashScope bills (its defaults could change under us).
    for key, value in (
        *_picture(request),
        ("duration", request.effective_duration),
        ("prompt_extend", request.prompt_extend),
        ("watermark", request.watermark),
        ("seed", request.seed),
        ("audio", request.audio),
        ("shot_type", request.shot_type),
    ):
        if value is not None:
            params[key] = value
    params.update(request.extra_parameters)
    return params


def dashscope_time(epoch: float) -> str:
    """
    Epoch seconds as the list API's ``yyyyMMddHHmmss`` in DashScope's zone (UTC+8).

    :param epoch: the moment.
    """
    return datetime.fromtimestamp(epoch, tz=DASHSCOPE_TZ).strftime("%Y%m%d%H%M%S")


#: Seconds added on both sides of the send time when looking for the task a lost submit answer may have created
#: (the list API's times have second precision, and clocks drift).
AMBIGUITY_MARGIN = 5.0
#: Rows asked for per page, and pages read at most, when looking for such a task.
AMBIGUITY_PAGE_SIZE = 100
AMBIGUITY_MAX_PAGES = 5


def candidate_filters(model: str, sent_at: float, answered_at: float, page_no: int = 1) -> dict[str, Any]:
    """
    The ``GET /tasks`` filters that find every task of ``model`` created while a submit was in flight.

    :param model: the model the submit asked for.
    :param sent_at: epoch seconds when the submit was sent.
    :param answered_at: epoch seconds when its (unreadable or lost) answer came.
    :param page_no: the page to read.
    """
    return {
        "model_name": model,
        "start_time": dashscope_time(sent_at - AMBIGUITY_MARGIN),
        "end_time": dashscope_time(answered_at + AMBIGUITY_MARGIN),
        "page_no": page_no,
        "page_size": AMBIGUITY_PAGE_SIZE,
    }


def candidates_of(page: WanTaskPage) -> list[dict[str, Any]]:
    """
    The rows of a page as plain dicts for an error message and XCom-safe storage.

    :param page: a page of ``GET /tasks``.
    """
    return [
        {"task_id": row.task_id, "status": row.status, "model": row.model_name, "gmt_create": row.gmt_create}
        for row in page.tasks
    ]


#: Relay statuses -> DashScope statuses, every vocabulary in one table (upper-cased, spaces as underscores):
#: the unified / new-api task vocabulary (reference section 7.1; new-api ``model.TaskStatus``), OpenAI-style
#: video objects (new-api ``dto/openai_video.go``), Gemini-style relays (``processing``, ``succeeded``), and
#: DashScope's own (a relay passing it through).
UNIFIED_STATUSES: dict[str, TaskStatus] = {
    "NOT_START": TaskStatus.PENDING,
    "SUBMITTED": TaskStatus.PENDING,
    "QUEUED": TaskStatus.PENDING,
    "PENDING": TaskStatus.PENDING,
    "IN_PROGRESS": TaskStatus.RUNNING,
    "PROCESSING": TaskStatus.RUNNING,
    "RUNNING": TaskStatus.RUNNING,
    "SUCCESS": TaskStatus.SUCCEEDED,
    "SUCCEEDED": TaskStatus.SUCCEEDED,
    "COMPLETED": TaskStatus.SUCCEEDED,
    "FAILURE": TaskStatus.FAILED,
    "FAILED": TaskStatus.FAILED,
    "CANCELED": TaskStatus.CANCELED,
    "CANCELLED": TaskStatus.CANCELED,
    "UNKNOWN": TaskStatus.UNKNOWN,
}
#: Codes a relay answers for a task id it does not know (new-api: HTTP 400 ``task_not_exist``): the task expired.
TASK_NOT_FOUND_CODES = frozenset({"task_not_exist", "task_not_found", "not_found"})
#: new-api codes for failures after the upstream submit may have been sent: they do not prove that no task exists.
RELAY_UNCERTAIN_CODES = frozenset(
    {
        "do_request_failed",
        "read_response_body_failed",
        "unmarshal_response_body_failed",
        "unmarshal_response_failed",
        "invalid_response",
        "insert_task_failed",
    }
)


class UnifiedProtocol(WanProtocol):
    """
    The relay "unified" flavour: a flat body POSTed to one path, the task read at ``{path}/{task_id}``.

    Reads every answer shape relays give: a flat task, new-api's ``{"code": "success", "data": task}``, and an
    OpenAI-style video object, with the video at ``result_url``, ``data.output`` (a URL, or the upstream DashScope
    ``output`` object), ``data.outputs[0]`` or ``metadata.url``.

    :param path: the submit path below the base URL (the connection's ``unified_path`` extra); default
        :attr:`default_path`.
    """

    name = "unified"
    supports_cancel = False
    supports_list = False
    default_path = UNIFIED_PATH

    def __init__(self, path: str | None = None) -> None:
        self.path = (path or self.default_path).strip().strip("/")
        if not self.path or "?" in self.path or "#" in self.path or "://" in self.path:
            raise ValueError(f"unified_path={path!r} is not a path such as {self.default_path!r}")

    def submit_request(self, request: WanVideoRequest) -> HttpRequest:
        """Build the submit: the flavour's body POSTed to :attr:`path` (never retried blindly)."""
        return HttpRequest(
            "POST",
            self.path,
            json=self.submit_body(request),
            headers={"Content-Type": "application/json"},
            idempotent=False,
        )

    def submit_body(self, request: WanVideoRequest) -> dict[str, Any]:
        """The flat body: prompt, model and the parameters side by side. :param request: the validated request."""
        body: dict[str, Any] = {"model": request.model}
        if request.prompt is not None:
            body["prompt"] = request.prompt
        if request.negative_prompt:
            body["negative_prompt"] = request.negative_prompt
        body.update(media_inputs(request))
        body.update(request.extra_input)
        body.update(_parameters(request))
        return body

    def parse_submit(self, response: HttpResponse) -> SubmitResult:
        """Read ``{"task_id": ...}`` (also ``{"data": {"task_id"}}`` and an OpenAI-style ``{"id"}``)."""
        body = _ok_json(response)
        data: dict[str, Any] = body["data"] if isinstance(body.get("data"), dict) else {}
        task_id = _text(body.get("task_id")) or _text(data.get("task_id")) or _text(body.get("id"))
        if not task_id:
            raise WanProtocolError(f"submit answer has no task_id: {_snippet(body)}", status_code=response.status_code)
        return SubmitResult(task_id=task_id, request_id=_text(body.get("request_id")))

    def get_task_request(self, task_id: str) -> HttpRequest:
        """Build ``GET {path}/{task_id}``."""
        return HttpRequest("GET", f"{self.path}/{_safe_id(task_id)}")

    def parse_task(self, response: HttpResponse, task_id: str) -> WanTask:
        """Read a relay task in any of its shapes; an unknown task id is UNKNOWN, an unknown status an error."""
        if _task_not_found(response):
            # Relays answer an unknown id with 404, new-api with 400 task_not_exist; DashScope says UNKNOWN.
            return WanTask(task_id=task_id, task_status=TaskStatus.UNKNOWN)
        body = _ok_json(response)
        if isinstance(body.get("data"), dict) and "status" not in body and "status" in body["data"]:
            body = {**body["data"], "request_id": body.get("request_id")}  # new-api wraps the task in data
        upstream = _upstream_output(body)
        status = _relay_status(body, response.status_code)
        if status is TaskStatus.FAILED and upstream.get("task_status") in ("CANCELED", "UNKNOWN"):
            # new-api folds DashScope's CANCELED and UNKNOWN (expired) into FAILURE; its upstream copy tells them apart.
            status = TaskStatus(upstream["task_status"])
        code, message = _relay_failure(body) if status is TaskStatus.FAILED else (None, None)
        return WanTask(
            task_id=_text(body.get("task_id")) or _text(body.get("id")) or task_id,
            task_status=status,
            video_url=_relay_video_url(body) if status is TaskStatus.SUCCEEDED else None,
            code=code,
            message=message,
            usage=_relay_usage(body) if status is TaskStatus.SUCCEEDED else None,
            submit_time=_unix_to_dashscope(body.get("submit_time") or body.get("created_at"))
            or _text(upstream.get("submit_time")),
            scheduled_time=_unix_to_dashscope(body.get("start_time")) or _text(upstream.get("scheduled_time")),
            end_time=_unix_to_dashscope(body.get("finish_time") or body.get("completed_at"))
            or _text(upstream.get("end_time")),
            orig_prompt=_text(upstream.get("orig_prompt")),
            actual_prompt=_text(upstream.get("actual_prompt")),
            request_id=_text(body.get("request_id")),
        )


class NewApiProtocol(UnifiedProtocol):
    """
    new-api (``QuantumNous/new-api``), the most deployed self-hosted relay: ``POST /v1/video/generations``.

    Its task body carries ``model``, ``prompt``, ``duration`` and ``size``; everything else DashScope takes goes in
    ``metadata`` (``input`` and ``parameters``), which new-api merges into the upstream request. Answers are read as
    for :class:`UnifiedProtocol` (``{"code": "success", "data": task}`` with ``result_url``).
    """

    name = "newapi"
    default_path = NEWAPI_PATH

    def submit_body(self, request: WanVideoRequest) -> dict[str, Any]:
        """``{"model", "prompt", "duration", ["size"], "metadata": {"input", "parameters"}}``."""
        params = _parameters(request)
        inputs: dict[str, Any] = {}
        if request.negative_prompt:
            inputs["negative_prompt"] = request.negative_prompt
        inputs.update(media_inputs(request))
        inputs.update(request.extra_input)
        body: dict[str, Any] = {"model": request.model, "prompt": request.prompt or ""}
        if "duration" in params:
            body["duration"] = params.pop("duration")
        if "size" in params:
            body["size"] = params.pop("size")  # new-api maps a W*H size itself; a tier goes in parameters
        metadata = {key: value for key, value in (("input", inputs), ("parameters", params)) if value}
        if metadata:
            body["metadata"] = metadata
        return body

    def parse_submit(self, response: HttpResponse) -> SubmitResult:
        """As :class:`UnifiedProtocol`; new-api's codes for failures after forwarding are not refusals."""
        try:
            return super().parse_submit(response)
        except WanAPIError as err:
            if err.code in RELAY_UNCERTAIN_CODES:
                # The upstream submit may have been sent: read_submit makes this ambiguous, never retried blindly.
                raise WanProtocolError(f"{err.code}: {err.message}", status_code=err.status_code) from None
            raise


class OpenAIVideoProtocol(NewApiProtocol):
    """new-api's OpenAI-compatible video routes: ``POST /v1/videos``, ``GET /v1/videos/{id}`` (``metadata.url``)."""

    name = "openai"
    default_path = OPENAI_VIDEOS_PATH


def _task_not_found(response: HttpResponse) -> bool:
    if response.status_code == 404:
        return True
    if response.status_code != 400:
        return False
    try:
        body = json.loads(response.content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(body, dict) and str(body.get("code") or "").strip().lower() in TASK_NOT_FOUND_CODES


def _relay_status(body: dict[str, Any], status_code: int) -> TaskStatus:
    raw = _text(body.get("status"))
    status = UNIFIED_STATUSES.get((raw or "").upper().replace(" ", "_").replace("-", "_"))
    if status is None:
        raise WanUnexpectedStatusError(
            f"unexpected status {raw!r} from the relay: no known vocabulary has it (known, in any case: "
            f"{', '.join(UNIFIED_STATUSES)}); waiting longer would not make it readable: {_snippet(body)}",
            code="UnexpectedStatus",
            status_code=status_code,
        )
    return status


def _upstream_output(body: dict[str, Any]) -> dict[str, Any]:
    """DashScope's ``output`` object when the relay passes the upstream answer through (new-api ``data.data``)."""
    data = body.get("data")
    if isinstance(data, dict) and isinstance(data.get("output"), dict):
        return data["output"]
    metadata = body.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _relay_video_url(body: dict[str, Any]) -> str | None:
    """The video, wherever this relay put it (first found wins)."""
    data = _object(body.get("data"))
    metadata = _object(body.get("metadata"))
    output = data.get("output")
    outputs = data.get("outputs")
    candidates = (
        body.get("result_url"),
        output if isinstance(output, str) else None,
        output.get("video_url") if isinstance(output, dict) else None,
        outputs[0] if isinstance(outputs, list) and outputs else None,
        metadata.get("url"),
        body.get("video_url"),
        body.get("url"),
    )
    return next((url for url in map(_text, candidates) if url), None)


def _relay_usage(body: dict[str, Any]) -> WanUsage | None:
    """What DashScope billed, when the relay passes it through (``data.usage`` or ``metadata.usage``)."""
    for holder in (body.get("data"), body.get("metadata")):
        usage = holder.get("usage") if isinstance(holder, dict) else None
        if isinstance(usage, dict) and usage:
            try:
                return WanUsage.model_validate(usage)
            except ValidationError:
                return None
    return None


def _relay_failure(body: dict[str, Any]) -> tuple[str, str]:
    error = _object(body.get("error"))
    upstream = _upstream_output(body)
    reason = (
        _text(body.get("fail_reason"))
        or _text(error.get("message"))
        or _text(upstream.get("message"))
        or _text(body.get("message"))
        or "the relay gave no reason"
    )
    code = _text(body.get("fail_code")) or _text(error.get("code")) or _text(upstream.get("code"))
    if code is None or not _known_code(code):
        code = _upstream_error(code, reason)[0]
    if code is None or not _known_code(code):
        code = "TaskFailed"
    return code, reason


def _unix_to_dashscope(value: Any) -> str | None:
    """Unix seconds (int, float or numeric string) -> ``YYYY-MM-DD HH:mm:ss.SSS`` in DashScope's zone."""
    if value is None or value == "" or value == 0:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return _text(value)
    if seconds > 1e11:  # milliseconds
        seconds /= 1000.0
    moment = datetime.fromtimestamp(seconds, tz=DASHSCOPE_TZ)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _status(value: Any) -> TaskStatus:
    text = (_text(value) or "").upper()
    try:
        return TaskStatus(text)
    except ValueError:
        raise WanProtocolError(
            f"unexpected task_status {value!r}; expected one of {', '.join(s.value for s in TaskStatus)}"
        ) from None


def _safe_id(task_id: str) -> str:
    task_id = task_id.strip()
    if not task_id or "/" in task_id or "?" in task_id or "#" in task_id:
        raise ValueError(f"dashscope_task_id={task_id!r} is not a DashScope task id")
    return task_id


def _snippet(body: Any) -> str:
    text = json.dumps(body, ensure_ascii=False)[:_SNIPPET]
    return text


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


PROTOCOLS: dict[str, type[WanProtocol]] = {
    DashScopeProtocol.name: DashScopeProtocol,
    UnifiedProtocol.name: UnifiedProtocol,
    NewApiProtocol.name: NewApiProtocol,
    OpenAIVideoProtocol.name: OpenAIVideoProtocol,
}


def get_protocol(name: str, path: str | None = None) -> WanProtocol:
    """
    Return the wire flavour called ``name``.

    :param name: ``dashscope`` (native), ``unified`` (relay ``/v2/videos/generations``), ``newapi`` (new-api's
        ``/v1/video/generations``) or ``openai`` (new-api's OpenAI-style ``/v1/videos``).
    :param path: the relay flavours' submit path instead of their default (the ``unified_path`` extra).
    """
    try:
        cls = PROTOCOLS[name.strip().lower()]
    except KeyError:
        raise ValueError(f"protocol={name!r} is unknown; allowed: {', '.join(PROTOCOLS)}") from None
    if issubclass(cls, UnifiedProtocol):
        return cls(path)
    if path:
        raise ValueError(f"unified_path={path!r} applies to the relay protocols, not to protocol={name!r}")
    return cls()
