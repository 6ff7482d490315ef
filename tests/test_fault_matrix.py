"""The fault matrix, DashScope side: real Airflow runs (``dag.test()``) against the simulator's injected faults.

Every case asserts the final state and the tries spent, the tasks created and billed at the simulator (never more
than the videos asked for), and that neither the API key nor a signed query string appears in any log line, XCom,
rendered field or exception text. The S3 half of the matrix lives beside the transfer's tests.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from airflow_provider_wan._compat import AIRFLOW_V_3_3_PLUS
from airflow_provider_wan.hooks.wan import WanHook
from tests.conftest import TEST_API_KEY, dashscope_conn, task_states, xcom
from tests.test_operator import try_numbers

PROMPT = "a lighthouse at dawn, waves breaking"
BOTH = ["wan_fault_deferrable", "wan_fault_sync"]


@pytest.fixture(autouse=True)
def _fast_ambiguity_check(monkeypatch: pytest.MonkeyPatch) -> None:
    # The list is consistent at once on the simulator; DashScope's may lag, hence the default of 2 s.
    monkeypatch.setattr(WanHook, "ambiguity_settle", 0.1)


def billed(simulator: Any) -> int:
    """Tasks that SUCCEEDED at the simulator: what DashScope would bill."""
    return sum(1 for task in simulator.tasks() if task["status"] == "SUCCEEDED")


def stored_values(dag_run: Any) -> str:
    """Every XCom and rendered template field of the run, as one text to search."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        xcoms = session.query(XComModel).filter(XComModel.run_id == dag_run.run_id).all()
        rendered = (
            session.query(RenderedTaskInstanceFields).filter(RenderedTaskInstanceFields.run_id == dag_run.run_id).all()
        )
        return json.dumps([row.value for row in xcoms] + [row.rendered_fields for row in rendered], default=str)


def assert_no_secrets(dag_run: Any, logs: str) -> None:
    """The key and signed query strings appear nowhere a user or another task can read them."""
    for where, text in (("logs", logs), ("XCom and rendered fields", stored_values(dag_run))):
        assert TEST_API_KEY not in text, f"the API key leaked into {where}"
        assert "Signature=" not in text, f"a signed link leaked into {where}"


def run(run_dag: Any, capfd: pytest.CaptureFixture[str], dag_id: str, **conf: Any) -> tuple[Any, str]:
    dag_run = run_dag(dag_id, {"prompt": PROMPT, **conf})
    out, err = capfd.readouterr()
    return dag_run, out + err


# --------------------------------------------------------------------------------------------- lost submit answers

#: Faults after which DashScope HAS created the task, but the answer does not say so.
CREATED_BUT_UNREADABLE = {
    "200 not JSON": {"kind": "html"},
    "200 JSON without output.task_id": {"kind": "body", "body": json.dumps({"request_id": "r-1", "output": {}})},
    "200 cut mid-body": {"kind": "truncate"},
    "gateway 502 page after forwarding": {"kind": "html", "status": 502},
    "gateway 504 page after forwarding": {"kind": "html", "status": 504},
    "connection reset mid-response": {"kind": "drop"},
}


@pytest.mark.parametrize("dag_id", BOTH)
@pytest.mark.parametrize("fault", list(CREATED_BUT_UNREADABLE))
def test_a_created_task_whose_answer_is_unreadable_is_never_submitted_twice(simulator, run_dag, capfd, dag_id, fault):
    simulator.add_fault("submit", phase="after", count=1, **CREATED_BUT_UNREADABLE[fault])
    dag_run, logs = run(run_dag, capfd, dag_id)
    assert task_states(dag_run) == {"generate": "failed"}
    assert try_numbers(dag_run, "generate") == [1]  # retries=2, none spent: a retry could pay twice
    [task] = simulator.tasks()
    assert simulator.counters()["tasks_created"] == 1
    assert task["task_id"] in logs and "adopt_task_id" in logs  # the error names the candidate and how to keep it
    assert_no_secrets(dag_run, logs)


