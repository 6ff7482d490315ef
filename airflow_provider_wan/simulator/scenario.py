"""The prompt-marker grammar: ``[[sim: key=value ...]]`` in a prompt picks a scenario from inside a DAG.

Parsing only; the state applies the resulting scenario and faults when the task is created.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from airflow_provider_wan.simulator.config import FaultSpec, Route, TaskScenario

MARKER_RE = re.compile(r"\[\[\s*sim\s*:(?P<body>.*?)\]\]", re.IGNORECASE | re.DOTALL)
OPENING_RE = re.compile(r"\[\[\s*sim\b", re.IGNORECASE)
_SECONDS_RE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?$", re.IGNORECASE)
_BYTES_RE = re.compile(r"^(\d+)\s*(k|kb|kib|m|mb|mib|g|gb|gib)?$", re.IGNORECASE)
_SECOND_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_BYTE_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}
_TRUE = {"true", "yes", "on"}
_FALSE = {"false", "no", "off", "0"}


class MarkerError(ValueError):
    """A ``[[sim: ...]]`` marker that cannot be parsed; the message says what is wrong."""


@dataclass(frozen=True)
class Marker:
    """
    What a prompt marker asks for.

    :param key: the normalised marker text; submissions carrying the same text share ``submit_faults``.
    :param scenario: lifecycle settings for the task.
    :param task_faults: faults for requests about the task (its id is filled in at creation).
    :param submit_faults: faults for the submissions that carry this same marker.
    """

    key: str
    scenario: TaskScenario
    task_faults: tuple[FaultSpec, ...]
    submit_faults: tuple[FaultSpec, ...]


def parse_seconds(value: str) -> float:
    """
    Seconds from ``1.5``, ``500ms``, ``2s``, ``5m`` or ``24h``.

    :param value: the text.
    :raises MarkerError: when it is not a duration.
    """
    match = _SECONDS_RE.match(value.strip())
    if not match:
        raise MarkerError(f"{value!r} is not a duration (examples: 0.5, 500ms, 2s, 5m, 24h)")
    return float(match.group(1)) * _SECOND_UNITS[(match.group(2) or "s").lower()]


def parse_bytes(value: str) -> int:
    """
    A byte count from ``1048576``, ``512K``, ``50M`` or ``1G`` (binary multiples).

    :param value: the text.
    :raises MarkerError: when it is not a size.
    """
    match = _BYTES_RE.match(value.strip())
    if not match:
        raise MarkerError(f"{value!r} is not a byte count (examples: 1048576, 512K, 50M, 1G)")
    unit = (match.group(2) or " ")[0].lower()
    return int(match.group(1)) * _BYTE_UNITS.get(unit, 1)


def _count(value: str) -> int:
    if not value.strip().isdigit() or int(value) < 1:
        raise MarkerError(f"{value!r} is not a positive count")
    return int(value)


def _count_or_flag(value: str) -> int | bool | None:
    """``true`` -> None (every time), ``false`` -> False (off), ``N`` -> the next N times."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return None
    if lowered in _FALSE:
        return False
    return _count(value)


def _errors(route: Route, value: str) -> FaultSpec:
    """``N:STATUS[:CODE[:RETRY_AFTER]]`` -> an error fault for the next N requests."""
    parts = value.split(":")
    if not 2 <= len(parts) <= 4:
        raise MarkerError(f"{value!r} is not N:STATUS[:CODE[:RETRY_AFTER]]")
    if not parts[1].strip().isdigit():
        raise MarkerError(f"{parts[1]!r} in {value!r} is not an HTTP status")
    status = int(parts[1])
    code = parts[2].strip() if len(parts) > 2 and parts[2].strip() else None
    retry_after = parse_seconds(parts[3]) if len(parts) > 3 else None
    return FaultSpec(route=route, status=status, code=code, count=_count(parts[0]), retry_after=retry_after)


def _repeating(route: Route, kind: str) -> Callable[[str], FaultSpec | None]:
    def build(value: str) -> FaultSpec | None:
        count = _count_or_flag(value)
        if count is False:
            return None
        return FaultSpec.model_validate({"route": route, "kind": kind, "count": count})

    return build


def _counted(route: Route, kind: str, phase: str = "before") -> Callable[[str], FaultSpec]:
    def build(value: str) -> FaultSpec:
        return FaultSpec.model_validate({"route": route, "kind": kind, "count": _count(value), "phase": phase})

    return build


