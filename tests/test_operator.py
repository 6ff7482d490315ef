"""WanTextToVideoOperator and WanTaskSensor in real Airflow (dag.test runs the trigger inline) on the simulator."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_wan._compat import AIRFLOW_V_3_3_PLUS
from airflow_provider_wan.exceptions import WanRequestValidationError
from airflow_provider_wan.operators.wan import WanTextToVideoOperator
from tests.conftest import task_states, xcom

PROMPT = "a lighthouse at dawn, waves breaking"


def try_numbers(dag_run: Any, task_id: str) -> list[int]:
    """Every try the task instance made (history plus the current one)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session

    with create_session() as session:
        current = (
            session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id).one()
        )
        past = (
            session.query(TaskInstanceHistory)
            .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id)
            .all()
        )
        return sorted({h.try_number for h in past} | {current.try_number})


def test_deferrable_success_returns_the_result_without_the_signed_url(simulator, run_dag, capfd):
    dag_run = run_dag("wan_test_deferrable", {"prompt": PROMPT + " [[sim: pending=0.3 running=1.5]]", "duration": 4})
    logs = "".join(capfd.readouterr())
    assert task_states(dag_run) == {"generate": "success"}
    result = xcom(dag_run, "generate")
    task_id = xcom(dag_run, "generate", "task_id")
    assert result["task_id"] == task_id and result["task_status"] == "SUCCEEDED"
    assert (result["model"], result["duration"], result["billed_seconds"], result["size"]) == (
        "wan2.6-t2v",
        4,
        4,
        "1920*1080",
    )
    assert result["request"]["prompt"].startswith(PROMPT) and result["submit_time"] and result["end_time"]
    assert "video_url" not in json.dumps(result) and "Signature" not in json.dumps(result)
    counters = simulator.counters()
    # The operator checked once, deferred, and the trigger polled until the end (on a loaded machine the deferral
    # itself can take most of the 1.8 s, so the trigger may need only one read).
    assert "Deferring: the triggerer now polls task" in logs
    assert counters["tasks_created"] == 1 and counters["polls"] >= 2


def test_a_task_that_is_done_at_the_first_check_never_defers(simulator, run_dag):
    dag_run = run_dag("wan_test_deferrable", {"prompt": PROMPT + " [[sim: pending=0 running=0]]"})
    assert task_states(dag_run) == {"generate": "success"}
    assert simulator.counters()["polls"] == 1


def test_sync_mode_waits_in_the_worker(simulator, run_dag):
    dag_run = run_dag("wan_test_sync", {"prompt": PROMPT + " [[sim: pending=0.2 running=0.4]]"})
    assert task_states(dag_run) == {"generate": "success"}
    assert xcom(dag_run, "generate")["task_status"] == "SUCCEEDED"


@pytest.mark.parametrize("dag_id", ["wan_test_deferrable", "wan_test_sync"])
def test_content_moderation_fails_once_without_retry_and_one_task(simulator, run_dag, dag_id):
    dag_run = run_dag(dag_id, {"prompt": PROMPT + " [[sim: outcome=FAILED code=DataInspectionFailed running=0.2]]"})
    assert task_states(dag_run) == {"generate": "failed"}
    assert try_numbers(dag_run, "generate") == [1]  # retries=2, none spent
    assert simulator.counters()["tasks_created"] == 1


def test_internal_algo_failure_is_retried_with_a_fresh_submit(simulator, run_dag):
    dag_run = run_dag(
        "wan_test_deferrable", {"prompt": PROMPT + " [[sim: outcome=FAILED code=InternalError.Algo running=0.1]]"}
    )
    assert task_states(dag_run) == {"generate": "failed"}
    assert try_numbers(dag_run, "generate") == [1, 2, 3]  # retryable: Airflow's retries apply
    assert simulator.counters()["tasks_created"] == 3  # each try: the stored task FAILED, so a fresh submit


def test_throttling_and_5xx_bursts_during_the_wait_still_succeed(simulator, run_dag):
    simulator.add_fault("get", "error", status=429, code="Throttling.RateQuota", retry_after=0.1, count=4)
    simulator.add_fault("get", "error", status=503, code="ModelUnavailable", count=4)
    simulator.add_fault("get", "html", count=2)
    dag_run = run_dag("wan_test_deferrable", {"prompt": PROMPT + " [[sim: pending=0.3 running=0.5]]"})
    assert task_states(dag_run) == {"generate": "success"}
    assert try_numbers(dag_run, "generate") == [1]
    assert simulator.counters()["tasks_created"] == 1


