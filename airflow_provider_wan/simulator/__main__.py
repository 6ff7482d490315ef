"""Command line of the Wan simulator: ``python -m airflow_provider_wan.simulator --port 8040``.

Serves until Ctrl+C or SIGTERM; ``--port 0`` picks a free port and ``--port-file`` tells scripts which.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from airflow_provider_wan.simulator.config import SimulatorConfig
from airflow_provider_wan.simulator.scenario import MarkerError, parse_bytes
from airflow_provider_wan.simulator.server import WanSimulator

#: CLI flag -> SimulatorConfig field, for the flags that map one to one.
_FIELDS = {
    "prefix": "prefix",
    "protocols": "protocols",
    "api_key": "api_keys",
    "pending_seconds": "pending_seconds",
    "running_seconds": "running_seconds",
    "time_scale": "time_scale",
    "task_ttl": "task_ttl_seconds",
    "link_ttl": "link_ttl_seconds",
    "submit_rps": "submit_rps",
    "concurrency": "concurrency",
    "video_bytes": "video_bytes",
    "allow_unknown_models": "allow_unknown_models",
    "public_url": "public_url",
    "utc_offset_hours": "utc_offset_hours",
    "random_seed": "random_seed",
    "fetch_inputs": "fetch_inputs",
    "fetch_audio": "fetch_audio",
    "fetch_timeout": "fetch_timeout_seconds",
}


def _byte_count(value: str) -> int:
    try:
        return parse_bytes(value)
    except MarkerError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _model_limit(value: str) -> tuple[str, dict[str, str]]:
    """``MODEL:concurrency=N,submit_rps=R`` (``*`` for every model) -> (model, fields)."""
    model, sep, pairs = value.partition(":")
    fields = dict(pair.split("=", 1) for pair in pairs.split(",") if "=" in pair)
    if not sep or not model.strip() or not fields or len(fields) != len([p for p in pairs.split(",") if p.strip()]):
        raise argparse.ArgumentTypeError(f"{value!r} is not MODEL:concurrency=N,submit_rps=R (MODEL may be '*')")
    return model.strip(), {key.strip(): raw.strip() for key, raw in fields.items()}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (flags mirror :class:`SimulatorConfig`)."""
    parser = argparse.ArgumentParser(
        prog="wan-simulator", description="Local DashScope Wan video simulator (no key, no bill)."
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    add("--port", type=int, default=8040, help="port; 0 picks a free one (default 8040)")
    add("--port-file", type=Path, help="write the chosen port to this file once listening")
    add("--config", type=Path, help="a JSON file of SimulatorConfig fields; flags override it")
    add("--prefix", help="native API prefix (default /api/v1; e.g. /qwen/api/v1)")
    add("--protocols", help="comma list of dashscope,unified (default both)")
    add("--api-key", action="append", help="accept only this key (repeatable; default: any non-empty key)")
    add("--pending-seconds", type=float, help="seconds PENDING before a task may take a slot (default: 2-10 s drawn)")
    add("--running-seconds", type=float, help="seconds RUNNING (default: 60-300 s drawn, longer for bigger videos)")
    add("--time-scale", type=float, help="factor on the drawn timings, e.g. 0.01 for 100x faster (default 1)")
    add("--task-ttl", type=float, help="seconds until a task answers UNKNOWN (default 86400)")
    add("--link-ttl", type=float, help="seconds a video link stays valid after the task ends (default 86400)")
    add("--submit-rps", type=float, help="submissions/s per key, every model (default: the model's, 5 or 2)")
    add(
        "--concurrency",
        "--max-concurrent-tasks",
        type=int,
        help="tasks RUNNING at once per key, every model; others wait PENDING (default: the model's, 5 or 2)",
    )
    add(
        "--model-limit",
        action="append",
        type=_model_limit,
        metavar="MODEL:concurrency=N,submit_rps=R",
        help="raise or lower one model's account limits ('*' for every model; repeatable)",
    )
    add("--query-qps", type=float, help="polls+lists per second per key before 429 (default 20; 0: unlimited)")
    add("--video-bytes", type=_byte_count, help="serve synthetic videos of this size, e.g. 50M (default: sample MP4)")
    add("--allow-unknown-models", action="store_true", default=None, help="accept models outside the table")
    add("--public-url", help="root URL written into video links (default: the request's)")
    add("--utc-offset-hours", type=float, help="zone of the task timestamps (default 8, Beijing)")
    add("--random-seed", type=int, help="seed for rate-based faults")
    add(
        "--fetch-inputs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fetch and check image and video inputs as DashScope does (default on; --no-fetch-inputs: unread)",
    )
    add(
        "--fetch-audio",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fetch and check soundtracks too (default on; --no-fetch-audio: taken unread)",
    )
    add("--fetch-timeout", type=float, help="seconds one input may take to download (default 180)")
    add("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug", "trace"])
    return parser


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """
    The settings: the ``--config`` file, then each flag given.

    :param args: the parsed arguments.
    """
    settings: dict[str, Any] = json.loads(args.config.read_text()) if args.config else {}
    for flag, field in _FIELDS.items():
        value = getattr(args, flag)
        if value is not None:
            settings[field] = value
    if args.query_qps is not None:
        settings["query_qps"] = args.query_qps or None
    if args.model_limit:
        limits = dict(settings.get("model_limits") or {})
        for model, fields in args.model_limit:
            limits[model] = {**limits.get(model, {}), **fields}
        settings["model_limits"] = limits
    return SimulatorConfig.model_validate(settings)


def _write_port(path: Path, port: int) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(f"{port}\n")
    os.replace(partial, path)


def _banner(simulator: WanSimulator) -> str:
    config = simulator.config
    parts = []
    if "dashscope" in config.protocols:
        parts.append(f"base URL {simulator.base_url}")
    if "unified" in config.protocols:
        parts.append(f"unified {simulator.unified_url}")
    parts.append(f"admin {simulator.root_url}/_simulator/")
    return "Wan simulator ready: " + "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the simulator until interrupted.

    :param argv: the arguments (default: ``sys.argv[1:]``).
    :return: the exit status.
    """
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except (ValidationError, ValueError, OSError) as err:
        print(f"wan-simulator: invalid settings: {err}", file=sys.stderr)
        return 2
    level = logging.getLevelName(args.log_level.upper())
    logging.basicConfig(level=level if isinstance(level, int) else 5, format="%(asctime)s %(levelname)s %(message)s")
    simulator = WanSimulator(config, host=args.host, port=args.port, log_level=args.log_level, access_log=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with simulator:
        if args.port_file:
            _write_port(args.port_file, simulator.port)
        print(_banner(simulator), flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
