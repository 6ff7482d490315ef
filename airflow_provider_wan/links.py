"""
Operator extra links: from a task's page in the Airflow UI to where the user can see its DashScope task.

For a DashScope region that is the region's Model Studio console (model monitoring); for the local simulator, its
view of the task. Airflow resolves links in the worker when the task finishes or defers and keeps them in XCom.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseOperatorLink

from airflow_provider_wan._compat import AirflowNotFoundException
from airflow_provider_wan.exceptions import WanError
from airflow_provider_wan.hooks.wan import WanHook
from airflow_provider_wan.settings import REGION_CONSOLES, REGIONS, WanConnectionSettings, is_loopback, resolve_region

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)

#: The simulator's read-only view of one task (``airflow_provider_wan.simulator``, admin API).
SIMULATOR_TASK_PATH = "/_simulator/tasks/{task_id}"
_REGION_HOSTS = {urlsplit(url).hostname: region for region, url in REGIONS.items()}
_WORKSPACE_DOMAIN = ".maas.aliyuncs.com"  # {workspace}.{region id}.maas.aliyuncs.com


def console_url(settings: WanConnectionSettings, dashscope_task_id: str) -> str:
    """
    Where a user sees ``dashscope_task_id`` of the connection ``settings``: its region's Model Studio console, the
    simulator's task view on loopback, or ``""`` (no link) for a gateway whose console is unknown.

    :param settings: the resolved ``dashscope`` connection.
    :param dashscope_task_id: the DashScope task id.
    """
    parts = urlsplit(settings.base_url)
    region = settings.region or _region_of_host(parts.hostname or "")
    if region is not None:
        return REGION_CONSOLES[region]
    if is_loopback(parts.hostname or ""):
        path = SIMULATOR_TASK_PATH.format(task_id=quote(dashscope_task_id, safe=""))
        return f"{parts.scheme}://{parts.netloc}{path}"
    return ""


def _region_of_host(host: str) -> str | None:
    if host in _REGION_HOSTS:
        return _REGION_HOSTS[host]
    if host.endswith(_WORKSPACE_DOMAIN):
        labels = host.removesuffix(_WORKSPACE_DOMAIN).split(".")
        try:
            return resolve_region(labels[-1])
        except WanError:
            return None
    return None


class _DashScopeConsoleLink(BaseOperatorLink):
    """The shared half: from a DashScope task id and the operator's connection to a URL."""

    name = "DashScope console"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """
        The link for the task instance ``ti_key``, or ``""`` while there is no DashScope task to show.

        :param operator: the operator (rendered, in the worker) this link belongs to.
        :param ti_key: the task instance.
        """
        dashscope_task_id = self.dashscope_task_id(operator, ti_key)
        if not dashscope_task_id:
            return ""
        try:
            return console_url(_settings(operator), str(dashscope_task_id))
        except (WanError, AirflowNotFoundException) as err:
            log.warning("No DashScope console link for task %s: %s", dashscope_task_id, err)
            return ""

    @abstractmethod
    def dashscope_task_id(self, operator: BaseOperator, ti_key: TaskInstanceKey) -> str | None:
        """
        The DashScope task id this task instance is about.

        :param operator: the operator.
        :param ti_key: the task instance.
        """


class WanTaskLink(_DashScopeConsoleLink):
    """
    For :class:`~airflow_provider_wan.operators.wan.WanTextToVideoOperator`: the task it submitted.

    The DashScope task id comes from the XCom ``task_id`` the operator pushes as soon as DashScope accepts the
    task, so the link works while the task is deferred, after it succeeded and after it failed.
    """

    def dashscope_task_id(self, operator: BaseOperator, ti_key: TaskInstanceKey) -> str | None:
        """
        The XCom ``task_id`` of ``ti_key``.

        :param operator: the operator.
        :param ti_key: the task instance.
        """
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(ti_key=ti_key, key="task_id")


class WanSensorTaskLink(_DashScopeConsoleLink):
    """For :class:`~airflow_provider_wan.sensors.wan.WanTaskSensor`: the task it waits for (``dashscope_task_id``)."""

    def dashscope_task_id(self, operator: BaseOperator, ti_key: TaskInstanceKey) -> str | None:
        """
        The sensor's rendered ``dashscope_task_id``.

        :param operator: the sensor.
        :param ti_key: the task instance.
        """
        value = getattr(operator, "dashscope_task_id", None)
        return value if isinstance(value, str) and "{{" not in value else None


def _settings(operator: Any) -> WanConnectionSettings:
    hook = getattr(operator, "hook", None)
    if not isinstance(hook, WanHook):
        hook = WanHook(dashscope_conn_id=getattr(operator, "dashscope_conn_id", WanHook.default_conn_name))
    return hook.get_settings()
