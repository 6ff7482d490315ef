"""Imports and feature flags that differ between the supported Airflow versions (3.1 to 3.3+)."""

from __future__ import annotations

from airflow import __version__ as _AIRFLOW_VERSION
from packaging.version import Version

AIRFLOW_VERSION = Version(Version(_AIRFLOW_VERSION).base_version)
#: task_state_store, ResumableJobMixin and BaseTrigger.on_kill arrived in Airflow 3.3.
AIRFLOW_V_3_3_PLUS = Version("3.3.0") <= AIRFLOW_VERSION

try:
    from airflow.sdk.exceptions import AirflowException
except ImportError:  # pragma: no cover - Airflow < 3.1 layout
    from airflow.exceptions import AirflowException  # type: ignore[no-redef]

try:
    from airflow.sdk.exceptions import AirflowNotFoundException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowNotFoundException  # type: ignore[no-redef,assignment]

try:
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowFailException  # type: ignore[no-redef,assignment]

try:
    from airflow.sdk.exceptions import AirflowSkipException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowSkipException  # type: ignore[no-redef,assignment]

__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_3_PLUS",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSkipException",
]


def mask_secret(secret: str) -> None:
    """
    Register ``secret`` with Airflow's secrets masker (the task SDK's, wherever this Airflow keeps it).

    :param secret: an API key, a signed link or its query string.
    """
    try:
        from airflow.sdk.log import mask_secret as _mask_secret
    except ImportError:  # pragma: no cover - older task SDK layout
        from airflow.sdk.execution_time.secrets_masker import mask_secret as _mask_secret  # type: ignore[no-redef]
    _mask_secret(secret)
