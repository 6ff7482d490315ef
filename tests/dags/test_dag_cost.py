"""DAGs for the spend guard (issue 14): estimate and billed cost, ``max_cost`` after rendering, the daily budget.

Each uses its own connection id, which the test points at the simulator with ``price_region`` (and a budget).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_wan.operators.wan import WanTextToVideoOperator
from airflow_provider_wan.transfers.wan_to_s3 import WanVideoToS3Operator

START = pendulum.datetime(2025, 1, 1, tz="UTC")

with DAG(
    "wan_test_cost",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"prompt": Param("a lighthouse at dusk [[sim: pending=0.1 running=0.2]]", type="string")},
) as cost_dag:
    # 720P for 4 s at Singapore's list price: the estimate ($0.40) before the POST, the billed cost after.
    WanTextToVideoOperator(
        task_id="generate",
        dashscope_conn_id="dashscope_cost",
        prompt="{{ params.prompt }}",
        size="1280*720",
        duration=4,
        max_cost=1,
        poll_interval=0.2,
        retries=2,
        retry_delay=timedelta(seconds=0),
    )

with DAG(
    "wan_test_cost_max",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"duration": Param(10, type="integer")},
) as cost_max_dag:
    # The duration is templated, so max_cost is checked after rendering: 720P for 10 s is $1.00 > $0.50.
    WanTextToVideoOperator(
        task_id="generate",
        dashscope_conn_id="dashscope_cost",
        prompt="a kite over the dunes",
        size="1280*720",
        duration="{{ params.duration }}",
        max_cost={"amount": 0.5, "currency": "USD"},
        poll_interval=0.2,
        retries=2,
        retry_delay=timedelta(seconds=0),
    )

with DAG("wan_test_cost_budget", schedule=None, start_date=START, catchup=False) as cost_budget_dag:
    # Against the connection's daily_budget: the 720P video fits, the 1080P one after it would cross the budget.
    fits = WanTextToVideoOperator(
        task_id="fits",
        dashscope_conn_id="dashscope_budget",
        prompt="a small boat in a harbour [[sim: pending=0.1 running=0.2]]",
        size="1280*720",
        duration=5,
        poll_interval=0.2,
        retries=2,
        retry_delay=timedelta(seconds=0),
    )
    crosses = WanTextToVideoOperator(
        task_id="crosses",
        dashscope_conn_id="dashscope_budget",
        prompt="a large ship in a harbour",
        duration=5,
        poll_interval=0.2,
        retries=2,
        retry_delay=timedelta(seconds=0),
    )
    fits >> crosses

with DAG("wan_test_cost_transfer", schedule=None, start_date=START, catchup=False) as cost_transfer_dag:
    # The manifest beside the video carries the generation's estimate and billed cost.
    generate = WanTextToVideoOperator(
        task_id="generate",
        dashscope_conn_id="dashscope_cost",
        prompt="a paper lantern on a river [[sim: pending=0.1 running=0.2]]",
        size="1280*720",
        duration=3,
        poll_interval=0.2,
    )
    WanVideoToS3Operator(
        task_id="transfer",
        dashscope_conn_id="dashscope_cost",
        generation=generate.output,
        s3_bucket="{{ dag_run.conf['bucket'] }}",
        asset_alias=None,
    )
