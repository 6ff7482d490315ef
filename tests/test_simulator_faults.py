"""Submit faults in phase ``after`` over real HTTP: the task IS created (and billed), then its answer is lost.

The fault matrix of a client that must never pay twice: each broken answer below hides exactly one new task.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import httpx
import pytest

from airflow_provider_wan.simulator import WanSimulator
from tests.test_simulator import HEADERS, KEY, SUBMIT, assert_error

BODY = {"model": "wan2.6-t2v", "input": {"prompt": "a cat"}}


def post(sim: WanSimulator, timeout: float = 5.0) -> httpx.Response:
    return httpx.post(sim.base_url + SUBMIT, json=BODY, headers=HEADERS, timeout=timeout)


def assert_one_hidden_task(sim: WanSimulator) -> dict[str, Any]:
    counters = sim.counters()
    assert (counters["submissions"], counters["tasks_created"], counters["faults_injected"]) == (1, 1, 1)
    [task] = sim.tasks()
    assert task["status"] in ("PENDING", "RUNNING", "SUCCEEDED")
    return task


def test_a_truncated_200_announces_the_full_length_and_closes(wan_simulator: WanSimulator) -> None:
    wan_simulator.add_fault("submit", kind="truncate", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        post(wan_simulator)
    assert_one_hidden_task(wan_simulator)


def test_a_truncated_200_body_is_half_a_json_document(wan_simulator: WanSimulator) -> None:
    wan_simulator.add_fault("submit", kind="truncate", count=1)
    received = bytearray()
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", wan_simulator.base_url + SUBMIT, json=BODY, headers=HEADERS) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        announced = int(response.headers["content-length"])
        for piece in response.iter_raw():
            received += piece
    assert 0 < len(received) < announced
    with pytest.raises(json.JSONDecodeError):
        json.loads(bytes(received))
    task = assert_one_hidden_task(wan_simulator)
    assert bytes(received).startswith(b'{"output":{"task_status":"PENDING","task_id":"' + task["task_id"][:4].encode())


def test_a_200_html_page_instead_of_json(wan_simulator: WanSimulator) -> None:
    wan_simulator.add_fault("submit", kind="html", phase="after", count=1)
    response = post(wan_simulator)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert response.text.lstrip().startswith("<!DOCTYPE html>")
    assert_one_hidden_task(wan_simulator)


def test_a_gateway_502_html_page_after_forwarding(wan_simulator: WanSimulator) -> None:
    wan_simulator.add_fault("submit", kind="html", status=502, phase="after", count=1)
    response = post(wan_simulator)
    assert response.status_code == 502 and "502 Bad Gateway" in response.text
    assert_one_hidden_task(wan_simulator)
    assert wan_simulator.counters()["per_status"]["502"] == 1


def test_a_200_json_body_without_a_task_id(wan_simulator: WanSimulator) -> None:
    served = {"request_id": "4909100c-7b5a-9f92-bfe5-000000000000", "output": {"task_status": "PENDING"}}
    wan_simulator.add_fault("submit", kind="body", phase="after", body=served, count=1)
    response = post(wan_simulator)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == served
    assert_one_hidden_task(wan_simulator)


def test_a_body_fault_serves_any_status_and_content_type(wan_simulator: WanSimulator) -> None:
    wan_simulator.add_fault(
        "submit", kind="body", phase="after", status=504, body="upstream timed out", content_type="text/plain", count=1
    )
    response = post(wan_simulator)
    assert (response.status_code, response.text) == (504, "upstream timed out")
    assert response.headers["content-type"].startswith("text/plain")
    assert_one_hidden_task(wan_simulator)


def test_a_connection_reset_mid_response(wan_simulator: WanSimulator) -> None:
    wan_simulator.add_fault("submit", kind="drop", phase="after", count=1)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        post(wan_simulator)
    assert_one_hidden_task(wan_simulator)


def test_an_error_answer_after_the_task_was_created(wan_simulator: WanSimulator) -> None:
    wan_simulator.add_fault("submit", kind="error", status=500, phase="after", count=1)
    assert_error(post(wan_simulator), 500, "InternalError")
    assert_one_hidden_task(wan_simulator)


def test_an_answer_later_than_the_client_waits(wan_simulator: WanSimulator) -> None:
    wan_simulator.add_fault("submit", kind="latency", latency=2, phase="after", count=1)
    with pytest.raises(httpx.ReadTimeout):
        post(wan_simulator, timeout=0.2)
    assert_one_hidden_task(wan_simulator)


def test_a_redirect_after_the_task_was_created(wan_simulator: WanSimulator) -> None:
    wan_simulator.add_fault("submit", kind="redirect", location="http://example.invalid/", phase="after", count=1)
    response = post(wan_simulator)
    assert response.status_code == 302 and response.headers["location"] == "http://example.invalid/"
    assert_one_hidden_task(wan_simulator)


@pytest.mark.parametrize("kind", ["truncate", "html", "body", "drop"])
def test_the_hidden_task_is_found_by_listing(wan_simulator: WanSimulator, kind: str) -> None:
    spec: dict[str, Any] = {"body": {"request_id": "x"}} if kind == "body" else {}
    wan_simulator.add_fault("submit", kind=kind, phase="after", count=1, **spec)
    with contextlib.suppress(httpx.TransportError):
        post(wan_simulator)
    listed = httpx.get(
        f"{wan_simulator.base_url}/tasks",
        params={"model_name": "wan2.6-t2v"},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    [row] = listed.json()["data"]
    assert row["task_id"] == assert_one_hidden_task(wan_simulator)["task_id"]


def test_unified_submit_faults_after_create_the_task_too(wan_simulator: WanSimulator) -> None:
    wan_simulator.add_fault("submit", kind="body", phase="after", body={}, protocol="unified", count=1)
    response = httpx.post(wan_simulator.unified_url, json={"model": "wan2.6-t2v", "prompt": "x"}, headers=HEADERS)
    assert response.status_code == 200 and response.json() == {}
    assert_one_hidden_task(wan_simulator)


def test_a_body_fault_needs_a_body() -> None:
    from airflow_provider_wan.simulator import FaultSpec

    with pytest.raises(ValueError, match="needs a body"):
        FaultSpec(route="submit", kind="body")
