"""Lineage and the console link of WanVideoToS3Operator, after a real transfer (simulator + moto).

``describe_transfer`` and ``console_link`` are pure; the OpenLineage part needs the optional openlineage provider
and runs where it is installed.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from airflow_provider_wan.hooks.wan import WanHook
from airflow_provider_wan.transfers._lineage import TransferLineage, console_link, describe_transfer
from airflow_provider_wan.transfers.wan_to_s3 import WanVideoToS3Operator
from tests.conftest import xcom

HAS_OPENLINEAGE = importlib.util.find_spec("airflow.providers.openlineage") is not None


def _transfer(bucket: str) -> tuple[WanVideoToS3Operator, str, str]:
    from airflow.sdk.execution_time.context import OutletEventAccessors

    hook = WanHook()
    task_id = hook.submit({"prompt": "lineage [[sim: pending=0 running=0]]", "model": "wan2.6-t2v"})
    hook.wait_for_task(task_id, poll_interval=0.05, timeout=20)
    op = WanVideoToS3Operator(
        task_id="transfer",
        generation={"task_id": task_id, "model": "wan2.6-t2v"},
        s3_bucket=bucket,
        s3_key="videos/",
    )

    class TI:
        try_number = 1

        def xcom_push(self, key: str, value: Any) -> None:
            pass

    uri = op.execute({"ti": TI(), "ds": "2026-01-02", "outlet_events": OutletEventAccessors()})  # type: ignore[arg-type]
    return op, task_id, uri


def test_a_transfer_records_the_dashscope_task_as_input_and_the_object_as_output(simulator, s3_client, bucket):
    op, task_id, uri = _transfer(bucket)
    described = op._lineage
    assert described is not None
    host = simulator.base_url.split("/")[2]
    assert described.source == (f"dashscope://{host}", f"wan2.6-t2v/{task_id}")  # the generation's own output name
    assert (
        described.output == (f"s3://{bucket}", f"videos/{task_id}.mp4") and uri == f"s3://{bucket}/videos/{task_id}.mp4"
    )
    assert described.manifest_key == f"videos/{task_id}.mp4.json"


def test_a_bare_link_is_recorded_without_its_query():
    described = describe_transfer(
        "b", "k.mp4", dashscope_task_id=None, model=None, base_url=None, source_url="https://h.aliyuncs.com/x/v.mp4"
    )
    assert described == TransferLineage(source=("https://h.aliyuncs.com", "x/v.mp4"), bucket="b", key="k.mp4")


@pytest.mark.skipif(not HAS_OPENLINEAGE, reason="the openlineage provider is not installed")
def test_openlineage_facets_name_the_s3_object(simulator, s3_client, bucket):
    op, task_id, _ = _transfer(bucket)
    lineage = op.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.outputs] == [(f"s3://{bucket}", f"videos/{task_id}.mp4")]
    assert [d.name for d in lineage.inputs] == [f"wan2.6-t2v/{task_id}"]


def test_console_link_points_at_the_object():
    assert console_link("s3://my-bucket/videos/2026-01-02/a b.mp4") == (
        "https://console.aws.amazon.com/s3/object/my-bucket?prefix=videos%2F2026-01-02%2Fa%20b.mp4"
    )
    assert console_link(None) == "" and console_link("s3://bucket-only") == ""


def test_the_extra_link_resolves_in_a_real_run(simulator, s3_client, bucket, run_dag):
    task_id = WanHook().submit({"prompt": "link [[sim: pending=0 running=0]]", "model": "wan2.6-t2v"})
    WanHook().wait_for_task(task_id, poll_interval=0.05, timeout=20)
    dag_run = run_dag("wan_test_transfer_faults", {"task_id": task_id, "bucket": bucket})
    links = xcom(dag_run, "transfer", "_link_WanS3ObjectLink")
    assert links == f"https://console.aws.amazon.com/s3/object/{bucket}?prefix=videos%2F{task_id}.mp4"
