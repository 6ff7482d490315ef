"""The Wan simulator's state: lifecycle, concurrency cap, TTL, cancel, rate windows and faults, on a manual clock."""

from __future__ import annotations

import pytest

from airflow_provider_wan.simulator import FaultSpec, ManualClock, SimulatorConfig, SimulatorState, TaskScenario
from airflow_provider_wan.simulator.state import RateWindow, SimTask
from airflow_provider_wan.simulator.validation import parse_native


def make_state(**settings: object) -> tuple[SimulatorState, ManualClock]:
    clock = ManualClock(start=1_800_000_000.0)
    config = SimulatorConfig.model_validate({"pending_seconds": 1, "running_seconds": 3, **settings})
    return SimulatorState(config, clock), clock


def submit(state: SimulatorState, prompt: str = "a cat", model: str = "wan2.6-t2v") -> SimTask:
    request = parse_native({"model": model, "input": {"prompt": prompt}}, allow_unknown=False)
    return state.create_task(request, "dashscope", {}, "sk-test")


def status(state: SimulatorState, task: SimTask) -> str:
    view = state.view(task.task_id)
    return "UNKNOWN" if view is None else view.status


def test_lifecycle_follows_the_configured_timings() -> None:
    state, clock = make_state()
    task = submit(state)
    assert status(state, task) == "PENDING"
    clock.advance(1.0)
    view = state.view(task.task_id)
    assert view is not None and view.status == "RUNNING" and view.scheduled_at == task.submitted_at + 1
    clock.advance(1.5)
    view = state.view(task.task_id)
    assert view is not None and view.progress == 50
    clock.advance(1.5)
    view = state.view(task.task_id)
    assert view is not None and view.status == "SUCCEEDED" and view.ended_at == task.submitted_at + 4


def test_a_failed_scenario_ends_failed_with_the_documented_message() -> None:
    state, clock = make_state()
    task = submit(state, "x [[sim: code=DataInspectionFailed pending=0 running=1]]")
    clock.advance(1)
    assert status(state, task) == "FAILED"
    assert task.fail_code == "DataInspectionFailed"
    assert task.fail_message == "Input or output data may contain inappropriate content."


def test_a_full_account_queues_tasks_in_order_and_runs_each_from_its_slot() -> None:
    state, clock = make_state(concurrency=1)
    first, second = submit(state), submit(state)
    clock.advance(0.5)
    second_view = state.view(second.task_id)
    assert second_view is not None and not second_view.queued  # still in its own PENDING time
    clock.advance(2.5)  # +3: first RUNNING since +1, second ready since +1 and waiting for the slot
    second_view = state.view(second.task_id)
    assert second_view is not None and second_view.queued and second_view.status == "PENDING"
    assert status(state, first) == "RUNNING"
    clock.advance(2)  # first ended at +4; second took the slot then
    assert status(state, first) == "SUCCEEDED"
    assert second.slot_at == first.submitted_at + 4
    assert status(state, second) == "RUNNING"
    clock.advance(3)
    assert status(state, second) == "SUCCEEDED"
    counters = state.counters()
    assert counters["peak_processing"] == {"wan2.6-t2v": 1}
    assert counters["queue_length"] == {"wan2.6-t2v": 0}


def test_cancelling_a_queued_task_takes_it_out_of_the_queue() -> None:
    state, clock = make_state(concurrency=1)
    first, second, third = submit(state), submit(state), submit(state)
    clock.advance(2)
    assert state.counters()["queue_length"] == {"wan2.6-t2v": 2}
    assert state.cancel(second.task_id)
    assert status(state, second) == "CANCELED"
    assert state.counters()["queue_length"] == {"wan2.6-t2v": 1}
    clock.advance(3)
    assert status(state, first) == "SUCCEEDED" and third.slot_at == first.submitted_at + 4


def test_each_key_and_model_is_its_own_account_queue() -> None:
    state, clock = make_state(pending_seconds=0)
    six = [submit(state) for _ in range(6)]
    other_key = state.create_task(
        parse_native({"model": "wan2.6-t2v", "input": {"prompt": "x"}}, False), "dashscope", {}, "sk-b"
    )
    plus = [submit(state, model="wan2.2-t2v-plus") for _ in range(3)]
    statuses = [status(state, task) for task in (*six, other_key, *plus)]
    assert statuses == ["RUNNING"] * 5 + ["PENDING", "RUNNING", "RUNNING", "RUNNING", "PENDING"]
    counters = state.counters()
    assert counters["processing"] == {"wan2.6-t2v": 6, "wan2.2-t2v-plus": 2}
    assert counters["peak_processing"] == {"wan2.6-t2v": 5, "wan2.2-t2v-plus": 2}
    assert counters["queue_length"] == {"wan2.6-t2v": 1, "wan2.2-t2v-plus": 1}
    clock.advance(3)
    assert status(state, six[5]) == "RUNNING" and six[5].slot_at == six[0].submitted_at + 3


