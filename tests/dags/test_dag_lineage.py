"""A DAG whose generate task builds its lineage in the worker when it succeeds, as the OpenLineage listener does.

The lineage is recorded in XCom for the test to read: ``lineage`` (plain values, always) and ``openlineage`` (the
``OperatorLineage`` as OpenLineage serializes it, when the optional openlineage provider is installed).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_wan.lineage import describe_operator_run
from airflow_provider_wan.operators.wan import WanTextToVideoOperator


def record_lineage(context: Any) -> None:
    """on_success_callback: the same operator and task instance the OpenLineage listener gets."""
    task, ti = context["task"], context["ti"]
    described = describe_operator_run(task, ti)
    plain = {**asdict(described), "inputs": [list(i) for i in described.inputs]} if described else None
    ti.xcom_push(key="lineage", value=plain)
    try:
        lineage = task.get_openlineage_facets_on_complete(ti)  # what the OpenLineage listener calls
    except ImportError:  # the openlineage provider is optional
        return
    from openlineage.client.serde import Serde

    ti.xcom_push(
        key="openlineage",
        value={
            "inputs": [Serde.to_dict(d) for d in lineage.inputs],
            "outputs": [Serde.to_dict(d) for d in lineage.outputs],
            "run_facets": {k: Serde.to_dict(v) for k, v in lineage.run_facets.items()},
        },
    )


with DAG(
    "wan_test_lineage",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    params={"prompt": Param("a lighthouse at dawn", type="string"), "audio_url": Param(None, type=["null", "string"])},
    catchup=False,
) as lineage_dag:
    WanTextToVideoOperator(
        task_id="generate",
        prompt="{{ params.prompt }}",
        negative_prompt="blur",
        size="1280*720",
        duration=5,
        audio_url="{{ params.audio_url or '' }}",
        poll_interval=0.2,
        on_success_callback=record_lineage,
    )
