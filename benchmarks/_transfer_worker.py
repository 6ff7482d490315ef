"""
One video transfer in a fresh process, measured: wall time, CPU time and peak RSS (``VmHWM``).

``python benchmarks/_transfer_worker.py ours|baseline TASK_ID BUCKET KEY`` prints one ``RESULT {json}`` line.

* ``ours``: :class:`WanVideoToS3Operator` with its defaults (streamed multipart upload, SHA-256, manifest).
* ``baseline``: the amazon provider's approach: the body read whole into memory (``response.content``), then
  ``S3Hook.load_bytes``. It is the real ``HttpToS3Operator`` (http provider) when installed, otherwise the same two
  calls written out. Like ``ours`` it first reads the task to get a fresh signed link.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit


def peak_rss_kib() -> int:
    """``VmHWM``: this process's own peak resident set (ru_maxrss would include pages inherited at fork)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _TI:
    try_number = 1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def _context() -> dict[str, Any]:
    from airflow.sdk.execution_time.context import OutletEventAccessors

    return {"ti": _TI(), "ds": "2026-01-02", "run_id": "bench", "outlet_events": OutletEventAccessors()}


def run_ours(task_id: str, bucket: str, key: str) -> dict[str, Any]:
    from airflow_provider_wan.transfers import _s3upload
    from airflow_provider_wan.transfers.wan_to_s3 import WanVideoToS3Operator

    phases: dict[str, float] = {}
    finalize = _s3upload.StreamingUpload._finalize_metadata
    complete = _s3upload.StreamingUpload._complete_multipart

    def timed_finalize(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return finalize(self, *args, **kwargs)
        finally:
            phases["copy_object_s"] = time.perf_counter() - started

    def timed_complete(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return complete(self, *args, **kwargs)
        finally:
            phases["complete_s"] = time.perf_counter() - started

    _s3upload.StreamingUpload._finalize_metadata = timed_finalize  # type: ignore[method-assign]
    _s3upload.StreamingUpload._complete_multipart = timed_complete  # type: ignore[method-assign]
    op = WanVideoToS3Operator(task_id="transfer", dashscope_task_id=task_id, s3_bucket=bucket, s3_key=key)
    context = _context()
    before, cpu, started = peak_rss_kib(), cpu_seconds(), time.perf_counter()
    uri = op.execute(context)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    return {
        "uri": uri,
        "seconds": seconds,
        "cpu_s": cpu_seconds() - cpu,
        "before_kib": before,
        "peak_kib": peak_rss_kib(),
        "phases": phases,
    }


def run_baseline(task_id: str, bucket: str, key: str) -> dict[str, Any]:
    from airflow_provider_wan.hooks.wan import WanHook

    context = _context()
    try:
        from airflow.providers.amazon.aws.transfers.http_to_s3 import HttpToS3Operator

        implementation = "HttpToS3Operator"
    except ImportError:  # the http provider is optional
        HttpToS3Operator = None  # type: ignore[assignment,misc]
        implementation = "requests + S3Hook.load_bytes"
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    before, cpu, started = peak_rss_kib(), cpu_seconds(), time.perf_counter()
    hook = WanHook()
    url = hook.get_task(task_id).video_url or ""
    hook.close()
    if HttpToS3Operator is not None:
        parts = urlsplit(url)
        op = HttpToS3Operator(
            task_id="baseline",
            http_conn_id="wan_video",
            endpoint=parts.path,
            method="GET",
            data=dict(parse_qsl(parts.query)),
            s3_bucket=bucket,
            s3_key=key,
            replace=True,
        )
        op.execute(context)  # type: ignore[arg-type]
    else:
        import requests

        with requests.Session() as session:
            response = session.get(url, timeout=60)
            response.raise_for_status()
            S3Hook(aws_conn_id="aws_default").load_bytes(response.content, key, bucket, replace=True)
    seconds = time.perf_counter() - started
    return {
        "uri": f"s3://{bucket}/{key}",
        "seconds": seconds,
        "cpu_s": cpu_seconds() - cpu,
        "before_kib": before,
        "peak_kib": peak_rss_kib(),
        "implementation": implementation,
    }


def main() -> None:
    mode, task_id, bucket, key = sys.argv[1:5]
    # Import what both paths need before the "before" reading, so it is the same baseline for both.
    import airflow.providers.amazon.aws.hooks.s3  # noqa: F401

    import airflow_provider_wan.hooks.wan  # noqa: F401

    result = run_ours(task_id, bucket, key) if mode == "ours" else run_baseline(task_id, bucket, key)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
