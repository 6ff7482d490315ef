"""Clears as Airflow does them: ``clear_task_instances`` in the same DAG run (its task state store kept), then the task
instance runs again, with the same in-process runner ``dag.test()`` uses.

``dag.test()`` itself cannot clear: it deletes and recreates the run, and the store with it. Running a task instance
outside ``dag.test()`` leaves Airflow state behind that made the extra-link tests (``tests/test_links.py``) resolve
no link when they ran afterwards, so this module is named to run last.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_wan._compat import AIRFLOW_V_3_3_PLUS
from tests.conftest import task_states
from tests.test_fault_matrix import run


def _clear_and_run_again(dag_id: str, dag_run: Any, capfd: pytest.CaptureFixture[str]) -> str:
    """
    What a user's clear does: Airflow's ``clear_task_instances`` on the finished task instance, in the same DAG run
    (its task state store kept), then the task instance runs again. ``dag.test()`` itself cannot: it deletes and
    recreates the run, and the store with it.
    """
    from airflow.models.taskinstance import TaskInstance, clear_task_instances
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session

    from tests.conftest import load_dag

    dag = load_dag(dag_id)
    capfd.readouterr()
    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=dag_run.run_id, task_id="generate").one()
        clear_task_instances([ti], session)
    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=dag_run.run_id, task_id="generate").one()
        session.expunge(ti)  # run it outside this session, as dag.test() runs its task instances
    _run_task(ti=ti, task=dag.task_dict["generate"], run_triggerer=True)
    out, err = capfd.readouterr()
    return out + err


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="clears reconnect through task_state_store (Airflow 3.3)")
def test_clearing_a_delivered_generation_returns_it_again_and_says_so(simulator, run_dag, capfd):
    first, _ = run(run_dag, capfd, "wan_fault_deferrable")
    logs = _clear_and_run_again("wan_fault_deferrable", first, capfd)
    assert task_states(first) == {"generate": "success"}
    assert simulator.counters()["tasks_created"] == 1  # nothing new generated or billed
    assert "already generated its video" in logs and "regenerate=True" in logs  # and the user is told how to


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="clears reconnect through task_state_store (Airflow 3.3)")
def test_regenerate_makes_a_clear_generate_a_new_video(simulator, run_dag, capfd):
    first, _ = run(run_dag, capfd, "wan_fault_regenerate")
    logs = _clear_and_run_again("wan_fault_regenerate", first, capfd)
    assert task_states(first) == {"generate": "success"}
    assert simulator.counters()["tasks_created"] == 2  # asked for: a new video, billed again
    assert "regenerate=True, so a new video is generated" in logs