def _outcome(value: str) -> str:
    upper = value.strip().upper()
    if upper not in ("SUCCEEDED", "FAILED"):
        raise MarkerError(f"outcome={value!r} must be SUCCEEDED or FAILED")
    return upper


#: Knobs that shape the task's lifecycle: name -> (scenario field, value parser).
SCENARIO_KNOBS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "outcome": ("outcome", _outcome),
    "code": ("code", str.strip),
    "message": ("message", str),
    "pending": ("pending", parse_seconds),
    "running": ("running", parse_seconds),
    "video_bytes": ("video_bytes", parse_bytes),
    "link_ttl": ("link_ttl", parse_seconds),
    "task_ttl": ("task_ttl", parse_seconds),
}

#: Knobs that inject faults into requests about the task.
TASK_FAULT_KNOBS: dict[str, Callable[[str], FaultSpec | None]] = {
    "poll_errors": lambda value: _errors("get", value),
    "poll_drops": _counted("get", "drop"),
    "poll_html": _counted("get", "html"),
    "poll_latency": lambda value: FaultSpec(route="get", kind="latency", latency=parse_seconds(value)),
    "cancel_errors": lambda value: _errors("cancel", value),
    "video_errors": lambda value: _errors("video", value),
    "video_drops": _counted("video", "drop"),
    "truncate_video": _repeating("video", "truncate"),
    "video_html": _repeating("video", "html"),
    "video_redirect": lambda value: FaultSpec(route="video", kind="redirect", location=value.strip()),
}

#: Knobs that inject faults into the submissions carrying the same marker.
SUBMIT_FAULT_KNOBS: dict[str, Callable[[str], FaultSpec]] = {
    "submit_errors": lambda value: _errors("submit", value),
    "submit_lost": _counted("submit", "drop", phase="after"),
    "submit_delay": lambda value: FaultSpec(
        route="submit", kind="latency", phase="after", latency=parse_seconds(value), count=1
    ),
}

KNOBS: tuple[str, ...] = (*SCENARIO_KNOBS, *TASK_FAULT_KNOBS, *SUBMIT_FAULT_KNOBS)


def _pairs(body: str) -> dict[str, str]:
    lexer = shlex.shlex(body, posix=True)
    lexer.whitespace += ",;"
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        tokens = list(lexer)
    except ValueError as err:
        raise MarkerError(f"cannot split it into key=value pairs ({err})") from None
    pairs: dict[str, str] = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        key = key.strip().lower().replace("-", "_")
        if not sep or not key:
            raise MarkerError(f"{token!r} is not key=value")
        if key not in KNOBS:
            raise MarkerError(f"unknown knob {key!r}; known: {', '.join(KNOBS)}")
        pairs[key] = value
    return pairs


def _build(pairs: dict[str, str]) -> Marker:
    settings = {SCENARIO_KNOBS[k][0]: SCENARIO_KNOBS[k][1](v) for k, v in pairs.items() if k in SCENARIO_KNOBS}
    if ("code" in settings or "message" in settings) and "outcome" not in settings:
        settings["outcome"] = "FAILED"
    task_faults = [TASK_FAULT_KNOBS[k](v) for k, v in pairs.items() if k in TASK_FAULT_KNOBS]
    submit_faults = [SUBMIT_FAULT_KNOBS[k](v) for k, v in pairs.items() if k in SUBMIT_FAULT_KNOBS]
    key = " ".join(f"{k}={v}" for k, v in pairs.items())
    return Marker(
        key=key,
        scenario=TaskScenario.model_validate(settings),
        task_faults=tuple(fault for fault in task_faults if fault is not None),
        submit_faults=tuple(submit_faults),
    )


def parse_marker(prompt: str) -> Marker | None:
    """
    Find and parse the ``[[sim: ...]]`` markers of a prompt (several markers merge; later keys win).

    :param prompt: the prompt as submitted.
    :return: the marker, or None when the prompt has none.
    :raises MarkerError: when a marker cannot be parsed (the message names the problem).
    """
    bodies = [match.group("body") for match in MARKER_RE.finditer(prompt)]
    if len(OPENING_RE.findall(prompt)) != len(bodies):
        raise MarkerError("it is not closed with ]]")
    if not bodies:
        return None
    pairs: dict[str, str] = {}
    for body in bodies:
        pairs.update(_pairs(body))
    try:
        return _build(pairs)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise MarkerError(problems) from None
