"""
What a Wan video costs: the price table (data, beside the capability table), the connection's overrides, and the
estimate of a request before its POST and of a task's ``usage`` after it succeeded.

Pure: nothing here knows about HTTP or Airflow. DashScope bills per second of successful video, by model,
resolution tier and region; failed and canceled tasks are free.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_provider_wan.exceptions import WanConfigurationError, WanRequestValidationError
from airflow_provider_wan.models import (
    BEIJING,
    FRANKFURT,
    REGION_NAMES,
    SINGAPORE,
    SIZE_TIERS,
    SIZE_TO_TIER,
    VIRGINIA,
    WanUsage,
    WanVideoRequest,
    get_capability,
)

Confidence = Literal["documented", "third-party", "unverified", "connection"]
CURRENCIES = ("USD", "CNY")
#: The currency each region bills in (list prices; a contract can say otherwise in the ``prices`` extra).
REGION_CURRENCY: dict[str, str] = {SINGAPORE: "USD", VIRGINIA: "USD", FRANKFURT: "USD", BEIJING: "CNY"}
_SYMBOL = {"USD": "$", "CNY": "¥"}


@dataclass(frozen=True)
class UnitPrice:
    """
    One figure of the price table: what one second of successful video costs.

    :param model: the canonical model name (as in the capability table).
    :param tier: the resolution tier, ``480P``, ``720P`` or ``1080P``.
    :param region: the region name (``singapore``, ``beijing``, ``virginia``, ``frankfurt``).
    :param amount: the price of one second.
    :param currency: ``USD`` or ``CNY``.
    :param confidence: ``documented`` (Alibaba's own page), ``third-party`` (someone else quoting the list price),
        ``unverified`` (inferred; no page states it), or ``connection`` (the connection's ``prices`` extra).
    :param as_of: when the figure was current per its source (``YYYY-MM`` or ``YYYY-MM-DD``).
    :param source: where it comes from (a URL).
    """

    model: str
    tier: str
    region: str
    amount: float
    currency: str
    confidence: Confidence
    as_of: str
    source: str


_EN_T2V_2025 = "https://www.alibabacloud.com/help/en/model-studio/text-to-video-api-reference (updated 2025-05-22)"
_ZH_T2V_2025 = (
    "https://help.aliyun.com/zh/model-studio/text-to-video-api-reference (snapshot listing wan2.2-t2v-plus as the "
    "newest model)"
)
_EN_I2V_2025 = "https://www.alibabacloud.com/help/en/model-studio/image-to-video-api-reference (updated 2025-06-10)"
_R2V_CN = (
    "the Model Studio catalogue's wan2.6-r2v entry (0.6 / 1.0 CNY/s, 720P / 1080P; input clips are billed too: "
    "the estimate counts the output only)"
)
_CRAZYROUTER = "https://docs.crazyrouter.com/en/video/wan (quotes the official Beijing price)"
_WAN26_INTL = (
    "third-party quotes of the list price: Lumenfall and eachlabs (reference/dashscope-wan.md section 6.1); "
    "https://docs.empiriolabs.ai/models/wan-2-6 ('was $0.10' / 'was $0.15')"
)
_WAN26_CN = (
    "public notes quoting wan2.6-t2v 1080P at 1.0 CNY/s (reference/dashscope-wan.md section 6.1); the Model Studio "
    "catalogue lists wan2.6-r2v at 0.6 / 1.0 CNY/s (720P / 1080P)"
)
_WAN25_INTL = (
    "inferred: https://docs.venice.ai/models/wan-2-5-preview.md (0.0555 / 0.11 / 0.166 $/s) at the markup Venice "
    "shows over wan2.6-t2v's list price"
)


def _row(
    model: str, region: str, confidence: Confidence, as_of: str, source: str, **tiers: float
) -> tuple[UnitPrice, ...]:
    currency = REGION_CURRENCY[region]
    return tuple(
        UnitPrice(model, f"{tier.removeprefix('p')}P", region, amount, currency, confidence, as_of, source)
        for tier, amount in tiers.items()
    )


#: The price table: list prices per second of video, by model, tier and region. Checked 2026-11-23. A model, tier or
#: region that is not here has no known price: its estimate says "unknown" (give it in the connection's ``prices``
#: extra). Virginia (wan2.6-t2v-us, wan2.6-t2v global) and Frankfurt: no price found in any source.
#: wan2.7-t2v, wan3.0 and HappyHorse: third-party quotes conflict, so no figure is given. Image, keyframe and
#: reference models: only the figures below were found; the others say "unknown".
PRICES: tuple[UnitPrice, ...] = (
    *_row("wan2.6-t2v", SINGAPORE, "third-party", "2026-11-23", _WAN26_INTL, p720=0.10, p1080=0.15),
    *_row("wan2.6-t2v", BEIJING, "third-party", "2026-11-23", _WAN26_CN, p1080=1.00),
    *_row("wan2.6-t2v", BEIJING, "unverified", "2026-11-23", _WAN26_CN, p720=0.60),
    *_row("wan2.5-t2v-preview", SINGAPORE, "unverified", "2026-11-23", _WAN25_INTL, p480=0.05, p720=0.10, p1080=0.15),
    *_row("wan2.5-t2v-preview", BEIJING, "third-party", "2026-11-23", _CRAZYROUTER, p480=0.30, p720=0.60, p1080=1.00),
    *_row("wan2.2-t2v-plus", BEIJING, "documented", "2025-09", _ZH_T2V_2025, p480=0.14, p1080=0.70),
    *_row("wanx2.1-t2v-turbo", SINGAPORE, "documented", "2025-05-22", _EN_T2V_2025, p480=0.036, p720=0.036),
    *_row("wanx2.1-t2v-turbo", BEIJING, "documented", "2025-09", _ZH_T2V_2025, p480=0.24, p720=0.24),
    *_row("wanx2.1-t2v-plus", SINGAPORE, "documented", "2025-05-22", _EN_T2V_2025, p720=0.10),
    *_row("wanx2.1-t2v-plus", BEIJING, "documented", "2025-09", _ZH_T2V_2025, p720=0.70),
    *_row("wanx2.1-i2v-turbo", SINGAPORE, "documented", "2025-06-10", _EN_I2V_2025, p480=0.036, p720=0.036),
    *_row("wanx2.1-i2v-plus", SINGAPORE, "documented", "2025-06-10", _EN_I2V_2025, p720=0.10),
    *_row("wan2.6-r2v", BEIJING, "third-party", "2026-11-23", _R2V_CN, p720=0.60, p1080=1.00),
)
_TABLE: dict[tuple[str, str, str], UnitPrice] = {(p.model, p.tier, p.region): p for p in PRICES}


# ----------------------------------------------------------------------------------------- money


@dataclass(frozen=True)
class Money:
    """
    An amount, with its currency when one was given (a bare number means "in the price's currency").

    :param amount: the amount.
    :param currency: ``USD``, ``CNY``, or None for "whatever the price is in".
    """

    amount: float
    currency: str | None = None

    def __str__(self) -> str:
        return format_money(self.amount, self.currency)


def format_money(amount: float, currency: str | None) -> str:
    """
    ``$0.75``, ``¥5.00``, or ``0.75`` without a currency.

    :param amount: the amount.
    :param currency: its currency.
    """
    text = f"{amount:.4f}".rstrip("0")
    text = text + "0" * (2 - len(text.split(".")[1])) if "." in text else f"{text}.00"
    return f"{_SYMBOL.get(currency or '', '')}{text}" + ("" if currency in _SYMBOL or not currency else f" {currency}")


def parse_money(value: Any, name: str) -> Money:
    """
    Read a spend limit: a number (in the price's currency), its text, or ``{"amount": ..., "currency": ...}``.

    :param value: what was given.
    :param name: the parameter's name, for the error.
    :raises WanRequestValidationError: naming the parameter, the value and what is allowed.
    """
    allowed = f'a positive number, or {{"amount": <number>, "currency": {" or ".join(CURRENCIES)}}}'
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text) if text.startswith("{") else float(text)
        except ValueError:
            raise WanRequestValidationError(f"{name}={value!r} is not an amount; allowed: {allowed}") from None
    currency = None
    amount: Any = value
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"amount", "currency"})
        currency = str(value.get("currency") or "").strip().upper() or None
        amount = value.get("amount")
        if unknown or (currency is not None and currency not in CURRENCIES):
            raise WanRequestValidationError(f"{name}={dict(value)!r} is not an amount; allowed: {allowed}")
    if isinstance(amount, str):
        try:
            amount = float(amount)
        except ValueError:
            amount = None
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount) or amount <= 0:
        raise WanRequestValidationError(f"{name}={value!r} is not an amount; allowed: {allowed}")
    return Money(float(amount), currency)


# ----------------------------------------------------------------------------------------- overrides


@dataclass(frozen=True)
class ModelPrices:
    """
    A connection's prices for one model (its ``prices`` extra).

    :param tiers: tier -> price of one second (contract prices), replacing the table's.
    :param currency: the currency of those prices (default: the region's).
    :param discount: a factor on the model's price (0.8 = 20 % off).
    :param free_seconds: free quota seconds the account still has for the model; each estimate bills only the
        seconds beyond them. Not tracked: lower or remove it as Model Studio shows the quota used up.
    """

    tiers: Mapping[str, float] = field(default_factory=dict)
    currency: str | None = None
    discount: float | None = None
    free_seconds: float = 0.0


@dataclass(frozen=True)
class PriceOverrides:
    """
    The connection's ``prices`` extra: contract prices, discounts and free quota, for an exact estimate.

    Example: ``{"discount": 0.9, "wan2.6-t2v": {"720P": 0.08, "1080P": 0.12, "free_seconds": 50}}``.

    :param discount: a factor on every price (after a model's own prices or discount).
    :param models: canonical model name -> its prices.
    """

    discount: float = 1.0
    models: Mapping[str, ModelPrices] = field(default_factory=dict)

    def for_model(self, model: str) -> ModelPrices | None:
        """
        The connection's prices of ``model`` (any accepted spelling), or None.

        :param model: the model name.
        """
        return self.models.get(_canonical(model))

    @property
    def configured(self) -> bool:
        """Whether the connection says anything about prices."""
        return self.discount != 1.0 or bool(self.models)


NO_OVERRIDES = PriceOverrides()
_MODEL_KEYS = ("480P", "720P", "1080P", "currency", "discount", "free_seconds")


def parse_prices(spec: Any, source: str = "the connection") -> PriceOverrides:
    """
    Read the ``prices`` extra (a dict, or its JSON text from a form field).

    :param spec: ``{"discount": <factor>, "<model>": {"720P": <price/s>, "currency": ..., "discount": <factor>,
        "free_seconds": <seconds>}}``.
    :param source: where it came from, for messages.
    :raises WanConfigurationError: naming the key, the value and what is allowed.
    """
    if spec in (None, "", {}):
        return NO_OVERRIDES
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except ValueError:
            raise WanConfigurationError(f"prices={spec[:80]!r} in {source} is not JSON") from None
    if not isinstance(spec, Mapping):
        raise WanConfigurationError(f"prices in {source} must be an object of models (and discount); got {spec!r}")
    discount = _factor(spec.get("discount", 1.0), f"prices.discount in {source}")
    models: dict[str, ModelPrices] = {}
    for name, fields in spec.items():
        if name == "discount":
            continue
        where = f"prices[{name!r}] in {source}"
        if not isinstance(fields, Mapping) or not fields:
            raise WanConfigurationError(f"{where} must be an object with keys among {', '.join(_MODEL_KEYS)}")
        keys = {str(k).upper() if str(k).lower().endswith("p") else str(k) for k in fields}
        unknown = sorted(keys - set(_MODEL_KEYS))
        if unknown:
            allowed = ", ".join(_MODEL_KEYS)
            raise WanConfigurationError(f"{where} has unknown keys {', '.join(unknown)}; allowed: {allowed}")
        models[_canonical(str(name))] = _model_prices(fields, where)
    return PriceOverrides(discount=discount, models=models)


def _model_prices(fields: Mapping[str, Any], where: str) -> ModelPrices:
    tiers = {str(k).upper(): v for k, v in fields.items() if str(k).upper() in SIZE_TIERS}
    for tier, amount in tiers.items():
        if not _positive(amount):
            raise WanConfigurationError(f"{where}[{tier!r}]={amount!r}; allowed: a positive price per second")
    currency = fields.get("currency")
    if currency is not None and str(currency).strip().upper() not in CURRENCIES:
        raise WanConfigurationError(f"{where}.currency={currency!r}; allowed: {', '.join(CURRENCIES)}")
    discount = fields.get("discount")
    free = fields.get("free_seconds", 0)
    if not (_positive(free) or free == 0):
        raise WanConfigurationError(f"{where}.free_seconds={free!r}; allowed: a number of seconds (0 or more)")
    return ModelPrices(
        tiers={tier: float(amount) for tier, amount in tiers.items()},
        currency=str(currency).strip().upper() if currency is not None else None,
        discount=None if discount is None else _factor(discount, f"{where}.discount"),
        free_seconds=float(free),
    )


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _factor(value: Any, where: str) -> float:
    if not _positive(value):
        raise WanConfigurationError(f"{where}={value!r}; allowed: a positive factor such as 0.8 (20 % off)")
    return float(value)


def _canonical(model: str) -> str:
    cap = get_capability(model)
    return cap.name if cap else model.strip().lower()


# ----------------------------------------------------------------------------------------- cost


@dataclass(frozen=True)
class Cost:
    """
    An estimated or billed cost, or an explicit "unknown".

    :param amount: the amount, or None when no price is known.
    :param currency: its currency, or None when unknown.
    :param basis: how it was computed (model, tier, seconds, price, region, confidence), or why it is unknown.
    :param seconds: the seconds billed.
    :param tier: the resolution tier.
    :param region: the price region, or None.
    :param unit_price: the price of one second after discounts, or None.
    :param confidence: the figure's confidence (see :class:`UnitPrice`), or None.
    """

    amount: float | None
    currency: str | None
    basis: str
    seconds: float | None = None
    tier: str | None = None
    region: str | None = None
    unit_price: float | None = None
    confidence: str | None = None

    @property
    def known(self) -> bool:
        """Whether a price was known."""
        return self.amount is not None

    def __str__(self) -> str:
        return f"≈ {format_money(self.amount, self.currency)}" if self.amount is not None else "unknown"

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe form for XCom and manifests: ``{"amount", "currency", "basis", ...}``."""
        return {
            "amount": None if self.amount is None else round(self.amount, 6),
            "currency": self.currency,
            "basis": self.basis,
            "seconds": self.seconds,
            "tier": self.tier,
            "region": self.region,
            "unit_price": None if self.unit_price is None else round(self.unit_price, 6),
            "confidence": self.confidence,
        }


def list_price(model: str, tier: str, region: str) -> UnitPrice | None:
    """
    The table's price of one second, or None when none is known.

    :param model: the model name (any accepted spelling).
    :param tier: ``480P``, ``720P`` or ``1080P``.
    :param region: the region name.
    """
    return _TABLE.get((_canonical(model), tier.upper(), region))


def cost_of(
    model: str,
    tier: str | None,
    seconds: float | None,
    region: str | None,
    overrides: PriceOverrides = NO_OVERRIDES,
    *,
    free: bool = True,
) -> Cost:
    """
    What ``seconds`` of ``model`` at ``tier`` cost in ``region``: the connection's price, else the table's.

    :param model: the model name (any accepted spelling).
    :param tier: the resolution tier.
    :param seconds: the seconds of video.
    :param region: the price region, or None when it is not known (a gateway without ``price_region``).
    :param overrides: the connection's ``prices`` extra.
    :param free: deduct the connection's ``free_seconds`` for the model (off for what others already spent).
    """
    name = _canonical(model)
    what = f"{name}, {tier or '?'}, {_seconds(seconds)} s"
    if tier is None or seconds is None:
        return Cost(None, None, f"unknown: {what}: the resolution tier or the duration is not known", seconds, tier)
    if region is None:
        return Cost(
            None,
            None,
            f"unknown: {what}: the region is not known (an explicit base URL); set the connection's price_region "
            f"extra ({', '.join(REGION_NAMES)})",
            seconds,
            tier,
        )
    own = overrides.for_model(name)
    listed = list_price(name, tier, region)
    if own is not None and tier in own.tiers:
        unit, currency = own.tiers[tier], own.currency or REGION_CURRENCY[region]
        confidence: str = "connection"
        origin = "the connection's price"
    elif listed is not None:
        unit, currency, confidence = listed.amount, listed.currency, listed.confidence
        origin = f"{region} list price, {listed.confidence}, as of {listed.as_of}"
    else:
        return Cost(
            None,
            None,
            f"unknown: {what}: no price is known for {name} at {tier} in {region}; give it in the connection's "
            f"prices extra",
            seconds,
            tier,
            region,
        )
    factor = (own.discount if own is not None and own.discount is not None else 1.0) * overrides.discount
    billable = max(0.0, seconds - own.free_seconds) if free and own is not None else seconds
    notes = [f"{seconds - billable:g} free s" if billable != seconds else "", f"×{factor:g}" if factor != 1 else ""]
    extra = "".join(f", {n}" for n in notes if n)
    amount = billable * unit * factor
    basis = f"{what} × {format_money(unit, currency)}/s ({origin}{extra})"
    return Cost(amount, currency, basis, seconds, tier, region, unit * factor, confidence)


def estimate(request: WanVideoRequest, region: str | None, overrides: PriceOverrides = NO_OVERRIDES) -> Cost:
    """
    What a request will cost if it succeeds: its effective tier and duration (model defaults included).

    :param request: the validated request.
    :param region: the connection's price region, or None.
    :param overrides: the connection's ``prices`` extra.
    """
    return cost_of(request.model, request.effective_resolution, request.effective_duration, region, overrides)


def billed_cost(
    model: str,
    usage: WanUsage | Mapping[str, Any] | None,
    region: str | None,
    overrides: PriceOverrides = NO_OVERRIDES,
    *,
    tier: str | None = None,
    free: bool = True,
) -> Cost:
    """
    What a SUCCEEDED task cost, from DashScope's ``usage`` (seconds, and the tier from ``SR`` or ``size``).

    :param model: the task's model.
    :param usage: the task's ``usage``.
    :param region: the price region, or None.
    :param overrides: the connection's ``prices`` extra.
    :param tier: the tier to use when the usage names none (the request's).
    :param free: deduct the connection's ``free_seconds`` (as the estimate of the same task does).
    """
    if usage is None:
        return Cost(None, None, "unknown: DashScope reported no usage for the task")
    read = usage if isinstance(usage, WanUsage) else WanUsage.model_validate(dict(usage))
    return cost_of(model, usage_tier(read) or tier, read.billed_seconds, region, overrides, free=free)


def usage_tier(usage: WanUsage) -> str | None:
    """
    The resolution tier a usage reports: ``SR`` (wan2.6 and newer), else the tier of its ``W*H`` size.

    :param usage: the usage.
    """
    if usage.SR is not None and f"{usage.SR}P" in SIZE_TIERS:
        return f"{usage.SR}P"
    size = usage.output_size
    return SIZE_TO_TIER.get(size) if size else None


def cheapest_list_cost(request: WanVideoRequest, currency: str | None) -> Cost | None:
    """
    The lowest list cost of a request over every region with a price (in ``currency`` when given), or None.

    Used at DAG parse time, when the connection (and so its region and contract prices) is not read.

    :param request: the validated request.
    :param currency: only regions billing in this currency; None: every region.
    """
    costs = [
        cost
        for region in REGION_NAMES
        if (currency is None or REGION_CURRENCY[region] == currency)
        and (cost := estimate(request, region)).amount is not None
    ]
    return min(costs, key=lambda c: c.amount or 0.0) if costs else None


def over_limit(cost: Cost, limit: Money) -> bool:
    """
    Whether a known cost exceeds a limit in the same currency (a bare limit is in the cost's currency).

    :param cost: a known cost.
    :param limit: the limit.
    """
    return cost.amount is not None and cost.amount > limit.amount + 1e-9


def _seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"
