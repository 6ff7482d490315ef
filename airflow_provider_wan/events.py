"""
The trigger → ``execute_complete`` event vocabulary, built and read in one place.

An event is a plain JSON dict: ``status`` plus the task's result fields (never the signed ``video_url``).
"""

from __future__ import annotations

from typing import Any

from airflow_provider_wan.exceptions import (
    WanAPIError,
    WanError,
    WanProtocolError,
    WanTaskCanceledError,
    WanTaskExpiredError,
    WanTimeoutError,
    error_class_for,
)
from airflow_provider_wan.models import TaskStatus, WanTask

SUCCESS = "success"
FAILED = "failed"
CANCELED = "canceled"
EXPIRED = "expired"
TIMEOUT = "timeout"
ERROR = "error"
EVENT_STATUSES = frozenset({SUCCESS, FAILED, CANCELED, EXPIRED, TIMEOUT, ERROR})

_BY_TASK_STATUS = {
    TaskStatus.SUCCEEDED: SUCCESS,
    TaskStatus.FAILED: FAILED,
    TaskStatus.CANCELED: CANCELED,
    TaskStatus.UNKNOWN: EXPIRED,
}


def task_event(task: WanTask, **extra: Any) -> dict[str, Any]:
    """
    The event for a task that reached a terminal status.

    :param task: the task as last read.
    :param extra: more plain fields (for example ``elapsed``).
    """
    return {"status": _BY_TASK_STATUS[task.task_status], **task.to_result(), **extra}


def stop_event(
    status: str, task_id: str, message: str, *, task_status: str | None = None, code: str | None = None, **extra: Any
) -> dict[str, Any]:
    """
    The event for a wait that ended without a terminal task (``timeout`` or ``error``).

    :param status: ``timeout`` or ``error``.
    :param task_id: the DashScope task id.
    :param message: what happened.
    :param task_status: the last status seen, if any.
    :param code: an error code, if any.
    :param extra: more plain fields.
    """
    return {"status": status, "task_id": task_id, "task_status": task_status, "code": code, "message": message, **extra}


def validate_event(event: Any) -> dict[str, Any]:
    """
    Check an event crossed the triggerer → worker boundary intact (versions can differ during upgrades).

    :param event: what ``execute_complete`` received.
    :raises WanProtocolError: for None, a non-dict or an unknown status.
    """
    if not isinstance(event, dict):
        raise WanProtocolError(f"expected a trigger event dict, got {type(event).__name__}: {event!r}")
    status = event.get("status")
    if status not in EVENT_STATUSES:
        raise WanProtocolError(
            f"trigger event has unknown status {status!r}; expected one of {', '.join(sorted(EVENT_STATUSES))}"
        )
    if not event.get("task_id"):
        raise WanProtocolError(f"trigger event has no task_id: {event!r}")
    return event


def event_error(event: dict[str, Any]) -> WanError | None:
    """
    The error an event stands for, or None for ``success``.

    :param event: a validated event.
    """
    status, task_id = event["status"], event["task_id"]
    message = event.get("message") or f"task ended {event.get('task_status')}"
    code, request_id = event.get("code"), event.get("request_id")
    if status == SUCCESS:
        return None
    if status == FAILED:
        cls = error_class_for(code, None, message)
        return cls(f"Task failed: {message}", code=code, request_id=request_id, task_id=task_id)
    if status == CANCELED:
        return WanTaskCanceledError(
            "Task was canceled before it produced a video", code="Canceled", request_id=request_id, task_id=task_id
        )
    if status == EXPIRED:
        return WanTaskExpiredError(
            "Task is UNKNOWN to DashScope: it expired (task ids and video links live 24 hours) or belongs to "
            "another region or account",
            code="UNKNOWN",
            request_id=request_id,
            task_id=task_id,
        )
    if status == TIMEOUT:
        return WanTimeoutError(message, task_id=task_id, reason=event.get("reason"))
    cls = error_class_for(code, None) if code else WanAPIError
    return cls(message, code=code, request_id=request_id, task_id=task_id)


def task_error(task: WanTask) -> WanError | None:
    """
    The error a finished-but-unsuccessful task stands for; None while it runs or once it succeeded.

    :param task: the task as last read.
    """
    if not task.task_status.is_terminal:
        return None
    return event_error(task_event(task))
