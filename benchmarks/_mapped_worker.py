"""
Run the bulk DAG once with ``dag.test()`` in a fresh Airflow home and report what happened.

``python benchmarks/_mapped_worker.py`` (environment: AIRFLOW_HOME, the dashscope connection, WAN_BENCH_GENERATIONS)
prints ``RESULT {json}``: wall time of the DAG run, task states and the tries of every task instance.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

DAG_FILE = Path(__file__).resolve().parent / "dags" / "bench_mapped_generations.py"


def main() -> dict[str, object]:
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    spec = importlib.util.spec_from_file_location("bench_mapped_generations", DAG_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    started = time.monotonic()
    dag_run = module.dag.test()
    seconds = time.monotonic() - started

    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).all()
        states = Counter(f"{ti.task_id}:{ti.state}" for ti in tis)
        retried = sum(1 for ti in tis if ti.try_number > 1)
    return {"seconds": seconds, "states": dict(states), "tries_beyond_first": retried, "run_state": str(dag_run.state)}


if __name__ == "__main__":
    print("RESULT " + json.dumps(main()), flush=True)
