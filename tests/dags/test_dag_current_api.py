"""DAGs for today's Wan API (issue 12): wan2.7's resolution + ratio shape, and a soundtrack behind a presigned link.

The relay and region tests reuse ``wan_test_deferrable`` with the connection pointing elsewhere.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_wan.operators.wan import WanTextToVideoOperator

START = pendulum.datetime(2025, 1, 1, tz="UTC")

with DAG(
    "wan_test_wan27",
    schedule=None,
    start_date=START,
    catchup=False,
    params={
        "prompt": Param("a paper boat on a rainy street", type="string"),
        "ratio": Param("16:9", type="string"),
        "duration": Param(4, type="integer"),
    },
) as wan27_dag:
    # wan2.7 takes resolution + ratio (never a pixel size); the ratio is templated, so it is checked after rendering.
    WanTextToVideoOperator(
        task_id="generate",
        model="wan2.7-t2v",
        prompt="{{ params.prompt }}",
        resolution="720P",
        aspect_ratio="{{ params.ratio }}",
        duration="{{ params.duration }}",
        poll_interval=0.2,
        retry_delay=timedelta(seconds=0),
    )

with DAG(
    "wan_test_presigned_audio",
    schedule=None,
    start_date=START,
    catchup=False,
    params={
        "prompt": Param("a drummer on a rooftop", type="string"),
        "audio_url": Param("https://bucket.s3.amazonaws.com/soundtracks/take-7", type="string"),
    },
) as presigned_audio_dag:
    # A presigned S3 link whose key has no extension: the format is a property of the content, not of the URL.
    WanTextToVideoOperator(
        task_id="generate",
        model="wan2.6-t2v",
        prompt="{{ params.prompt }}",
        audio_url="{{ params.audio_url }}",
        size="1280*720",
        duration=5,
        poll_interval=0.2,
        retry_delay=timedelta(seconds=0),
    )
