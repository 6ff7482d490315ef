"""
The loopback servers the benchmarks talk to, each in its own process (own GIL, own memory).

* the DashScope simulator: ``python -m airflow_provider_wan.simulator --port 0 --port-file F``;
* S3: moto in server mode (``python -m moto.server``), which keeps every object in its own memory.

Also the environment a measured child process needs: an isolated ``AIRFLOW_HOME`` and the ``dashscope`` and
``aws`` connections as ``AIRFLOW_CONN_<ID>`` JSON variables.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
API_KEY = "sk-bench-0123456789abcdef"
MIB = 1024 * 1024
#: Every benchmark request goes to loopback; proxies from the environment must not interfere.
_NO_PROXY = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
#: Bytecode of every process the benchmarks start is cached here, outside the repository and the virtualenv, so
#: that each fresh process does not compile Airflow again (``PYTHONDONTWRITEBYTECODE`` would make it).
PYCACHE = Path(tempfile.gettempdir()) / "wan-bench-pycache"


def base_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child: loopback without proxies, bytecode cached outside the repo."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(_NO_PROXY, PYTHONPYCACHEPREFIX=str(PYCACHE), **extra)
    return env


def free_port() -> int:
    """A free TCP port on loopback (bound, read, released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> float:
    """Resident set size of a process, MiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class ServerProcess:
    """A server in a child process, stopped (SIGTERM, then SIGKILL) when the ``with`` block ends."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile(prefix=f"wan-bench-{name}-")  # noqa: SIM115  closed by stop()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, stdout=self._log, stderr=subprocess.STDOUT, env=self.env, cwd=str(REPO), start_new_session=True
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited early:\n{self.output()[-3000:]}")

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Simulator(ServerProcess):
    """The DashScope simulator in its own process; ``base_url`` is its native API root."""

    def __init__(self, *flags: str) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="wan-bench-sim-")
        self.port_file = Path(self._dir.name) / "port"
        argv = [sys.executable, "-m", "airflow_provider_wan.simulator", "--port", "0"]
        argv += ["--port-file", str(self.port_file), "--log-level", "warning", *flags]
        super().__init__("simulator", argv, env=base_env())
        self.root = ""

    def __enter__(self) -> Simulator:
        self.start()
        deadline = time.monotonic() + 60
        while not (self.port_file.exists() and self.port_file.read_text().strip()):
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError("the simulator did not start within 60 s")
            time.sleep(0.05)
        self.root = f"http://127.0.0.1:{int(self.port_file.read_text())}"
        self.admin = httpx.Client(base_url=self.root, timeout=30, trust_env=False)
        return self

    def __exit__(self, *exc: object) -> None:
        self.admin.close()
        self.stop()
        self._dir.cleanup()

    @property
    def base_url(self) -> str:
        return f"{self.root}/api/v1"

    def counters(self) -> dict[str, Any]:
        return dict(self.admin.get("/_simulator/counters").json())

    def reset(self) -> None:
        self.admin.post("/_simulator/reset").raise_for_status()

    def configure(self, **fields: Any) -> None:
        self.admin.post("/_simulator/config", json=fields).raise_for_status()

    def submit_many(self, prompts: Sequence[str]) -> list[str]:
        """Create tasks over one keep-alive connection (the submit side is not what is measured)."""
        headers = {"Authorization": f"Bearer {API_KEY}", "X-DashScope-Async": "enable"}
        ids = []
        with httpx.Client(base_url=self.base_url + "/", headers=headers, timeout=30, trust_env=False) as client:
            for prompt in prompts:
                response = client.post(
                    "services/aigc/video-generation/video-synthesis",
                    json={"model": "wan2.6-t2v", "input": {"prompt": prompt}},
                )
                response.raise_for_status()
                ids.append(response.json()["output"]["task_id"])
        return ids

    def wait_succeeded(self, task_id: str, timeout: float = 30) -> None:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.admin.get(f"/api/v1/tasks/{task_id}", headers=headers).json()["output"]
            if task["task_status"] == "SUCCEEDED":
                return
            if task["task_status"] not in ("PENDING", "RUNNING"):
                raise RuntimeError(f"task {task_id} ended {task['task_status']}")
            time.sleep(0.02)
        raise RuntimeError(f"task {task_id} did not succeed within {timeout} s")


class MotoS3(ServerProcess):
    """moto's S3 in server mode, in its own process (objects live in that process's memory)."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        super().__init__("moto", argv, env=base_env(**env))
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> MotoS3:
        self.start()
        deadline = time.monotonic() + 60
        while True:
            self.check_alive()
            try:
                httpx.get(f"{self.endpoint}/moto-api/", timeout=2, trust_env=False)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto did not start within 60 s") from None
                time.sleep(0.1)
        import boto3

        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        return self

    def reset(self) -> None:
        """Forget every bucket and object (moto's whole state), so its memory does not pile up between runs."""
        httpx.post(f"{self.endpoint}/moto-api/reset", timeout=60, trust_env=False).raise_for_status()

    def fresh_bucket(self, name: str) -> str:
        self.reset()
        self.client.create_bucket(Bucket=name)
        return name

    def object_size(self, bucket: str, key: str) -> int:
        return int(self.client.head_object(Bucket=bucket, Key=key)["ContentLength"])


def child_env(airflow_home: str, **connections: dict[str, Any]) -> dict[str, str]:
    """
    The environment of a measured child: isolated Airflow home, quiet logs, connections as JSON variables.

    :param airflow_home: a temporary directory.
    :param connections: conn_id -> connection dict.
    """
    env = {k: v for k, v in base_env().items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(
        AIRFLOW_HOME=airflow_home,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="True",
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
        AWS_DEFAULT_REGION="us-east-1",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
    )
    env.pop("DASHSCOPE_API_KEY", None)
    for conn_id, conn in connections.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    return env


def dashscope_conn(base_url: str, **extra: Any) -> dict[str, Any]:
    return {"conn_type": "dashscope", "password": API_KEY, "extra": {"base_url": base_url, **extra}}


def aws_conn(endpoint: str) -> dict[str, Any]:
    return {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }


def run_child(argv: Sequence[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """
    Run a worker script and return the JSON it prints on its ``RESULT`` line.

    :raises RuntimeError: when it fails or prints no result.
    """
    done = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, env=env, timeout=timeout, cwd=str(REPO)
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"{' '.join(argv)} failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        )
    return dict(json.loads(lines[-1][len("RESULT ") :]))
