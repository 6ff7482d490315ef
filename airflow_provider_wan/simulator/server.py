"""Run the simulator in a background thread: ``with WanSimulator() as sim:`` serves on a free local port.

Tests and scripts drive the same state directly (counters, faults, task scenarios) without HTTP.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from airflow_provider_wan.simulator.admin import describe, describe_all
from airflow_provider_wan.simulator.app import create_app
from airflow_provider_wan.simulator.config import FaultSpec, SimulatorConfig, TaskScenario
from airflow_provider_wan.simulator.state import Clock, SimulatorState
from airflow_provider_wan.simulator.video import video_body

_INTENDED_CLOSE = "ASGI callable returned without completing response."


class _HideInjectedDrops(logging.Filter):
    """Dropped and truncated answers are injected on purpose; uvicorn need not report them as errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _INTENDED_CLOSE


logging.getLogger("uvicorn.error").addFilter(_HideInjectedDrops())


def bind_socket(host: str, port: int) -> socket.socket:
    """
    A listening-ready TCP socket; port 0 picks a free port.

    :param host: the interface.
    :param port: the port, or 0.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class WanSimulator:
    """
    A local DashScope Wan server (both wire flavours) running in a background thread.

    :param config: the server-wide settings (default: :class:`SimulatorConfig` defaults).
    :param host: the interface to listen on.
    :param port: the port; 0 picks a free one (read it back from :attr:`port`).
    :param clock: the time source (for example :class:`ManualClock` in tests).
    :param log_level: uvicorn's log level.
    :param access_log: log every request (uvicorn's access log).
    :param settings: individual :class:`SimulatorConfig` fields overriding ``config``,
        e.g. ``WanSimulator(pending_seconds=0.1, running_seconds=0.3)``.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        log_level: str = "warning",
        access_log: bool = False,
        **settings: Any,
    ) -> None:
        base = config or SimulatorConfig()
        if settings:
            base = SimulatorConfig.model_validate({**base.model_dump(), **settings})
        self.state = SimulatorState(base, clock)
        self.app = create_app(self.state)
        self.host = host
        self.log_level = log_level
        self.access_log = access_log
        self._requested_port = port
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ----------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> WanSimulator:
        """
        Start serving and wait until the port accepts requests.

        :param timeout: seconds to wait for the server to come up.
        :raises RuntimeError: when it does not start.
        """
        if self._thread is not None:
            return self
        self.state.closing.clear()
        sock = bind_socket(self.host, self._requested_port)
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,
            log_level=self.log_level,
            access_log=self.access_log,
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=1,
            timeout_keep_alive=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"wan-simulator-{self._port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Wan simulator did not start on {self.host}:{self._port}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """
        Stop serving and wait for the thread to end.

        :param timeout: seconds to wait before forcing the exit.
        """
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self.state.closing.set()
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        self._server = self._thread = None

    def __enter__(self) -> WanSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # addresses ----------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port served on (known once started)."""
        if self._port is None:
            raise RuntimeError("the Wan simulator is not started")
        return self._port

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT`` (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The native API base: root + prefix, e.g. ``http://127.0.0.1:PORT/api/v1``."""
        return self.root_url + self.state.config.prefix

    @property
    def unified_url(self) -> str:
        """The unified flavour's submit URL, ``{root}/v2/videos/generations``."""
        return self.root_url + "/v2/videos/generations"

    @property
    def config(self) -> SimulatorConfig:
        """The settings in force."""
        return self.state.config

    # control ------------------------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        """The counters (see ``GET /_simulator/counters``)."""
        return self.state.counters()

    def reset(self) -> None:
        """Forget tasks, counters and faults, and return to the startup settings."""
        self.state.reset()

    def configure(self, **changes: Any) -> SimulatorConfig:
        """
        Change settings at runtime.

        :param changes: :class:`SimulatorConfig` fields (not ``prefix``/``protocols``).
        """
        return self.state.configure(changes)

    def add_fault(self, route: str, kind: str = "error", **spec: Any) -> str:
        """
        Inject a fault.

        :param route: submit, get, cancel, list, video or any.
        :param kind: error, drop, latency, html, truncate, redirect or fail.
        :param spec: further :class:`FaultSpec` fields (status, code, count, rate, phase, ...).
        :return: the fault's id.
        """
        return self.state.add_fault(FaultSpec.model_validate({"route": route, "kind": kind, **spec}))

    def remove_fault(self, fault_id: str) -> bool:
        """
        Remove one fault.

        :param fault_id: the id from :meth:`add_fault`.
        """
        return self.state.remove_fault(fault_id)

    def clear_faults(self) -> None:
        """Remove every fault."""
        self.state.clear_faults()

    def task(self, task_id: str) -> dict[str, Any] | None:
        """
        The debug view of a task (see ``GET /_simulator/tasks/{id}``), or None when not stored.

        :param task_id: the task.
        """
        return describe(self.state, task_id)

    def tasks(self) -> list[dict[str, Any]]:
        """The debug view of every stored task, oldest first."""
        return describe_all(self.state)

    def inputs(self, task_id: str) -> list[dict[str, Any]] | None:
        """
        What the simulator fetched for a task's media inputs, one record per input (URL without query, status,
        ``bytes``, ``format``, ``width``/``height``, ``fetches``, ``error``); None when the task is not stored.

        :param task_id: the task.
        """
        found = self.task(task_id)
        return None if found is None else list(found["inputs"])

    def wait_for_inputs(self, task_id: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """
        Wait until a task's media inputs are all fetched (in wall time: with a :class:`ManualClock`, call this before
        advancing the clock so the task's timeline does not depend on how fast the inputs were served).

        :param task_id: the task.
        :param timeout: seconds to wait.
        :return: the input records.
        :raises LookupError: when the task is not stored.
        :raises TimeoutError: when the fetches did not end in time.
        """
        deadline = time.monotonic() + timeout
        while True:
            done = self.state.fetch_done(task_id)
            if done is None:
                raise LookupError(f"no task {task_id}")
            if done:
                return self.inputs(task_id) or []
            if time.monotonic() > deadline:
                raise TimeoutError(f"the inputs of task {task_id} were not fetched within {timeout:g} s")
            time.sleep(0.01)

    def video_bytes(self, task_id: str) -> bytes | None:
        """
        The bytes a task's video link serves (rendered to its size, duration and sound, or synthetic), or None
        when the task is not stored. Mind a large synthetic ``video_bytes``: it is joined in memory.

        :param task_id: the task.
        """
        found = self.state.inspect(task_id)
        return None if found is None else video_body(found[0].task).read()

    def update_task(self, task_id: str, **changes: Any) -> dict[str, Any] | None:
        """
        Change a task's scenario after submission.

        :param task_id: the task.
        :param changes: :class:`TaskScenario` fields (outcome, code, message, pending, running, ...).
        :return: the new debug view, or None when the task is unknown.
        """
        if self.state.update_task(task_id, TaskScenario.model_validate(changes)) is None:
            return None
        return self.task(task_id)
