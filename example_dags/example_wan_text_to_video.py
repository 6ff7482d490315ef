#
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in compliance
# with the License. You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
#
"""
Example DAG: generate one video with Wan (`wan2.6-t2v`) and save it to S3.

Trigger it from the UI ("Trigger DAG" shows a form) with your own prompt, size and duration, or from the CLI:

```bash
airflow dags trigger example_wan_text_to_video --conf '{"prompt": "a paper boat drifting down a rainy street"}'
```

`generate` submits the generation to DashScope and *defers*: while the video renders (one to five minutes on the
real service) no worker slot is held; the triggerer polls the task every `poll_interval` seconds. `save_to_s3`
then fetches a fresh signed link by task id and streams the video into S3, checksummed, with a JSON manifest beside
it, and emits an asset event through the `wan_videos` asset alias (see `example_wan_daily_digest`).

Connections (defaults):

* `dashscope_default`: the API key in the password field, the region (`singapore`, `beijing` or
  `virginia`) in the extra. Point `extra.base_url` at the local simulator
  (`python -m airflow_provider_wan.simulator`) to develop without a key and without a bill.
* `aws_default`: any AWS connection `S3Hook` accepts.

```bash
export AIRFLOW_CONN_DASHSCOPE_DEFAULT='{"conn_type": "dashscope", "password": "sk-...",
                                        "extra": {"region": "singapore"}}'
```

The bucket is the `bucket` param, else the Airflow Variable `wan_video_bucket`, else `wan-videos`.
DashScope bills per second of *successful* video: `duration` is what you pay for.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_wan.operators.wan import WanTextToVideoOperator
from airflow_provider_wan.transfers.wan_to_s3 import WanVideoToS3Operator

DASHSCOPE_CONN_ID = "dashscope_default"
AWS_CONN_ID = "aws_default"

#: Output sizes of wan2.6-t2v ("W*H"): 720P and 1080P in five aspect ratios.
WAN26_SIZES = [
    "1280*720", "720*1280", "960*960", "1088*832", "832*1088",
    "1920*1080", "1080*1920", "1440*1440", "1632*1248", "1248*1632",
]  # fmt: skip


with DAG(
    dag_id="example_wan_text_to_video",
    description="Generate a video with Wan 2.6 on DashScope and save it to S3",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    tags=["example", "wan", "dashscope", "s3"],
    params={
        "prompt": Param(
            "A paper boat drifts down a rain-soaked neon street at night, reflections shimmering on the water, "
            "slow cinematic tracking shot",
            type="string",
            minLength=1,
            maxLength=1500,
            title="Prompt",
            description="What the video shows (up to 1500 characters, Chinese or English).",
            section="Video",
        ),
        "size": Param(
            "1280*720",
            type="string",
            enum=WAN26_SIZES,
            title="Size",
            description="Width*height: 720P (cheaper) or 1080P, landscape, portrait, square, 4:3 or 3:4.",
            section="Video",
        ),
        "duration": Param(
            5,
            type="integer",
            minimum=2,
            maximum=15,
            title="Duration (seconds)",
            description="Seconds of video, 2 to 15. DashScope bills per second of successful video.",
            section="Video",
        ),
        "bucket": Param(
            None,
            type=["null", "string"],
            title="S3 bucket",
            description="Empty: the Airflow Variable wan_video_bucket, else wan-videos.",
            section="Storage",
        ),
        "poll_interval": Param(
            15,
            type="number",
            exclusiveMinimum=0,
            maximum=300,
            title="Poll interval (seconds)",
            description="How often the triggerer asks DashScope about the task (DashScope suggests 15).",
            section="Advanced",
        ),
    },
) as dag:
    # [START howto_operator_wan_text_to_video]
    generate = WanTextToVideoOperator(
        task_id="generate",
        dashscope_conn_id=DASHSCOPE_CONN_ID,
        model="wan2.6-t2v",
        prompt="{{ params.prompt }}",
        size="{{ params.size }}",
        duration="{{ params.duration }}",
        deferrable=True,  # the default: wait on the triggerer, not in a worker slot
        timeout=timedelta(minutes=30),  # wall-clock ceiling on the wait (also enforced while deferred)
        poll_interval="{{ params.poll_interval }}",
        # A retry reconnects to the DashScope task already submitted (Airflow 3.3+) instead of paying twice.
        retries=1,
        retry_delay=timedelta(minutes=1),
    )
    # [END howto_operator_wan_text_to_video]

    # [START howto_transfer_wan_video_to_s3]
    save_to_s3 = WanVideoToS3Operator(
        task_id="save_to_s3",
        generation=generate.output,  # the generate result: the task id and the request for the manifest
        dashscope_conn_id=DASHSCOPE_CONN_ID,
        aws_conn_id=AWS_CONN_ID,
        s3_bucket="{{ params.bucket or var.value.get('wan_video_bucket', 'wan-videos') }}",
        # The key defaults to wan/<run date>/<DashScope task id>.mp4; a manifest <key>.json is written beside it.
        asset_alias="wan_videos",  # the default: an asset event for s3://bucket/key goes through this alias
        retries=3,  # idempotent: a retry finds the finished object and succeeds without downloading again
        retry_delay=timedelta(seconds=30),
    )
    # [END howto_transfer_wan_video_to_s3]

    # The operator's return value is a JSON result dict; there is no signed video URL in XCom.
    # The transfer reads the DashScope task id from it, so the dependency generate >> save_to_s3 is implicit.
