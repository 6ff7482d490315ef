"""
Benchmark 1: a generated video from the simulator into S3 (moto): the operator against the bare boto3 transfers.

Modes (see ``_transfer_worker.py``): ``ours`` (``WanVideoToS3Operator``), ``fileobj`` (``upload_fileobj`` fed from an
``httpx`` stream of the same link: the lower bound for a streamed transfer, with botocore's default CRC32 part
checksums, the check the operator asks S3 for by default; ``fileobj_sha256`` the same with SHA-256 part checksums,
as ``s3_checksum="SHA256"`` sends), ``file`` (``upload_file`` of the same bytes already on local disk) and
``baseline`` (the amazon provider's whole-body ``HttpToS3Operator``).

Servers: the simulator (serves a synthetic MP4 of the requested size) and moto S3, each in its own process. moto
is told to keep every object in memory (``MOTO_S3_DEFAULT_KEY_BUFFER_SIZE``; by default it spools anything above
5 MiB to temporary files on disk) and its whole state is reset before every run.

Every run is a fresh worker process, so its peak RSS (``VmHWM``) belongs to that one transfer. Modes alternate
within each repeat so slow drift of the machine hits them alike.

``python benchmarks/transfer.py [--quick]`` runs this benchmark alone and prints its tables.
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


MODES = ("ours", "fileobj", "fileobj_sha256", "file", "baseline")


def run_once(sim: Simulator, s3: MotoS3, env: dict[str, str], mode: str, size: int) -> dict[str, Any]:
    """One measured transfer of a ``size``-byte video in ``mode``."""
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
    if mode == "ours":
        tags = {t["Key"]: t["Value"] for t in s3.client.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]}
        if tags.get("wan-sha256") != expected_sha256(size):
            raise RuntimeError(f"{mode}: the wan-sha256 tag is not the video's sha256")
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
    for name in ("implementation", "transfer_manager", "awscrt"):
        if name in runs[0]:
            summary[name] = runs[0][name]
    return summary


def run(quick: bool, log: Any = print) -> dict[str, Any]:
    """The transfer benchmark; returns per-size medians of every mode and the ratios."""
    repeats = 1 if quick else 3
    plan = [(16 * MIB, repeats), (64 * MIB, repeats), (1024 * MIB, repeats)]
    log(f"transfer: sizes {[f'{s // MIB} MiB x{n}' for s, n in plan]}, modes {', '.join(MODES)}")
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
        for size, n in plan:
            expected_sha256(size)  # computed before the runs, not during them
            runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
            for repeat in range(n):
                for mode in MODES:
                    result = run_once(sim, s3, env, mode, size)
                    runs[mode].append(result)
                    log(
                        f"  {size // MIB:5d} MiB {mode:8s} run {repeat + 1}/{n}: "
                        f"{result['seconds']:.2f} s, peak RSS {result['peak_kib'] / 1024:.0f} MiB"
                    )
            summaries = {mode: _summary(runs[mode], size) for mode in MODES}
            ours, base = summaries["ours"], summaries["baseline"]
            results[f"{size // MIB}MiB"] = {
                "size_bytes": size,
                **summaries,
                "time_ratio_ours_over_fileobj": ours["seconds"] / summaries["fileobj"]["seconds"],
                "time_ratio_ours_over_fileobj_sha256": ours["seconds"] / summaries["fileobj_sha256"]["seconds"],
                "time_ratio_ours_over_file": ours["seconds"] / summaries["file"]["seconds"],
                "time_ratio_ours_over_baseline": ours["seconds"] / base["seconds"],
                "peak_rss_ratio_baseline_over_ours": base["peak_rss_mib"] / ours["peak_rss_mib"],
                "rss_growth_ratio_baseline_over_ours": base["rss_growth_mib"] / max(ours["rss_growth_mib"], 1.0),
                "raw": runs,
            }
    if "16MiB" in results and "1024MiB" in results:
        results["1024MiB"]["ours_peak_rss_growth_from_16MiB_mib"] = (
            results["1024MiB"]["ours"]["peak_rss_mib"] - results["16MiB"]["ours"]["peak_rss_mib"]
        )
    return results


def table(results: dict[str, Any]) -> str:
    """The results as markdown tables (medians)."""
    names = {
        "ours": "WanVideoToS3Operator",
        "fileobj": "upload_fileobj from an httpx stream",
        "fileobj_sha256": "the same, ChecksumAlgorithm=SHA256",
        "file": "upload_file of a local file",
        "baseline": "HttpToS3Operator (whole body)",
    }
    lines = [
        "| video | transfer | median wall (s) | runs (s) | MiB/s | peak RSS (MiB) | RSS growth (MiB) | CPU (s) |",
        "|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    for label, row in results.items():
        for mode in MODES:
            r = row[mode]
            lines.append(
                f"| {label.replace('MiB', ' MiB')} | {names[mode]} | {r['seconds']:.2f} | "
                f"{', '.join(f'{x:.2f}' for x in r['seconds_all'])} | {r['mib_per_s']:.0f} | "
                f"{r['peak_rss_mib']:.0f} | {r['rss_growth_mib']:.0f} | {r['cpu_s']:.2f} |"
            )
    lines += [
        "",
        "| video | ours / upload_fileobj | ours / upload_fileobj (SHA256) | ours / upload_file | ours / HttpToS3Op |",
        "|---:|---:|---:|---:|---:|",
    ]
    for label, row in results.items():
        lines.append(
            f"| {label.replace('MiB', ' MiB')} | {row['time_ratio_ours_over_fileobj']:.2f} | "
            f"{row['time_ratio_ours_over_fileobj_sha256']:.2f} | "
            f"{row['time_ratio_ours_over_file']:.2f} | {row['time_ratio_ours_over_baseline']:.2f} |"
        )
    growth = results.get("1024MiB", {}).get("ours_peak_rss_growth_from_16MiB_mib")
    if growth is not None:
        lines += ["", f"Peak RSS of the operator, 1 GiB minus 16 MiB: {growth:.1f} MiB"]
    managers = sorted({f"{m}: {row[m].get('transfer_manager', '?')}" for row in results.values() for m in MODES})
    crt = {row[m].get("awscrt") for row in results.values() for m in MODES}
    lines += [
        "",
        f"boto3 transfer manager per mode: {', '.join(managers)}; awscrt: {', '.join(str(v) for v in crt)}",
    ]
    return "\n".join(lines)


def main() -> None:
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run per size and mode")
    args = parser.parse_args()
    results = run(args.quick, log=lambda line: print(line, file=sys.stderr, flush=True))
    output = BENCH_DIR / "results" / ("transfer-quick.json" if args.quick else "transfer.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nResults: {output.relative_to(BENCH_DIR.parent)}")


if __name__ == "__main__":
    main()
