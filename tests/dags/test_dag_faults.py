"""DAGs of the fault matrix: every generation has retries, so a test can prove which faults do NOT spend them.

``adopt`` lets a run take over a task that an ambiguous submit created (``adopt_task_id``).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_wan.operators.wan import WanTextToVideoOperator
from airflow_provider_wan.sensors.wan import WanTaskSensor

START = pendulum.datetime(2025, 1, 1, tz="UTC")
PARAMS = {"prompt": Param("a lighthouse at dawn", type="string"), "adopt": Param("", type="string")}


def generate(**kwargs: object) -> WanTextToVideoOperator:
    kwargs.setdefault("poll_interval", 0.2)
    kwargs.setdefault("retries", 2)
    kwargs.setdefault("retry_delay", timedelta(seconds=0))
    return WanTextToVideoOperator(
        task_id="generate",
        prompt="{{ params.prompt }}",
        duration=5,
        adopt_task_id="{{ params.adopt }}",
        **kwargs,  # type: ignore[arg-type]
    )


with DAG("wan_fault_deferrable", schedule=None, start_date=START, params=PARAMS, catchup=False) as deferrable_dag:
    generate()

with DAG("wan_fault_sync", schedule=None, start_date=START, params=PARAMS, catchup=False) as sync_dag:
    generate(deferrable=False)

with DAG("wan_fault_missing_conn", schedule=None, start_date=START, params=PARAMS, catchup=False) as missing_conn_dag:
    generate(dashscope_conn_id="wan_no_such_connection")

with DAG(
    "wan_fault_missing_conn_sync", schedule=None, start_date=START, params=PARAMS, catchup=False
) as missing_conn_sync_dag:
    generate(dashscope_conn_id="wan_no_such_connection", deferrable=False)

with DAG(
    "wan_fault_missing_conn_sensor", schedule=None, start_date=START, params=PARAMS, catchup=False
) as missing_conn_sensor_dag:
    WanTaskSensor(
        task_id="wait",
        dashscope_task_id="00000000-0000-0000-0000-000000000001",
        dashscope_conn_id="wan_no_such_connection",
        retries=2,
        retry_delay=timedelta(seconds=0),
        timeout=30,
    )

# A try that reaches its wall-clock deadline (execution_timeout; `timeout` counts generation only) while the task is
# still queued keeps the task (a retry will reconnect); the retry reconnects.
with DAG("wan_fault_clear_race", schedule=None, start_date=START, params=PARAMS, catchup=False) as clear_race_dag:
    generate(timeout=None, execution_timeout=timedelta(seconds=3), retries=1, cancel_on_kill=False)

with DAG(
    "wan_fault_clear_race_sync", schedule=None, start_date=START, params=PARAMS, catchup=False
) as clear_race_sync_dag:
    generate(timeout=None, execution_timeout=timedelta(seconds=3), retries=1, cancel_on_kill=False, deferrable=False)

with DAG("wan_fault_regenerate", schedule=None, start_date=START, params=PARAMS, catchup=False) as regenerate_dag:
    generate(regenerate=True)
