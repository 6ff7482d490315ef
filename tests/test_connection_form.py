"""The ``dashscope`` connection form as the Airflow UI renders it: extras as inputs on 3.1 and 3.2+, one Base URL.

The UI's own code builds the form (``HookMetaService``, what ``GET /ui/connections/hook_meta`` returns), in a fresh
interpreter so the providers manager starts clean: on Airflow 3.1 it calls ``WanHook.get_connection_form_widgets``
with its wtforms stand-ins, on 3.2+ it reads ``conn-fields`` from the provider info without importing the hook.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from airflow_provider_wan._compat import AIRFLOW_VERSION
from airflow_provider_wan.settings import CONNECTION_EXTRAS, WanConnectionSettings, form_fields

#: Extras the form must always offer (CONNECTION_EXTRAS may add more: each becomes an input too).
CORE_EXTRAS = {
    "region",
    "workspace",
    "workspace_domain",
    "protocol",
    "unified_path",
    "models",
    "model_limits",
    "query_qps",
    "connect_timeout",
    "read_timeout",
    "max_retries",
    "retry_budget",
    "poll_qps",
    "daily_budget",
    "prices",
    "price_region",
    "download_hosts",
}

_HOOK_META = """
import json, warnings
warnings.simplefilter("ignore")
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
from airflow.providers_manager import ProvidersManager

meta = {m.connection_type: m for m in HookMetaService.hook_meta_data()}["dashscope"]
pm = ProvidersManager()
print(json.dumps({
    "hook_name": meta.hook_name,
    "hook_class_name": meta.hook_class_name,
    "standard_fields": meta.standard_fields.model_dump() if meta.standard_fields else None,
    "extra_fields": dict(meta.extra_fields or {}),
    "provider": pm.providers["airflow-provider-wan"].data["package-name"],
    "extra_links": sorted(pm.extra_links_class_names),
}, default=str))
"""


@pytest.fixture(scope="module")
def hook_meta() -> dict[str, Any]:
    """The connection form of ``dashscope`` as the API server hands it to the UI, and the provider registry."""
    result = subprocess.run(
        [sys.executable, "-c", _HOOK_META], capture_output=True, text=True, timeout=120, env=os.environ.copy()
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_extra_is_a_form_input(hook_meta):
    assert hook_meta["hook_name"] == "Alibaba Cloud DashScope (Wan)"
    assert hook_meta["hook_class_name"] == "airflow_provider_wan.hooks.wan.WanHook"
    assert set(hook_meta["extra_fields"]) == set(CONNECTION_EXTRAS)
    assert set(hook_meta["extra_fields"]) >= CORE_EXTRAS


def test_the_form_has_one_base_url_input(hook_meta):
    standard = hook_meta["standard_fields"]
    assert standard["host"]["title"] == "Base URL (optional, overrides region)"
    assert standard["password"]["title"] == "API Key"
    assert all(standard[name]["hidden"] for name in ("login", "port", "url_schema"))
    assert "base_url" not in hook_meta["extra_fields"]
    assert not any("base url" in field["schema"]["title"].lower() for field in hook_meta["extra_fields"].values())


def test_the_form_inputs_have_types_choices_and_defaults(hook_meta):
    fields = {name: field["schema"] for name, field in hook_meta["extra_fields"].items()}
    assert fields["region"]["title"] == "Region"
    assert [c for c in fields["region"]["enum"] if c] == ["singapore", "beijing", "virginia", "frankfurt"]
    assert [c for c in fields["protocol"]["enum"] if c] == ["dashscope", "unified", "newapi", "openai"]
    assert "integer" in fields["max_retries"]["type"]
    assert hook_meta["extra_fields"]["region"]["value"] == "singapore"
    if AIRFLOW_VERSION.major == 3 and AIRFLOW_VERSION.minor < 2:
        # 3.1 forms know no decimal or list inputs: numbers with fractions and host lists are text there.
        assert "string" in fields["connect_timeout"]["type"] and "string" in fields["download_hosts"]["type"]
        assert hook_meta["extra_fields"]["connect_timeout"]["value"] == "10"
    else:
        assert "number" in fields["connect_timeout"]["type"] and "array" in fields["download_hosts"]["type"]


def test_form_fields_follow_the_connection_extras():
    specs = {spec.name: spec for spec in form_fields()}
    assert list(specs) == list(CONNECTION_EXTRAS) and set(specs) >= CORE_EXTRAS and "base_url" not in specs
    assert specs["region"].choices == ("singapore", "beijing", "virginia", "frankfurt")
    assert specs["region"].default == "singapore"
    assert (specs["max_retries"].kind, specs["max_retries"].default) == ("integer", 4)
    assert (specs["poll_qps"].kind, specs["poll_qps"].default) == ("string", "10")
    assert specs["download_hosts"].description.endswith("Comma-separated.")


def _settings(host: str | None = None, **extra: Any) -> WanConnectionSettings:
    return WanConnectionSettings.from_parts(password="sk-x", host=host, port=None, schema=None, extra=extra, source="t")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"connect_timeout": "2.5", "poll_qps": "4", "max_retries": 2}, (2.5, 4.0, 2)),  # as the 3.1 form saves them
        ({"connect_timeout": 2.5, "poll_qps": 4, "max_retries": "2"}, (2.5, 4.0, 2)),  # as the 3.2+ form saves them
    ],
)
def test_form_values_read_as_numbers(extra, expected):
    settings = _settings(**extra)
    assert (settings.connect_timeout, settings.poll_qps, settings.max_retries) == expected


def test_download_hosts_from_the_31_form_are_comma_separated():
    assert _settings(download_hosts="a.example.com, *.b.net").download_hosts[-2:] == ("a.example.com", "*.b.net")


def test_host_is_the_base_url_and_an_older_base_url_extra_still_wins():
    gateway, relay = "https://gw.example.com/qwen/api/v1", "https://relay.example.com"
    assert _settings(gateway, region="beijing").base_url == gateway
    # Connections made before the form offered only the host keep working, with the same endpoint as before.
    assert _settings(base_url=relay).base_url == relay
    assert _settings(gateway, base_url=relay).base_url == relay


def test_airflow_registers_the_provider_and_its_extra_links(hook_meta):
    assert hook_meta["provider"] == "airflow-provider-wan"
    assert {"airflow_provider_wan.links.WanTaskLink", "airflow_provider_wan.links.WanSensorTaskLink"} <= set(
        hook_meta["extra_links"]
    )
