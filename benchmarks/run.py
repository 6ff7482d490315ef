"""
Run the airflow-provider-wan benchmarks; print a markdown table; write the results as JSON.

    .venv/bin/python benchmarks/run.py            # everything (about 8 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --quick    # smaller and fewer runs (under 2 minutes)
    .venv/bin/python benchmarks/run.py --only polling --only micro

Results: ``benchmarks/results/latest.json`` (full runs) or ``latest-quick.json`` (``--quick``), unless ``--output``.
See benchmarks/README.md for what each benchmark measures.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
BENCHMARKS = ("transfer", "scale", "mapped", "polling", "micro")

# Airflow reads its configuration on import: never touch the user's ~/airflow.
if "AIRFLOW_HOME" not in os.environ:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="wan-bench-home-")
    atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], True)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
sys.path.insert(0, str(BENCH_DIR))


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    from importlib.metadata import version

    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    packages = ("apache-airflow", "airflow-provider-wan", "httpx", "boto3", "moto", "uvicorn")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem_gib, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {name: version(name) for name in packages},
    }


# --------------------------------------------------------------------------------------------- tables


def _f(value: float | None, digits: int = 1) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:,.{digits}f}"


def transfer_table(results: dict[str, Any]) -> str:
    lines = [
        "| video | transfer | median wall (s) | MiB/s | peak RSS (MiB) | RSS growth (MiB) | CPU (s) | runs |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, row in results.items():
        for mode, name in (("ours", "WanVideoToS3Operator (streamed)"), ("baseline", "baseline (whole body)")):
            r = row[mode]
            lines.append(
                f"| {label.replace('MiB', ' MiB')} | {name} | {_f(r['seconds'], 2)} | {_f(r['mib_per_s'], 0)} | "
                f"{_f(r['peak_rss_mib'], 0)} | {_f(r['rss_growth_mib'], 0)} | {_f(r['cpu_s'], 2)} | {r['runs']} |"
            )
    lines += [
        "",
        "| video | peak RSS baseline / ours | RSS growth baseline / ours | time ours / baseline | "
        "ours: streaming (s) | ours: complete + copy (s) | of which CopyObject (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, row in results.items():
        ours = row["ours"]
        lines.append(
            f"| {label.replace('MiB', ' MiB')} | {_f(row['peak_rss_ratio_baseline_over_ours'], 1)}x | "
            f"{_f(row['rss_growth_ratio_baseline_over_ours'], 0)}x | {_f(row['time_ratio_ours_over_baseline'], 2)} | "
            f"{_f(ours.get('stream_s'), 2)} | {_f(ours.get('complete_s'), 2)} | {_f(ours.get('copy_object_s'), 2)} |"
        )
    return "\n".join(lines)


_POLLING_ROWS: tuple[tuple[str, str, int], ...] = (
    ("seconds", "wall time until every wait has its event (s)", 1),
    ("server_polls", "GET requests received by the simulator", 0),
    ("server_peak_rate", "peak requests/s at the simulator (1 s samples)", 1),
    ("server_seconds_over_budget", "seconds above the 20 req/s budget (1 s samples)", 0),
    ("busiest_1s_window", "most GETs sent in any sliding 1 s window (client clock)", 0),
    ("tcp_connects", "TCP connections opened", 0),
    ("max_inflight", "GETs in flight at once, max", 0),
    ("peak_established", "connections open at once (peak of 1 s snapshots; a lower bound)", 0),
    ("loop_lag_max_ms", "event-loop lag, max (ms; 10 ms ticker)", 1),
    ("loop_lag_p99_ms", "event-loop lag, p99 (ms)", 1),
    ("gc_max_pause_ms", "longest garbage-collector pause (ms)", 1),
    ("detect_delay_median_s", "task end → event, median (s)", 1),
    ("detect_delay_max_s", "task end → event, max (s)", 1),
    ("cpu_s", "CPU of the waiting process (s)", 2),
    ("simulator_cpu_s", "CPU of the simulator (s)", 2),
    ("server_errors", "error answers", 0),
)


def polling_table(results: dict[str, Any]) -> str:
    p = results["params"]
    ours, base = results["medians"]["ours"], results["medians"]["baseline"]
    lines = [
        f"{p['tasks']} waits on one event loop; tasks PENDING {p['pending_s']:g} s then RUNNING {p['running_s']:g} s; "
        f"poll_interval {p['poll_interval_s']:g} s; poll_qps {p['poll_qps']:g}; median of {p['repeats']} run(s).",
        "",
        "| metric | ours: shared client + budget | baseline: client per poll, no budget | baseline / ours |",
        "|---|---:|---:|---:|",
    ]
    for key, label, digits in _POLLING_ROWS:
        a, b = ours.get(key), base.get(key)
        ratio = "-"
        if a and b and a == a and b == b:  # both non-zero and not NaN
            ratio = f"{b / a:,.2f}x" if b < a else f"{b / a:,.1f}x"
        lines.append(f"| {label} | {_f(a, digits)} | {_f(b, digits)} | {ratio} |")
    strict = results.get("strict_limit") or {}
    if strict:
        lines += [
            "",
            f"Ours against a simulator that enforces {p['poll_qps']:g} req/s like the account limit (`--query-qps`, "
            f"a sliding 1 s window answering 429); {p['strict_tasks']} waits, one run each:",
            "",
            "| ours: poll_qps | GETs | answered 429 | share 429 | busiest 1 s window (client) | wall (s) "
            "| all succeeded |",
            "|---:|---:|---:|---:|---:|---:|---|",
        ]
        for budget, r in strict.items():
            share = r["server_throttled"] / r["server_polls"] * 100 if r["server_polls"] else 0.0
            ok = "yes" if r["statuses"] == {"success": p["strict_tasks"]} else f"no: {r['statuses']}"
            lines.append(
                f"| {budget} | {r['server_polls']:,} | {r['server_throttled']:,} | {share:.1f} % | "
                f"{r['busiest_1s_window']} | {_f(r['seconds'], 1)} | {ok} |"
            )
    return "\n".join(lines)


def scale_table(results: dict[str, Any]) -> str:
    """The account-scale benchmark's medians, one row per configuration."""
    rows = [
        "| configuration | succeeded | queries | answered 429 | delay median / p90 (s) | loop lag p99 (ms) "
        "| CPU ms per wait | CPU % of a core |",
        "|---|---|---|---|---|---|---|---|",
    ]
    names = {"oursx1": "ours, 1 triggerer", "oursx3": "ours, 3 triggerers", "sdkx1": "official SDK, 1 process"}
    for name, m in results["medians"].items():
        rows.append(
            f"| {names.get(name, name)} | {m['succeeded']:.0f} / {m['tasks']:.0f} | {m['queries']:.0f} "
            f"| {m['throttled_pct']:.2f} % | {_f(m['delay_median_s'])} / {_f(m['delay_p90_s'])} "
            f"| {_f(m['loop_lag_p99_ms'])} | {_f(m['cpu_ms_per_wait'])} | {_f(m['cpu_pct_of_core'], 2)} |"
        )
    return "\n".join(rows)