def test_the_candidate_named_by_the_error_can_be_adopted_without_paying_again(simulator, run_dag, capfd):
    simulator.add_fault("submit", kind="html", status=502, phase="after", count=1)
    failed, _ = run(run_dag, capfd, "wan_fault_deferrable")
    assert task_states(failed) == {"generate": "failed"}
    [task] = simulator.tasks()
    adopted, logs = run(run_dag, capfd, "wan_fault_deferrable", adopt=task["task_id"])
    assert task_states(adopted) == {"generate": "success"}
    assert xcom(adopted, "generate")["task_id"] == task["task_id"]
    assert simulator.counters()["tasks_created"] == 1 and billed(simulator) == 1
    assert_no_secrets(adopted, logs)


def test_a_lost_answer_while_other_tasks_of_the_model_exist_names_them_all(simulator, run_dag, capfd):
    other = WanHook().submit({"prompt": "another tool's video"})  # the same account, the same model, same minute
    simulator.add_fault("submit", kind="drop", phase="after", count=1)
    dag_run, logs = run(run_dag, capfd, "wan_fault_sync")
    assert task_states(dag_run) == {"generate": "failed"}
    assert simulator.counters()["tasks_created"] == 2
    ours = [t["task_id"] for t in simulator.tasks() if t["task_id"] != other]
    assert other in logs and ours[0] in logs  # both are candidates: we cannot tell which is ours, so we ask


# --------------------------------------------------------------------------------------------- refused submits

#: Faults where DashScope did NOT create a task: proven by a service code, or by an empty task list.
NOT_CREATED = {
    "500 InternalError with a code": ({"kind": "error", "status": 500, "code": "InternalError"}, "hook retry"),
    "429 Throttling.RateQuota with a code": (
        {"kind": "error", "status": 429, "code": "Throttling.RateQuota", "retry_after": 0.1},
        "hook retry",
    ),
    "gateway 502 page before forwarding": ({"kind": "html", "status": 502}, "empty task list"),
    "connection reset before processing": ({"kind": "drop"}, "empty task list"),
}


@pytest.mark.parametrize("dag_id", BOTH)
@pytest.mark.parametrize("fault", list(NOT_CREATED))
def test_a_submit_proven_not_to_have_created_a_task_is_sent_again_in_the_same_try(
    simulator, run_dag, capfd, dag_id, fault
):
    spec, proof = NOT_CREATED[fault]
    simulator.add_fault("submit", phase="before", count=1, **spec)
    dag_run, logs = run(run_dag, capfd, dag_id)
    assert task_states(dag_run) == {"generate": "success"}
    assert try_numbers(dag_run, "generate") == [1]
    counters = simulator.counters()
    assert counters["submissions"] == 2 and counters["tasks_created"] == 1 and billed(simulator) == 1
    if proof == "empty task list":
        assert counters["lists"] >= 1 and "shows no task of this model created meanwhile" in logs
    assert_no_secrets(dag_run, logs)


