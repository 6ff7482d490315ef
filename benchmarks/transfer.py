"""
Benchmark 1: a generated video from the simulator into S3 (moto), ours against the download-then-upload baseline.

Servers: the simulator (serves a synthetic MP4 of the requested size) and moto S3, each in its own process. moto
is told to keep every object in memory (``MOTO_S3_DEFAULT_KEY_BUFFER_SIZE``; by default it spools anything above
5 MiB to temporary files on disk) and its whole state is reset before every run.

Every run is a fresh worker process (``_transfer_worker.py``), so its peak RSS (``VmHWM``) belongs to that one
transfer. Modes alternate within each repeat so slow drift of the machine hits both alike.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from functools import cache
from typing import Any

from _servers import BENCH_DIR, MIB, MotoS3, Simulator, aws_conn, child_env, dashscope_conn, rss_mib, run_child

#: moto keeps objects up to this size in memory (above it, in temporary files): 4 GiB = always in memory.
MOTO_IN_MEMORY = str(4 * 1024 * MIB)
BUCKET = "wan-bench"


@cache
def expected_sha256(size: int) -> str:
    from airflow_provider_wan.simulator import synthetic_video_sha256

    return str(synthetic_video_sha256(size))


def run_once(sim: Simulator, s3: MotoS3, env: dict[str, str], mode: str, size: int) -> dict[str, Any]:
    """One measured transfer of a ``size``-byte video in ``mode`` (``ours`` or ``baseline``)."""
    s3.fresh_bucket(BUCKET)
    [task_id] = sim.submit_many([f"benchmark {mode} [[sim: video_bytes={size} pending=0 running=0]]"])
    sim.wait_succeeded(task_id)
    key = f"videos/{task_id}.mp4"
    started = time.monotonic()
    result = run_child(
        [str(BENCH_DIR / "_transfer_worker.py"), mode, task_id, BUCKET, key], env, timeout=60 + size / MIB
    )
    result["process_seconds"] = time.monotonic() - started
    head = s3.client.head_object(Bucket=BUCKET, Key=key)
    if head["ContentLength"] != size:
        raise RuntimeError(f"{mode}: s3://{BUCKET}/{key} holds {head['ContentLength']} bytes, not {size}")
    if mode == "ours" and head["Metadata"].get("wan-sha256") != expected_sha256(size):
        raise RuntimeError(f"{mode}: the sha256 in the metadata is not the video's")
    result["moto_rss_mib"] = rss_mib(s3.pid)
    return result


def _summary(runs: list[dict[str, Any]], size: int) -> dict[str, Any]:
    seconds = statistics.median(r["seconds"] for r in runs)
    summary = {
        "runs": len(runs),
        "seconds": seconds,
        "seconds_all": [round(r["seconds"], 3) for r in runs],
        "mib_per_s": size / MIB / seconds,
        "peak_rss_mib": statistics.median(r["peak_kib"] / 1024 for r in runs),
        "rss_before_mib": statistics.median(r["before_kib"] / 1024 for r in runs),
        "rss_growth_mib": statistics.median((r["peak_kib"] - r["before_kib"]) / 1024 for r in runs),
        "cpu_s": statistics.median(r["cpu_s"] for r in runs),
    }
    phases = [r["phases"] for r in runs if r.get("phases")]
    if phases:
        summary["complete_s"] = statistics.median(p.get("complete_s", 0.0) for p in phases)
        summary["copy_object_s"] = statistics.median(p.get("copy_object_s", 0.0) for p in phases)
        summary["stream_s"] = statistics.median(
            r["seconds"] - r["phases"].get("complete_s", 0.0) for r in runs if r.get("phases")
        )
    if runs[0].get("implementation"):
        summary["implementation"] = runs[0]["implementation"]
    return summary


def run(quick: bool, log: Any = print) -> dict[str, Any]:
    """The transfer benchmark; returns per-size medians for both modes and the ratios."""
    plan = [(64 * MIB, 1), (1024 * MIB, 1)] if quick else [(64 * MIB, 3), (256 * MIB, 3), (1024 * MIB, 3)]
    log(f"transfer: sizes {[f'{s // MIB} MiB x{n}' for s, n in plan]}")
    results: dict[str, Any] = {}
    with (
        Simulator("--pending-seconds", "0", "--running-seconds", "0") as sim,
        MotoS3(MOTO_S3_DEFAULT_KEY_BUFFER_SIZE=MOTO_IN_MEMORY) as s3,
        tempfile.TemporaryDirectory(prefix="wan-bench-home-") as home,
    ):
        port = int(sim.root.rsplit(":", 1)[1])
        env = child_env(
            home,
            dashscope_default=dashscope_conn(sim.base_url),
            aws_default=aws_conn(s3.endpoint),
            # the baseline's HttpToS3Operator reads the video link through an http connection
            wan_video={"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http"},
        )
        for size, repeats in plan:
            expected_sha256(size)  # computed before the runs, not during them
            runs: dict[str, list[dict[str, Any]]] = {"ours": [], "baseline": []}
            for repeat in range(repeats):
                for mode in ("ours", "baseline"):
                    result = run_once(sim, s3, env, mode, size)
                    runs[mode].append(result)
                    log(
                        f"  {size // MIB:5d} MiB {mode:8s} run {repeat + 1}/{repeats}: "
                        f"{result['seconds']:.2f} s, peak RSS {result['peak_kib'] / 1024:.0f} MiB"
                    )
            ours, base = _summary(runs["ours"], size), _summary(runs["baseline"], size)
            results[f"{size // MIB}MiB"] = {
                "size_bytes": size,
                "ours": ours,
                "baseline": base,
                "peak_rss_ratio_baseline_over_ours": base["peak_rss_mib"] / ours["peak_rss_mib"],
                "rss_growth_ratio_baseline_over_ours": base["rss_growth_mib"] / max(ours["rss_growth_mib"], 1.0),
                "time_ratio_ours_over_baseline": ours["seconds"] / base["seconds"],
                "raw": runs,
            }
    return results
