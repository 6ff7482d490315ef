"""The price table, the estimate before the POST, the billed cost after it, and ``max_cost`` (issue 14).

Estimates are pure (no I/O); ``max_cost`` after rendering runs a real ``dag.test()`` against the simulator and
checks that nothing at all was sent.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_wan.exceptions import WanBudgetExceededError, WanConfigurationError, WanRequestValidationError
from airflow_provider_wan.models import CAPABILITIES, REGION_NAMES, WanUsage, WanVideoRequest
from airflow_provider_wan.operators._cost import describe_estimate
from airflow_provider_wan.operators.wan import WanTextToVideoOperator
from airflow_provider_wan.pricing import (
    PRICES,
    REGION_CURRENCY,
    Money,
    billed_cost,
    cost_of,
    estimate,
    list_price,
    parse_money,
    parse_prices,
)
from airflow_provider_wan.settings import WanConnectionSettings
from tests.conftest import dashscope_conn, task_states, xcom
from tests.test_operator import try_numbers

#: The inputs of the families beyond text, so any row can be priced.
_INPUTS: dict[str, dict[str, Any]] = {
    "t2v": {},
    "i2v": {"img_url": "s3://b/frame.png"},
    "kf2v": {"first_frame_url": "s3://b/first.png", "last_frame_url": "s3://b/last.png"},
    "r2v": {"reference_urls": ["s3://b/ref.png"]},
}


def _request(model: str, tier: str, duration: int | None = None) -> WanVideoRequest:
    cap = next(c for c in CAPABILITIES if c.name == model)
    picture = {"resolution": tier} if cap.shape == "tier" else {"resolution": tier, "aspect_ratio": "16:9"}
    return WanVideoRequest.build(
        model=model, prompt="a fox", duration=duration or cap.default_duration, **picture, **_INPUTS[cap.family]
    )


@pytest.mark.parametrize("price", PRICES, ids=lambda p: f"{p.model}-{p.tier}-{p.region}")
def test_every_figure_of_the_table_prices_its_request(price):
    cap = next(c for c in CAPABILITIES if c.name == price.model)
    duration = max(cap.durations)
    cost = estimate(_request(price.model, price.tier, duration), price.region)
    assert cost.amount == pytest.approx(price.amount * duration)
    assert (cost.currency, cost.tier, cost.seconds, cost.region) == (
        REGION_CURRENCY[price.region],
        price.tier,
        duration,
        price.region,
    )
    assert cost.confidence == price.confidence and price.confidence in ("documented", "third-party", "unverified")
    assert price.source and price.as_of[:4].isdigit()
    assert price.model in cost.basis and price.as_of in cost.basis


def test_every_figure_is_for_a_tier_its_model_renders_in_a_region_that_offers_it():
    for price in PRICES:
        cap = next(c for c in CAPABILITIES if c.name == price.model)
        assert price.tier in cap.tiers
        assert cap.regions is None or price.region in cap.regions
        assert price.amount > 0


COMBINATIONS = [(c.name, tier, region) for c in CAPABILITIES for tier in c.tiers for region in REGION_NAMES]


@pytest.mark.parametrize(("model", "tier", "region"), COMBINATIONS, ids=lambda v: str(v))
def test_every_model_tier_and_region_is_priced_or_says_unknown(model, tier, region):
    cost = cost_of(model, tier, 5, region)
    if list_price(model, tier, region) is None:
        assert cost.amount is None and cost.currency is None
        assert cost.basis.startswith("unknown:") and "prices extra" in cost.basis
        assert cost.to_dict()["amount"] is None
    else:
        assert cost.amount is not None and cost.amount > 0


def test_tiers_are_priced_in_order():
    for price in PRICES:
        for other in PRICES:
            same = (price.model, price.region) == (other.model, other.region)
            if same and int(price.tier[:-1]) < int(other.tier[:-1]):
                assert price.amount <= other.amount


def test_wan26_default_is_1080p_and_the_log_says_so():
    request = WanVideoRequest.build(prompt="a fox")
    cost = estimate(request, "singapore")
    assert (cost.amount, cost.currency, cost.tier) == (pytest.approx(0.75), "USD", "1080P")
    line = describe_estimate(request, cost)
    assert line.startswith("Estimated cost: wan2.6-t2v, 1920*1080 (1080P), 5 s → ≈ $0.75")
    assert "No size was given" in line and "1.5x the 720P price" in line and "resolution='720P'" in line
    explicit = WanVideoRequest.build(prompt="a fox", size="1920*1080")
    assert "No size was given" not in describe_estimate(explicit, estimate(explicit, "singapore"))


def test_beijing_prices_in_yuan():
    cost = estimate(WanVideoRequest.build(model="wan2.2-t2v-plus", prompt="a fox", size="832*480"), "beijing")
    assert (cost.amount, cost.currency, cost.confidence) == (pytest.approx(0.70), "CNY", "documented")
    assert str(cost) == "≈ ¥0.70"


def test_an_unknown_region_or_model_says_unknown_instead_of_guessing():
    request = WanVideoRequest.build(prompt="a fox", size="1280*720")
    unknown = estimate(request, None)
    assert unknown.amount is None and "price_region" in unknown.basis and str(unknown) == "unknown"
    assert estimate(request, "virginia").amount is None
    assert estimate(WanVideoRequest.build(model="wan2.7-t2v", prompt="a fox"), "singapore").amount is None


def test_connection_prices_discount_and_free_seconds():
    prices = parse_prices(
        {"discount": 0.5, "wan2.6-t2v": {"720p": 0.08, "free_seconds": 2}, "wan2.5-t2v-preview": {"discount": 0.8}}
    )
    request = WanVideoRequest.build(prompt="a fox", size="1280*720", duration=5)
    cost = estimate(request, "singapore", prices)
    assert cost.amount == pytest.approx(3 * 0.08 * 0.5) and cost.confidence == "connection"
    assert "2 free s" in cost.basis and "×0.5" in cost.basis
    # A tier the contract leaves out keeps the list price (with the discounts).
    preview = WanVideoRequest.build(model="wan2.5-t2v-preview", prompt="a fox", size="832*480", duration=10)
    assert estimate(preview, "beijing", prices).amount == pytest.approx(10 * 0.30 * 0.8 * 0.5)
    # A model the table has no price for becomes exact with a contract price, in its currency.
    contract = parse_prices('{"wan2.7-t2v": {"720P": 0.5, "1080P": 0.9, "currency": "CNY"}}')
    cost = estimate(WanVideoRequest.build(model="wan2.7-t2v", prompt="a fox", resolution="720P"), "singapore", contract)
    assert (cost.amount, cost.currency) == (pytest.approx(2.5), "CNY")


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("{not json", "not JSON"),
        ([1, 2], "must be an object"),
        ({"discount": -1}, "prices.discount"),
        ({"wan2.6-t2v": {"720P": "cheap"}}, "'720P'"),
        ({"wan2.6-t2v": {"4K": 1}}, "unknown keys 4K"),
        ({"wan2.6-t2v": {"720P": 1, "currency": "EUR"}}, "currency='EUR'"),
        ({"wan2.6-t2v": {"free_seconds": -5}}, "free_seconds=-5"),
    ],
)
def test_bad_prices_extra_names_the_key_and_what_is_allowed(spec, named):
    with pytest.raises(WanConfigurationError, match=r"allowed|JSON|object") as err:
        parse_prices(spec, "connection 'x'")
    assert named in str(err.value)


@pytest.mark.parametrize(
    ("value", "money"),
    [(1, Money(1.0)), ("2.5", Money(2.5)), ({"amount": 3, "currency": "cny"}, Money(3.0, "CNY"))],
)
def test_spend_limits_read_numbers_text_and_amounts(value, money):
    assert parse_money(value, "max_cost") == money


@pytest.mark.parametrize("value", [0, -1, "lots", True, {"amount": 1, "currency": "EUR"}, {"amount": 1, "cents": 2}])
def test_a_bad_spend_limit_names_the_parameter(value):
    with pytest.raises(WanRequestValidationError, match=r"max_cost=.*allowed: a positive number"):
        parse_money(value, "max_cost")


@pytest.mark.parametrize(
    ("usage", "tier", "amount"),
    [
        ({"duration": 10, "output_video_duration": 10, "size": "1280*720", "SR": 720}, "720P", 1.00),
        ({"output_video_duration": 3, "SR": "1080"}, "1080P", 0.45),
        ({"video_count": 1, "video_duration": 5, "video_ratio": "1920*1080"}, "1080P", 0.75),
    ],
)
def test_billed_cost_reads_the_usage_of_either_shape(usage, tier, amount):
    cost = billed_cost("wan2.6-t2v", usage, "singapore")
    assert (cost.tier, cost.amount) == (tier, pytest.approx(amount))
    assert billed_cost("wan2.6-t2v", WanUsage.model_validate(usage), "singapore").amount == pytest.approx(amount)
    assert billed_cost("wan2.6-t2v", None, "singapore").amount is None


def test_the_connection_sets_the_price_region_budget_and_prices():
    settings = WanConnectionSettings.from_parts(
        password="sk-x",
        host="http://127.0.0.1:1/api/v1",
        port=None,
        schema=None,
        extra={"price_region": "cn-beijing", "daily_budget": '{"amount": 50, "currency": "CNY"}', "prices": ""},
        source="connection 'x'",
    )
    assert (settings.region, settings.pricing_region, settings.daily_budget) == (None, "beijing", Money(50.0, "CNY"))
    plain = WanConnectionSettings.from_parts(password="sk-x", host=None, port=None, schema=None, extra={}, source="t")
    assert (plain.pricing_region, plain.daily_budget, plain.prices.configured) == ("singapore", None, False)
    with pytest.raises(WanConfigurationError, match=r"daily_budget='lots'.*connection 'x'"):
        WanConnectionSettings.from_parts(
            password="sk-x", host=None, port=None, schema=None, extra={"daily_budget": "lots"}, source="connection 'x'"
        )


# ----------------------------------------------------------------------------------------- max_cost at parse time


def test_max_cost_refuses_a_static_request_at_parse_time():
    # 15 s at 1080P (the default) costs $2.25 even at the lowest list price of any region.
    with pytest.raises(WanBudgetExceededError, match=r"max_cost=1.00 refuses .* at DAG parse time.*≈ \$2.25"):
        WanTextToVideoOperator(task_id="t", prompt="a fox", duration=15, max_cost=1)
    with pytest.raises(WanBudgetExceededError, match=r"¥15\.00"):
        WanTextToVideoOperator(task_id="t", prompt="a fox", duration=15, max_cost={"amount": 3, "currency": "CNY"})


def test_max_cost_at_parse_time_refuses_only_what_every_region_refuses():
    # $0.40 in Singapore: fine, even though Beijing's ¥2.40 is "more than 1" in yuan.
    WanTextToVideoOperator(task_id="t", prompt="a fox", size="1280*720", duration=4, max_cost=1)
    # Templated: checked after rendering instead.
    WanTextToVideoOperator(task_id="t", prompt="a fox", duration="{{ params.d }}", max_cost=0.01)
    WanTextToVideoOperator(task_id="t", prompt="a fox", duration=15, max_cost="{{ params.max_cost }}")
    # No price anywhere (wan2.7): the connection's prices may know it, so only the run decides.
    WanTextToVideoOperator(task_id="t", model="wan2.7-t2v", prompt="a fox", max_cost=0.01)


def test_a_bad_max_cost_fails_at_parse_time_naming_it():
    with pytest.raises(WanRequestValidationError, match="max_cost='free'"):
        WanTextToVideoOperator(task_id="t", prompt="a fox", max_cost="free")


# ----------------------------------------------------------------------------------------- end to end


@pytest.fixture
def cost_conn(simulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AIRFLOW_CONN_DASHSCOPE_COST", dashscope_conn(simulator.base_url, price_region="singapore"))
    return simulator


def test_estimate_and_billed_cost_in_xcom_end_to_end(cost_conn, run_dag, capfd):
    dag_run = run_dag("wan_test_cost")
    assert task_states(dag_run) == {"generate": "success"}
    estimated = xcom(dag_run, "generate", "estimated_cost")
    assert estimated["amount"] == pytest.approx(0.40) and estimated["currency"] == "USD"
    assert "1280*720" not in estimated["basis"] and "720P, 4 s × $0.10/s" in estimated["basis"]
    result = xcom(dag_run, "generate")
    assert result["estimated_cost"] == estimated
    billed = result["billed_cost"]
    assert (billed["amount"], billed["currency"], billed["seconds"], billed["tier"]) == (
        pytest.approx(0.40),
        "USD",
        4,
        "720P",
    )
    captured = capfd.readouterr()
    assert "Estimated cost: wan2.6-t2v, 1280*720 (720P), 4 s → ≈ $0.40" in captured.out + captured.err


def test_max_cost_after_rendering_fails_without_retry_and_without_a_request(cost_conn, run_dag, capfd):
    dag_run = run_dag("wan_test_cost_max", {"duration": 10})
    assert task_states(dag_run) == {"generate": "failed"}
    captured = capfd.readouterr()
    assert "WanBudgetExceededError: Refused before submitting: the estimate ≈ $1.00" in captured.out + captured.err
    assert "is over max_cost=$0.50" in captured.out + captured.err
    assert try_numbers(dag_run, "generate") == [1]  # retries=2, none spent
    counters = cost_conn.counters()
    assert counters["submissions"] == 0 and counters["polls"] == 0 and counters["lists"] == 0


def test_max_cost_with_no_known_price_refuses_rather_than_guess(simulator, monkeypatch, run_dag):
    monkeypatch.setenv("AIRFLOW_CONN_DASHSCOPE_COST", dashscope_conn(simulator.base_url))  # no price_region
    dag_run = run_dag("wan_test_cost_max", {"duration": 2})
    assert task_states(dag_run) == {"generate": "failed"}
    assert simulator.counters()["submissions"] == 0


def test_within_max_cost_the_submit_goes_ahead(cost_conn, run_dag):
    dag_run = run_dag("wan_test_cost_max", {"duration": 5})
    assert task_states(dag_run) == {"generate": "success"}
    assert cost_conn.counters()["submissions"] == 1
