"""End-to-end DAG for WanVideoToS3Operator: submit, wait, transfer to S3 (the simulator and moto in the tests).

The DashScope task is submitted and awaited with the hook inside ``@task`` functions; the transfer takes the task
id from the ``wait`` task's XCom. The bucket comes from ``dag_run.conf["bucket"]``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_wan.transfers.wan_to_s3 import WanVideoToS3Operator

PROMPT = "一只纸船在雨夜的街道上漂流，霓虹灯倒映在水面 [[sim: pending=0.1 running=0.2]]"

with DAG(
    dag_id="wan_test_transfer",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={"prompt": PROMPT},
    tags=["wan", "test"],
) as transfer_dag:

    @task
    def submit(prompt: str) -> str:
        from airflow_provider_wan.hooks.wan import WanHook

        return WanHook().submit({"prompt": prompt, "model": "wan2.6-t2v", "seed": 7})

    @task
    def wait(dashscope_task_id: str) -> str:
        from airflow_provider_wan.hooks.wan import WanHook

        WanHook().wait_for_task(dashscope_task_id, poll_interval=0.2, timeout=60)
        return dashscope_task_id

    WanVideoToS3Operator(
        task_id="transfer",
        dashscope_task_id=wait(submit("{{ params.prompt }}")),
        s3_bucket="{{ dag_run.conf['bucket'] }}",
        s3_key="videos/{{ ds or dag_run.run_after | ds }}/",
    )
