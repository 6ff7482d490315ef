"""
The ``dashscope`` connection: its fields, regions and defaults, and how they become client settings.

Pure data (no Airflow, no HTTP), so the provider registry, the UI form and the hook share one definition.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_wan.exceptions import WanConfigurationError
from airflow_provider_wan.models import DeclaredModels, declare_models
from airflow_provider_wan.pricing import NO_OVERRIDES, Money, PriceOverrides, parse_money, parse_prices
from airflow_provider_wan.protocol import PROTOCOLS, get_protocol

#: Region name -> Alibaba Cloud region id. Every region of the connection's ``region`` extra.
REGION_IDS: dict[str, str] = {
    "singapore": "ap-southeast-1",
    "beijing": "cn-beijing",
    "virginia": "us-east-1",
    "frankfurt": "eu-central-1",
}
#: Region name -> shared base URL (reference section 1.1). Frankfurt has none: only workspace domains.
REGIONS: dict[str, str] = {
    "singapore": "https://dashscope-intl.aliyuncs.com/api/v1",
    "beijing": "https://dashscope.aliyuncs.com/api/v1",
    "virginia": "https://dashscope-us.aliyuncs.com/api/v1",
}
#: A workspace's own endpoint (Alibaba's recommended one; Frankfurt's only one). Virginia has none documented.
WORKSPACE_BASE_URL = "https://{workspace}.{region_id}.maas.aliyuncs.com/api/v1"
WORKSPACE_DOMAIN_REGIONS = ("singapore", "beijing", "frankfurt")
#: Regions served only at workspace domains.
WORKSPACE_ONLY_REGIONS = ("frankfurt",)
_WORKSPACE_ID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
REGION_ALIASES: dict[str, str] = {
    "intl": "singapore",
    "international": "singapore",
    "ap-southeast-1": "singapore",
    "cn-beijing": "beijing",
    "china": "beijing",
    "cn": "beijing",
    "us": "virginia",
    "us-east-1": "virginia",
    "eu-central-1": "frankfurt",
    "eu": "frankfurt",
    "germany": "frankfurt",
}
DEFAULT_REGION = "singapore"
#: Region -> its Model Studio console page where a user sees their model calls (model monitoring; DashScope has
#: no page per task). Alibaba Cloud's docs link these pages per region; Beijing lives on the China site.
REGION_CONSOLES: dict[str, str] = {
    "singapore": "https://modelstudio.console.alibabacloud.com/ap-southeast-1?tab=dashboard#/model-telemetry",
    "beijing": "https://bailian.console.aliyun.com/cn-beijing?tab=model#/model-telemetry",
    "virginia": "https://modelstudio.console.alibabacloud.com/us-east-1?tab=dashboard#/model-telemetry",
    # [?] by the pattern of the other international regions; not confirmed.
    "frankfurt": "https://modelstudio.console.alibabacloud.com/eu-central-1?tab=dashboard#/model-telemetry",
}
PROTOCOL_NAMES = tuple(PROTOCOLS)
#: Hosts the transfer operator downloads videos from by default (DashScope's OSS result buckets).
DEFAULT_DOWNLOAD_HOSTS = ("*.aliyuncs.com",)

#: Extra fields of the connection form: name -> (label, JSON schema, description). Feeds the 3.2+ form
#: (``conn-fields``) and the 3.1 form (:func:`form_fields`). The base URL is the standard host field
#: (:data:`UI_FIELD_BEHAVIOUR`), so the form shows one Base URL input; the older ``base_url`` extra is still read
#: from the extra JSON (and wins over the host, as it always did) but is not offered as a second input.
CONNECTION_EXTRAS: dict[str, tuple[str, dict[str, Any], str]] = {
    "region": (
        "Region",
        {"type": ["string", "null"], "enum": [*REGION_IDS, None], "default": DEFAULT_REGION},
        "singapore (dashscope-intl), beijing (dashscope), virginia (dashscope-us) or frankfurt (workspace domain "
        "only). Key, model and region must match. A Base URL overrides it.",
    ),
    "workspace": (
        "Workspace ID",
        {"type": ["string", "null"]},
        "Sent as X-DashScope-WorkSpace; with Frankfurt (or workspace_domain) it also names the endpoint.",
    ),
    "workspace_domain": (
        "Use the workspace domain",
        {"type": ["boolean", "string", "null"], "default": False},
        "Call https://{workspace}.{region id}.maas.aliyuncs.com/api/v1 (Singapore, Beijing; always for Frankfurt).",
    ),
    "protocol": (
        "Wire protocol",
        {"type": ["string", "null"], "enum": [*PROTOCOL_NAMES, None], "default": "dashscope"},
        "dashscope (native), unified (relay POST /v2/videos/generations), newapi (new-api POST "
        "/v1/video/generations) or openai (new-api POST /v1/videos).",
    ),
    "unified_path": (
        "Relay path",
        {"type": ["string", "null"]},
        "The relay protocols' submit path below the Base URL, e.g. v1/video/generations (default per protocol).",
    ),
    "models": (
        "Declared models",
        {"type": ["object", "string", "null"]},
        'Models this release does not know: {"wan2.8-t2v": {"like": "wan2.7-t2v", "durations": "2-20"}}.',
    ),
    "connect_timeout": ("Connect timeout (s)", {"type": ["number", "null"], "default": 10}, ""),
    "read_timeout": ("Read timeout (s)", {"type": ["number", "null"], "default": 60}, ""),
    "max_retries": (
        "Retries per call",
        {"type": ["integer", "null"], "default": 4},
        "Retries of 429/5xx/network errors; a submit is retried only when no task can have been created.",
    ),
    "retry_budget": ("Retry budget (s)", {"type": ["number", "null"], "default": 120}, "Ceiling per call."),
    "poll_qps": (
        "Poll budget (requests/s)",
        {"type": ["number", "null"], "default": 10},
        "Starting query rate of one triggerer's waits on this connection; it adapts (AIMD) up to the account limit.",
    ),
    "query_qps": (
        "Account query limit (requests/s)",
        {"type": ["number", "null"], "default": 20},
        "DashScope's task query limit for the whole account (20), shared by every triggerer and worker.",
    ),
    "model_limits": (
        "Raised model limits",
        {"type": ["object", "string", "null"]},
        'For raised quotas: {"wan2.6-t2v": {"concurrency": 20, "submit_rps": 10}}; "*" applies to every model.',
    ),
    "daily_budget": (
        "Daily budget",
        {"type": ["number", "object", "string", "null"]},
        'Refuse a submit that would take the account past this per day (UTC+8): 20, or {"amount": 20, "currency": '
        '"USD"}. Counted from DashScope\'s task list (every client of the account), not a local counter.',
    ),
    "prices": (
        "Contract prices",
        {"type": ["object", "string", "null"]},
        'Prices per second for exact estimates: {"discount": 0.9, "wan2.6-t2v": {"720P": 0.08, "free_seconds": 50}}.',
    ),
    "price_region": (
        "Price region",
        {"type": ["string", "null"], "enum": [*REGION_IDS, None]},
        "Whose list prices apply when the Base URL names no Alibaba region (a gateway, the simulator).",
    ),
    "download_hosts": (
        "Allowed video hosts",
        {"type": ["array", "null"], "items": {"type": "string"}},
        "Extra host patterns the S3 transfer may download from (default *.aliyuncs.com and the base URL's host).",
    ),
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["login", "port", "schema"],
    "relabeling": {"password": "API Key", "host": "Base URL (optional, overrides region)"},
    "placeholders": {
        "password": "sk-...",
        "host": "https://dashscope-intl.aliyuncs.com/api/v1",
        "extra": '{"region": "singapore", "workspace": "", "protocol": "dashscope"}',
    },
}


def _default(name: str) -> Any:
    return CONNECTION_EXTRAS[name][1].get("default")


@dataclass(frozen=True)
class FormField:
    """
    One extra as an input of the Airflow 3.1 connection form.

    That form knows only string, integer, password and boolean inputs (its API server mocks wtforms), so
    fractional numbers and lists are strings there; the hook reads ``"2.5"`` and ``"a.com, b.com"`` alike.

    :param name: the key in the connection's extra JSON.
    :param kind: ``string`` or ``integer``.
    :param label: the input's label.
    :param description: the help text under it.
    :param default: the value a new connection starts with.
    :param choices: the allowed values, or None for free text.
    """

    name: str
    kind: str
    label: str
    description: str
    default: str | int | None = None
    choices: tuple[str, ...] | None = None


def form_fields() -> list[FormField]:
    """The connection extras (:data:`CONNECTION_EXTRAS`) as Airflow 3.1 form inputs, in form order."""
    fields = []
    for name, (label, schema, description) in CONNECTION_EXTRAS.items():
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        default = schema.get("default")
        choices = tuple(str(c) for c in schema.get("enum", ()) if c is not None) or None
        if "integer" in types:
            fields.append(FormField(name, "integer", label, description, default))
            continue
        if "array" in types:
            description = f"{description} Comma-separated.".strip()
        fields.append(FormField(name, "string", label, description, None if default is None else str(default), choices))
    return fields


@dataclass(frozen=True)
class WanConnectionSettings:
    """
    Everything the hook needs from a connection, resolved and checked.

    :param api_key: the DashScope API key (never printed: excluded from the repr).
    :param base_url: the API root, e.g. ``https://dashscope-intl.aliyuncs.com/api/v1``.
    :param region: the region name (``singapore``, ``beijing``, ``virginia``, ``frankfurt``): the region extra, or
        the region of an explicit Alibaba base URL; None for a gateway or the simulator (then models are not
        checked against a region).
    :param workspace: the workspace id for ``X-DashScope-WorkSpace`` (and the workspace domain).
    :param protocol: ``dashscope``, ``unified``, ``newapi`` or ``openai``.
    :param unified_path: the relay protocols' submit path instead of their default.
    :param models: models the connection declares (its ``models`` extra), lower-cased name -> capability row.
    :param connect_timeout: seconds to establish a connection.
    :param read_timeout: seconds to wait for an answer.
    :param max_retries: retries per call after the first attempt.
    :param retry_budget: ceiling in seconds on all attempts of one call.
    :param poll_qps: the starting query rate of this connection per triggerer event loop (it adapts).
    :param query_qps: the account's query limit, the most the adaptive rate grows to.
    :param model_limits: per-model overrides of the account limits (``concurrency``, ``submit_rps``); ``*``
        applies to every model.
    :param download_hosts: host patterns the transfer may download from.
    :param daily_budget: the most the account may commit per day (UTC+8), or None for no cap.
    :param prices: the connection's contract prices, discounts and free quota (``prices`` extra).
    :param price_region: whose list prices apply (the ``price_region`` extra), when not the region's own.
    :param budget_refresh: seconds a committed-today total read from DashScope is reused by one process.
    :param source: where the settings came from (``connection <id>`` or ``environment``).
    """

    api_key: str = field(repr=False)
    base_url: str
    region: str | None = DEFAULT_REGION
    workspace: str | None = None
    protocol: str = "dashscope"
    unified_path: str | None = None
    models: DeclaredModels = field(default_factory=dict, compare=False, hash=False)
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_retries: int = 4
    retry_budget: float = 120.0
    poll_qps: float = 10.0
    query_qps: float = 20.0
    model_limits: dict[str, dict[str, float]] = field(default_factory=dict, compare=False, hash=False)
    download_hosts: tuple[str, ...] = DEFAULT_DOWNLOAD_HOSTS
    daily_budget: Money | None = None
    prices: PriceOverrides = field(default=NO_OVERRIDES, compare=False, hash=False)
    price_region: str | None = None
    budget_refresh: float = 10.0
    source: str = "connection"

    @property
    def pricing_region(self) -> str | None:
        """The region whose prices apply: ``price_region``, else the connection's region (None: unknown)."""
        return self.price_region or self.region

    def limits_for(self, model: str) -> tuple[float, int]:
        """
        The account limits that apply to ``model``: (submissions per second, tasks processing at once).

        The connection's ``model_limits`` win over its declared models (``models``), which win over the capability
        table; an unknown model gets 5 and 5.

        :param model: the model name.
        """
        from airflow_provider_wan.models import get_capability

        cap = get_capability(model, self.models)
        rps, concurrency = (cap.submit_rps, cap.concurrency) if cap else (5.0, 5)
        name = (cap.name if cap else model.strip()).lower()
        for key in ("*", name):
            override = self.model_limits.get(key) or {}
            rps = float(override.get("submit_rps", rps))
            concurrency = int(override.get("concurrency", concurrency))
        return rps, concurrency

    @property
    def key_fingerprint(self) -> str:
        """A short digest that identifies the key without revealing it."""
        return hashlib.sha256(self.api_key.encode()).hexdigest()[:12]

    @property
    def base_host(self) -> str:
        """
        The base URL's host as a download-host pattern: ``host`` on the scheme's default port, else ``host:port``.

        The port matters: a pattern without one allows only the default port, so the simulator's
        ``127.0.0.1:<port>`` does not open every other service on loopback.
        """
        parts = urlsplit(self.base_url)
        host = (parts.hostname or "").lower()
        host = f"[{host}]" if ":" in host else host
        default = 443 if parts.scheme == "https" else 80
        return f"{host}:{parts.port}" if host and parts.port and parts.port != default else host

    def cache_key(self) -> tuple[Any, ...]:
        """A hashable identity for sharing clients: same endpoint, key and limits share one client."""
        return (
            self.base_url,
            self.key_fingerprint,
            self.workspace,
            self.protocol,
            self.connect_timeout,
            self.read_timeout,
            self.poll_qps,
            self.query_qps,
        )

    @classmethod
    def from_parts(
        cls,
        *,
        password: str | None,
        host: str | None,
        port: int | None,
        schema: str | None,
        extra: dict[str, Any],
        source: str,
    ) -> WanConnectionSettings:
        """
        Build settings from a connection's fields.

        :param password: the API key (the ``api_key`` extra is accepted too).
        :param host: an explicit base URL or host name; overrides the region.
        :param port: the port when ``host`` is a bare host name.
        :param schema: the path when ``host`` is a bare host name (URI form puts the path here).
        :param extra: the connection's extras.
        :param source: where this came from, for messages.
        """
        api_key = (password or extra.get("api_key") or "").strip()
        if not api_key:
            raise WanConfigurationError(
                f"{source} has no API key; put the DashScope key in the connection's password field"
            )
        base_url, region = _base_url(host, port, schema, extra, source)
        protocol = str(extra.get("protocol") or "dashscope").strip().lower()
        unified_path = str(extra.get("unified_path") or "").strip() or None
        try:
            get_protocol(protocol, unified_path)
        except ValueError as err:
            raise WanConfigurationError(f"{err} (in {source})") from None
        hosts = extra.get("download_hosts") or ()
        if isinstance(hosts, str):
            hosts = [h.strip() for h in hosts.split(",") if h.strip()]
        return cls(
            api_key=api_key,
            base_url=base_url,
            region=region,
            workspace=_workspace(extra),
            protocol=protocol,
            unified_path=unified_path,
            models=declare_models(extra.get("models"), source),
            connect_timeout=_number(extra, "connect_timeout", float, source),
            read_timeout=_number(extra, "read_timeout", float, source),
            max_retries=_number(extra, "max_retries", int, source),
            retry_budget=_number(extra, "retry_budget", float, source),
            poll_qps=_number(extra, "poll_qps", float, source),
            query_qps=_number(extra, "query_qps", float, source),
            model_limits=_model_limits(extra.get("model_limits"), source),
            download_hosts=(*DEFAULT_DOWNLOAD_HOSTS, *hosts),
            daily_budget=_budget(extra.get("daily_budget"), source),
            prices=parse_prices(extra.get("prices"), source),
            price_region=resolve_region(extra["price_region"]) if extra.get("price_region") else None,
            budget_refresh=_number(_refresh(extra), "budget_refresh", float, source),
            source=source,
        )


