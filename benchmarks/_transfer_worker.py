"""
One video transfer in a fresh process, measured: wall time, CPU time and peak RSS (``VmHWM``).

``python benchmarks/_transfer_worker.py MODE TASK_ID BUCKET KEY`` prints one ``RESULT {json}`` line. Modes:

* ``ours``: :class:`WanVideoToS3Operator` with its defaults (checking reader into boto3's managed upload through
  ``S3Hook``, CRC32 part checksums, the video's SHA-256 computed in a thread beside the upload, sha256 tag,
  manifest), timed around ``execute``.
* ``fileobj``: the lower bound for a stream: boto3's ``upload_fileobj`` (``S3Hook``'s client and its default
  ``TransferConfig``) fed from an ``httpx`` stream of the same link, nothing checked, nothing recorded; botocore's
  default checksum (CRC32 per part), the same S3 check the operator asks for by default.
* ``fileobj_sha256``: the same with ``ChecksumAlgorithm=SHA256`` (what the operator sends with
  ``s3_checksum="SHA256"``).
* ``fileobj_crc64nvme``: the same with a full-object CRC64NVME (``s3_checksum="CRC64NVME"``; needs awscrt). Not in
  the default run of ``transfer.py``.
* ``file``: ``upload_file`` of the same bytes from a local file (downloaded before the clock starts): no download
  at all, and boto3 reads parts in parallel from disk.
* ``baseline``: the amazon provider's approach: the body read whole into memory (``response.content``), then
  ``S3Hook.load_bytes``. It is the real ``HttpToS3Operator`` (http provider) when installed, otherwise the same two
  calls written out.

Every mode but ``file`` reads the task for a fresh signed link inside its timing, as the operator does, and every
mode builds its S3 client inside its timing. Every result says which boto3 transfer manager the mode's
``TransferConfig`` resolves to (``classic``, or ``crt`` where awscrt is installed and boto3 picks its CRT client) and
which awscrt is installed, so a comparison can be seen to run on the same client.
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


def _measured(started: float, before: int, cpu: float, **extra: Any) -> dict[str, Any]:
    return {
        "seconds": time.perf_counter() - started,
        "cpu_s": cpu_seconds() - cpu,
        "before_kib": before,
        "peak_kib": peak_rss_kib(),
        **extra,
    }


def transfer_manager(config: Any) -> str:
    """Which boto3 transfer manager ``config`` resolves to here: ``classic`` or ``crt``."""
    try:
        from boto3.s3.transfer import _should_use_crt
    except ImportError:  # a boto3 without the CRT transfer client
        return "classic"
    return "crt" if _should_use_crt(config) else "classic"


def awscrt_version() -> str | None:
    try:
        import awscrt
    except ImportError:
        return None
    return str(awscrt.__version__)


def run_ours(task_id: str, bucket: str, key: str) -> dict[str, Any]:
    import os

    # Imported before the clock starts, as every other mode imports it (the operator imports it lazily).
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook  # noqa: F401

    from airflow_provider_wan.transfers.wan_to_s3 import WanVideoToS3Operator

    options: dict[str, Any] = {}
    if "WAN_BENCH_MAX_IN_FLIGHT" in os.environ:
        options["max_in_flight"] = int(os.environ["WAN_BENCH_MAX_IN_FLIGHT"])
    if "WAN_BENCH_S3_CHECKSUM" in os.environ:  # e.g. SHA256 or CRC64NVME, to measure what each checksum costs
        options["s3_checksum"] = os.environ["WAN_BENCH_S3_CHECKSUM"]
    op = WanVideoToS3Operator(task_id="transfer", dashscope_task_id=task_id, s3_bucket=bucket, s3_key=key, **options)
    context = _context()
    before, cpu, started = peak_rss_kib(), cpu_seconds(), time.perf_counter()
    uri = op.execute(context)  # type: ignore[arg-type]
    result = _measured(started, before, cpu, uri=uri)
    result["transfer_manager"] = transfer_manager(op._s3_hook().transfer_config)
    return result


class _StreamReader:
    """The least a file object over an httpx stream needs for ``upload_fileobj``: ``read(n)`` of exactly n bytes."""

    def __init__(self, pieces: Any) -> None:
        self._pieces = pieces
        self._held: list[bytes] = []
        self._size = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or self._size < size:
            piece = next(self._pieces, b"")
            if not piece:
                break
            self._held.append(piece)
            self._size += len(piece)
        data = b"".join(self._held)
        if size < 0 or len(data) <= size:
            self._held, self._size = [], 0
            return data
        self._held, self._size = [data[size:]], len(data) - size
        return data[:size]


def run_fileobj(task_id: str, bucket: str, key: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    import httpx
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from airflow_provider_wan.hooks.wan import WanHook

    before, cpu, started = peak_rss_kib(), cpu_seconds(), time.perf_counter()
    hook = WanHook()
    url = hook.get_task(task_id).video_url or ""
    hook.close()
    s3 = S3Hook(aws_conn_id="aws_default")
    with httpx.Client(timeout=60) as client, client.stream("GET", url) as response:
        response.raise_for_status()
        s3.get_conn().upload_fileobj(
            # httpx's own pieces (no fixed chunk size: no re-chunking copies), as the operator reads them.
            _StreamReader(response.iter_raw()), bucket, key, ExtraArgs=extra, Config=s3.transfer_config
        )
    result = _measured(started, before, cpu, uri=f"s3://{bucket}/{key}")
    result["transfer_manager"] = transfer_manager(s3.transfer_config)
    return result


def run_fileobj_sha256(task_id: str, bucket: str, key: str) -> dict[str, Any]:
    return run_fileobj(task_id, bucket, key, {"ChecksumAlgorithm": "SHA256"})


def run_fileobj_crc64nvme(task_id: str, bucket: str, key: str) -> dict[str, Any]:
    return run_fileobj(task_id, bucket, key, {"ChecksumAlgorithm": "CRC64NVME", "ChecksumType": "FULL_OBJECT"})


def run_file(task_id: str, bucket: str, key: str) -> dict[str, Any]:
    import tempfile

    import httpx
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from airflow_provider_wan.hooks.wan import WanHook

    hook = WanHook()
    url = hook.get_task(task_id).video_url or ""
    hook.close()
    with tempfile.NamedTemporaryFile(prefix="wan-bench-", suffix=".mp4") as local:
        with httpx.Client(timeout=60) as client, client.stream("GET", url) as response:
            response.raise_for_status()
            for piece in response.iter_raw(1024 * 1024):
                local.write(piece)
        local.flush()
        before, cpu, started = peak_rss_kib(), cpu_seconds(), time.perf_counter()
        s3 = S3Hook(aws_conn_id="aws_default")
        s3.get_conn().upload_file(local.name, bucket, key, Config=s3.transfer_config)
        result = _measured(started, before, cpu, uri=f"s3://{bucket}/{key}")
        result["transfer_manager"] = transfer_manager(s3.transfer_config)
        return result


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
        "transfer_manager": transfer_manager(S3Hook(aws_conn_id="aws_default").transfer_config),
    }


def main() -> None:
    mode, task_id, bucket, key = sys.argv[1:5]
    # Import what both paths need before the "before" reading, so it is the same baseline for both.
    import airflow.providers.amazon.aws.hooks.s3  # noqa: F401

    # What a running Airflow worker has done before any task: discover the providers' asset URI handlers.
    from airflow.sdk import Asset

    import airflow_provider_wan.hooks.wan  # noqa: F401

    Asset(uri="s3://warm-up/key")
    runners = {
        "ours": run_ours,
        "fileobj": run_fileobj,
        "fileobj_sha256": run_fileobj_sha256,
        "fileobj_crc64nvme": run_fileobj_crc64nvme,
        "file": run_file,
        "baseline": run_baseline,
    }
    result = runners[mode](task_id, bucket, key)
    result["awscrt"] = awscrt_version()
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
