"""The simulator's inspection and control API under ``/_simulator``: counters, reset, config, faults, tasks.

Local-only tooling (no auth); it never appears under the DashScope prefix.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from airflow_provider_wan import __version__
from airflow_provider_wan.simulator.config import FaultSpec, TaskScenario
from airflow_provider_wan.simulator.state import SimulatorState, TaskView
from airflow_provider_wan.simulator.wire import format_time


def describe_task(state: SimulatorState, view: TaskView, expired: bool) -> dict[str, Any]:
    """
    Everything known about one task: lifecycle, request as received (headers masked), scenario, faults, and for a
    task with media inputs what was fetched (``fetch``, ``inputs``: one record per input, its URL without query).

    :param state: the simulator state (for the faults scoped to the task and the time zone).
    :param view: the task as of now.
    :param expired: whether it is past its TTL (the API then answers UNKNOWN).
    """
    task, request = view.task, view.task.request
    offset_hours = state.config.utc_offset_hours

    def when(epoch: float | None) -> str | None:
        return None if epoch is None else format_time(epoch, offset_hours)

    inputs = state.fetch_view(task) or {"fetch": None, "inputs": []}
    return {
        "task_id": task.task_id,
        "status": "UNKNOWN" if expired else view.status,
        "lifecycle_status": view.status,
        "expired": expired,
        "queued": view.queued,
        "protocol": task.protocol,
        "model": task.model,
        "submit_time": when(task.submitted_at),
        "slot_time": when(task.slot_at),
        "scheduled_time": when(view.scheduled_at),
        "end_time": when(view.ended_at),
        "canceled": task.canceled_at is not None,
        "effective": {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "size": task.size,
            "resolution": request.resolution,
            "duration": request.duration,
            "prompt_extend": request.prompt_extend,
            "watermark": request.watermark,
            "seed": request.seed,
            "shot_type": request.shot_type,
            "audio_url": request.audio_url,
            "audio": request.audio,
        },
        "marker": request.marker.key if request.marker else None,
        "scenario": task.scenario.model_dump(),
        "faults": [f for f in state.faults() if f.get("task_id") == task.task_id],
        "api_key_id": task.api_key_id,
        "body": request.body,
        "headers": task.headers,
        **inputs,
    }


def describe(state: SimulatorState, task_id: str) -> dict[str, Any] | None:
    """
    The debug view of a stored task, or None.

    :param state: the simulator state.
    :param task_id: the task.
    """
    found = state.inspect(task_id)
    return describe_task(state, *found) if found else None


def describe_all(state: SimulatorState) -> list[dict[str, Any]]:
    """
    The debug view of every stored task, oldest first.

    :param state: the simulator state.
    """
    return [describe_task(state, view, expired) for view, expired in state.inspect_all()]


async def _json(request: Request) -> Any:
    """The JSON body (``{}`` when empty); a ValueError when malformed."""
    raw = await request.body()
    return json.loads(raw) if raw.strip() else {}


def _bad(err: Exception) -> JSONResponse:
    return JSONResponse({"error": str(err)}, status_code=400)


def admin_router(state: SimulatorState) -> APIRouter:
    """
    The ``/_simulator`` routes for a state.

    :param state: the simulator state.
    """
    router = APIRouter()

    @router.get("/health")
    async def health() -> dict[str, Any]:
        config = state.config
        return {"status": "ok", "version": __version__, "prefix": config.prefix, "protocols": list(config.protocols)}

    @router.get("/counters")
    async def counters() -> dict[str, Any]:
        return state.counters()

    @router.post("/reset")
    async def reset() -> dict[str, Any]:
        state.reset()
        return {"status": "reset"}

    @router.get("/config")
    async def get_config() -> dict[str, Any]:
        return state.config.model_dump(mode="json")

    @router.post("/config")
    async def set_config(request: Request) -> Any:
        try:
            return state.configure(await _json(request)).model_dump(mode="json")
        except (ValueError, TypeError) as err:
            return _bad(err)

    @router.get("/faults")
    async def list_faults() -> list[dict[str, Any]]:
        return state.faults()

    @router.post("/faults")
    async def add_faults(request: Request) -> Any:
        try:
            payload = await _json(request)
            specs = [FaultSpec.model_validate(item) for item in (payload if isinstance(payload, list) else [payload])]
        except ValueError as err:
            return _bad(err)
        return {"ids": [state.add_fault(spec) for spec in specs]}

    @router.delete("/faults")
    async def clear_faults() -> dict[str, Any]:
        state.clear_faults()
        return {"status": "cleared"}

    @router.delete("/faults/{fault_id}")
    async def remove_fault(fault_id: str) -> Any:
        if not state.remove_fault(fault_id):
            return JSONResponse({"error": f"no fault {fault_id}"}, status_code=404)
        return {"status": "removed"}

    @router.get("/tasks")
    async def tasks() -> list[dict[str, Any]]:
        return describe_all(state)

    @router.get("/tasks/{task_id}")
    async def task(task_id: str) -> Any:
        found = describe(state, task_id)
        return found if found else JSONResponse({"error": f"no task {task_id}"}, status_code=404)

    @router.post("/tasks/{task_id}")
    async def update_task(task_id: str, request: Request) -> Any:
        try:
            changes = TaskScenario.model_validate(await _json(request))
        except ValueError as err:
            return _bad(err)
        if state.update_task(task_id, changes) is None:
            return JSONResponse({"error": f"no task {task_id}"}, status_code=404)
        found = describe(state, task_id)
        return found if found else JSONResponse({"error": f"no task {task_id}"}, status_code=404)

    return router
