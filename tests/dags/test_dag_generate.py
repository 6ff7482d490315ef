"""DAGs the operator, sensor and trigger tests run with dag.test() against the simulator.

Each test picks a scenario through the prompt (simulator markers such as ``[[sim: outcome=FAILED]]``).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_wan.operators.wan import WanTextToVideoOperator
from airflow_provider_wan.sensors.wan import WanTaskSensor

START = pendulum.datetime(2025, 1, 1, tz="UTC")
PARAMS = {"prompt": Param("a lighthouse at dawn", type="string"), "duration": Param(5, type="integer")}


def generate(task_id: str = "generate", **kwargs: object) -> WanTextToVideoOperator:
    kwargs.setdefault("poll_interval", 0.2)
    kwargs.setdefault("retry_delay", timedelta(seconds=0))
    return WanTextToVideoOperator(
        task_id=task_id,
        prompt="{{ params.prompt }}",
        duration="{{ params.duration }}",
        **kwargs,  # type: ignore[arg-type]
    )


with DAG("wan_test_deferrable", schedule=None, start_date=START, params=PARAMS, catchup=False) as deferrable_dag:
    generate(retries=2)

with DAG("wan_test_sync", schedule=None, start_date=START, params=PARAMS, catchup=False) as sync_dag:
    generate(deferrable=False, retries=2)

with DAG("wan_test_timeout", schedule=None, start_date=START, params=PARAMS, catchup=False) as timeout_dag:
    # `timeout` counts generation only: time queued PENDING does not count against it.
    generate(timeout=1.5)

with DAG("wan_test_queue_timeout", schedule=None, start_date=START, params=PARAMS, catchup=False) as queue_dag:
    generate(queue_timeout=1.0, retries=2)

with DAG("wan_test_deadline_keeps_place", schedule=None, start_date=START, params=PARAMS, catchup=False) as keep_dag:
    # A wall-clock deadline while the task is still queued: the retry reconnects instead of queueing anew.
    generate(timeout=None, execution_timeout=timedelta(seconds=2), retries=1)

with DAG("wan_test_reconnect", schedule=None, start_date=START, params=PARAMS, catchup=False) as reconnect_dag:
    # A try that times out while DashScope is still RUNNING (a RUNNING task cannot be canceled) is retried.
    generate(timeout=2.0, retries=1)

with DAG("wan_test_sensor", schedule=None, start_date=START, params=PARAMS, catchup=False) as sensor_dag:
    submit = generate("submit", wait_for_completion=False)
    wait = WanTaskSensor(
        task_id="wait",
        dashscope_task_id="{{ ti.xcom_pull(task_ids='submit', key='task_id') }}",
        poll_interval=0.2,
        timeout=60,
    )
    submit >> wait

with DAG("wan_test_sensor_poke", schedule=None, start_date=START, params=PARAMS, catchup=False) as sensor_poke_dag:
    submit_poke = generate("submit", wait_for_completion=False)
    wait_poke = WanTaskSensor(
        task_id="wait",
        dashscope_task_id="{{ ti.xcom_pull(task_ids='submit', key='task_id') }}",
        deferrable=False,
        poke_interval=0.2,
        timeout=60,
    )
    submit_poke >> wait_poke

with DAG(
    "wan_test_prompt_file",
    schedule=None,
    start_date=START,
    params={"animal": Param("red fox", type="string")},
    catchup=False,
) as prompt_file_dag:
    # The prompt lives in a template file next to the DAG and is rendered with the run's params.
    WanTextToVideoOperator(task_id="generate", prompt="wan_test_prompt.txt", poll_interval=0.2)

with DAG("wan_test_execution_timeout", schedule=None, start_date=START, params=PARAMS, catchup=False) as exec_dag:
    # No `timeout`: the task's execution_timeout alone becomes the trigger's wall-clock deadline.
    generate(timeout=None, execution_timeout=timedelta(seconds=2))