def _refresh(extra: dict[str, Any]) -> dict[str, Any]:
    """The ``budget_refresh`` extra (read from the JSON only, not a form input), 10 s unless set."""
    return {"budget_refresh": extra.get("budget_refresh") or 10}


def _budget(value: Any, source: str) -> Money | None:
    """Read the ``daily_budget`` extra: a number in the prices' currency, or ``{"amount", "currency"}``."""
    if value in (None, ""):
        return None
    try:
        return parse_money(value, "daily_budget")
    except ValueError as err:
        raise WanConfigurationError(f"{err} (in {source})") from None


def _model_limits(value: Any, source: str) -> dict[str, dict[str, float]]:
    """Read the ``model_limits`` extra (a dict, or its JSON text from a form field) and check its numbers."""
    if value in (None, "", {}):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise WanConfigurationError(f"model_limits={value!r} in {source} is not JSON") from None
    if not isinstance(value, dict):
        raise WanConfigurationError(f"model_limits in {source} must map model names to limits, got {value!r}")
    limits: dict[str, dict[str, float]] = {}
    for model, spec in value.items():
        unknown = sorted(set(spec) - {"concurrency", "submit_rps"}) if isinstance(spec, dict) else ["(not a dict)"]
        numbers = [v for v in spec.values()] if isinstance(spec, dict) else []
        if unknown or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in numbers):
            raise WanConfigurationError(
                f"model_limits[{model!r}]={spec!r} in {source} is not valid; allowed: "
                f'{{"concurrency": <positive integer>, "submit_rps": <positive number>}}'
            )
        limits[str(model).strip().lower()] = {k: float(v) for k, v in spec.items()}
    return limits


