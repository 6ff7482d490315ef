"""The transfer alone, for the fault-matrix tests: one retry, no delay, 5 MiB parts; everything else from the conf.

``dag_run.conf``: ``task_id`` (a finished DashScope task on the simulator), ``bucket``, and optionally
``aws_conn_id`` (the fault proxy's connection), ``dashscope_conn_id`` and ``video_url``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_wan.transfers.wan_to_s3 import WanVideoToS3Operator

with DAG(
    dag_id="wan_test_transfer_faults",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["wan", "test"],
) as faults_dag:
    WanVideoToS3Operator(
        task_id="transfer",
        dashscope_task_id="{{ dag_run.conf['task_id'] }}",
        video_url="{{ dag_run.conf.get('video_url') or '' }}",
        s3_bucket="{{ dag_run.conf['bucket'] }}",
        s3_key="videos/{{ dag_run.conf['task_id'] }}.mp4",
        aws_conn_id="{{ dag_run.conf.get('aws_conn_id') or 'aws_default' }}",
        dashscope_conn_id="{{ dag_run.conf.get('dashscope_conn_id') or 'dashscope_default' }}",
        chunk_size=5 * 1024 * 1024,
        retries=1,
        retry_delay=timedelta(seconds=0),
        asset_alias="wan_test_fault_videos",
    )
