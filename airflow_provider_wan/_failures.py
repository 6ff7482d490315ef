"""How provider errors become Airflow task failures: retryable ones let Airflow retry, the rest fail for good."""

from __future__ import annotations

from airflow_provider_wan._compat import AirflowException, AirflowFailException
from airflow_provider_wan.exceptions import WanError, advice_for


def airflow_error(err: WanError, what: str) -> AirflowException:
    """
    Wrap ``err`` for Airflow: :class:`AirflowFailException` (no retry) unless trying again can help.

    Content moderation, invalid parameters, a bad key or an unpaid account fail the same way on every retry and
    may cost money, so Airflow must not spend its retries on them.

    :param err: what went wrong.
    :param what: what was being done, e.g. ``"Wan video generation"``.
    """
    advice = advice_for(err)
    message = f"{what} failed: {type(err).__name__}: {err}" + (f". What to do: {advice}." if advice else "")
    if err.retryable:
        return AirflowException(message)
    return AirflowFailException(message)