def mapped_table(results: dict[str, Any]) -> str:
    """The bulk benchmark's runs."""
    rows = [
        "| run | wall (s) | ideal (s) | ratio | tasks created | canceled | peak processing | submit 429s | retried |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for index, run in enumerate(results["runs"], 1):
        rows.append(
            f"| {index} | {run['seconds']:.0f} | {run['ideal_s']:.0f} | {run['ratio_to_ideal']:.2f} "
            f"| {run['tasks_created']} | {run['tasks_canceled']} | {run['peak_processing']} | {run['submit_429s']} "
            f"| {run['tries_beyond_first']} |"
        )
    return "\n".join(rows)


def micro_table(results: dict[str, Any]) -> str:
    return "\n".join(
        [
            "| micro-benchmark | median |",
            "|---|---:|",
            f"| `WanVideoRequest.build` (wan2.6-t2v, 1080P, 10 s) | {_f(results['request_build_per_s'], 0)} /s |",
            f"| `parse_task` of a SUCCEEDED poll answer | {_f(results['parse_task_per_s'], 0)} /s |",
            f"| `httpx.AsyncClient` open + close, shared TLS context | "
            f"{_f(results['async_client_shared_tls_ms'], 2)} ms |",
            f"| `httpx.AsyncClient` open + close, default `verify=True` (CA bundle loaded, loop blocked) | "
            f"{_f(results['async_client_default_verify_ms'], 1)} ms |",
        ]
    )


# --------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller and fewer runs (under 2 minutes)")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run only this benchmark (repeatable)")
    parser.add_argument("--output", type=Path, help="where to write the JSON results")
    args = parser.parse_args(argv)
    chosen = [name for name in BENCHMARKS if not args.only or name in args.only]

    import mapped
    import micro
    import polling
    import scale
    import transfer

    runners: dict[str, Callable[..., dict[str, Any]]] = {
        "transfer": transfer.run,
        "scale": scale.run,
        "mapped": mapped.run,
        "polling": polling.run,
        "micro": micro.run,
    }
    tables = {
        "transfer": transfer_table,
        "scale": scale_table,
        "mapped": mapped_table,
        "polling": polling_table,
        "micro": micro_table,
    }
    started = time.monotonic()
    report: dict[str, Any] = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "durations_s": {},
    }
    for name in chosen:
        began = time.monotonic()
        report[name] = runners[name](args.quick, log=_log)
        report["durations_s"][name] = round(time.monotonic() - began, 1)
    report["durations_s"]["total"] = round(time.monotonic() - started, 1)

    output = args.output or RESULTS_DIR / ("latest-quick.json" if args.quick else "latest.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".tmp")
    partial.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    partial.replace(output)

    m = report["machine"]
    print(
        f"# airflow-provider-wan benchmarks{' (--quick)' if args.quick else ''}\n\n"
        f"{m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, Python {m['python']}, "
        f"Airflow {m['versions']['apache-airflow']}; {report['started_at']}; "
        f"took {report['durations_s']['total']:.0f} s\n"
    )
    for name in chosen:
        print(f"## {name}\n\n{tables[name](report[name])}\n")
    try:
        shown = output.relative_to(Path.cwd())
    except ValueError:
        shown = output
    print(f"Results: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