def resolve_region(region: str | None) -> str:
    """
    Normalise a region name or alias.

    :param region: ``singapore``, ``beijing``, ``virginia``, ``frankfurt`` or an alias such as ``cn-beijing`` or
        ``eu-central-1``.
    """
    name = (region or DEFAULT_REGION).strip().lower()
    name = REGION_ALIASES.get(name, name)
    if name not in REGION_IDS:
        raise WanConfigurationError(
            f"region={region!r} is unknown; allowed: {', '.join(REGION_IDS)} (or set base_url for a gateway)"
        )
    return name


def workspace_base_url(workspace: str | None, region: str) -> str:
    """
    The base URL of a workspace's own domain: ``https://{workspace}.{region id}.maas.aliyuncs.com/api/v1``.

    :param workspace: the Model Studio workspace id.
    :param region: a region name or alias with workspace domains (Singapore, Beijing, Frankfurt).
    :raises WanConfigurationError: without a workspace, with one that is not a host label, or for a region
        without workspace domains.
    """
    name = resolve_region(region)
    if name not in WORKSPACE_DOMAIN_REGIONS:
        raise WanConfigurationError(
            f"region={region!r} has no workspace domain; allowed with workspace_domain: "
            f"{', '.join(WORKSPACE_DOMAIN_REGIONS)}"
        )
    if not workspace:
        raise WanConfigurationError(
            f"region={name!r} with a workspace domain needs the workspace extra (the Model Studio workspace id): "
            f"the endpoint is {WORKSPACE_BASE_URL.format(workspace='{WorkspaceId}', region_id=REGION_IDS[name])}"
        )
    if not _WORKSPACE_ID.match(workspace):
        raise WanConfigurationError(
            f"workspace={workspace!r} cannot name a workspace domain; allowed: letters, digits and hyphens"
        )
    return WORKSPACE_BASE_URL.format(workspace=workspace.lower(), region_id=REGION_IDS[name])


