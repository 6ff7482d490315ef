"""Pytest fixtures for the Wan simulator: one server per session, reset before every test.

Enable with ``pytest_plugins = ["airflow_provider_wan.simulator.pytest_plugin"]`` in a top-level conftest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_wan.simulator.config import SimulatorConfig
from airflow_provider_wan.simulator.server import WanSimulator

#: Fast lifecycles for tests: a task is PENDING 0.05 s, then RUNNING 0.1 s. Account limits stay as DashScope's
#: (per key and model: 5 or 2 submissions/s and tasks at once; 20 queries/s): a test must not pass only because
#: a limit is off.
TEST_SETTINGS: dict[str, Any] = {"pending_seconds": 0.05, "running_seconds": 0.1}


@pytest.fixture(scope="session")
def wan_simulator_config() -> SimulatorConfig:
    """The settings of the session's simulator; override this fixture to change them."""
    return SimulatorConfig(**TEST_SETTINGS)


@pytest.fixture(scope="session")
def wan_simulator_session(wan_simulator_config: SimulatorConfig) -> Iterator[WanSimulator]:
    """
    One simulator for the whole session, on a free port.

    :param wan_simulator_config: its settings.
    """
    with WanSimulator(wan_simulator_config) as simulator:
        yield simulator


@pytest.fixture
def wan_simulator(wan_simulator_session: WanSimulator) -> WanSimulator:
    """
    The session's simulator, reset (no tasks, counters at zero, no faults, startup settings).

    :param wan_simulator_session: the shared server.
    """
    wan_simulator_session.reset()
    return wan_simulator_session


@pytest.fixture
def wan_simulator_factory() -> Iterator[Callable[..., WanSimulator]]:
    """
    A factory for extra started simulators with their own settings (prefix, keys, ...); stopped after the test.

    ``make(config=None, **settings)``: without a config, the fast :data:`TEST_SETTINGS` apply under ``settings``.
    """
    started: list[WanSimulator] = []

    def make(config: SimulatorConfig | None = None, **settings: Any) -> WanSimulator:
        simulator = WanSimulator(config or SimulatorConfig(**TEST_SETTINGS), **settings).start()
        started.append(simulator)
        return simulator

    yield make
    for simulator in started:
        simulator.stop()
