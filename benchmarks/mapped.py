"""
Benchmark 4: a mapped DAG of 200 generations on one 5-slot model (wan2.6-t2v: 5 processing, 5 submissions/s).

The simulator enforces the account limits; every generation runs ``running`` seconds (a scaled-down run time). The
DAG submits them all and then waits (``benchmarks/dags/bench_mapped_generations.py``). Measured: every task
instance's state and tries, tasks created and canceled at the simulator, the peak of tasks processing at once, and
the DAG's wall time against the ideal ``ceil(200 / 5) x running``.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
from typing import Any

from _servers import BENCH_DIR, Simulator, child_env, dashscope_conn, run_child

CONCURRENCY = 5


def run_once(sim: Simulator, generations: int, running: float) -> dict[str, Any]:
    sim.reset()
    with tempfile.TemporaryDirectory(prefix="wan-bench-home-") as home:
        env = child_env(home, dashscope_default=dashscope_conn(sim.base_url))
        env["WAN_BENCH_GENERATIONS"] = str(generations)
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(BENCH_DIR / "dags")  # dag.test() runs DAGs of the dags folder
        result = run_child([str(BENCH_DIR / "_mapped_worker.py")], env, timeout=7200)
    counters = sim.counters()
    ideal = math.ceil(generations / CONCURRENCY) * running
    return {
        **result,
        "tasks_created": counters["tasks_created"],
        "tasks_canceled": counters["tasks_canceled"],
        "peak_processing": counters["peak_processing"].get("wan2.6-t2v"),
        "submit_429s": counters["throttled_per_route"]["submit"],
        "ideal_s": ideal,
        "ratio_to_ideal": result["seconds"] / ideal,
    }


def run(quick: bool, log: Any = print, repeats: int | None = None) -> dict[str, Any]:
    """
    The bulk benchmark. 15 s of generation per video (a scaled-down run time): long enough that the ideal
    ``ceil(200 / 5) x 15 s`` is DashScope's work, not ``dag.test()``'s own cost per task instance (about 0.5-1.3 s).
    """
    generations, running = (50, 15.0) if quick else (200, 15.0)
    repeats = repeats if repeats is not None else 1
    params = {"generations": generations, "running_s": running, "model": "wan2.6-t2v", "repeats": repeats}
    log(f"mapped: {params}")
    runs = []
    with Simulator("--pending-seconds", "0", "--running-seconds", str(running)) as sim:
        for repeat in range(repeats):
            result = run_once(sim, generations, running)
            runs.append(result)
            log(
                f"  run {repeat + 1}/{repeats}: {result['seconds']:.0f} s (ideal {result['ideal_s']:.0f} s, "
                f"{result['ratio_to_ideal']:.2f}x), {result['states']}, {result['tasks_created']} tasks, "
                f"{result['tasks_canceled']} canceled, peak {result['peak_processing']} processing, "
                f"{result['submit_429s']} submit 429s, {result['tries_beyond_first']} retried"
            )
    keys = ("seconds", "ratio_to_ideal", "tasks_created", "tasks_canceled", "peak_processing", "submit_429s")
    medians = {key: float(statistics.median(r[key] for r in runs)) for key in keys}
    return {"params": params, "medians": medians, "runs": runs}


if __name__ == "__main__":
    import sys

    results = run(
        "--quick" in sys.argv,
        repeats=int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else None,
    )
    if "--out" in sys.argv:
        with open(sys.argv[sys.argv.index("--out") + 1], "w") as out:
            json.dump(results, out, indent=2)
    print(json.dumps(results["medians"], indent=2))
