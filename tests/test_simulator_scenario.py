"""The ``[[sim: ...]]`` prompt-marker grammar of the Wan simulator."""

from __future__ import annotations

import pytest

from airflow_provider_wan.simulator import MarkerError, parse_marker
from airflow_provider_wan.simulator.scenario import KNOBS, parse_bytes, parse_seconds


def test_a_prompt_without_marker_has_no_scenario() -> None:
    assert parse_marker("a cat playing piano [not a marker]") is None


def test_lifecycle_knobs_are_parsed_with_units() -> None:
    marker = parse_marker("a cat [[sim: pending=500ms running=2s task_ttl=24h link_ttl=0 video_bytes=50M]]")
    assert marker is not None
    scenario = marker.scenario
    assert (scenario.pending, scenario.running, scenario.task_ttl, scenario.link_ttl) == (0.5, 2.0, 86400.0, 0.0)
    assert scenario.video_bytes == 50 * 1024 * 1024
    assert scenario.outcome is None


def test_failed_outcome_takes_code_and_quoted_message() -> None:
    marker = parse_marker('[[sim: outcome=failed code=DataInspectionFailed message="bad, very bad"]] x')
    assert marker is not None
    assert marker.scenario.outcome == "FAILED"
    assert marker.scenario.code == "DataInspectionFailed"
    assert marker.scenario.message == "bad, very bad"


def test_a_code_alone_implies_failed() -> None:
    marker = parse_marker("x [[sim: code=IPInfringementSuspect]]")
    assert marker is not None and marker.scenario.outcome == "FAILED"


def test_commas_semicolons_case_and_dashes_are_tolerated() -> None:
    marker = parse_marker("[[ SIM : Pending=1, poll-errors=2:429 ; truncate_video=TRUE ]]")
    assert marker is not None
    assert marker.scenario.pending == 1.0
    kinds = {(f.route, f.kind, f.count) for f in marker.task_faults}
    assert kinds == {("get", "error", 2), ("video", "truncate", None)}


def test_poll_errors_default_code_by_status_and_retry_after() -> None:
    marker = parse_marker("[[sim: poll_errors=3:429:Throttling.RateQuota:2 cancel_errors=1:500]]")
    assert marker is not None
    by_route = {f.route: f for f in marker.task_faults}
    assert by_route["get"].error_code == "Throttling.RateQuota"
    assert by_route["get"].retry_after == 2.0
    assert by_route["get"].http_status == 429
    assert by_route["cancel"].error_code == "InternalError"


def test_submit_knobs_belong_to_the_marker_not_the_task() -> None:
    marker = parse_marker("[[sim: submit_errors=2:503 submit_lost=1 submit_delay=3s]]")
    assert marker is not None
    assert marker.task_faults == ()
    specs = {(f.kind, f.phase, f.count) for f in marker.submit_faults}
    assert specs == {("error", "before", 2), ("drop", "after", 1), ("latency", "after", 1)}


def test_several_markers_merge_and_later_keys_win() -> None:
    marker = parse_marker("[[sim: pending=1 running=1]] a cat [[sim: running=5]]")
    assert marker is not None
    assert (marker.scenario.pending, marker.scenario.running) == (1.0, 5.0)


def test_false_flags_switch_a_fault_off() -> None:
    marker = parse_marker("[[sim: truncate_video=false video_html=no]]")
    assert marker is not None and marker.task_faults == ()


@pytest.mark.parametrize(
    ("prompt", "fragment"),
    [
        ("[[sim: colour=red]]", "unknown knob 'colour'"),
        ("[[sim: pending]]", "is not key=value"),
        ("[[sim: pending=soon]]", "is not a duration"),
        ("[[sim: video_bytes=lots]]", "is not a byte count"),
        ("[[sim: outcome=MAYBE]]", "must be SUCCEEDED or FAILED"),
        ("[[sim: poll_errors=2]]", "N:STATUS"),
        ("[[sim: poll_errors=two:500]]", "is not a positive count"),
        ("[[sim: poll_errors=1:abc]]", "is not an HTTP status"),
        ("[[sim: poll_errors=1:999]]", "status"),
        ('[[sim: message="open]]', "key=value"),
        ("[[sim: pending=1", "not closed"),
    ],
)
def test_unparseable_markers_are_refused_with_the_reason(prompt: str, fragment: str) -> None:
    with pytest.raises(MarkerError, match=None) as err:
        parse_marker(prompt)
    assert fragment in str(err.value)


def test_every_knob_is_listed_once() -> None:
    assert len(KNOBS) == len(set(KNOBS))
    assert {"outcome", "poll_errors", "truncate_video", "submit_lost"} <= set(KNOBS)


@pytest.mark.parametrize(("text", "seconds"), [("1", 1.0), ("0.25", 0.25), ("250ms", 0.25), ("2m", 120.0)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_seconds(text) == seconds


@pytest.mark.parametrize(("text", "size"), [("10", 10), ("1k", 1024), ("3MiB", 3 * 1024**2), ("1G", 1024**3)])
def test_byte_counts(text: str, size: int) -> None:
    assert parse_bytes(text) == size