def test_a_read_timeout_on_the_submit_is_ambiguous(simulator, run_dag, capfd, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DASHSCOPE_DEFAULT", dashscope_conn(simulator.base_url, read_timeout=1))
    simulator.add_fault("submit", kind="latency", latency=2.5, phase="after", count=1)
    dag_run, logs = run(run_dag, capfd, "wan_fault_sync")
    assert task_states(dag_run) == {"generate": "failed"} and try_numbers(dag_run, "generate") == [1]
    assert simulator.counters()["tasks_created"] == 1
    assert "ReadTimeout" in logs and "adopt_task_id" in logs


# --------------------------------------------------------------------------------------------- the wait

POLL_STORMS = {
    "429 storm": {"kind": "error", "status": 429, "code": "Throttling.RateQuota", "retry_after": 0.1, "count": 6},
    "5xx with codes": {"kind": "error", "status": 503, "code": "ModelUnavailable", "count": 4},
    "gateway pages": {"kind": "html", "status": 502, "count": 3},
    "resets": {"kind": "drop", "count": 3},
    "cut bodies": {"kind": "truncate", "phase": "after", "count": 3},
}


@pytest.mark.parametrize("dag_id", BOTH)
@pytest.mark.parametrize("storm", list(POLL_STORMS))
def test_the_wait_survives_transient_poll_failures(simulator, run_dag, capfd, dag_id, storm):
    simulator.add_fault("get", **POLL_STORMS[storm])
    dag_run, logs = run(run_dag, capfd, dag_id, prompt=PROMPT + " [[sim: pending=0.3 running=0.6]]")
    assert task_states(dag_run) == {"generate": "success"}
    assert try_numbers(dag_run, "generate") == [1]
    assert simulator.counters()["tasks_created"] == 1 and billed(simulator) == 1
    assert_no_secrets(dag_run, logs)


# --------------------------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("dag_id", "task_id"),
    [
        ("wan_fault_missing_conn", "generate"),
        ("wan_fault_missing_conn_sync", "generate"),
        ("wan_fault_missing_conn_sensor", "wait"),
    ],
)
def test_a_missing_connection_fails_without_spending_retries(simulator, run_dag, capfd, dag_id, task_id):
    dag_run, logs = run(run_dag, capfd, dag_id)
    assert task_states(dag_run) == {task_id: "failed"}
    assert try_numbers(dag_run, task_id) == [1]  # retries=2: none spent
    assert "wan_no_such_connection" in logs and "create the `dashscope` connection" in logs
    assert simulator.counters()["submissions"] == 0


# --------------------------------------------------------------------------------------------- clears


def _cancel_once_the_retry_has_reconnected(simulator: Any, dag_id: str, done: threading.Event) -> None:
    """Play the old trigger's on_kill: cancel the first task once try 2 is running and has polled it."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    deadline = time.monotonic() + 30

    def wait_for(condition: Any) -> None:
        while time.monotonic() < deadline and not done.is_set() and not condition():
            time.sleep(0.05)

    def second_try() -> bool:
        with create_session() as session:
            ti = session.query(TaskInstance).filter_by(dag_id=dag_id, task_id="generate").one_or_none()
            return ti is not None and ti.try_number == 2

    wait_for(second_try)
    polls = simulator.counters()["polls"]
    wait_for(lambda: simulator.counters()["polls"] > polls)  # try 2 has read the task: it reconnected
    WanHook().cancel_task(simulator.tasks()[0]["task_id"])
    wait_for(lambda: len(simulator.tasks()) == 2)
    if len(simulator.tasks()) == 2:  # the fresh task need not queue for a minute like the first
        simulator.update_task(simulator.tasks()[1]["task_id"], pending=0.1, running=0.3)


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="reconnecting needs task_state_store (Airflow 3.3)")
@pytest.mark.parametrize("dag_id", ["wan_fault_clear_race", "wan_fault_clear_race_sync"])
def test_a_retry_never_fails_on_the_cancel_of_the_try_before_it(simulator, run_dag, capfd, dag_id):
    done = threading.Event()
    killer = threading.Thread(target=_cancel_once_the_retry_has_reconnected, args=(simulator, dag_id, done))
    killer.start()
    try:
        dag_run, logs = run(run_dag, capfd, dag_id, prompt=PROMPT + " [[sim: pending=60]]")
    finally:
        done.set()
        killer.join()
    assert task_states(dag_run) == {"generate": "success"}
    assert try_numbers(dag_run, "generate") == [1, 2]
    counters = simulator.counters()
    assert counters["tasks_created"] == 2 and counters["tasks_canceled"] == 1 and billed(simulator) == 1
    assert "was canceled when that try was cleared; submitting anew" in logs
    assert_no_secrets(dag_run, logs)
