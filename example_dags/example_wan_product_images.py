#
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in compliance
# with the License. You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
#
"""
Example DAG: product shots in S3 become short clips in S3 (image-to-video, mapped and pooled).

1. `list_product_images` lists the images under `products/` in the bucket and returns their `s3://` URIs. When
   there are none yet, it uploads two placeholder product shots (plain PNGs drawn here) so the example runs out of
   the box; put your own JPEG/PNG/BMP/WEBP files there (360-2000 px per side, at most 10 MB, PNGs without
   transparency).
2. `animate` is mapped over the URIs: each instance is one `WanImageToVideoOperator` with the image as its first
   frame. The operator reads the first bytes of the object (format, pixel size, file size) and presigns it through
   the amazon provider's S3 hook just before the submit, so the bucket stays private; the signed link is masked in
   the logs and never stored (XCom and the rendered fields keep the `s3://` URI). A bad image fails its instance
   without retry and without any request to DashScope. The clip takes the image's aspect ratio at the chosen
   `resolution`.
3. `save_to_s3` streams each clip into S3 under `wan/<date>/` with its manifest, as in the text-to-video examples.

**Pool.** Every `animate` instance runs in the `wan_generation` pool: size it from the model's concurrency (5 for
wan2.6-i2v-flash per account) and create it with `--include-deferred` so rendering videos count:

```bash
airflow pools set wan_generation 5 "Wan generations at once" --include-deferred
```

Connections: `dashscope_default` and `aws_default` (see `example_wan_text_to_video`). The bucket is the `bucket`
param, else the Airflow Variable `wan_video_bucket`, else `wan-videos`.
"""

from __future__ import annotations

import logging
import struct
import zlib
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, AssetAlias, Param, task

from airflow_provider_wan.operators.wan import WanImageToVideoOperator
from airflow_provider_wan.transfers.wan_to_s3 import WanVideoToS3Operator

DASHSCOPE_CONN_ID = "dashscope_default"
AWS_CONN_ID = "aws_default"
GENERATION_POOL = "wan_generation"
PREFIX = "products/"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
#: The placeholders uploaded to an empty prefix: name -> (width, height, colour).
PLACEHOLDERS = {"teapot.png": (1280, 720, (180, 90, 40)), "sneaker.png": (720, 1280, (40, 120, 200))}

log = logging.getLogger(__name__)


def placeholder_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """
    A plain PNG with a lighter band across the middle (no image library needed).

    :param width: pixels.
    :param height: pixels.
    :param rgb: the background colour.
    """
    light = bytes(min(255, c + 60) for c in rgb)
    rows = b"".join(
        b"\x00" + (light if height // 3 < y < 2 * height // 3 else bytes(rgb)) * width for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no alpha
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


with DAG(
    dag_id="example_wan_product_images",
    description="Product images in S3 -> Wan image-to-video clips -> back to S3",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["example", "wan", "dashscope", "s3", "image-to-video", "dynamic-task-mapping"],
    params={
        "bucket": Param(
            None,
            type=["null", "string"],
            title="S3 bucket",
            description="Empty: the Airflow Variable wan_video_bucket, else wan-videos.",
        ),
        "prompt": Param(
            "The camera circles the product slowly on a clean studio set, soft light, gentle reflections",
            type="string",
            maxLength=1500,
            title="Motion prompt",
        ),
        "poll_interval": Param(15, type="number", exclusiveMinimum=0, maximum=300, title="Poll interval (seconds)"),
    },
) as dag:

    @task
    def list_product_images(params: dict[str, Any] | None = None) -> list[str]:
        """The ``s3://`` URIs of the images under ``products/`` (placeholders uploaded when there are none)."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from airflow.sdk import Variable

        bucket = (params or {}).get("bucket") or Variable.get("wan_video_bucket", default="wan-videos")
        hook = S3Hook(aws_conn_id=AWS_CONN_ID)
        keys = [k for k in hook.list_keys(bucket, prefix=PREFIX) or [] if k.lower().endswith(IMAGE_SUFFIXES)]
        if not keys:
            for name, (width, height, rgb) in PLACEHOLDERS.items():
                hook.load_bytes(placeholder_png(width, height, rgb), key=PREFIX + name, bucket_name=bucket)
            keys = [PREFIX + name for name in PLACEHOLDERS]
            log.info("No product images under s3://%s/%s yet: uploaded %d placeholders", bucket, PREFIX, len(keys))
        return [f"s3://{bucket}/{key}" for key in sorted(keys)]

    images = list_product_images()

    # [START howto_operator_wan_image_to_video_mapped]
    animate = WanImageToVideoOperator.partial(
        task_id="animate",
        dashscope_conn_id=DASHSCOPE_CONN_ID,
        aws_conn_id=AWS_CONN_ID,  # reads and presigns each s3:// image just before its submit
        model="wan2.6-i2v-flash",
        prompt="{{ params.prompt }}",
        resolution="720P",  # the clip takes the image's aspect ratio at this tier
        duration=5,
        pool=GENERATION_POOL,
        map_index_template="{{ task.img_url.rsplit('/', 1)[-1] }}",  # the grid shows each image's name
        poll_interval="{{ params.poll_interval }}",
        retries=1,  # a retry reconnects to the task already submitted (Airflow 3.3+) instead of paying twice
        retry_delay=timedelta(minutes=2),
    ).expand(img_url=images)
    # [END howto_operator_wan_image_to_video_mapped]

    WanVideoToS3Operator.partial(
        task_id="save_to_s3",
        dashscope_conn_id=DASHSCOPE_CONN_ID,
        aws_conn_id=AWS_CONN_ID,
        s3_bucket="{{ params.bucket or var.value.get('wan_video_bucket', 'wan-videos') }}",
        asset_alias="wan_videos",
        outlets=[AssetAlias("wan_videos")],
        retries=3,
        retry_delay=timedelta(seconds=30),
    ).expand(generation=animate.output)
