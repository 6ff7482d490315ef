#
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in compliance
# with the License. You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
#
"""
Example DAG: a digest of the day's Wan videos, scheduled by the videos themselves (data-aware scheduling).

`WanVideoToS3Operator` emits an asset event for every video it saves through the asset alias `wan_videos`, on one
asset per destination (`s3://bucket/wan`), with the video's key (`wan/<date>/<task id>.mp4`), checksum and model
in the event's extra. This DAG is scheduled on that alias, so it runs after
`example_wan_content_pipeline` (or any other DAG using the transfer) has saved new videos; it never needs to know
the object keys in advance.

`list_videos` takes the bucket and the day from the triggering asset events, lists the day's videos in S3 with
`S3Hook.list_keys`, reads each one's manifest (prompt, model, duration, checksum) and returns the digest. Replace
the logging with your notifier (Slack, e-mail...) to publish it. A manual run lists the `day` param's videos
(default: the run's date) in the `bucket` param's bucket (default: the Variable `wan_video_bucket`, else
`wan-videos`).
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import unquote, urlsplit

import pendulum
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.sdk import DAG, AssetAlias, Param, Variable, task

AWS_CONN_ID = "aws_default"
WAN_VIDEOS = AssetAlias("wan_videos")
#: The transfer's default key layout: wan/<date>/<DashScope task id>.mp4 (+ .json manifest).
KEY_PREFIX = "wan"

log = logging.getLogger(__name__)


def _day_prefixes(context: dict[str, Any]) -> set[tuple[str, str]]:
    """(bucket, "wan/<date>/") of every video that triggered this run; empty for a manual run."""
    prefixes = set()
    # Mapping of asset or alias -> its events; this DAG is scheduled on one alias, so all of them are videos.
    triggering = context.get("triggering_asset_events") or {}
    for events in triggering.values():
        for event in events:
            extra = getattr(event, "extra", None) or {}
            uri = urlsplit(event.asset.uri)
            bucket = extra.get("bucket") or uri.netloc
            key = extra.get("key") or unquote(uri.path.lstrip("/"))  # events of older versions: one asset per video
            if "/" in key:
                prefixes.add((bucket, key.rsplit("/", 1)[0] + "/"))
    return prefixes


with DAG(
    dag_id="example_wan_daily_digest",
    description="List the day's Wan videos in S3 whenever new ones are saved",
    doc_md=__doc__,
    schedule=[WAN_VIDEOS],  # every asset event through the alias queues a run (several are batched into one)
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["example", "wan", "s3", "assets"],
    params={
        "bucket": Param(None, type=["null", "string"], description="Manual runs: the bucket (default: Variable)."),
        "day": Param(None, type=["null", "string"], format="date", description="Manual runs: YYYY-MM-DD."),
    },
) as dag:

    @task
    def list_videos(**context: Any) -> list[dict[str, Any]]:
        """The videos of the day(s) that triggered this run, with what their manifests say."""
        prefixes = _day_prefixes(context)
        if not prefixes:  # a manual run: the bucket and the day from the params
            params = context["params"]
            bucket = params.get("bucket") or Variable.get("wan_video_bucket", default="wan-videos")
            run_after = context["dag_run"].run_after
            day = params.get("day") or context.get("ds") or run_after.date().isoformat()
            prefixes = {(bucket, f"{KEY_PREFIX}/{day}/")}

        hook = S3Hook(aws_conn_id=AWS_CONN_ID)
        videos = []
        for bucket, prefix in sorted(prefixes):
            for key in sorted(hook.list_keys(bucket_name=bucket, prefix=prefix) or []):
                if not key.endswith(".mp4"):
                    continue  # the .mp4.json manifests
                manifest: dict[str, Any] = {}
                if hook.check_for_key(f"{key}.json", bucket_name=bucket):
                    manifest = json.loads(hook.read_key(f"{key}.json", bucket_name=bucket))
                videos.append(
                    {
                        "uri": f"s3://{bucket}/{key}",
                        "dashscope_task_id": manifest.get("dashscope_task_id"),
                        "prompt": manifest.get("orig_prompt"),
                        "model": manifest.get("model"),
                        "duration": manifest.get("duration"),
                        "size_bytes": manifest.get("size_bytes"),
                        "sha256": manifest.get("sha256"),
                    }
                )

        where = ", ".join(f"s3://{bucket}/{prefix}" for bucket, prefix in sorted(prefixes))
        log.info("%d videos in %s", len(videos), where)
        for video in videos:
            log.info("%s  %s s  %s", video["uri"], video["duration"], (video["prompt"] or "")[:80])
        return videos

    list_videos()
