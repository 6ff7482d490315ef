"""End-to-end DAG: WanTextToVideoOperator generates, WanVideoToS3Operator saves (``generation=generate.output``).

The bucket comes from ``dag_run.conf["bucket"]``; the asset event goes through the ``wan_test_videos`` alias.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_wan.transfers.wan_to_s3 import WanVideoToS3Operator

try:
    from airflow_provider_wan.operators.wan import WanTextToVideoOperator
except ImportError:  # the generate operator is missing or broken: leave this DAG out, keep the folder loadable
    WanTextToVideoOperator = None  # type: ignore[assignment,misc]

PROMPT = "一只纸船在雨夜的街道上漂流，霓虹灯倒映在水面 [[sim: pending=0.1 running=0.2]]"

if WanTextToVideoOperator is not None:
    with DAG(
        dag_id="wan_test_transfer_generate",
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        tags=["wan", "test"],
    ) as generate_dag:
        generate = WanTextToVideoOperator(
            task_id="generate", prompt=PROMPT, model="wan2.6-t2v", seed=11, poll_interval=0.2
        )
        WanVideoToS3Operator(
            task_id="transfer",
            generation=generate.output,
            s3_bucket="{{ dag_run.conf['bucket'] }}",
            asset_alias="wan_test_videos",
        )
