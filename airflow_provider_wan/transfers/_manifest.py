"""
The manifest written beside each video: ``<key>.json``, UTF-8 JSON with the request, prompts, usage, timings,
checksum and the Airflow run that wrote it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_wan import __version__
from airflow_provider_wan.transfers._s3 import OBJECT_ARGS, error_code, s3_error

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_wan.models import WanTask

MANIFEST_CONTENT_TYPE = "application/json; charset=utf-8"
MANIFEST_VERSION = 1
VIDEO_CONTENT_TYPE = "video/mp4"
#: User-metadata name of the DashScope task id (S3 sends it as ``x-amz-meta-wan-task-id``).
META_TASK_ID = "wan-task-id"


def ascii_value(value: Any) -> str:
    """
    An S3 metadata value: printable ASCII (anything else percent-encoded).

    :param value: any value.
    """
    return quote(str(value), safe=" !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def build_manifest(
    context: Context,
    airflow_task_id: str,
    bucket: str,
    key: str,
    sha256: str,
    size: int,
    dashscope_task_id: str | None,
    generation: Mapping[str, Any] | None,
    task: WanTask | None,
) -> dict[str, Any]:
    """
    The manifest of the video at ``s3://bucket/key``.

    :param context: the task's context (dag, run and try recorded).
    :param airflow_task_id: the transfer's task id.
    :param bucket: the bucket.
    :param key: the video's key.
    :param sha256: the video's hex SHA-256.
    :param size: its size in bytes.
    :param dashscope_task_id: the DashScope task id.
    :param generation: the generate operator's result, when given.
    :param task: the DashScope task as read for the link, when it was read.
    """
    gen = dict(generation or {})
    request = dict(gen.get("request") or {})
    usage = task.usage.model_dump(exclude_none=True) if task and task.usage else gen.get("usage")
    billed = task.usage.billed_seconds if task and task.usage else gen.get("billed_seconds")
    orig_prompt = gen.get("orig_prompt") or (task.orig_prompt if task else None) or request.get("prompt")
    if not request and orig_prompt:
        request = {"prompt": orig_prompt}

    def pick(name: str) -> Any:
        return first(gen.get(name), getattr(task, name, None) if task else None)

    dag, ti = context.get("dag"), context.get("ti")
    return {
        "manifest_version": MANIFEST_VERSION,
        "s3_uri": f"s3://{bucket}/{key}",
        "bucket": bucket,
        "key": key,
        "content_type": VIDEO_CONTENT_TYPE,
        "size_bytes": size,
        "sha256": sha256,
        "dashscope_task_id": dashscope_task_id,
        "request_id": pick("request_id"),
        "model": gen.get("model") or request.get("model"),
        "request": request,
        "orig_prompt": orig_prompt,
        "actual_prompt": pick("actual_prompt"),
        "size": gen.get("size") or (task.usage.output_size if task and task.usage else None),
        "duration": gen.get("duration"),
        "seed": first(gen.get("seed"), request.get("seed")),
        "billed_seconds": billed,
        "usage": usage,
        "estimated_cost": gen.get("estimated_cost"),
        "billed_cost": gen.get("billed_cost"),
        "timings": {
            "submit_time": pick("submit_time"),
            "scheduled_time": pick("scheduled_time"),
            "end_time": pick("end_time"),
        },
        "airflow": {
            "dag_id": getattr(dag, "dag_id", None),
            "run_id": context.get("run_id"),
            "task_id": airflow_task_id,
            "try_number": getattr(ti, "try_number", None),
        },
        "producer": f"airflow-provider-wan/{__version__}",
    }


def put_manifest(
    client: Any,
    bucket: str,
    key: str,
    object_args: Mapping[str, Any],
    manifest: Mapping[str, Any],
    dashscope_task_id: str | None,
    log: Any,
) -> str:
    """
    Write ``manifest`` to ``<key>.json`` (one PutObject with its SHA-256 checked by S3); return its ``s3://`` URI.

    :param client: the boto3 S3 client.
    :param bucket: the bucket.
    :param key: the video's key.
    :param object_args: the video's object arguments (SSE, ACL, storage class, tags, metadata are repeated).
    :param manifest: what :func:`build_manifest` returned, plus anything added.
    :param dashscope_task_id: the DashScope task id, as metadata.
    :param log: where to report.
    """
    manifest_key = f"{key}.json"
    body = json.dumps(manifest, ensure_ascii=False, indent=2, default=str).encode("utf-8")
    args = {k: v for k, v in object_args.items() if k in OBJECT_ARGS}
    args["ContentType"] = MANIFEST_CONTENT_TYPE
    meta = {**args.get("Metadata", {}), "wan-video-sha256": manifest["sha256"]}
    if dashscope_task_id:
        meta[META_TASK_ID] = ascii_value(dashscope_task_id)
    args["Metadata"] = meta
    checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()
    try:
        try:
            client.put_object(Bucket=bucket, Key=manifest_key, Body=body, ChecksumSHA256=checksum, **args)
        except Exception as err:
            if error_code(err) not in ("InvalidArgument", "NotImplemented", "InvalidRequest"):
                raise
            client.put_object(Bucket=bucket, Key=manifest_key, Body=body, **args)
    except Exception as err:
        raise s3_error(err, "PutObject (manifest)", bucket, manifest_key) from err
    log.info("Wrote the manifest s3://%s/%s (%d bytes)", bucket, manifest_key, len(body))
    return f"s3://{bucket}/{manifest_key}"


def first(*values: Any) -> Any:
    """
    The first value that is not None.

    :param values: candidates.
    """
    for value in values:
        if value is not None:
            return value
    return None
