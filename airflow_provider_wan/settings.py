"""
The ``dashscope`` connection: its fields, regions and defaults, and how they become client settings.

Pure data (no Airflow, no HTTP), so the provider registry, the UI form and the hook share one definition.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_wan.exceptions import WanConfigurationError

#: Region name -> base URL (reference section 1.1). Aliases below map other spellings onto these.
REGIONS: dict[str, str] = {
    "singapore": "https://dashscope-intl.aliyuncs.com/api/v1",
    "beijing": "https://dashscope.aliyuncs.com/api/v1",
    "virginia": "https://dashscope-us.aliyuncs.com/api/v1",
}
REGION_ALIASES: dict[str, str] = {
    "intl": "singapore",
    "international": "singapore",
    "ap-southeast-1": "singapore",
    "cn-beijing": "beijing",
    "china": "beijing",
    "cn": "beijing",
    "us": "virginia",
    "us-east-1": "virginia",
}
DEFAULT_REGION = "singapore"
#: Region -> its Model Studio console page where a user sees their model calls (model monitoring; DashScope has
#: no page per task). Alibaba Cloud's docs link these pages per region; Beijing lives on the China site.
REGION_CONSOLES: dict[str, str] = {
    "singapore": "https://modelstudio.console.alibabacloud.com/ap-southeast-1?tab=dashboard#/model-telemetry",
    "beijing": "https://bailian.console.aliyun.com/cn-beijing?tab=model#/model-telemetry",
    "virginia": "https://modelstudio.console.alibabacloud.com/us-east-1?tab=dashboard#/model-telemetry",
}
PROTOCOL_NAMES = ("dashscope", "unified")
#: Hosts the transfer operator downloads videos from by default (DashScope's OSS result buckets).
DEFAULT_DOWNLOAD_HOSTS = ("*.aliyuncs.com",)

#: Extra fields of the connection form: name -> (label, JSON schema, description). Feeds the 3.2+ form
#: (``conn-fields``) and the 3.1 form (:func:`form_fields`). The base URL is the standard host field
#: (:data:`UI_FIELD_BEHAVIOUR`), so the form shows one Base URL input; the older ``base_url`` extra is still read
#: from the extra JSON (and wins over the host, as it always did) but is not offered as a second input.
CONNECTION_EXTRAS: dict[str, tuple[str, dict[str, Any], str]] = {
    "region": (
        "Region",
        {"type": ["string", "null"], "enum": [*REGIONS, None], "default": DEFAULT_REGION},
        "singapore (dashscope-intl), beijing (dashscope) or virginia (dashscope-us). Key, model and region must match. "
        "A Base URL overrides it.",
    ),
    "workspace": (
        "Workspace ID",
        {"type": ["string", "null"]},
        "Sent as X-DashScope-WorkSpace.",
    ),
    "protocol": (
        "Wire protocol",
        {"type": ["string", "null"], "enum": [*PROTOCOL_NAMES, None], "default": "dashscope"},
        "dashscope (native) or unified (relay POST /v2/videos/generations).",
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
        "Shared by all waits of this connection in one triggerer; the account limit is 20.",
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
    :param region: the region name, or None when an explicit base URL was given.
    :param workspace: the workspace id for ``X-DashScope-WorkSpace``.
    :param protocol: ``dashscope`` or ``unified``.
    :param connect_timeout: seconds to establish a connection.
    :param read_timeout: seconds to wait for an answer.
    :param max_retries: retries per call after the first attempt.
    :param retry_budget: ceiling in seconds on all attempts of one call.
    :param poll_qps: the shared query budget of this connection per triggerer event loop.
    :param download_hosts: host patterns the transfer may download from.
    :param source: where the settings came from (``connection <id>`` or ``environment``).
    """

    api_key: str = field(repr=False)
    base_url: str
    region: str | None = DEFAULT_REGION
    workspace: str | None = None
    protocol: str = "dashscope"
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_retries: int = 4
    retry_budget: float = 120.0
    poll_qps: float = 10.0
    download_hosts: tuple[str, ...] = DEFAULT_DOWNLOAD_HOSTS
    source: str = "connection"

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
        base_url, region = _base_url(host, port, schema, extra)
        protocol = str(extra.get("protocol") or "dashscope").strip().lower()
        if protocol not in PROTOCOL_NAMES:
            raise WanConfigurationError(f"protocol={protocol!r} in {source} is unknown; allowed: dashscope, unified")
        hosts = extra.get("download_hosts") or ()
        if isinstance(hosts, str):
            hosts = [h.strip() for h in hosts.split(",") if h.strip()]
        return cls(
            api_key=api_key,
            base_url=base_url,
            region=region,
            workspace=(str(extra["workspace"]).strip() or None) if extra.get("workspace") else None,
            protocol=protocol,
            connect_timeout=_number(extra, "connect_timeout", float, source),
            read_timeout=_number(extra, "read_timeout", float, source),
            max_retries=_number(extra, "max_retries", int, source),
            retry_budget=_number(extra, "retry_budget", float, source),
            poll_qps=_number(extra, "poll_qps", float, source),
            download_hosts=(*DEFAULT_DOWNLOAD_HOSTS, *hosts),
            source=source,
        )


def resolve_region(region: str | None) -> str:
    """
    Normalise a region name or alias.

    :param region: ``singapore``, ``beijing``, ``virginia`` or an alias such as ``cn-beijing``.
    """
    name = (region or DEFAULT_REGION).strip().lower()
    name = REGION_ALIASES.get(name, name)
    if name not in REGIONS:
        raise WanConfigurationError(
            f"region={region!r} is unknown; allowed: {', '.join(REGIONS)} (or set base_url for a gateway)"
        )
    return name


def _base_url(host: str | None, port: int | None, schema: str | None, extra: dict[str, Any]) -> tuple[str, str | None]:
    explicit = str(extra.get("base_url") or "").strip()
    if not explicit and host and host.strip():
        explicit = _url_from_host(host.strip(), port, schema, extra)
    if explicit:
        parts = urlsplit(explicit)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WanConfigurationError(f"base_url={explicit!r} is not an http(s) URL")
        return explicit.rstrip("/"), None
    region = resolve_region(extra.get("region"))
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
