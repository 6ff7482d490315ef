#
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in compliance
# with the License. You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
#
"""
Example DAG: a daily content pipeline that turns a list of prompts into videos in S3.

Every day:

1. `load_prompts` reads `prompts.txt` beside this file (one prompt per line; `#` comments and blank lines
   are skipped). Edit the file and the next run picks it up; a manual run can pass its own list in the
   `prompts` param.
2. `generate` is mapped over the prompts (dynamic task mapping: one task instance per prompt). Each instance
   submits one generation and defers to the triggerer while DashScope renders it.
3. `save_to_s3` is mapped over the results: each video is streamed into S3 under `wan/<date>/` with a JSON
   manifest beside it, and an asset event goes through the `wan_videos` asset alias, which schedules
   `example_wan_daily_digest`.

**Size the pool from the model's concurrency.** Every `generate` instance runs in the `wan_generation` pool.
DashScope generates at most 5 wan2.6-t2v videos at once per account (2 for wan2.2 and wan2.1:
`WanConnectionSettings.limits_for(model)` says, with the connection's `model_limits` overrides); more only wait in
its queue. Deferred tasks only count against a pool created with `--include-deferred`, so create it with the
model's concurrency (fewer slots if other DAGs share the account):

```bash
airflow pools set wan_generation 5 "Wan text-to-video generations at once (wan2.6-t2v: 5)" --include-deferred
```

Without `--include-deferred` the pool would only limit the short submit step, not the renders. Without the pool
nothing breaks: the extra generations wait PENDING at DashScope, and queue time does not count against `timeout`.

Connections: `dashscope_default` and `aws_default` (see `example_wan_text_to_video`). The bucket is the
`bucket` param, else the Airflow Variable `wan_video_bucket`, else `wan-videos`.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, AssetAlias, Param, task

from airflow_provider_wan.operators.wan import WanTextToVideoOperator
from airflow_provider_wan.transfers.wan_to_s3 import WanVideoToS3Operator

DASHSCOPE_CONN_ID = "dashscope_default"
AWS_CONN_ID = "aws_default"
#: Create it with --include-deferred (see above), or the cap does not apply while videos render.
GENERATION_POOL = "wan_generation"
PROMPTS_FILE = Path(__file__).parent / "prompts.txt"

log = logging.getLogger(__name__)


with DAG(
    dag_id="example_wan_content_pipeline",
    description="Daily: one Wan video per prompt of prompts.txt, saved to S3, announced as asset events",
    doc_md=__doc__,
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,  # never backfill: every missed day would be billed
    max_active_runs=1,
    tags=["example", "wan", "dashscope", "s3", "dynamic-task-mapping"],
    params={
        "prompts": Param(
            None,
            type=["null", "array"],
            items={"type": "string", "minLength": 1, "maxLength": 1500},
            title="Prompts",
            description="Prompts for this run only; empty: the lines of prompts.txt.",
        ),
        "bucket": Param(
            None,
            type=["null", "string"],
            title="S3 bucket",
            description="Empty: the Airflow Variable wan_video_bucket, else wan-videos.",
        ),
        "poll_interval": Param(15, type="number", exclusiveMinimum=0, maximum=300, title="Poll interval (seconds)"),
    },
) as dag:

    @task
    def load_prompts(params: dict[str, Any] | None = None) -> list[str]:
        """The day's prompts: the ``prompts`` param of a manual run, else the lines of ``prompts.txt``."""
        if params and params.get("prompts"):
            prompts = [str(p).strip() for p in params["prompts"] if str(p).strip()]
        else:
            lines = PROMPTS_FILE.read_text(encoding="utf-8").splitlines()
            prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not prompts:
            raise ValueError(f"No prompts: {PROMPTS_FILE.name} is empty and the run gave none")
        log.info("%d prompts to generate today", len(prompts))
        return prompts

    prompts = load_prompts()

    # [START howto_operator_wan_text_to_video_mapped]
    generate = WanTextToVideoOperator.partial(
        task_id="generate",
        dashscope_conn_id=DASHSCOPE_CONN_ID,
        model="wan2.6-t2v",
        size="1280*720",
        duration=5,
        pool=GENERATION_POOL,  # at most <slots> renders at once: the model's concurrency, with --include-deferred
        map_index_template="{{ task.prompt[:60] }}",  # the grid shows each instance's prompt, not 0, 1, 2...
        poll_interval="{{ params.poll_interval }}",
        timeout=timedelta(hours=1),
        retries=1,  # a retry reconnects to the task already submitted (Airflow 3.3+) instead of paying twice
        retry_delay=timedelta(minutes=2),
    ).expand(prompt=prompts)
    # [END howto_operator_wan_text_to_video_mapped]

    # [START howto_transfer_wan_video_to_s3_mapped]
    save_to_s3 = WanVideoToS3Operator.partial(
        task_id="save_to_s3",
        dashscope_conn_id=DASHSCOPE_CONN_ID,
        aws_conn_id=AWS_CONN_ID,
        s3_bucket="{{ params.bucket or var.value.get('wan_video_bucket', 'wan-videos') }}",
        # The key defaults to wan/<run date>/<DashScope task id>.mp4, the manifest is <key>.json beside it.
        asset_alias="wan_videos",  # schedules example_wan_daily_digest
        # partial() does not run __init__ until the task runs: declare the alias here for the DAG's lineage too.
        outlets=[AssetAlias("wan_videos")],
        retries=3,  # idempotent: the object of the same task is recognised and kept
        retry_delay=timedelta(seconds=30),
    ).expand(generation=generate.output)
    # [END howto_transfer_wan_video_to_s3_mapped]
