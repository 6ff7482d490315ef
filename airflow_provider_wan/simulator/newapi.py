"""The simulator's new-api relay mode: ``/v1/video/generations`` and the OpenAI-style ``/v1/videos`` routes.

Shapes as new-api (``QuantumNous/new-api``) answers them for its Alibaba channel, on the simulator's shared state
and pipeline, so account limits, faults and counters apply as on the other flavours.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from airflow_provider_wan.simulator.validation import parse_newapi
from airflow_provider_wan.simulator.wire import ApiError, native_task

if TYPE_CHECKING:
    from airflow_provider_wan.simulator.app import Call, Routes
    from airflow_provider_wan.simulator.state import TaskView

#: new-api's task routes (``router/video-router.go``).
NEWAPI_PATH = "/v1/video/generations"
OPENAI_VIDEOS_PATH = "/v1/videos"
#: The pipeline's name for this flavour (counters ``per_protocol``, fault matching).
PROTOCOL = "newapi"
#: new-api's wrapper code when DashScope refused a submit; the message is ``"<DashScope code>: <message>"``.
UPSTREAM_ERROR = "ali_api_error"
#: Codes new-api answers itself, not relayed from DashScope.
RELAY_CODES = frozenset({"task_not_exist", "InvalidApiKey"})

#: new-api's task action per model family (``constant/task.go``; assumed: the relay tells them by the inputs given).
ACTIONS: dict[str, str] = {
    "t2v": "textGenerate",
    "i2v": "generate",
    "kf2v": "firstTailGenerate",
    "r2v": "referenceGenerate",
}

#: DashScope status -> new-api ``model.TaskStatus`` (the generic fetch) and OpenAI video status.
TASK_STATUS: dict[str, str] = {
    "RUNNING": "IN_PROGRESS",
    "SUCCEEDED": "SUCCESS",
    "FAILED": "FAILURE",
    "CANCELED": "FAILURE",
}
VIDEO_STATUS: dict[str, str] = {
    "PENDING": "queued",
    "RUNNING": "in_progress",
    "SUCCEEDED": "completed",
    "FAILED": "failed",
    "CANCELED": "failed",
}


def relay_error(err: ApiError) -> dict[str, Any]:
    """
    new-api's ``TaskError`` body for a refusal: its own codes as they are, DashScope's wrapped in ``ali_api_error``.

    :param err: the refusal.
    """
    if err.code in RELAY_CODES:
        return {"code": err.code, "message": err.message, "data": None}
    return {"code": UPSTREAM_ERROR, "message": f"{err.code}: {err.message}", "data": None}


def task_dto(view: TaskView, video_url: str | None, utc_offset_hours: float) -> dict[str, Any]:
    """
    The generic fetch answer ``{"code": "success", "data": TaskDto}``; ``data.data`` is DashScope's raw answer.

    :param view: the task as of now.
    :param video_url: the signed link (used when SUCCEEDED).
    :param utc_offset_hours: the zone of DashScope's timestamps inside ``data.data``.
    """
    task = view.task
    status = TASK_STATUS.get(view.status) or ("QUEUED" if view.queued else "SUBMITTED")
    upstream = native_task(view, task.task_id, video_url, utc_offset_hours)
    dto: dict[str, Any] = {
        "id": int(task.task_id.replace("-", "")[:6] or "0", 16),
        "created_at": int(task.submitted_at),
        "updated_at": int(view.ended_at or view.scheduled_at or task.submitted_at),
        "task_id": task.task_id,
        "platform": "17",
        "action": ACTIONS.get(task.request.family, "generate"),
        "status": status,
        "fail_reason": _fail_reason(view),
        "submit_time": int(task.submitted_at),
        "start_time": int(view.scheduled_at) if view.scheduled_at is not None else 0,
        "finish_time": int(view.ended_at) if view.ended_at is not None else 0,
        "progress": f"{view.progress}%",
        "properties": {"origin_model_name": task.model, "upstream_model_name": task.model},
        "data": upstream,
    }
    if view.status == "SUCCEEDED":
        dto["result_url"] = video_url
    return {"code": "success", "message": "", "data": dto}


def video_object(view: TaskView, video_url: str | None, utc_offset_hours: float) -> dict[str, Any]:
    """
    The OpenAI-style fetch answer (new-api's ``ConvertToOpenAIVideo``): the link in ``metadata.url``.

    :param view: the task as of now.
    :param video_url: the signed link (used when SUCCEEDED).
    :param utc_offset_hours: the zone of DashScope's timestamps in ``metadata``.
    """
    task = view.task
    upstream = native_task(view, task.task_id, video_url, utc_offset_hours)
    output = upstream["output"]
    metadata: dict[str, Any] = {
        "url": output.get("video_url", ""),
        "request_id": upstream["request_id"],
        "submit_time": output.get("submit_time", ""),
        "scheduled_time": output.get("scheduled_time", ""),
        "end_time": output.get("end_time", ""),
        "orig_prompt": output.get("orig_prompt", ""),
        "actual_prompt": output.get("actual_prompt", ""),
    }
    video: dict[str, Any] = {
        "id": task.task_id,
        "object": "video",
        "model": task.model,
        "status": VIDEO_STATUS[view.status],
        "progress": view.progress,
        "created_at": int(task.submitted_at),
        "completed_at": int(view.ended_at or task.submitted_at),
        "metadata": metadata,
    }
    if "usage" in upstream:
        metadata["usage"] = upstream["usage"]
        video["seconds"] = str(upstream["usage"].get("output_video_duration", task.duration))
        video["size"] = f"{upstream['usage'].get('SR', '')}P"
    if view.status in ("FAILED", "CANCELED"):
        video["error"] = {"code": output.get("code") or "Canceled", "message": output.get("message") or "canceled"}
    return video


def submitted(task_id: str, model: str, created_at: float) -> dict[str, Any]:
    """
    new-api's answer to a submit on either route: an OpenAI-style video object, ``queued``.

    :param task_id: the task id handed to the client.
    :param model: the model asked for.
    :param created_at: when it was created (epoch seconds).
    """
    return {
        "id": task_id,
        "task_id": task_id,
        "object": "video",
        "model": model,
        "status": "queued",
        "progress": 0,
        "created_at": int(created_at),
    }


def _fail_reason(view: TaskView) -> str:
    if view.status == "FAILED":
        return f"task failed, code: {view.task.fail_code} , message: {view.task.fail_message}"
    return "task canceled" if view.status == "CANCELED" else ""


def _as_relay(response: Response) -> Response:
    """Re-wrap an error the shared pipeline answered in DashScope's shape, as new-api relays it."""
    if response.status_code < 400 or not isinstance(response, JSONResponse):
        return response
    try:
        body = json.loads(bytes(response.body))
    except ValueError:
        return response
    if not isinstance(body, dict) or "code" not in body or "data" in body:
        return response
    err = ApiError(response.status_code, str(body["code"]), str(body.get("message") or ""))
    headers = {k: v for k, v in response.headers.items() if k.lower() == "retry-after"}
    return JSONResponse(relay_error(err), status_code=response.status_code, headers=headers)


def newapi_router(routes: Routes) -> APIRouter:
    """
    new-api's video routes on the simulator's shared routes (state, pipeline, guards).

    :param routes: the app's routes object.
    """
    from airflow_provider_wan.simulator.app import Call, json_body

    router = APIRouter()
    pipe, guards, state = routes.pipeline, routes.guards, routes.state

    def submission(request: Request, call: Call) -> None:
        call.submission = parse_newapi(json_body(request, call.body), state.config.allow_unknown_models)

    async def submit_work(request: Request, call: Call) -> Response:
        task = await routes.create(request, call)
        if isinstance(task, Response):
            return task
        return JSONResponse(submitted(task.task_id, task.model, task.submitted_at))

    def fetch_work(shape: Any) -> Any:
        async def work(request: Request, call: Call) -> Response:
            view = state.view(call.task_id or "")
            if view is None:
                raise ApiError(400, "task_not_exist", "task_not_exist")
            url = routes.link(request, view.task) if view.status == "SUCCEEDED" else None
            return JSONResponse(shape(view, url, state.config.utc_offset_hours))

        return work

    async def submit(request: Request) -> Response:
        checks = (guards.auth, submission, guards.submit_rate)
        return _as_relay(await pipe.handle(request, Call("submit", PROTOCOL), submit_work, checks))

    def fetch(shape: Any) -> Any:
        work = fetch_work(shape)

        async def get_task(request: Request, task_id: str) -> Response:
            call = Call("get", PROTOCOL, task_id)
            return _as_relay(await pipe.handle(request, call, work, (guards.auth, guards.query_rate)))

        return get_task

    router.add_api_route(NEWAPI_PATH, submit, methods=["POST"])
    router.add_api_route(NEWAPI_PATH + "/{task_id}", fetch(task_dto), methods=["GET"])
    router.add_api_route(OPENAI_VIDEOS_PATH, submit, methods=["POST"])
    router.add_api_route(OPENAI_VIDEOS_PATH + "/{task_id}", fetch(video_object), methods=["GET"])
    return router
