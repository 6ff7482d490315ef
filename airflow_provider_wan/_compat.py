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
