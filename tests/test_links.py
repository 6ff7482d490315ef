"""Operator extra links: the operator and the sensor link to where the user sees their DashScope task.

End to end as the UI gets them: ``dag.test()`` runs the tasks (the worker resolves each link when the task ends
and stores it in XCom), then the serialized DAG, what the API server holds, answers ``get_extra_links`` for the
real task instances. On the simulator the link opens the simulator's view of the task, which is fetched here.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from airflow_provider_wan.links import WanSensorTaskLink, WanTaskLink, console_url
from airflow_provider_wan.operators.wan import WanTextToVideoOperator
from airflow_provider_wan.provider_info import get_provider_info
from airflow_provider_wan.sensors.wan import WanTaskSensor
from airflow_provider_wan.settings import REGION_CONSOLES, WanConnectionSettings
from tests.conftest import load_dag, task_states, xcom

LINK = "DashScope console"
PROMPT = "a lighthouse at dawn"


def _settings(host: str | None = None, **extra: Any) -> WanConnectionSettings:
    return WanConnectionSettings.from_parts(password="sk-x", host=host, port=None, schema=None, extra=extra, source="t")


def _ui_links(dag_run: Any) -> dict[str, str | None]:
    """task id -> the link the API server serves for it, from the serialized DAG and the stored task instance."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    try:
        from airflow.serialization.serialized_objects import DagSerialization as Serializer  # Airflow 3.2+
    except ImportError:  # Airflow 3.1
        from airflow.serialization.serialized_objects import SerializedDAG as Serializer  # type: ignore[no-redef]

    dag = Serializer.from_dict(Serializer.to_dict(load_dag(dag_run.dag_id)))
    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).all()
        return {ti.task_id: dag.get_task(ti.task_id).get_extra_links(ti, LINK) for ti in tis}


def _open(url: str) -> dict[str, Any]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return json.loads(response.read())


# ----------------------------------------------------------------------------------------------- where links go


@pytest.mark.parametrize(
    ("settings", "region"),
    [
        (_settings(), "singapore"),
        (_settings(region="cn-beijing"), "beijing"),
        (_settings(region="virginia"), "virginia"),
        (_settings("https://dashscope.aliyuncs.com/api/v1"), "beijing"),  # a region's URL as the Base URL
        (_settings("https://ws-1a2b.ap-southeast-1.maas.aliyuncs.com/api/v1"), "singapore"),  # workspace domain
    ],
)
def test_a_region_links_to_its_model_studio_console(settings, region):
    assert console_url(settings, "task-1") == REGION_CONSOLES[region]


def test_the_simulator_links_to_its_view_of_the_task():
    assert console_url(_settings(base_url="http://127.0.0.1:8040/api/v1"), "a/b") == (
        "http://127.0.0.1:8040/_simulator/tasks/a%2Fb"
    )


def test_a_gateway_has_no_console_link():
    assert console_url(_settings("https://gw.example.com/qwen/api/v1"), "task-1") == ""


def test_the_operator_and_the_sensor_declare_their_links():
    assert [type(link) for link in WanTextToVideoOperator.operator_extra_links] == [WanTaskLink]
    assert [type(link) for link in WanTaskSensor.operator_extra_links] == [WanSensorTaskLink]
    assert WanTaskLink().name == WanSensorTaskLink().name == LINK
    assert get_provider_info()["extra-links"] == [
        "airflow_provider_wan.links.WanTaskLink",
        "airflow_provider_wan.links.WanSensorTaskLink",
        "airflow_provider_wan.transfers.wan_to_s3.WanS3ObjectLink",
    ]
    import importlib

    for path in get_provider_info()["extra-links"]:  # every registered link class can be imported
        module, _, name = path.rpartition(".")
        assert getattr(importlib.import_module(module), name)().name


# ----------------------------------------------------------------------------------------------- in a DAG run


def test_operator_and_sensor_links_resolve_from_the_run(simulator, run_dag):
    dag_run = run_dag("wan_test_sensor", {"prompt": PROMPT + " [[sim: pending=0.3 running=0.6]]"})
    assert task_states(dag_run) == {"submit": "success", "wait": "success"}
    dashscope_task_id = xcom(dag_run, "submit", "task_id")
    expected = f"{simulator.base_url.removesuffix('/api/v1')}/_simulator/tasks/{dashscope_task_id}"

    assert xcom(dag_run, "submit", "_link_WanTaskLink") == expected  # what the worker stored
    assert xcom(dag_run, "wait", "_link_WanSensorTaskLink") == expected
    assert _ui_links(dag_run) == {"submit": expected, "wait": expected}  # what the UI gets
    assert _open(expected)["task_id"] == dashscope_task_id  # and it opens the task


def test_a_failed_generation_still_links_to_its_task(simulator, run_dag):
    dag_run = run_dag(
        "wan_test_deferrable", {"prompt": PROMPT + " [[sim: outcome=FAILED code=DataInspectionFailed running=0.2]]"}
    )
    assert task_states(dag_run) == {"generate": "failed"}
    dashscope_task_id = xcom(dag_run, "generate", "task_id")
    assert dashscope_task_id and _ui_links(dag_run)["generate"].endswith(f"/_simulator/tasks/{dashscope_task_id}")
