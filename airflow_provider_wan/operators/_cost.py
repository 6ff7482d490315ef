"""
What the generate operator adds for money: the estimate before the POST, ``max_cost``, the daily budget, and the
billed cost of a finished task (see :mod:`airflow_provider_wan.pricing`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_wan.exceptions import WanBudgetExceededError, WanError
from airflow_provider_wan.hooks._spend import SpendGuard
from airflow_provider_wan.pricing import (
    Cost,
    Money,
    billed_cost,
    cheapest_list_cost,
    cost_of,
    estimate,
    format_money,
    over_limit,
    parse_money,
)

if TYPE_CHECKING:
    from airflow_provider_wan.hooks.wan import WanHook
    from airflow_provider_wan.models import WanVideoRequest

#: XCom key of the estimate, pushed before the submit.
ESTIMATE_KEY = "estimated_cost"
#: Request arguments that decide the price; when one is templated, ``max_cost`` waits for rendering.
PRICED_FIELDS = ("model", "size", "resolution", "aspect_ratio", "duration")


def max_cost_limit(value: Any) -> Money | None:
    """
    ``max_cost`` as an amount, or None when not set.

    :param value: a number (in the price's currency), its text, or ``{"amount": ..., "currency": ...}``.
    :raises WanRequestValidationError: naming ``max_cost``, the value and what is allowed.
    """
    return None if value is None or value == "" else parse_money(value, "max_cost")


def check_max_cost_statically(request: WanVideoRequest | None, limit: Money | None, templated: Sequence[str]) -> None:
    """
    The parse-time check of ``max_cost`` (no I/O: the connection, so the region and contract prices, are unknown).

    Refuses only a request that is over ``max_cost`` at the lowest list price of every region (in ``max_cost``'s
    currency when it names one): whatever region the connection uses, it would be refused after rendering.

    :param request: the request validated at parse time, or None when its model is templated.
    :param limit: the static ``max_cost``, or None.
    :param templated: the request arguments that are templated.
    :raises WanBudgetExceededError: naming the estimate and ``max_cost``.
    """
    if request is None or limit is None or set(templated) & set(PRICED_FIELDS):
        return
    cheapest = cheapest_list_cost(request, limit.currency)
    if cheapest is not None and over_limit(cheapest, limit):
        raise WanBudgetExceededError(
            f"max_cost={limit} refuses this request at DAG parse time: even at the lowest list price of any region it "
            f"costs {cheapest} ({cheapest.basis}); ask for a lower resolution or a shorter duration, or raise max_cost"
        )


class WanCostMixin:
    """The generate operator's estimate, caps and billed cost."""

    hook: WanHook
    max_cost: Any
    log: Any

    def _estimate(self, request: WanVideoRequest) -> Cost:
        """The request's estimate with the connection's region and prices (reads the connection, sends nothing)."""
        settings = self.hook.get_settings()
        with contextlib.suppress(WanError):  # the submit reports it; the estimate then uses the table's row
            request = self.hook.prepare_request(request)  # declared models may change the tier or duration
        return estimate(request, settings.pricing_region, settings.prices)

    def _check_max_cost(self, request: WanVideoRequest) -> Cost:
        """
        Log the estimate and refuse a request over ``max_cost``, right before its POST (a retry that reconnects to
        the task already submitted, or ``adopt_task_id``, spends nothing new and is not refused).

        :param request: the rendered, validated request.
        :raises WanBudgetExceededError: over ``max_cost``, in another currency, or with no known price.
        """
        cost = self._estimate(request)
        self.log.info("%s", describe_estimate(request, cost))
        limit = max_cost_limit(self.max_cost)
        if limit is None:
            return cost
        if cost.amount is None:
            raise WanBudgetExceededError(f"max_cost={limit} cannot be checked: the cost is {cost.basis}")
        if limit.currency is not None and limit.currency != cost.currency:
            raise WanBudgetExceededError(
                f"max_cost={limit} is in {limit.currency} but this request is priced in {cost.currency} "
                f"({cost.basis}); give max_cost in {cost.currency}"
            )
        if over_limit(cost, limit):
            raise WanBudgetExceededError(
                f"Refused before submitting: the estimate {cost} ({cost.basis}) is over "
                f"max_cost={format_money(limit.amount, cost.currency)}"
            )
        return cost

    def _check_daily_budget(self, cost: Cost) -> tuple[SpendGuard, Cost]:
        """
        Refuse a submit that would take the account past the connection's ``daily_budget`` (a no-op without one).

        :param cost: the estimate of the request about to be submitted.
        """
        guard = SpendGuard(self.hook)
        guard.check(cost)
        return guard, cost

    def _with_billed(self, request: WanVideoRequest, result: dict[str, Any]) -> dict[str, Any]:
        """``result`` with ``billed_cost`` from DashScope's ``usage`` when the task SUCCEEDED."""
        if result.get("task_status") != "SUCCEEDED":
            return result
        settings = self.hook.get_settings()
        tier = request.effective_resolution
        cost = billed_cost(request.model, result.get("usage"), settings.pricing_region, settings.prices, tier=tier)
        self.log.info("Task %s billed %s s: %s (%s)", result.get("task_id"), cost.seconds, cost, cost.basis)
        return {**result, "billed_cost": cost.to_dict()}


def describe_estimate(request: WanVideoRequest, cost: Cost) -> str:
    """
    The estimate line logged before the POST: ``model, size, duration → ≈ $0.75 (basis)``, with a warning when
    the size was left out and the model's default is its dearest tier (wan2.6 renders 1080P by default).

    :param request: the request.
    :param cost: its estimate.
    """
    size = request.effective_size or "the input image's aspect ratio"
    line = (
        f"Estimated cost: {request.model}, {size} ({request.effective_resolution}), "
        f"{request.effective_duration} s → {cost} ({cost.basis})"
    )
    cap = request.capability
    defaulted = request.size is None and request.resolution is None
    if defaulted and cap is not None and cap.tiers[0] != cap.default_resolution:
        cheaper = cap.tiers[0]
        alternative = cost_of(request.model, cheaper, cost.seconds, cost.region)
        ratio = (
            f", about {cost.amount / alternative.amount:.1f}x the {cheaper} price"
            if cost.amount and alternative.amount and alternative.currency == cost.currency
            else ""
        )
        line += (
            f". No size was given: {cap.name} renders its default {cap.default_size} "
            f"({cap.default_resolution}){ratio}; pass resolution='{cheaper}' (or a {cheaper} size) to pay less"
        )
    return line