def test_unknown_task_ends_as_expired_without_retry(simulator, run_dag):
    dag_run = run_dag("wan_test_deferrable", {"prompt": PROMPT + " [[sim: pending=5 task_ttl=0.5]]"})
    assert task_states(dag_run) == {"generate": "failed"}
    assert try_numbers(dag_run, "generate") == [1]


def test_time_queued_does_not_count_against_the_timeout(simulator, run_dag):
    dag_run = run_dag("wan_test_timeout", {"prompt": PROMPT + " [[sim: pending=2.5 running=0.3]]"})
    assert task_states(dag_run) == {"generate": "success"}  # 2.5 s queued > timeout=1.5, 0.3 s generating < it
    counters = simulator.counters()
    assert counters["tasks_created"] == 1 and counters["tasks_canceled"] == 0


def test_a_generation_running_past_the_timeout_ends_the_wait(simulator, run_dag, capfd):
    dag_run = run_dag("wan_test_timeout", {"prompt": PROMPT + " [[sim: pending=0.1 running=30]]"})
    assert task_states(dag_run) == {"generate": "failed"}
    assert "1.5 s after it started generating" in "".join(capfd.readouterr())


def test_queue_timeout_cancels_the_queued_task_and_fails_without_retry(simulator, run_dag):
    dag_run = run_dag("wan_test_queue_timeout", {"prompt": PROMPT + " [[sim: pending=30]]"})
    assert task_states(dag_run) == {"generate": "failed"}
    assert try_numbers(dag_run, "generate") == [1]  # a retry would only queue again at the back
    counters = simulator.counters()
    assert counters["tasks_created"] == 1 and counters["tasks_canceled"] == 1


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="reconnecting needs task_state_store (Airflow 3.3)")
def test_a_deadline_while_queued_keeps_the_place_and_the_retry_reconnects(simulator, run_dag):
    dag_run = run_dag("wan_test_deadline_keeps_place", {"prompt": PROMPT + " [[sim: pending=3 running=0.3]]"})
    assert task_states(dag_run) == {"generate": "success"}
    assert try_numbers(dag_run, "generate") == [1, 2]
    counters = simulator.counters()
    assert counters["tasks_created"] == 1 and counters["tasks_canceled"] == 0


def test_sensor_waits_for_a_task_submitted_by_another_task(simulator, run_dag):
    dag_run = run_dag("wan_test_sensor", {"prompt": PROMPT + " [[sim: pending=0.3 running=0.6]]"})
    assert task_states(dag_run) == {"submit": "success", "wait": "success"}
    submitted = xcom(dag_run, "submit")
    assert submitted["task_status"] == "PENDING"
    assert xcom(dag_run, "wait")["task_id"] == submitted["task_id"]
    assert xcom(dag_run, "wait")["task_status"] == "SUCCEEDED"
    assert simulator.counters()["tasks_created"] == 1


def test_sensor_in_poke_mode(simulator, run_dag):
    dag_run = run_dag("wan_test_sensor_poke", {"prompt": PROMPT + " [[sim: pending=0.2 running=0.3]]"})
    assert task_states(dag_run) == {"submit": "success", "wait": "success"}
    assert xcom(dag_run, "wait")["task_status"] == "SUCCEEDED"


def test_sensor_fails_like_the_operator(simulator, run_dag):
    dag_run = run_dag("wan_test_sensor", {"prompt": PROMPT + " [[sim: outcome=FAILED code=IPInfringementSuspect]]"})
    assert task_states(dag_run) == {"submit": "success", "wait": "failed"}


RECONNECT_PROMPT = PROMPT + " [[sim: pending=0.2 running=3]]"


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="task_state_store arrived in Airflow 3.3")
def test_a_retry_reconnects_instead_of_submitting_again(simulator, run_dag):
    # Try 1 times out after 2 s while the task is RUNNING (cannot be canceled); try 2 must wait for that task.
    dag_run = run_dag("wan_test_reconnect", {"prompt": RECONNECT_PROMPT})
    assert task_states(dag_run) == {"generate": "success"}
    assert try_numbers(dag_run, "generate") == [1, 2]
    counters = simulator.counters()
    assert counters["submissions"] == 1 and counters["tasks_created"] == 1
    assert xcom(dag_run, "generate")["task_status"] == "SUCCEEDED"


