"""End-to-end DAGs beyond text: image-to-video, first-and-last-frame and reference-to-video, then the S3 transfer.

Inputs come from ``dag_run.conf`` (``s3://`` URIs or https links) so one DAG serves every case; the transfer lands the
video in ``conf["bucket"]``. Retries are on: a bad input must fail without spending them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_wan.operators.wan import (
    WanFirstLastFrameToVideoOperator,
    WanImageToVideoOperator,
    WanReferenceToVideoOperator,
)
from airflow_provider_wan.transfers.wan_to_s3 import WanVideoToS3Operator

FAST = "[[sim: pending=0.1 running=0.2]]"
ARGS = {"retries": 2, "retry_delay": timedelta(seconds=0)}

with DAG(
    dag_id="wan_test_i2v",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    default_args=ARGS,
    tags=["wan", "test"],
) as i2v_dag:
    i2v = WanImageToVideoOperator(
        task_id="generate",
        img_url="{{ dag_run.conf['img_url'] }}",
        prompt=f"the product turns slowly on its stand {FAST}",
        resolution="720P",
        duration=3,
        poll_interval=0.2,
    )
    WanVideoToS3Operator(task_id="transfer", generation=i2v.output, s3_bucket="{{ dag_run.conf['bucket'] }}")

with DAG(
    dag_id="wan_test_i2v_sync",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    default_args=ARGS,
    tags=["wan", "test"],
) as i2v_sync_dag:
    WanImageToVideoOperator(
        task_id="generate",
        img_url="{{ dag_run.conf['img_url'] }}",
        model="wan2.2-i2v-flash",
        prompt=f"a paper boat drifts {FAST}",
        resolution="480P",
        deferrable=False,
        poll_interval=0.2,
    )

with DAG(
    dag_id="wan_test_kf2v",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    default_args=ARGS,
    tags=["wan", "test"],
) as kf2v_dag:
    kf2v = WanFirstLastFrameToVideoOperator(
        task_id="generate",
        first_frame_url="{{ dag_run.conf['first'] }}",
        last_frame_url="{{ dag_run.conf['last'] }}",
        prompt=f"the bud opens into a flower {FAST}",
        resolution="720P",
        poll_interval=0.2,
    )
    WanVideoToS3Operator(task_id="transfer", generation=kf2v.output, s3_bucket="{{ dag_run.conf['bucket'] }}")

with DAG(
    dag_id="wan_test_r2v",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    default_args=ARGS,
    tags=["wan", "test"],
) as r2v_dag:
    r2v = WanReferenceToVideoOperator(
        task_id="generate",
        reference_urls=["{{ dag_run.conf['ref1'] }}", "{{ dag_run.conf['ref2'] }}"],
        prompt=f"character1 hands character2 a cup of tea in a sunny kitchen {FAST}",
        size="1280*720",
        duration=4,
        poll_interval=0.2,
    )
    WanVideoToS3Operator(task_id="transfer", generation=r2v.output, s3_bucket="{{ dag_run.conf['bucket'] }}")

with DAG(
    dag_id="wan_test_i2v_reconnect",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["wan", "test"],
) as i2v_reconnect_dag:
    # Try 1 times out while DashScope is still RUNNING (a RUNNING task cannot be canceled); try 2 reconnects.
    WanImageToVideoOperator(
        task_id="generate",
        img_url="{{ dag_run.conf['img_url'] }}",
        prompt="the product turns slowly [[sim: pending=0.2 running=3]]",
        resolution="720P",
        timeout=2.0,
        retries=1,
        retry_delay=timedelta(seconds=0),
        poll_interval=0.2,
    )
