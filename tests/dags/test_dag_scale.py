"""Bulk DAGs: more generations than the model's account concurrency, submitted in a burst, then waited for.

``dag.test()`` runs deferred waits one at a time, so these DAGs submit every generation first
(``wait_for_completion=False``) and wait afterwards: DashScope processes them concurrently meanwhile, as it does
for waits deferred side by side on a real triggerer.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_wan.operators.wan import WanTextToVideoOperator
from airflow_provider_wan.sensors.wan import WanTaskSensor

START = pendulum.datetime(2025, 1, 1, tz="UTC")

with DAG(
    "wan_scale_queue",
    schedule=None,
    start_date=START,
    catchup=False,
    # 3 s of generation: longer than a submit takes even on a slow machine, so the two slots really fill.
    params={"marker": Param("[[sim: pending=0.1 running=3]]", type="string")},
) as scale_queue_dag:
    # wan2.2-t2v-plus: 2 tasks processing at once and 2 submissions per second per account.
    submit = WanTextToVideoOperator.partial(
        task_id="submit", model="wan2.2-t2v-plus", wait_for_completion=False, retries=0
    ).expand(prompt=[f"a paper boat on a pond, take {i} {{{{ params.marker }}}}" for i in range(8)])
    WanTaskSensor.partial(task_id="wait", poll_interval=0.2, timeout=300, retries=0).expand(
        dashscope_task_id=submit.output.map(lambda result: result["task_id"])
    )
