"""
Benchmark 2: N deferred waits on one triggerer event loop, shared budget (ours) against a client per poll.

The simulator runs in its own process. For each run: the measured worker (``_polling_worker.py``) starts and warms
up, N tasks are submitted, and the worker waits for all of them. Meanwhile this process samples, once a second,
the simulator's ``polls`` counter (server-side requests per second) and the worker's established TCP connections
to the simulator (``psutil``), and, at the end, the simulator's CPU time.
"""

from __future__ import annotations

import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import psutil
from _servers import BENCH_DIR, REPO, Simulator, child_env, dashscope_conn

CONN_ID = "dashscope_bench"


class _Worker:
    """The measured process, its stdout read by a thread (so a chatty child can never block on a full pipe)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self._stderr = tempfile.TemporaryFile(prefix="wan-bench-poll-")  # noqa: SIM115  closed by stop()
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd=str(REPO),
            text=True,
        )
        self.ready = threading.Event()
        self.result: dict[str, Any] | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("READY"):
                self.ready.set()
            elif line.startswith("RESULT "):
                self.result = json.loads(line[len("RESULT ") :])

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def failure(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)
        self._stderr.close()


def _established(pid: int, port: int) -> int:
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return 0
    return sum(1 for c in conns if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)


def run_once(
    sim: Simulator,
    mode: str,
    tasks: int,
    poll_interval: float,
    poll_qps: float,
    timeout: float,
    server_qps: float | None = None,
) -> dict[str, Any]:
    """
    One measured run of ``tasks`` waits in ``mode`` (``ours`` or ``baseline``).

    :param server_qps: make the simulator refuse polls above this rate (a sliding 1 s window, 429), as DashScope's
        account limit does; None: no limit (the offered load is measured as it is).
    """

    def fresh() -> None:
        sim.reset()
        if server_qps:
            sim.configure(query_qps=server_qps)

    port = int(sim.root.rsplit(":", 1)[1])
    fresh()
    [warm_id] = sim.submit_many(["warm-up [[sim: pending=0 running=0]]"])
    with tempfile.TemporaryDirectory(prefix="wan-bench-home-") as home:
        env = child_env(home, **{CONN_ID: dashscope_conn(sim.base_url, poll_qps=poll_qps)})
        worker = _Worker([str(BENCH_DIR / "_polling_worker.py"), mode, CONN_ID, str(poll_interval), warm_id], env)
        try:
            if not worker.ready.wait(120):
                raise RuntimeError(f"the {mode} polling worker did not warm up:\n{worker.failure()}")
            fresh()  # forget the warm-up: counters start at zero
            ids = sim.submit_many([f"wait {i}" for i in range(tasks)])
            sim_cpu = psutil.Process(sim.pid).cpu_times()
            worker.send(json.dumps(ids))
            samples: list[tuple[float, int, int]] = []  # (monotonic, polls so far, established connections)
            deadline = time.monotonic() + timeout
            next_tick = time.monotonic()
            while worker.proc.poll() is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the {mode} polling run did not finish within {timeout:.0f} s")
                samples.append((time.monotonic(), sim.counters()["polls"], _established(worker.proc.pid, port)))
                next_tick += 1.0
                time.sleep(max(0.0, next_tick - time.monotonic()))
            worker.proc.wait(30)
            worker._reader.join(10)
            if worker.proc.returncode != 0 or worker.result is None:
                raise RuntimeError(f"the {mode} polling worker failed:\n{worker.failure()}")
            after = psutil.Process(sim.pid).cpu_times()
            counters = sim.counters()
        finally:
            worker.stop()
    rates = [
        (polls - prev_polls) / (t - prev_t)
        for (prev_t, prev_polls, _), (t, polls, _) in itertools.pairwise(samples)
        if t > prev_t
    ]
    result = dict(worker.result)
    result.update(
        server_polls=counters["polls"],
        server_errors=counters["errors"],
        server_throttled=counters["throttled"],
        server_peak_rate=max(rates, default=0.0),
        server_seconds_over_budget=sum(1 for r in rates if r > poll_qps * 1.05),
        peak_established=max((c for *_, c in samples), default=0),
        simulator_cpu_s=(after.user + after.system) - (sim_cpu.user + sim_cpu.system),
    )
    return result


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in runs if r.get(key) is not None]
    return float(statistics.median(values)) if values else float("nan")


def run(quick: bool, log: Any = print) -> dict[str, Any]:
    """The polling benchmark: ``repeats`` runs per mode, interleaved; medians of each metric."""
    if quick:
        tasks, pending, running, repeats, strict_tasks = 300, 2.0, 4.0, 1, 150
    else:
        tasks, pending, running, repeats, strict_tasks = 1000, 5.0, 10.0, 3, 200
    poll_interval, poll_qps = 2.0, 20.0
    params = {
        "tasks": tasks,
        "pending_s": pending,
        "running_s": running,
        "poll_interval_s": poll_interval,
        "poll_qps": poll_qps,
        "repeats": repeats,
        "strict_tasks": strict_tasks,
    }
    log(f"polling: {params}")
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "baseline": []}
    # The offered load is measured without the account's limits (the strict runs below turn the query limit on);
    # the scale benchmark (scale.py) measures the waits under every limit.
    flags = ("--model-limit", "*:concurrency=5000,submit_rps=5000", "--query-qps", "0")
    with Simulator("--pending-seconds", str(pending), "--running-seconds", str(running), *flags) as sim:
        for repeat in range(repeats):
            for mode in ("ours", "baseline"):
                result = run_once(sim, mode, tasks, poll_interval, poll_qps, timeout=60 + 4 * tasks / poll_qps)
                if result["statuses"] != {"success": tasks}:
                    raise RuntimeError(f"{mode}: not every wait succeeded: {result['statuses']}")
                runs[mode].append(result)
                log(
                    f"  {mode:8s} run {repeat + 1}/{repeats}: {result['seconds']:.1f} s, "
                    f"{result['server_polls']} GETs, peak {result['server_peak_rate']:.0f} req/s at the server, "
                    f"{result['tcp_connects']} connects, max lag {result['loop_lag_max_ms']:.1f} ms"
                )
        # Does the budget keep under a server that enforces the limit strictly (a sliding 1 s window)?
        strict: dict[str, dict[str, Any]] = {}
        for budget in (poll_qps,) if quick else (poll_qps, poll_qps - 1):
            result = run_once(
                sim,
                "ours",
                strict_tasks,
                poll_interval,
                budget,
                timeout=60 + 4 * strict_tasks / budget,
                server_qps=poll_qps,
            )
            strict[f"{budget:g}"] = result
            log(
                f"  ours, poll_qps {budget:g}, simulator enforcing {poll_qps:g} req/s: {result['seconds']:.1f} s, "
                f"{result['server_polls']} GETs, {result['server_throttled']} answered 429, "
                f"busiest 1 s window {result['busiest_1s_window']}"
            )
    keys = (
        "seconds",
        "server_polls",
        "server_peak_rate",
        "server_seconds_over_budget",
        "busiest_1s_window",
        "mean_rate",
        "tcp_connects",
        "max_inflight",
        "peak_established",
        "loop_lag_max_ms",
        "loop_lag_p99_ms",
        "gc_max_pause_ms",
        "gc_full_collections",
        "detect_delay_median_s",
        "detect_delay_max_s",
        "cpu_s",
        "simulator_cpu_s",
        "server_errors",
    )
    medians = {mode: {key: median_of(rs, key) for key in keys} for mode, rs in runs.items()}
    return {"params": params, "medians": medians, "runs": runs, "strict_limit": strict}
