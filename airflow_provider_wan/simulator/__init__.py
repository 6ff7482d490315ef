"""A local DashScope Wan video simulator (text, image, first-and-last-frame and reference to video): develop and
test DAGs without an API key or a bill.

Run ``python -m airflow_provider_wan.simulator`` (or ``wan-simulator``), or ``with WanSimulator() as sim:``.
"""

from __future__ import annotations

from airflow_provider_wan.simulator.app import create_app
from airflow_provider_wan.simulator.config import FaultSpec, SimulatorConfig, TaskScenario
from airflow_provider_wan.simulator.scenario import Marker, MarkerError, parse_marker
from airflow_provider_wan.simulator.server import WanSimulator
from airflow_provider_wan.simulator.state import ManualClock, SimulatorState, SystemClock
from airflow_provider_wan.simulator.video import (
    VideoShape,
    iter_synthetic_video,
    render_available,
    rendered_video,
    sample_video_bytes,
    synthetic_video_sha256,
)

__all__ = [
    "FaultSpec",
    "ManualClock",
    "Marker",
    "MarkerError",
    "SimulatorConfig",
    "SimulatorState",
    "SystemClock",
    "TaskScenario",
    "VideoShape",
    "WanSimulator",
    "create_app",
    "iter_synthetic_video",
    "parse_marker",
    "render_available",
    "rendered_video",
    "sample_video_bytes",
    "synthetic_video_sha256",
]
