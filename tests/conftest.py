"""Shared fixtures: an isolated Airflow home and metadata DB, the DashScope simulator, and a moto S3 server.

Everything is real and on loopback: real Airflow (``dag.test()``), real HTTP to the simulator, real S3 API calls
to moto in server mode.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_DAGS = REPO / "tests" / "dags"
EXAMPLE_DAGS = REPO / "example_dags"

# Airflow reads its configuration at import time: isolate it before anything imports airflow.
_HOME = Path(tempfile.mkdtemp(prefix="wan-airflow-home-"))
_DAGS = _HOME / "dags"
_DAGS.mkdir()
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_DAGS)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
os.environ.pop("DASHSCOPE_API_KEY", None)

for folder in (TEST_DAGS, EXAMPLE_DAGS):
    if folder.is_dir():
        for dag_file in folder.glob("*.py"):
            (_DAGS / dag_file.name).symlink_to(dag_file)
        for data_file in folder.glob("*.txt"):
            (_DAGS / data_file.name).symlink_to(data_file)

#: The simulator's own fixtures (wan_simulator, wan_simulator_factory, ...), as a DAG author would use them.
pytest_plugins = ["airflow_provider_wan.simulator.pytest_plugin", "tests.media_fixtures"]

TEST_API_KEY = "sk-test-0123456789abcdef"
AWS_CONN_ID = "aws_default"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session", autouse=True)
def airflow_db() -> Iterator[Path]:
    """Create the metadata DB once per session (sqlite in the temporary AIRFLOW_HOME)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ.copy()
    )
    yield _HOME
    shutil.rmtree(_HOME, ignore_errors=True)


def dashscope_conn(base_url: str, api_key: str = TEST_API_KEY, **extra: Any) -> str:
    """The JSON form of a ``dashscope`` connection pointing at ``base_url``."""
    return json.dumps({"conn_type": "dashscope", "password": api_key, "extra": {"base_url": base_url, **extra}})


@pytest.fixture(scope="session")
def _simulator_server() -> Iterator[Any]:
    from airflow_provider_wan.simulator import SimulatorConfig, WanSimulator

    with WanSimulator(SimulatorConfig(pending_seconds=0.2, running_seconds=0.5)) as sim:
        os.environ["AIRFLOW_CONN_DASHSCOPE_DEFAULT"] = dashscope_conn(sim.base_url)
        yield sim


@pytest.fixture
def simulator(_simulator_server: Any) -> Iterator[Any]:
    """The DashScope simulator on loopback, reset before each test; ``dashscope_default`` points at it."""
    _simulator_server.reset()
    os.environ["AIRFLOW_CONN_DASHSCOPE_DEFAULT"] = dashscope_conn(_simulator_server.base_url)
    yield _simulator_server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A moto S3 server on loopback; ``aws_default`` points at it through ``endpoint_url``."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ[f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
    )
    yield endpoint
    server.stop()


@pytest.fixture
def s3_client(s3_server: str) -> Any:
    """A boto3 S3 client talking to the moto server (for setting up and reading back)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=s3_server,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture
def bucket(s3_client: Any, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket for this test."""
    name = "wan-" + request.node.name.lower().replace("_", "-")[:40].strip("-") + f"-{free_port()}"
    s3_client.create_bucket(Bucket=name)
    return name


_DAG_FILES: dict[str, Path] = {}


def _dags_in(path: Path) -> dict[str, Any]:
    from airflow.sdk import DAG

    spec = importlib.util.spec_from_file_location(f"_wan_test_dag_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {value.dag_id: value for value in vars(module).values() if isinstance(value, DAG)}


def load_dag(dag_id: str) -> Any:
    """
    Import the DAG ``dag_id`` afresh from the test dags folder (files of tests/dags and example_dags).

    Fresh every time: ``dag.test(run_conf=...)`` leaves the run's params on the DAG object it ran.
    """
    if dag_id not in _DAG_FILES:
        for path in sorted(_DAGS.glob("*.py")):
            for found in _dags_in(path):
                _DAG_FILES.setdefault(found, path)
    if dag_id not in _DAG_FILES:
        raise LookupError(f"no DAG {dag_id!r} in {_DAGS}")
    return _dags_in(_DAG_FILES[dag_id])[dag_id]


@pytest.fixture
def run_dag() -> Any:
    """Run a DAG with ``dag.test()`` (triggers run inline) and return the DagRun."""

    def _run(dag_id: str, conf: dict[str, Any] | None = None) -> Any:
        return load_dag(dag_id).test(run_conf=conf)

    return _run


def task_states(dag_run: Any) -> dict[str, str]:
    """task_id -> state of every task instance of ``dag_run`` (mapped tasks keyed ``task_id[index]``)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = (
            session.query(TaskInstance)
            .filter(TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id)
            .all()
        )
        return {(ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): str(ti.state) for ti in tis}


def xcoms(dag_run: Any, task_id: str, key: str = "return_value") -> list[Any]:
    """Every value of XCom ``key`` of ``task_id`` in ``dag_run`` (one per mapped instance, in map index order)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(XComModel)
            .filter(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
            .order_by(XComModel.map_index)
            .all()
        )
        return [_decoded(row.value) for row in rows]


def xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    """The value of XCom ``key`` of an unmapped ``task_id`` in ``dag_run``, or None."""
    values = xcoms(dag_run, task_id, key)
    return values[0] if values else None


def _decoded(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def asset_events(uri: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(source dag, source task, source run, extra) of every asset event recorded for ``uri``."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.uri == uri)
            .all()
        )
        return [(r.source_dag_id, r.source_task_id, r.source_run_id, dict(r.extra or {})) for r in rows]
