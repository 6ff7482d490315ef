"""The bulk pattern at benchmark scale: WAN_BENCH_GENERATIONS generations on one 5-slot model, submitted, then waited.

Submitting every generation first and waiting afterwards lets DashScope work at its full concurrency even where
waits run one at a time (``dag.test()``); on a real triggerer the same DAG's waits run side by side.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_wan.operators.wan import WanTextToVideoOperator
from airflow_provider_wan.sensors.wan import WanTaskSensor

GENERATIONS = int(os.environ.get("WAN_BENCH_GENERATIONS", "200"))

with DAG(
    "bench_mapped_generations", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False
) as dag:
    submit = WanTextToVideoOperator.partial(
        task_id="submit", model="wan2.6-t2v", size="1280*720", duration=5, wait_for_completion=False, retries=2
    ).expand(prompt=[f"a lighthouse at dawn, take {i}" for i in range(GENERATIONS)])
    WanTaskSensor.partial(task_id="wait", poll_interval=1, timeout=7200, retries=2).expand(
        dashscope_task_id=submit.output.map(lambda result: result["task_id"])
    )
