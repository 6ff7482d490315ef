"""
Benchmark 3: 1,000 concurrent waits under DashScope's real account limits, on one triggerer and on three.

The simulator runs in its own process with the account's limits on: 20 queries per second per key (every process
shares it), and a raised per-model quota so all 1,000 tasks run at once, as the issue's account has. Run times are
drawn from 60-300 s (``time_scale`` shrinks them for quick runs). The tasks are created before the waits start.

Configurations, run side by side: ``ours`` in 1 process, ``ours`` in 3 processes (Airflow's HA triggerers) sharing
the key, and the official SDK's ``AioVideoSynthesis.wait`` in 1 process (the baseline). Measured per run: how many
waits ended SUCCEEDED, the share of queries answered 429, the delay from "video ready" (the task's ``end_time``)
to the event, event-loop lag, and CPU per query and per second.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from typing import Any

from _servers import API_KEY, BENCH_DIR, Simulator, child_env, dashscope_conn
from polling import _Worker

CONN_ID = "dashscope_scale"


def run_once(sim: Simulator, mode: str, processes: int, tasks: int, timeout: float) -> dict[str, Any]:
    """One measured run: ``processes`` workers in ``mode`` share ``tasks`` waits and the simulator's key."""
    sim.reset()
    [warm_id] = sim.submit_many(["warm-up [[sim: pending=0 running=0]]"])
    homes = [tempfile.TemporaryDirectory(prefix="wan-bench-home-") for _ in range(processes)]
    workers = []
    try:
        for home in homes:
            env = child_env(home.name, **{CONN_ID: dashscope_conn(sim.base_url)})
            argv = [str(BENCH_DIR / "_scale_worker.py"), mode, CONN_ID, sim.base_url, API_KEY, warm_id]
            workers.append(_Worker(argv, env))
        for worker in workers:
            if not worker.ready.wait(180):
                raise RuntimeError(f"a {mode} worker did not warm up:\n{worker.failure()}")
        sim.reset()  # forget the warm-up: counters start at zero
        ids = sim.submit_many([f"a lighthouse, take {i}" for i in range(tasks)])
        for index, worker in enumerate(workers):
            worker.send(json.dumps(ids[index::processes]))
        deadline = time.monotonic() + timeout
        for worker in workers:
            while worker.proc.poll() is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the {mode} run did not finish within {timeout:.0f} s")
                time.sleep(0.5)
            worker._reader.join(10)
            if worker.proc.returncode != 0 or worker.result is None:
                raise RuntimeError(f"a {mode} worker failed:\n{worker.failure()}")
        counters = sim.counters()
    finally:
        for worker in workers:
            worker.stop()
        for home in homes:
            home.cleanup()
    results = [w.result for w in workers if w.result]
    statuses: dict[str, int] = {}
    for result in results:
        for status, count in result["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    delays = sorted(d for result in results for d in result["delays"])
    queries = counters["polls"] + counters["lists"]
    throttled = counters["throttled_per_route"]["get"] + counters["throttled_per_route"]["list"]
    seconds = max(result["seconds"] for result in results)
    cpu = sum(result["cpu_s"] for result in results)
    return {
        "mode": mode,
        "processes": processes,
        "tasks": tasks,
        "succeeded": statuses.get("success", 0),
        "statuses": statuses,
        "seconds": seconds,
        "queries": queries,
        "reads": counters["polls"],
        "lists": counters["lists"],
        "throttled": throttled,
        "throttled_pct": 100.0 * throttled / queries if queries else 0.0,
        "delay_median_s": statistics.median(delays) if delays else None,
        "delay_p90_s": delays[int(0.9 * (len(delays) - 1))] if delays else None,
        "delay_max_s": delays[-1] if delays else None,
        "loop_lag_p99_ms": max(result["loop_lag_p99_ms"] for result in results),
        "loop_lag_max_ms": max(result["loop_lag_max_ms"] for result in results),
        "cpu_s": cpu,
        "cpu_ms_per_query": 1000.0 * cpu / max(1, queries),  # queries as the server counted them (any client)
        "cpu_ms_per_wait": 1000.0 * cpu / tasks,
        "cpu_pct_of_core": 100.0 * cpu / seconds / processes if seconds else 0.0,
    }


def run(
    quick: bool,
    log: Any = print,
    time_scale: float | None = None,
    repeats: int | None = None,
    configs: list[tuple[str, int]] | None = None,
) -> dict[str, Any]:
    """
    The account-scale benchmark: ``repeats`` runs per configuration, interleaved; medians of each metric.

    Run times are drawn from 60-300 s times ``time_scale``. Below 0.5 the benchmark measures the budget, not the
    waits: 1,000 tasks finishing within seconds need more result reads per second than the account's 20 queries.
    """
    tasks = 1000
    time_scale = time_scale if time_scale is not None else (0.5 if quick else 1.0)
    repeats = repeats if repeats is not None else (1 if quick else 3)
    configs = configs or [("ours", 1), ("ours", 3), ("sdk", 1)]
    params = {"tasks": tasks, "time_scale": time_scale, "run_time_s": "60-300 (x time_scale)", "repeats": repeats}
    log(f"scale: {params}")
    runs: dict[str, list[dict[str, Any]]] = {f"{mode}x{n}": [] for mode, n in configs}
    flags = ("--model-limit", "*:concurrency=5000,submit_rps=5000", "--time-scale", str(time_scale))
    with Simulator(*flags) as sim:
        for repeat in range(repeats):
            for mode, processes in configs:
                result = run_once(sim, mode, processes, tasks, timeout=900 * time_scale + 300)
                runs[f"{mode}x{processes}"].append(result)
                log(
                    f"  {mode} x{processes} run {repeat + 1}/{repeats}: {result['succeeded']}/{tasks} succeeded, "
                    f"{result['queries']} queries ({result['throttled_pct']:.2f} % 429), delay median "
                    f"{_f(result['delay_median_s'])} s p90 {_f(result['delay_p90_s'])} s, lag p99 "
                    f"{result['loop_lag_p99_ms']:.1f} ms, {result['cpu_ms_per_query']:.2f} ms CPU/query, "
                    f"{result['cpu_pct_of_core']:.2f} % of a core"
                )
    keys = [k for k, v in next(iter(runs.values()))[0].items() if isinstance(v, (int, float)) and k != "processes"]
    medians = {name: {k: _median([r[k] for r in rs]) for k in keys} for name, rs in runs.items()}
    return {"params": params, "medians": medians, "runs": runs}


def _median(values: list[Any]) -> float | None:
    known = [v for v in values if v is not None]
    return float(statistics.median(known)) if known else None


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--time-scale", type=float)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--configs", help="e.g. ours:1,ours:3,sdk:1 (default: all three)")
    args = parser.parse_args()
    chosen = [(m, int(n)) for m, n in (c.split(":") for c in args.configs.split(","))] if args.configs else None
    results = run(args.quick, time_scale=args.time_scale, repeats=args.repeats, configs=chosen)
    if args.out:
        with open(args.out, "w") as out:
            json.dump(results, out, indent=2)
    print(json.dumps(results["medians"], indent=2))
