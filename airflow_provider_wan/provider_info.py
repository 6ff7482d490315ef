"""The provider's registration with Airflow (entry point ``apache_airflow_provider``).

Kept light: importing it must not pull in httpx clients or Airflow operators.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_wan import __version__
from airflow_provider_wan.settings import CONNECTION_EXTRAS, UI_FIELD_BEHAVIOUR

INTEGRATION = "Alibaba Cloud Wan (DashScope)"


def _conn_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, (label, schema, description) in CONNECTION_EXTRAS.items():
        fields[name] = {"label": label, "schema": schema}
        if description:
            fields[name]["description"] = description
    return fields


def get_provider_info() -> dict[str, Any]:
    """Describe the provider: hooks, operators, sensors, triggers, transfers and the ``dashscope`` connection."""
    return {
        "package-name": "airflow-provider-wan",
        "name": "Alibaba Cloud Wan (DashScope)",
        "description": "Generate videos with Alibaba Cloud's Wan models from text, images, keyframes or references "
        "(DashScope / Model Studio) and land them in S3.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://www.alibabacloud.com/help/en/model-studio/text-to-video-api-reference",
                "tags": ["ai"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": ["airflow_provider_wan.hooks.wan"]}],
        "operators": [{"integration-name": INTEGRATION, "python-modules": ["airflow_provider_wan.operators.wan"]}],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": ["airflow_provider_wan.sensors.wan"]}],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": ["airflow_provider_wan.triggers.wan"]}],
        "transfers": [
            {
                "source-integration-name": INTEGRATION,
                "target-integration-name": "Amazon Simple Storage Service (S3)",
                "python-module": "airflow_provider_wan.transfers.wan_to_s3",
            }
        ],
        "extra-links": [
            "airflow_provider_wan.links.WanTaskLink",
            "airflow_provider_wan.links.WanSensorTaskLink",
            "airflow_provider_wan.transfers.wan_to_s3.WanS3ObjectLink",
        ],
        "connection-types": [
            {
                "connection-type": "dashscope",
                "hook-class-name": "airflow_provider_wan.hooks.wan.WanHook",
                "hook-name": "Alibaba Cloud DashScope (Wan)",
                "conn-fields": _conn_fields(),
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