@pytest.mark.skipif(AIRFLOW_V_3_3_PLUS, reason="below 3.3 there is no task_state_store")
def test_below_3_3_a_retry_resubmits_and_says_so(simulator, run_dag, capfd, monkeypatch):
    monkeypatch.setattr("airflow_provider_wan.operators.wan._warned_no_state_store", False)  # said once per process
    dag_run = run_dag("wan_test_reconnect", {"prompt": RECONNECT_PROMPT})
    assert try_numbers(dag_run, "generate") == [1, 2]
    assert simulator.counters()["tasks_created"] == 2
    assert "has no task_state_store: a retry of this task submits" in "".join(capfd.readouterr())


# --------------------------------------------------------------------------------------------- parse time


def test_bad_untemplated_parameters_fail_when_the_dag_is_parsed():
    with pytest.raises(WanRequestValidationError, match=r"size='832\*480' is not allowed for model 'wan2.6-t2v'"):
        WanTextToVideoOperator(task_id="t", prompt="x", size="832*480")
    with pytest.raises(WanRequestValidationError, match=r"duration=7 is not allowed for model 'wan2\.5-t2v-preview'"):
        WanTextToVideoOperator(task_id="t", prompt="{{ params.p }}", model="wan2.5-t2v-preview", duration=7)
    with pytest.raises(WanRequestValidationError, match="seed=-3 is out of range"):
        WanTextToVideoOperator(task_id="t", prompt="x", model="{{ params.model }}", seed=-3)
    with pytest.raises(WanRequestValidationError, match="poll_interval=0 must be a positive number"):
        WanTextToVideoOperator(task_id="t", prompt="x", poll_interval=0)


def test_templated_parameters_are_checked_after_rendering(simulator, run_dag):
    dag_run = run_dag("wan_test_deferrable", {"prompt": PROMPT, "duration": 99})
    assert task_states(dag_run) == {"generate": "failed"}
    assert try_numbers(dag_run, "generate") == [1]  # invalid input is not retried
    assert simulator.counters()["submissions"] == 0  # nothing was sent


def test_timeout_accepts_seconds_and_timedeltas():
    assert WanTextToVideoOperator(task_id="a", prompt="x", timeout=90).timeout == 90
    assert WanTextToVideoOperator(task_id="b", prompt="x", timeout=timedelta(minutes=2)).timeout == 120
    assert WanTextToVideoOperator(task_id="c", prompt="x", timeout=None).timeout is None


def test_prompt_is_read_from_a_template_file_and_rendered(simulator, run_dag):
    dag_run = run_dag("wan_test_prompt_file", {"animal": "snow leopard"})
    assert task_states(dag_run) == {"generate": "success"}
    [task] = simulator.tasks()
    assert task["body"]["input"]["prompt"].startswith("A snow leopard crossing a frozen lake at dawn")


def test_execution_timeout_alone_sets_the_deadline_while_deferred(simulator, run_dag):
    dag_run = run_dag("wan_test_execution_timeout", {"prompt": PROMPT + " [[sim: pending=30]]"})
    assert task_states(dag_run) == {"generate": "failed"}
    assert simulator.counters()["tasks_canceled"] == 1  # the trigger's timeout event led to a cancel


def test_on_kill_cancels_the_task_waited_on_in_the_worker(simulator):
    op = WanTextToVideoOperator(task_id="t", prompt="x", deferrable=False)
    op._dashscope_task_id = op.hook.submit({"prompt": PROMPT + " [[sim: pending=30]]"})
    op.on_kill()
    assert op.hook.get_task(op._dashscope_task_id).task_status.value == "CANCELED"
    assert WanTextToVideoOperator(task_id="u", prompt="x").on_kill() is None  # nothing submitted: nothing to do


# --------------------------------------------------------------------------------------------- conventions


def test_deferrable_follows_airflows_default_deferrable_when_the_deployment_sets_it(monkeypatch):
    from airflow_provider_wan.sensors.wan import WanTaskSensor

    assert WanTextToVideoOperator(task_id="a", prompt="x").deferrable is True  # unset: we defer
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")  # a deployment without a triggerer
    assert WanTextToVideoOperator(task_id="b", prompt="x").deferrable is False
    assert WanTaskSensor(task_id="c", dashscope_task_id="t").deferrable is False
    assert WanTextToVideoOperator(task_id="d", prompt="x", deferrable=True).deferrable is True  # explicit wins
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert WanTaskSensor(task_id="e", dashscope_task_id="t").deferrable is True
