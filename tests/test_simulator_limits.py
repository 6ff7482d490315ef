"""The simulator's DashScope account limits over real HTTP: per API key and model, on by default.

Submissions per second and tasks processing at once per model (the capability table), 20 queries per second per
key over every query route, overrides for raised quotas, realistic timings, and the task list with limits on.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from airflow_provider_wan.models import ACCOUNT_QUERY_QPS, CAPABILITIES
from airflow_provider_wan.simulator import ManualClock, SimulatorConfig, SimulatorState, WanSimulator
from airflow_provider_wan.simulator.__main__ import build_parser, config_from_args
from airflow_provider_wan.simulator.limits import realistic_running
from airflow_provider_wan.simulator.validation import parse_native
from tests.test_simulator import HEADERS, KEY, SUBMIT, assert_error, poll, submit

Factory = Callable[..., WanSimulator]
START = 1_800_000_000.0


def keyed(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "X-DashScope-Async": "enable"}


def statuses(sim: WanSimulator, ids: list[str]) -> list[str]:
    return [poll(sim, task_id)["output"]["task_status"] for task_id in ids]


@pytest.fixture
def frozen(wan_simulator_factory: Factory) -> tuple[WanSimulator, ManualClock]:
    """A simulator on a clock that only moves when told: rate windows never slide by accident."""
    clock = ManualClock(start=START)
    return wan_simulator_factory(clock=clock, pending_seconds=0, running_seconds=60), clock


# defaults -----------------------------------------------------------------------------------------


def test_the_limits_are_on_by_default_as_the_capability_table_says() -> None:
    config = SimulatorConfig()
    assert config.query_qps == ACCOUNT_QUERY_QPS == 20
    for cap in CAPABILITIES:
        limits = config.limits_for(cap.name)
        assert (limits.submit_rps, limits.concurrency) == (cap.submit_rps, cap.concurrency)
    assert config.limits_for("wan2.6-t2v").concurrency == 5
    assert config.limits_for("wan2.2-t2v-plus").concurrency == 2
    assert config.limits_for("wan2.1-t2v-turbo") == config.limits_for("wanx2.1-t2v-turbo")
    unknown = config.limits_for("wan9-t2v-future")
    assert (unknown.submit_rps, unknown.concurrency) == (5, 5)


def test_the_default_timings_are_realistic_and_the_test_fixture_is_fast(wan_simulator: WanSimulator) -> None:
    config = SimulatorConfig()
    assert (config.pending_seconds, config.running_seconds, config.time_scale) == (None, None, 1.0)
    fixture = wan_simulator.config
    assert (fixture.pending_seconds, fixture.running_seconds) == (0.05, 0.1)
    assert fixture.query_qps == 20 and fixture.model_limits == {}


# submissions per second ---------------------------------------------------------------------------


def test_submissions_beyond_the_model_rate_are_429_and_create_no_task(frozen: tuple[WanSimulator, Any]) -> None:
    sim, clock = frozen
    answers = [submit(sim) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert_error(answers[5], 429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later.")
    assert answers[5].headers["retry-after"] == "1"
    counters = sim.counters()
    assert (counters["submissions"], counters["tasks_created"]) == (6, 5)
    assert counters["throttled"] == 1 and counters["throttled_per_route"] == {"submit": 1, "get": 0, "list": 0}
    clock.advance(1)
    assert submit(sim).status_code == 200


def test_the_submission_rate_is_per_model_and_per_key(frozen: tuple[WanSimulator, Any]) -> None:
    sim, _ = frozen
    plus = [submit(sim, model="wan2.2-t2v-plus", size="832*480").status_code for _ in range(3)]
    assert plus == [200, 200, 429]
    alias = submit(sim, model="wanx2.1-t2v-turbo").status_code, submit(sim, model="wan2.1-t2v-turbo").status_code
    assert alias == (200, 200)
    assert submit(sim, model="wan2.1-t2v-turbo").status_code == 429  # one model, two spellings, one limit
    assert [submit(sim).status_code for _ in range(5)] == [200] * 5
    assert submit(sim, headers=keyed("sk-another-account")).status_code == 200


def test_unified_submissions_share_the_model_rate(frozen: tuple[WanSimulator, Any]) -> None:
    sim, _ = frozen
    assert all(submit(sim).status_code == 200 for _ in range(4))
    body = {"model": "wan2.6-t2v", "prompt": "x"}
    assert httpx.post(sim.unified_url, json=body, headers=HEADERS).status_code == 200
    refused = httpx.post(sim.unified_url, json=body, headers=HEADERS)
    assert refused.status_code == 429 and refused.json()["code"] == "Throttling.RateQuota"
    assert refused.headers["retry-after"] == "1"


def test_invalid_submissions_are_refused_before_the_rate_is_counted(frozen: tuple[WanSimulator, Any]) -> None:
    sim, _ = frozen
    assert all(submit(sim, size="1x1").status_code == 400 for _ in range(6))
    assert [submit(sim).status_code for _ in range(5)] == [200] * 5


# tasks processing at once -------------------------------------------------------------------------


def test_tasks_beyond_the_concurrency_wait_pending_in_order(frozen: tuple[WanSimulator, ManualClock]) -> None:
    sim, clock = frozen
    ids = [str(submit(sim).json()["output"]["task_id"]) for _ in range(5)]
    clock.advance(1)
    ids += [str(submit(sim).json()["output"]["task_id"]) for _ in range(2)]
    assert statuses(sim, ids) == ["RUNNING"] * 5 + ["PENDING"] * 2
    counters = sim.counters()
    assert counters["processing"] == {"wan2.6-t2v": 5}
    assert counters["queue_length"] == {"wan2.6-t2v": 2}
    assert counters["peak_processing"] == {"wan2.6-t2v": 5}
    unified = httpx.get(f"{sim.unified_url}/{ids[5]}", headers=HEADERS).json()
    assert unified["status"] == "QUEUED"
    clock.advance(59.5)  # the first five end at +60; the next two take their slots then
    assert statuses(sim, ids) == ["SUCCEEDED"] * 5 + ["RUNNING"] * 2
    sixth = poll(sim, ids[5])["output"]
    first = poll(sim, ids[0])["output"]
    assert sixth["scheduled_time"] == first["end_time"]  # PENDING time was queue time
    assert sim.counters()["peak_processing"] == {"wan2.6-t2v": 5}


def test_concurrency_is_per_key_and_per_model(frozen: tuple[WanSimulator, ManualClock]) -> None:
    sim, clock = frozen
    plus = [submit(sim, model="wan2.2-t2v-plus", size="832*480").json()["output"]["task_id"] for _ in range(2)]
    clock.advance(1)
    plus.append(submit(sim, model="wan2.2-t2v-plus", size="832*480").json()["output"]["task_id"])
    other = submit(sim, model="wan2.2-t2v-plus", size="832*480", headers=keyed("sk-b")).json()["output"]["task_id"]
    six = [submit(sim).json()["output"]["task_id"] for _ in range(2)]
    assert statuses(sim, [*plus, other, *six]) == ["RUNNING", "RUNNING", "PENDING", "RUNNING", "RUNNING", "RUNNING"]
    assert sim.counters()["peak_processing"] == {"wan2.2-t2v-plus": 2, "wan2.6-t2v": 2}


def test_a_canceled_queued_task_leaves_the_queue(frozen: tuple[WanSimulator, ManualClock]) -> None:
    sim, clock = frozen
    sim.configure(concurrency=1)
    first, second, third = (submit(sim).json()["output"]["task_id"] for _ in range(3))
    auth = {"Authorization": f"Bearer {KEY}"}
    assert httpx.post(f"{sim.base_url}/tasks/{first}/cancel", headers=auth).status_code == 400  # RUNNING
    assert httpx.post(f"{sim.base_url}/tasks/{second}/cancel", headers=auth).status_code == 200
    clock.advance(60)
    assert statuses(sim, [first, second, third]) == ["SUCCEEDED", "CANCELED", "RUNNING"]


# queries per second -------------------------------------------------------------------------------


def test_queries_beyond_20_per_second_per_key_are_429_over_every_query_route(
    frozen: tuple[WanSimulator, ManualClock],
) -> None:
    sim, clock = frozen
    task_id = submit(sim).json()["output"]["task_id"]
    auth = {"Authorization": f"Bearer {KEY}"}
    routes = [f"{sim.base_url}/tasks/{task_id}", f"{sim.base_url}/tasks", f"{sim.unified_url}/{task_id}"]
    answers = [httpx.get(routes[i % 3], headers=auth) for i in range(20)]
    assert all(a.status_code == 200 for a in answers)
    for url in routes:
        refused = httpx.get(url, headers=auth)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert refused.json()["code"] == "Throttling.RateQuota"
    assert httpx.get(routes[0], headers={"Authorization": "Bearer sk-another-account"}).status_code == 200
    assert httpx.post(f"{sim.base_url}/tasks/{task_id}/cancel", headers=auth).status_code == 400  # not a query
    counters = sim.counters()
    assert counters["throttled_per_route"] == {"submit": 0, "get": 2, "list": 1}
    assert counters["per_status"]["429"] == 3
    clock.advance(1)
    assert httpx.get(routes[0], headers=auth).status_code == 200


# overrides ----------------------------------------------------------------------------------------


def test_a_raised_quota_from_the_constructor(wan_simulator_factory: Factory) -> None:
    clock = ManualClock(start=START)
    sim = wan_simulator_factory(
        clock=clock,
        pending_seconds=0,
        running_seconds=60,
        model_limits={"*": {"concurrency": 1000, "submit_rps": 100}, "wan2.2-t2v-plus": {"concurrency": 3}},
        query_qps=50,
    )
    ids = [submit(sim).json()["output"]["task_id"] for _ in range(30)]
    assert set(statuses(sim, ids)) == {"RUNNING"}
    plus = [submit(sim, model="wan2.2-t2v-plus", size="832*480").json()["output"]["task_id"] for _ in range(4)]
    assert statuses(sim, plus) == ["RUNNING"] * 3 + ["PENDING"]
    assert sim.counters()["throttled"] == 0  # 34 submissions and 34 queries fit the raised quotas


def test_overrides_through_the_admin_api_merge_model_by_model(wan_simulator: WanSimulator) -> None:
    admin = wan_simulator.root_url + "/_simulator/config"
    config = httpx.post(admin, json={"model_limits": {"wan2.6-t2v": {"concurrency": 8}}, "query_qps": 40}).json()
    assert config["model_limits"] == {"wan2.6-t2v": {"submit_rps": None, "concurrency": 8}}
    config = httpx.post(admin, json={"submit_rps": 9}).json()
    assert config["model_limits"]["*"] == {"submit_rps": 9.0, "concurrency": None}
    assert config["model_limits"]["wan2.6-t2v"]["concurrency"] == 8 and config["query_qps"] == 40
    assert wan_simulator.config.limits_for("wan2.6-t2v").submit_rps == 9
    dropped = httpx.post(admin, json={"model_limits": {"*": None}}).json()
    assert list(dropped["model_limits"]) == ["wan2.6-t2v"]
    assert httpx.post(admin, json={"model_limits": {"*": {"concurrency": 0}}}).status_code == 400
    assert httpx.post(admin, json={"model_limits": {"*": {"parallel": 3}}}).status_code == 400
    httpx.post(wan_simulator.root_url + "/_simulator/reset")
    assert wan_simulator.config.model_limits == {}


def test_overrides_from_the_command_line() -> None:
    args = build_parser().parse_args(
        [
            "--model-limit",
            "*:concurrency=1000",
            "--model-limit",
            "wan2.1-t2v-plus:submit_rps=4,concurrency=3",
            "--submit-rps",
            "50",
            "--query-qps",
            "0",
            "--time-scale",
            "0.01",
        ]
    )
    config = config_from_args(args)
    assert config.limits_for("wan2.6-t2v").concurrency == 1000 and config.limits_for("wan2.6-t2v").submit_rps == 50
    assert (config.limits_for("wanx2.1-t2v-plus").submit_rps, config.limits_for("wanx2.1-t2v-plus").concurrency) == (
        4,
        3,
    )
    assert config.query_qps is None and config.time_scale == 0.01
    default = config_from_args(build_parser().parse_args([]))
    assert (default.pending_seconds, default.running_seconds, default.query_qps) == (None, None, 20)
    legacy = config_from_args(build_parser().parse_args(["--max-concurrent-tasks", "1"]))
    assert legacy.limits_for("wan2.6-t2v").concurrency == 1
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--model-limit", "wan2.6-t2v"])


def test_unknown_models_get_five_and_five(wan_simulator_factory: Factory) -> None:
    clock = ManualClock(start=START)
    sim = wan_simulator_factory(clock=clock, allow_unknown_models=True, pending_seconds=0, running_seconds=60)
    answers = [submit(sim, model="wan9-t2v-future") for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    clock.advance(1)
    ids = [a.json()["output"]["task_id"] for a in answers[:5]]
    ids.append(submit(sim, model="wan9-t2v-future").json()["output"]["task_id"])
    assert statuses(sim, ids) == ["RUNNING"] * 5 + ["PENDING"]


# timings ------------------------------------------------------------------------------------------


def _drawn(seed: int | None, **settings: Any) -> list[tuple[float, float]]:
    state = SimulatorState(SimulatorConfig(random_seed=seed, **settings), ManualClock(start=START))
    out = []
    for size, duration in (("1920*1080", 10), ("1280*720", 5), ("832*480", 5), ("1920*1080", 5)):
        request = parse_native(
            {
                "model": "wan2.5-t2v-preview",
                "input": {"prompt": "x"},
                "parameters": {"size": size, "duration": duration},
            },
            allow_unknown=False,
        )
        task = state.create_task(request, "dashscope", {}, "sk-t")
        out.append((task.pending, task.running))
    return out


def test_realistic_timings_are_drawn_over_60_to_300_seconds_and_repeat_with_a_seed() -> None:
    first = _drawn(7)
    assert first == _drawn(7) and first != _drawn(8)
    for pending, running in first:
        assert 2 <= pending <= 10 and 60 <= running <= 300
    fast = _drawn(7, time_scale=0.01)
    assert fast == [(pytest.approx(p * 0.01), pytest.approx(r * 0.01)) for p, r in first]
    explicit = _drawn(7, pending_seconds=0.2, running_seconds=0.5)
    assert set(explicit) == {(0.2, 0.5)}


def test_bigger_and_longer_videos_take_longer_on_average() -> None:
    rng = random.Random(1)
    big = sum(realistic_running(rng, "1920*1080", 10) for _ in range(300)) / 300
    small = sum(realistic_running(rng, "832*480", 5) for _ in range(300)) / 300
    assert 60 < small < big < 300 and big - small > 40


def test_a_marker_still_sets_one_task_timings(wan_simulator_factory: Factory) -> None:
    clock = ManualClock(start=START)
    sim = wan_simulator_factory(SimulatorConfig(time_scale=0.001), clock=clock)
    task_id = submit(sim, "x [[sim: pending=0 running=2]]").json()["output"]["task_id"]
    scenario = sim.task(task_id)
    assert scenario is not None and (scenario["scenario"]["pending"], scenario["scenario"]["running"]) == (0, 2)
    drawn = submit(sim).json()["output"]["task_id"]
    running = sim.task(drawn)
    assert running is not None and 0.06 <= running["scenario"]["running"] <= 0.3


# the task list with limits on ---------------------------------------------------------------------


def _beijing(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone(timedelta(hours=8))).strftime("%Y%m%d%H%M%S")


def test_the_list_finds_tasks_by_model_status_and_time_and_counts_as_a_query(
    frozen: tuple[WanSimulator, ManualClock],
) -> None:
    sim, clock = frozen
    auth = {"Authorization": f"Bearer {KEY}"}
    early = [submit(sim).json()["output"]["task_id"] for _ in range(2)]
    clock.advance(3600)
    late = [submit(sim).json()["output"]["task_id"] for _ in range(3)]
    plus = submit(sim, model="wan2.2-t2v-plus", size="832*480").json()["output"]["task_id"]

    def listed(**params: Any) -> dict[str, Any]:
        response = httpx.get(f"{sim.base_url}/tasks", params=params, headers=auth)
        assert response.status_code == 200, response.text
        return dict(response.json())

    page = listed(model_name="wan2.6-t2v", page_size=2)
    assert (page["total"], page["total_page"], [r["task_id"] for r in page["data"]]) == (5, 3, late[::-1][:2])
    row = page["data"][0]
    assert {"task_id", "status", "model_name", "gmt_create", "start_time", "end_time", "api_key_id"} <= set(row)
    assert row["gmt_create"] == int((START + 3600) * 1000) and row["status"] == "RUNNING"
    assert row["start_time"] == row["gmt_create"] and row["end_time"] is None
    third = listed(model_name="wan2.6-t2v", page_size=2, page_no=3)
    assert [r["task_id"] for r in third["data"]] == [early[0]]
    done = listed(status="SUCCEEDED")
    assert sorted(r["task_id"] for r in done["data"]) == sorted(early)
    assert all(r["end_time"] == r["start_time"] + 60_000 for r in done["data"])
    window = {"start_time": _beijing(START + 1800), "end_time": _beijing(START + 7200)}
    assert listed(**window)["total"] == 4
    in_ms = {"start_time": str(int((START + 1800) * 1000)), "end_time": str(int((START + 7200) * 1000))}
    assert listed(**in_ms)["total"] == 4
    assert [r["task_id"] for r in listed(model_name="wan2.2-t2v-plus")["data"]] == [plus]
    assert listed(status="RUNNING", model_name="wan2.6-t2v")["total"] == 3
    wide = httpx.get(
        f"{sim.base_url}/tasks",
        params={"start_time": _beijing(START), "end_time": _beijing(START + 86_401)},
        headers=auth,
    )
    assert_error(wide, 400, "InvalidParameter", "24 hours")
    backwards = httpx.get(
        f"{sim.base_url}/tasks", params={"start_time": _beijing(START + 60), "end_time": _beijing(START)}, headers=auth
    )
    assert_error(backwards, 400, "InvalidParameter", "end_time")
    for _ in range(20 - 9):  # nine list queries above, the 400s included
        listed()
    assert_error(httpx.get(f"{sim.base_url}/tasks", headers=auth), 429, "Throttling.RateQuota")
    assert sim.counters()["throttled_per_route"]["list"] == 1


def test_the_list_shows_the_submitting_key_id(frozen: tuple[WanSimulator, ManualClock]) -> None:
    sim, _ = frozen
    mine = submit(sim).json()["output"]["task_id"]
    theirs = submit(sim, headers=keyed("sk-b")).json()["output"]["task_id"]
    rows = httpx.get(f"{sim.base_url}/tasks", headers={"Authorization": f"Bearer {KEY}"}).json()["data"]
    by_id = {r["task_id"]: r["api_key_id"] for r in rows}
    assert by_id[mine] != by_id[theirs] and by_id[mine].isdigit()
    only_mine = httpx.get(
        f"{sim.base_url}/tasks", params={"api_key_id": by_id[mine]}, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert [r["task_id"] for r in only_mine.json()["data"]] == [mine]


def test_submit_path_constant_matches_the_service() -> None:
    assert SUBMIT == "/services/aigc/video-generation/video-synthesis"