def test_only_pending_tasks_can_be_cancelled() -> None:
    state, clock = make_state()
    task = submit(state)
    clock.advance(1.5)
    assert not state.cancel(task.task_id)
    assert not state.cancel("no-such-task")
    clock.advance(10)
    assert not state.cancel(task.task_id)


def test_tasks_turn_unknown_after_their_ttl_and_disappear_from_lists() -> None:
    state, clock = make_state(task_ttl_seconds=60)
    task = submit(state)
    clock.advance(59)
    assert status(state, task) == "SUCCEEDED"
    assert [v.task.task_id for v in state.list_views()] == [task.task_id]
    clock.advance(1)
    assert status(state, task) == "UNKNOWN"
    assert state.list_views() == []


def test_video_link_expiry_is_whole_seconds_after_the_end() -> None:
    state, clock = make_state(link_ttl_seconds=10)
    task = submit(state)
    clock.advance(5)
    assert status(state, task) == "SUCCEEDED"
    end = task.submitted_at + 4
    assert task.link_expires() == int(end + 10)


def test_rate_window_allows_the_rate_per_second_then_says_how_long_to_wait() -> None:
    window = RateWindow(2)
    assert window.acquire(100.0) is None
    assert window.acquire(100.1) is None
    assert window.acquire(100.2) == pytest.approx(0.8)
    assert window.acquire(101.0) is None


def test_fractional_rate_spreads_single_events() -> None:
    window = RateWindow(0.5)
    assert window.acquire(0.0) is None
    assert window.acquire(1.0) == pytest.approx(1.0)
    assert window.acquire(2.0) is None


def test_counted_faults_are_used_up_and_task_scoped_ones_win() -> None:
    state, _ = make_state()
    state.add_fault(FaultSpec(route="get", status=503, count=1))
    state.add_fault(FaultSpec(route="get", status=429, task_id="t1", count=1))
    first = state.take_fault("get", "dashscope", "before", "t1")
    second = state.take_fault("get", "dashscope", "before", "t1")
    assert first is not None and first.http_status == 429
    assert second is not None and second.http_status == 503
    assert state.take_fault("get", "dashscope", "before", "t1") is None
    assert state.counters()["faults_injected"] == 2


def test_faults_respect_route_phase_and_protocol() -> None:
    state, _ = make_state()
    state.add_fault(FaultSpec(route="submit", kind="drop", phase="after", protocol="unified"))
    assert state.take_fault("submit", "dashscope", "after") is None
    assert state.take_fault("submit", "unified", "before") is None
    assert state.take_fault("get", "unified", "after") is None
    assert state.take_fault("submit", "unified", "after") is not None


def test_rate_faults_are_reproducible_with_a_seed() -> None:
    def hits() -> list[bool]:
        state, _ = make_state(random_seed=7)
        state.add_fault(FaultSpec(route="any", rate=0.5))
        return [state.take_fault("get", "dashscope", "before") is not None for _ in range(40)]

    first = hits()
    assert first == hits()
    assert 5 < sum(first) < 35


def test_a_fail_fault_makes_the_next_task_fail() -> None:
    state, clock = make_state()
    state.add_fault(FaultSpec(route="submit", kind="fail", code="InternalError.Algo", count=1))
    failing, fine = submit(state), submit(state)
    clock.advance(5)
    assert (status(state, failing), status(state, fine)) == ("FAILED", "SUCCEEDED")


def test_update_task_changes_timings_after_submission() -> None:
    state, clock = make_state()
    task = submit(state)
    state.update_task(task.task_id, TaskScenario(pending=100))
    clock.advance(50)
    assert status(state, task) == "PENDING"


def test_reset_forgets_everything_and_restores_startup_config() -> None:
    state, _ = make_state()
    submit(state)
    state.configure({"pending_seconds": 9})
    state.add_fault(FaultSpec(route="get"))
    state.reset()
    assert state.list_views() == [] and state.faults() == []
    assert state.config.pending_seconds == 1
    assert state.counters()["tasks_created"] == 0


def test_configure_refuses_fixed_and_unknown_fields() -> None:
    state, _ = make_state()
    with pytest.raises(ValueError, match="prefix"):
        state.configure({"prefix": "/x"})
    with pytest.raises(ValueError):
        state.configure({"no_such_field": 1})
