"""The transfer's manifest carries the generation's estimate and billed cost (issue 14), end to end in dag.test()."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import dashscope_conn, task_states, xcom


def test_the_manifest_carries_the_estimate_and_the_billed_cost(simulator, s3_client, bucket, monkeypatch, run_dag):
    monkeypatch.setenv("AIRFLOW_CONN_DASHSCOPE_COST", dashscope_conn(simulator.base_url, price_region="singapore"))
    dag_run = run_dag("wan_test_cost_transfer", {"bucket": bucket})
    assert task_states(dag_run) == {"generate": "success", "transfer": "success"}
    generation: dict[str, Any] = xcom(dag_run, "generate")
    manifest_uri = xcom(dag_run, "transfer", "manifest_uri")
    key = manifest_uri.removeprefix(f"s3://{bucket}/")
    manifest = json.loads(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert manifest["estimated_cost"] == generation["estimated_cost"]
    assert manifest["billed_cost"] == generation["billed_cost"]
    assert manifest["estimated_cost"]["amount"] == pytest.approx(0.30)  # 720P, 3 s at $0.10/s
    assert (manifest["billed_cost"]["amount"], manifest["billed_cost"]["currency"]) == (pytest.approx(0.30), "USD")
