"""WanTaskSensor: wait for a DashScope task submitted elsewhere, in poke mode or deferred on the triggerer."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_wan._compat import AirflowNotFoundException
from airflow_provider_wan._failures import airflow_error
from airflow_provider_wan.exceptions import WanError
from airflow_provider_wan.hooks.wan import WanHook
from airflow_provider_wan.links import WanSensorTaskLink
from airflow_provider_wan.operators.wan import (
    WanWaitMixin,
    default_deferrable,
    is_templated,
    missing_connection,
    positive_seconds,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


class WanTaskSensor(WanWaitMixin, BaseSensorOperator):
    """
    Wait until a DashScope task ends; succeed with its result, fail like WanTextToVideoOperator otherwise.

    Typical use: after ``WanTextToVideoOperator(wait_for_completion=False)``, pass its XCom ``task_id``. The
    result (XCom ``return_value``) is the same JSON dict as the operator's, without the signed video URL.
    Deferrable by default (the same :class:`~airflow_provider_wan.triggers.wan.WanTaskTrigger`); the sensor's
    ``timeout`` becomes the trigger's wall-clock deadline.

    Templated: ``dashscope_task_id``, ``poll_interval``.

    :param dashscope_task_id: the DashScope task id (``task_id`` is Airflow's own argument).
    :param dashscope_conn_id: the ``dashscope`` connection.
    :param deferrable: wait on the triggerer instead of poking from a worker. Default: Airflow's
        ``[operators] default_deferrable`` when the deployment sets it, else True.
    :param poll_interval: seconds between polls while deferred (templated; ``poke_interval`` applies in poke
        mode and defaults to this when it is not templated).
    :param cancel_on_kill: cancel the DashScope task when the deferred wait is cleared or marked (3.3+) or times out.
    """

    template_fields: Sequence[str] = ("dashscope_task_id", "poll_interval")
    ui_color = "#ff6a00"
    operator_extra_links = (WanSensorTaskLink(),)

    def __init__(
        self,
        *,
        dashscope_task_id: str,
        dashscope_conn_id: str = WanHook.default_conn_name,
        deferrable: bool | None = None,
        poll_interval: float | str = 15.0,
        cancel_on_kill: bool = False,
        **kwargs: Any,
    ) -> None:
        templated = is_templated(poll_interval, ())
        if not templated:
            poll_interval = positive_seconds(poll_interval, "poll_interval")
            kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        self.dashscope_task_id = dashscope_task_id
        self.dashscope_conn_id = dashscope_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval: Any = poll_interval
        self.cancel_on_kill = cancel_on_kill

    def execute(self, context: Context) -> Any:
        """Poke once; defer to the trigger when the task is still running and ``deferrable`` is on."""
        try:
            self.poll_interval = positive_seconds(self.poll_interval, "poll_interval")
        except WanError as err:
            raise airflow_error(err, "Waiting for the Wan video") from None
        try:
            return self._execute(context)
        except AirflowNotFoundException as err:
            raise missing_connection(err, "Waiting for the Wan video") from None

    def _execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        started = time.time()
        result = self.poke(context)
        if isinstance(result, PokeReturnValue) and result.is_done:
            return result.xcom_value
        deadline = started + float(self.timeout) if self.timeout is not None else None
        self._defer_wait(self.dashscope_task_id, deadline, started)
        return None  # pragma: no cover - defer raises

    def poke(self, context: Context) -> PokeReturnValue:
        """Read the task once: done with its result when SUCCEEDED, raise when it failed, else keep waiting."""
        try:
            task = self.hook.get_task(self.dashscope_task_id)
        except WanError as err:
            if err.retryable:
                self.log.warning("Polling task %s failed (%s); will poke again", self.dashscope_task_id, err)
                return PokeReturnValue(is_done=False)
            raise airflow_error(err, "Waiting for the Wan video") from None
        self.log.info("Task %s is %s", self.dashscope_task_id, task.task_status.value)
        if not task.task_status.is_terminal:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._finish(task, "Waiting for the Wan video"))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: return the result for ``success``, raise for everything else."""
        return self._complete(event, "Waiting for the Wan video", context)