def region_of_host(host: str) -> str | None:
    """
    The region an Alibaba DashScope host serves (shared or workspace domain), or None for any other host.

    :param host: a host name.
    """
    host = host.lower()
    for name, url in REGIONS.items():
        if urlsplit(url).hostname == host:
            return name
    suffix = ".maas.aliyuncs.com"
    if host.endswith(suffix):
        region_id = host.removesuffix(suffix).rsplit(".", 1)[-1]
        return next((name for name, rid in REGION_IDS.items() if rid == region_id), None)
    return None


def _workspace(extra: dict[str, Any]) -> str | None:
    return (str(extra["workspace"]).strip() or None) if extra.get("workspace") else None


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def _base_url(
    host: str | None, port: int | None, schema: str | None, extra: dict[str, Any], source: str = "connection"
) -> tuple[str, str | None]:
    explicit = str(extra.get("base_url") or "").strip()
    if not explicit and host and host.strip():
        explicit = _url_from_host(host.strip(), port, schema, extra)
    if explicit:
        parts = urlsplit(explicit)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WanConfigurationError(f"base_url={explicit!r} is not an http(s) URL")
        return explicit.rstrip("/"), region_of_host(parts.hostname)
    region = resolve_region(extra.get("region"))
    if region in WORKSPACE_ONLY_REGIONS or _flag(extra.get("workspace_domain")):
        try:
            return workspace_base_url(_workspace(extra), region), region
        except WanConfigurationError as err:
            raise WanConfigurationError(f"{err} (in {source})") from None
    return REGIONS[region], region


def _url_from_host(host: str, port: int | None, schema: str | None, extra: dict[str, Any]) -> str:
    if "://" in host:
        return host
    scheme = str(extra.get("scheme") or ("http" if is_loopback(host) else "https"))
    netloc = f"{host}:{port}" if port else host
    path = (schema or "api/v1").strip("/")
    return f"{scheme}://{netloc}/{path}"


def is_loopback(host: str) -> bool:
    """
    Whether ``host`` names this machine (``localhost`` or a loopback address).

    :param host: a host name or IP address.
    """
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _number(extra: dict[str, Any], name: str, kind: type, source: str) -> Any:
    value = extra.get(name)
    if value is None or value == "":
        return kind(_default(name))
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise WanConfigurationError(f"{name}={value!r} in {source} is not a number") from None
    if number < 0:
        raise WanConfigurationError(f"{name}={value!r} in {source} must not be negative")
    return number
