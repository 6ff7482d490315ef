"""The simulator's HTTP face: native DashScope routes (the video-synthesis route and, for first-and-last-frame
models, the image2video route), the relay routes and the video file route.

Every API request runs one pipeline: guards (auth, body, account limits), injected faults, the work, faults after.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_provider_wan import __version__
from airflow_provider_wan.models import IMAGE2VIDEO_ROUTE, VIDEO_SYNTHESIS_ROUTE
from airflow_provider_wan.simulator.admin import admin_router
from airflow_provider_wan.simulator.config import DAY, FaultSpec
from airflow_provider_wan.simulator.fetch import InputFetcher
from airflow_provider_wan.simulator.responses import VideoStreamResponse, dropped, pause, truncated
from airflow_provider_wan.simulator.state import SimTask, SimulatorState, TaskView
from airflow_provider_wan.simulator.validation import SubmitRequest, invalid, parse_native, parse_unified
from airflow_provider_wan.simulator.video import VideoBody, byte_range, signature_ok, video_body, video_url
from airflow_provider_wan.simulator.wire import (
    GATEWAY_PAGE,
    ApiError,
    list_item,
    native_error,
    native_task,
    new_request_id,
    oss_error_xml,
    unified_error,
    unified_task,
)

SUBMIT_PATH = "/" + VIDEO_SYNTHESIS_ROUTE
#: First-and-last-frame models submit here (``services/aigc/image2video/video-synthesis``).
IMAGE2VIDEO_PATH = "/" + IMAGE2VIDEO_ROUTE
#: The header that lets DashScope resolve ``oss://`` inputs (temporary uploads).
OSS_RESOLVE_HEADER = "X-DashScope-OssResourceResolve"
UNIFIED_PATH = "/v2/videos/generations"
_TASK_FILE_RE = re.compile(r"^([0-9a-fA-F-]{36})\.mp4$")
_MASKED_HEADERS = ("authorization", "x-api-key", "proxy-authorization")

Work = Callable[[Request, "Call"], Awaitable[Response]]
Guard = Callable[[Request, "Call"], None]


@dataclass
class Call:
    """
    One request travelling through the pipeline.

    :param route: submit, get, cancel, list or video.
    :param protocol: dashscope, unified or oss (the video route).
    :param task_id: the task the request is about, if any.
    :param api_key: the bearer key, once authenticated.
    :param marker_key: the submission's marker, once parsed.
    :param task: the task a video request resolved to.
    :param body: the request body.
    :param submission: the validated submission (submit routes).
    """

    route: str
    protocol: str
    task_id: str | None = None
    api_key: str = ""
    marker_key: str | None = None
    task: SimTask | None = field(default=None, repr=False)
    body: bytes = field(default=b"", repr=False)
    submission: SubmitRequest | None = field(default=None, repr=False)


def error_response(protocol: str, err: ApiError) -> Response:
    """
    An error answer in the shape of the wire flavour.

    :param protocol: dashscope, unified or oss.
    :param err: the refusal.
    """
    headers = {"Retry-After": str(max(1, math.ceil(err.retry_after)))} if err.retry_after is not None else {}
    request_id = new_request_id()
    if protocol == "oss":
        headers["x-oss-request-id"] = request_id
        xml = oss_error_xml(err.code, err.message, request_id)
        return Response(xml, status_code=err.status, media_type="application/xml", headers=headers)
    if protocol == "unified":
        return JSONResponse(unified_error(err.code, err.message), status_code=err.status, headers=headers)
    headers["x-request-id"] = request_id
    return JSONResponse(native_error(err.code, err.message, request_id), status_code=err.status, headers=headers)


def mask_headers(request: Request) -> dict[str, str]:
    """
    The request's headers for the debug view, with credentials masked.

    :param request: the request.
    """
    return {k: ("***" if k.lower() in _MASKED_HEADERS else v) for k, v in request.headers.items()}


def json_body(request: Request, raw: bytes) -> Any:
    """
    Decode a JSON body; ``application/json`` with or without a charset is accepted.

    :param request: the request (for its Content-Type).
    :param raw: the body bytes.
    :raises ApiError: 400 InvalidParameter for another media type or malformed JSON.
    """
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise invalid(f"Content-Type must be application/json, got {content_type!r}")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise invalid("The request body is not valid JSON.") from None


class Pipeline:
    """
    Runs requests through guards, faults and work, and keeps the counters.

    :param state: the simulator state.
    """

    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    async def handle(self, request: Request, call: Call, work: Work, guards: tuple[Guard, ...] = ()) -> Response:
        """
        Serve one request.

        :param request: the request.
        :param call: what the request is.
        :param work: produces the normal answer.
        :param guards: checks that run before any fault (auth, limits, link checks).
        """
        call.body = await request.body()
        self.state.count_request(call.route, call.protocol)
        try:
            for guard in guards:
                guard(request, call)
            response = await self._faulted(request, call, work)
        except ApiError as err:
            response = error_response(call.protocol, err)
        self.state.count_status(response.status_code)
        return response

    async def _faulted(self, request: Request, call: Call, work: Work) -> Response:
        fault = self.state.take_fault(call.route, call.protocol, "before", call.task_id)
        if fault is not None:
            early = await self.apply(fault, request, call, None)
            if early is not None:
                return early
        response = await work(request, call)
        return await self._after(request, call, response) if response.status_code < 400 else response

    async def _after(self, request: Request, call: Call, response: Response) -> Response:
        fault = self.state.take_fault(call.route, call.protocol, "after", call.task_id)
        if fault is None and call.marker_key is not None:
            fault = self.state.take_fault(call.route, call.protocol, "after", marker_key=call.marker_key)
        if fault is None:
            return response
        return await self.apply(fault, request, call, response) or response

    async def apply(self, fault: FaultSpec, request: Request, call: Call, response: Response | None) -> Response | None:
        """
        Turn a fault into the answer it causes; None means "carry on" (latency already waited).

        :param fault: the fault.
        :param request: the request.
        :param call: what the request is.
        :param response: the normal answer (after phase) or None (before phase).
        """
        status = fault.http_status
        if fault.kind == "latency":
            await pause(request.receive, fault.latency, self.state.closing)
            return response
        if fault.kind == "error":
            return error_response(
                call.protocol, ApiError(status, fault.error_code, fault.message or "", fault.retry_after)
            )
        if fault.kind == "drop":
            return dropped("video/mp4" if call.route == "video" else "application/json")
        if fault.kind == "html":
            return HTMLResponse(fault.body or GATEWAY_PAGE, status_code=status)
        if fault.kind == "body":
            return Response(fault.body or "", status_code=status, media_type=fault.content_type)
        if fault.kind == "redirect":
            return RedirectResponse(str(fault.location), status_code=status)
        return truncated(response) if response is not None else None


class Guards:
    """
    Checks that refuse a request before it reaches faults or work.

    :param state: the simulator state.
    """

    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    def auth(self, request: Request, call: Call) -> None:
        """
        Require ``Authorization: Bearer <key>`` (any non-empty key, or one of ``api_keys``).

        :param request: the request.
        :param call: records the key.
        """
        scheme, _, key = request.headers.get("authorization", "").strip().partition(" ")
        key = key.strip()
        if not scheme or (scheme.lower() == "bearer" and not key):
            raise ApiError(401, "InvalidApiKey", "No API-key provided.")
        allowed = self.state.config.api_keys
        if scheme.lower() != "bearer" or (allowed and key not in allowed):
            raise ApiError(401, "InvalidApiKey", "Invalid API-key provided.")
        call.api_key = key

    def async_header(self, request: Request, call: Call) -> None:
        """
        Require ``X-DashScope-Async: enable`` on a native submit.

        :param request: the request.
        :param call: unused.
        """
        if request.headers.get("x-dashscope-async", "").strip().lower() != "enable":
            raise ApiError(403, "AccessDenied", "current user api does not support synchronous calls")

    def native_submission(self, request: Request, call: Call) -> None:
        """
        Validate a native submit body (400/404 as the service answers), on the route it came on; ``oss://`` inputs
        need ``X-DashScope-OssResourceResolve: enable``.

        :param request: the request.
        :param call: receives the submission.
        """
        body = json_body(request, call.body)
        image2video = request.url.path.rstrip("/").endswith(IMAGE2VIDEO_PATH)
        route = IMAGE2VIDEO_ROUTE if image2video else VIDEO_SYNTHESIS_ROUTE
        submission = parse_native(body, self.state.config.allow_unknown_models, route)
        if submission.needs_oss_resolve and request.headers.get(OSS_RESOLVE_HEADER, "").strip().lower() != "enable":
            # The wording is ours: DashScope's answer to an oss:// input without the header is not documented.
            name = next(item.name for item in submission.inputs if item.oss)
            raise invalid(
                f"The oss:// resource cannot be resolved without the header {OSS_RESOLVE_HEADER}: enable: {name}"
            )
        call.submission = submission

    def unified_submission(self, request: Request, call: Call) -> None:
        """
        Validate a unified submit body.

        :param request: the request.
        :param call: receives the submission.
        """
        body = json_body(request, call.body)
        call.submission = parse_unified(body, self.state.config.allow_unknown_models)

    def submit_rate(self, request: Request, call: Call) -> None:
        """
        Enforce the model's submissions per second for this key (one key is one account): no task when refused.

        :param request: the request.
        :param call: the authenticated, validated submission.
        """
        assert call.submission is not None  # set by the submission guard
        self._refuse(self.state.throttle_submit(call.api_key, call.submission.model))

    def query_rate(self, request: Request, call: Call) -> None:
        """
        Enforce ``query_qps`` for this key, over polls and lists of both flavours.

        :param request: the request.
        :param call: the authenticated query.
        """
        self._refuse(self.state.throttle_query(call.api_key, call.route))

    @staticmethod
    def _refuse(wait: float | None) -> None:
        if wait is not None:
            raise ApiError(429, "Throttling.RateQuota", retry_after=wait)

    def video_link(self, request: Request, call: Call) -> None:
        """
        Check a video link like OSS: signed, not expired, naming an existing object.

        :param request: the request.
        :param call: receives the task.
        """
        query = request.query_params
        expires, signature = query.get("Expires", ""), query.get("Signature", "")
        if not expires or not signature or "OSSAccessKeyId" not in query:
            raise ApiError(403, "AccessDenied", "You have no right to access this object because of bucket acl.")
        if not signature_ok(self.state.link_secret, call.task_id or "", expires, signature):
            raise ApiError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if self.state.now() >= int(expires):
            raise ApiError(403, "AccessDenied", "Request has expired.")
        call.task = self.state.succeeded_task(call.task_id or "")
        if call.task is None:
            raise ApiError(404, "NoSuchKey", "The specified key does not exist.")


class Routes:
    """
    The work of every API route, for both wire flavours and the video file route.

    :param state: the simulator state.
    """

    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self.pipeline = Pipeline(state)
        self.guards = Guards(state)
        self.fetcher = InputFetcher(state)

    def link(self, request: Request, task: SimTask) -> str:
        """
        The signed video link of a finished task.

        :param request: the request (its URL is the default root).
        :param task: the task.
        """
        root = self.state.config.public_url or str(request.base_url).rstrip("/")
        return video_url(root, self.state.link_secret, task.task_id, task.link_expires() or 0)

    async def create(self, request: Request, call: Call) -> SimTask | Response:
        """
        Create the task, unless a marker's submission fault refuses it first, and start fetching its media inputs.

        :param request: the request.
        :param call: the validated submission; records the marker.
        """
        submission = call.submission
        assert submission is not None  # set by the submission guard
        marker = submission.marker
        if marker is not None:
            self.state.register_marker(marker)
            call.marker_key = marker.key
            fault = self.state.take_fault("submit", call.protocol, "before", marker_key=marker.key)
            early = await self.pipeline.apply(fault, request, call, None) if fault else None
            if early is not None:
                return early
        task = self.state.create_task(submission, call.protocol, mask_headers(request), call.api_key)
        self.fetcher.start(task)
        return task

    async def native_submit(self, request: Request, call: Call) -> Response:
        """``POST {prefix}/services/aigc/video-generation/video-synthesis`` (and ``.../image2video/...``)."""
        task = await self.create(request, call)
        if isinstance(task, Response):
            return task
        output = {"task_status": "PENDING", "task_id": task.task_id}
        return JSONResponse({"output": output, "request_id": task.submit_request_id})

    async def native_get(self, request: Request, call: Call) -> Response:
        """``GET {prefix}/tasks/{task_id}``: UNKNOWN (HTTP 200) for unknown or expired ids."""
        view = self.state.view(call.task_id or "")
        url = self.link(request, view.task) if view and view.status == "SUCCEEDED" else None
        offset = self.state.config.utc_offset_hours
        return JSONResponse(native_task(view, call.task_id or "", url, offset))

    async def native_cancel(self, request: Request, call: Call) -> Response:
        """``POST {prefix}/tasks/{task_id}/cancel``: only PENDING tasks can be canceled."""
        if not self.state.cancel(call.task_id or ""):
            raise ApiError(400, "UnsupportedOperation")
        return JSONResponse({"request_id": new_request_id()})

    async def native_list(self, request: Request, call: Call) -> Response:
        """``GET {prefix}/tasks``: the flat paged list."""
        query = request.query_params
        page_no, page_size = _positive(query, "page_no", 1), _positive(query, "page_size", 10)
        offset = self.state.config.utc_offset_hours
        _check_time_range(query, offset)
        views = [v for v in self.state.list_views() if _listed(v, query, offset)]
        page = views[(page_no - 1) * page_size : page_no * page_size]
        return JSONResponse(
            {
                "request_id": new_request_id(),
                "data": [list_item(view) for view in page],
                "total": len(views),
                "total_page": math.ceil(len(views) / page_size),
                "page_no": page_no,
                "page_size": page_size,
            }
        )

    async def unified_submit(self, request: Request, call: Call) -> Response:
        """``POST /v2/videos/generations`` with a flat body."""
        task = await self.create(request, call)
        return task if isinstance(task, Response) else JSONResponse({"task_id": task.task_id})

    async def unified_get(self, request: Request, call: Call) -> Response:
        """``GET /v2/videos/generations/{task_id}``: 404 task_not_exist for unknown or expired ids."""
        view: TaskView | None = self.state.view(call.task_id or "")
        if view is None:
            raise ApiError(404, "task_not_exist", "task not exist")
        url = self.link(request, view.task) if view.status == "SUCCEEDED" else None
        return JSONResponse(unified_task(view, url))

    async def video(self, request: Request, call: Call) -> Response:
        """``GET /oss/{task_id}.mp4``: the MP4 rendered to the request, or a synthetic video; ranges honoured."""
        task = call.task
        assert task is not None  # set by the video_link guard
        body = await asyncio.to_thread(video_body, task)  # the first video of a shape is encoded: not on the loop
        try:
            span = byte_range(request.headers.get("range"), body.size)
        except ValueError as err:
            raise ApiError(416, "InvalidRange", f"The requested range is not satisfiable: {err}.") from None
        start, end = span or (0, body.size)
        headers = _video_headers(task, body, span)
        on_bytes = functools.partial(self.state.count, "bytes_served")
        status = 206 if span else 200
        chunk, closing = self.state.config.chunk_bytes, self.state.closing
        return VideoStreamResponse(body, start, end, headers, chunk, on_bytes, closing, status)


def _video_headers(task: SimTask, body: VideoBody, span: tuple[int, int] | None) -> dict[str, str]:
    ended = task.release_at or task.submitted_at
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{task.task_id.replace("-", "").upper()}"',
        "Last-Modified": datetime.fromtimestamp(ended, tz=timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT"),
        "x-oss-request-id": new_request_id(),
        "x-oss-object-type": "Normal",
    }
    if span:
        headers["Content-Range"] = f"bytes {span[0]}-{span[1] - 1}/{body.size}"
    return headers


def _positive(query: Any, name: str, default: int) -> int:
    value = query.get(name)
    if value is None or value == "":
        return default
    if not value.isdigit() or int(value) < 1:
        raise invalid(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _list_time(value: str, name: str, offset_hours: float) -> float:
    """A list filter time: ``yyyyMMddHHmmss`` (service zone), epoch milliseconds or epoch seconds."""
    if not value.isdigit():
        raise invalid(f"{name} must be yyyyMMddHHmmss or epoch milliseconds, got {value!r}")
    if len(value) == 14:
        zone = timezone(timedelta(hours=offset_hours))
        return datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=zone).timestamp()
    return int(value) / 1000 if len(value) >= 13 else float(value)


def _check_time_range(query: Any, offset_hours: float) -> None:
    """DashScope answers at most 24 hours of tasks per query: a wider or inverted window is refused."""
    if not (query.get("start_time") and query.get("end_time")):
        return
    start = _list_time(query["start_time"], "start_time", offset_hours)
    end = _list_time(query["end_time"], "end_time", offset_hours)
    if end < start:
        raise invalid(f"end_time must not be before start_time, got {query['start_time']}-{query['end_time']}")
    if end - start > DAY:
        raise invalid(f"The time range between start_time and end_time must be within 24 hours, got {end - start:g} s")


def _listed(view: TaskView, query: Any, offset_hours: float) -> bool:
    task = view.task
    checks = (
        ("status", lambda v: view.status == v.upper()),
        ("model_name", lambda v: task.model == v),
        ("api_key_id", lambda v: task.api_key_id == v),
        ("region", lambda v: task.region == v),
        ("start_time", lambda v: task.submitted_at >= _list_time(v, "start_time", offset_hours)),
        ("end_time", lambda v: task.submitted_at <= _list_time(v, "end_time", offset_hours)),
    )
    return all(check(query[name]) for name, check in checks if query.get(name))


def _native_router(routes: Routes) -> APIRouter:
    router = APIRouter()
    pipe, guards = routes.pipeline, routes.guards
    query_guards = (guards.auth, guards.query_rate)

    @router.post(SUBMIT_PATH)
    @router.post(IMAGE2VIDEO_PATH)
    async def submit(request: Request) -> Response:
        call = Call("submit", "dashscope")
        checks = (guards.auth, guards.async_header, guards.native_submission, guards.submit_rate)
        return await pipe.handle(request, call, routes.native_submit, checks)

    @router.get("/tasks/{task_id}")
    async def get_task(request: Request, task_id: str) -> Response:
        return await pipe.handle(request, Call("get", "dashscope", task_id), routes.native_get, query_guards)

    @router.post("/tasks/{task_id}/cancel")
    async def cancel_task(request: Request, task_id: str) -> Response:
        return await pipe.handle(request, Call("cancel", "dashscope", task_id), routes.native_cancel, (guards.auth,))

    @router.get("/tasks")
    async def list_tasks(request: Request) -> Response:
        return await pipe.handle(request, Call("list", "dashscope"), routes.native_list, query_guards)

    return router


def _unified_router(routes: Routes) -> APIRouter:
    router = APIRouter()
    pipe, guards = routes.pipeline, routes.guards

    @router.post(UNIFIED_PATH)
    async def submit(request: Request) -> Response:
        call = Call("submit", "unified")
        checks = (guards.auth, guards.unified_submission, guards.submit_rate)
        return await pipe.handle(request, call, routes.unified_submit, checks)

    @router.get(UNIFIED_PATH + "/{task_id}")
    async def get_task(request: Request, task_id: str) -> Response:
        call = Call("get", "unified", task_id)
        return await pipe.handle(request, call, routes.unified_get, (guards.auth, guards.query_rate))

    return router


def _video_router(routes: Routes) -> APIRouter:
    router = APIRouter()

    @router.api_route("/oss/{name}", methods=["GET", "HEAD"])
    async def video(request: Request, name: str) -> Response:
        match = _TASK_FILE_RE.match(name)
        call = Call("video", "oss", match.group(1) if match else name)
        return await routes.pipeline.handle(request, call, routes.video, (routes.guards.video_link,))

    return router


def _not_found_handler(prefix: str) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handler(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
        if request.url.path.startswith(prefix + "/") and status in (404, 405):
            request_id = new_request_id()
            body = native_error("InvalidParameter", "url error, please check url!", request_id)
            return JSONResponse(body, status_code=404)
        detail = exc.detail if isinstance(exc, StarletteHTTPException) else "error"
        return JSONResponse({"detail": detail}, status_code=status)

    return handler


def create_app(state: SimulatorState) -> FastAPI:
    """
    Build the simulator's ASGI app for a state.

    :param state: the state it serves (its config's ``prefix`` and ``protocols`` shape the routes).
    """
    config = state.config
    app = FastAPI(
        title="Wan video simulator",
        version=__version__,
        docs_url="/_simulator/docs",
        openapi_url="/_simulator/openapi.json",
        redoc_url=None,
    )
    routes = Routes(state)
    if "dashscope" in config.protocols:
        app.include_router(_native_router(routes), prefix=config.prefix)
    if "unified" in config.protocols:
        app.include_router(_unified_router(routes))
    if {"unified", "newapi"} & set(config.protocols):  # new-api's routes: the relay mode's third flavour
        from airflow_provider_wan.simulator.newapi import newapi_router

        app.include_router(newapi_router(routes))
    app.include_router(_video_router(routes))
    app.include_router(admin_router(state), prefix="/_simulator")
    app.add_exception_handler(StarletteHTTPException, _not_found_handler(config.prefix))
    return app
