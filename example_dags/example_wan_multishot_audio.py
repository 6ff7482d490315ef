#
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in compliance
# with the License. You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
#
"""
Example DAG: a multi-shot Wan 2.6 story with your own soundtrack, submitted and awaited as separate tasks.

* `ensure_soundtrack` makes sure the soundtrack is in S3 and returns its `s3://` URI. Put your own `.wav` or
  `.mp3` (3 to 30 seconds, at most 15 MB) at the `soundtrack_key`; when nothing is there yet, a silent WAV
  placeholder of the video's length is uploaded so the example runs out of the box.
* `submit` starts a `shot_type="multi"` generation (several shots, one consistent subject, the soundtrack
  as `audio_url`) and returns at once (`wait_for_completion=False`): the DashScope task id goes to XCom.
  The soundtrack is passed as its `s3://` URI: right before the submit the operator checks it (WAV or MP3 by
  content, at most 15 MB) and presigns it through the amazon provider's S3 hook (`aws_conn_id`) for the task's
  lifetime. DashScope downloads the audio from that link, so the bucket stays private. A signed link is a
  credential: it is made inside the task that uses it, masked in the logs, and never handed over through XCom or
  shown as a rendered template (those keep the `s3://` URI).
* `wait_for_video` (`WanTaskSensor`) waits for that task id on the triggerer: the pattern for videos
  submitted by one task, or even another DAG or system, and awaited elsewhere.
* `save_to_s3` streams the video into S3 with its manifest and emits an asset event (alias `wan_videos`).

Multi-shot needs `wan2.6-t2v` with `prompt_extend` on (the default). Write the shots into the prompt with
their time ranges, as below. Connections and bucket: as in `example_wan_text_to_video`.
"""

from __future__ import annotations

import io
import logging
import wave
from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.sdk import DAG, Param, Variable, task

from airflow_provider_wan.operators.wan import WanTextToVideoOperator
from airflow_provider_wan.sensors.wan import WanTaskSensor
from airflow_provider_wan.transfers.wan_to_s3 import WanVideoToS3Operator

DASHSCOPE_CONN_ID = "dashscope_default"
AWS_CONN_ID = "aws_default"

STORY = (
    "A thrilling detective chase with cinematic storytelling. "
    "Shot 1 [0-3 s]: Wide shot of a rainy city street at night, neon lights flickering, a detective in a black "
    "trench coat walking briskly. "
    "Shot 2 [3-6 s]: Medium shot of the detective entering an old building, rain dripping from his coat, the door "
    "closing slowly behind him. "
    "Shot 3 [6-10 s]: Close-up of the detective's determined eyes as his flashlight finds a key clue on the floor."
)

log = logging.getLogger(__name__)


def _bucket(params: dict[str, Any]) -> str:
    return params.get("bucket") or Variable.get("wan_video_bucket", default="wan-videos")


def silent_wav(seconds: int, rate: int = 16_000) -> bytes:
    """A silent mono 16-bit PCM WAV of ``seconds`` seconds (a placeholder soundtrack)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\x00\x00" * rate * seconds)
    return buffer.getvalue()


with DAG(
    dag_id="example_wan_multishot_audio",
    description="Multi-shot Wan 2.6 video with a custom soundtrack from S3; submit, sensor, save to S3",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "wan", "dashscope", "s3", "multi-shot", "audio"],
    params={
        "prompt": Param(STORY, type="string", minLength=1, maxLength=1500, title="Multi-shot prompt"),
        "duration": Param(10, type="integer", minimum=3, maximum=15, title="Duration (seconds)"),
        "soundtrack_key": Param(
            "soundtracks/wan-example-soundtrack.wav",
            type="string",
            pattern=r"^.+\.(wav|mp3)$",
            title="Soundtrack key",
            description="A .wav or .mp3 in the bucket (3-30 s, at most 15 MB); a silent one is created if missing.",
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
    def ensure_soundtrack(params: dict[str, Any] | None = None) -> str:
        """The soundtrack's ``s3://`` URI; uploads a silent placeholder of the video's length when the key is free."""
        assert params is not None
        bucket, key = _bucket(params), params["soundtrack_key"]
        hook = S3Hook(aws_conn_id=AWS_CONN_ID)
        if hook.check_for_key(key, bucket_name=bucket):
            log.info("Using the soundtrack s3://%s/%s", bucket, key)
        else:
            seconds = max(3, int(params["duration"]))  # DashScope takes 3-30 s of audio
            hook.load_bytes(silent_wav(seconds), key=key, bucket_name=bucket, replace=True)
            log.info("Uploaded a %d s silent placeholder to s3://%s/%s (replace it)", seconds, bucket, key)
        return f"s3://{bucket}/{key}"

    soundtrack = ensure_soundtrack()

    # [START howto_operator_wan_multishot_submit]
    submit = WanTextToVideoOperator(
        task_id="submit",
        dashscope_conn_id=DASHSCOPE_CONN_ID,
        model="wan2.6-t2v",
        prompt="{{ params.prompt }}",
        shot_type="multi",  # several shots, one consistent subject (needs prompt_extend, on by default)
        size="1280*720",
        duration="{{ params.duration }}",
        audio_url=soundtrack,  # the s3:// URI from the upstream task (XCom): presigned by the operator at submit
        wait_for_completion=False,  # return right after the submit; the sensor below waits
    )
    # [END howto_operator_wan_multishot_submit]

    # [START howto_sensor_wan_task]
    wait_for_video = WanTaskSensor(
        task_id="wait_for_video",
        dashscope_conn_id=DASHSCOPE_CONN_ID,
        dashscope_task_id=submit.output["task_id"],  # the XCom key "task_id" the submit pushed
        deferrable=True,  # the default: wait on the triggerer
        timeout=timedelta(hours=1).total_seconds(),
        poll_interval="{{ params.poll_interval }}",
    )
    # [END howto_sensor_wan_task]

    save_to_s3 = WanVideoToS3Operator(
        task_id="save_to_s3",
        generation=submit.output,  # the submitted request, recorded in the manifest (shot type, soundtrack...)
        dashscope_conn_id=DASHSCOPE_CONN_ID,
        aws_conn_id=AWS_CONN_ID,
        s3_bucket="{{ params.bucket or var.value.get('wan_video_bucket', 'wan-videos') }}",
        retries=3,
        retry_delay=timedelta(seconds=30),
    )

    wait_for_video >> save_to_s3  # only once the video exists
