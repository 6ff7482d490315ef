"""
``make demo``: generate a video with ``example_wan_text_to_video`` and land it in S3, all on this machine.

No API key, no bill, no cloud account: the DAG runs in a real Airflow (``airflow dags test``) against the local
DashScope simulator and a local S3 (moto in server mode), both started here on free loopback ports and stopped
again on the way out, also when something fails. The generate task really defers, the trigger really polls, the
transfer really streams the video into S3; then the video is downloaded from S3 into ``demo-output/`` so you can
open it in a video player.

Usage::

    python demo/run.py [--prompt TEXT] [--duration N] [--size W*H] [--keep] [--verbose]

Airflow's own output goes to ``.demo/demo.log`` (``--verbose`` also streams it); the console shows what matters.
Exit status 0 on success; otherwise one line on stderr says why.

This is the repository's demo, not part of the installed package: it orchestrates processes around a checkout.
The simulator it starts ships with the package (``python -m airflow_provider_wan.simulator``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any

DAG_ID = "example_wan_text_to_video"
DAG_FILE = f"{DAG_ID}.py"
BUCKET = "wan-videos"
#: A fake key: the simulator takes any non-empty key. Real keys start with sk- too, so make it obviously fake.
DEMO_API_KEY = "sk-local-demo-not-a-real-key"
S3_REGION = "us-east-1"
S3_ACCESS_KEY = "demo"
S3_SECRET_KEY = "demo-secret"  # the local moto server accepts any credentials
LOOPBACK = "127.0.0.1"
SERVER_START_TIMEOUT = 60.0
MIGRATE_TIMEOUT = 300.0
STOP_TIMEOUT = 5.0

#: Environment variables the child Airflow must not inherit: the demo runs against its own home, DB and servers.
_INHERITED_PREFIXES = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "DASHSCOPE_", "AWS_")
_INHERITED_NAMES = ("AIRFLOW_HOME", "AIRFLOW_CONFIG")

_SUBMITTED = re.compile(
    r"Submitted DashScope task (?P<id>[\w-]+): model (?P<model>\S+), size (?P<size>\S+), (?P<s>\d+) s"
)
_DEFERRING = re.compile(r"Deferring: the triggerer now polls task (?P<id>[\w-]+) every (?P<every>[\d.]+) s")
_TRANSITION = re.compile(r"Task (?P<id>[\w-]+): (?P<change>(?:[A-Z]+ → )?[A-Z]+) after (?P<after>\d+) s")
_SAVED = re.compile(r"Saved (?P<bytes>\d+) bytes to (?P<uri>s3://\S+) in")
_ASSET = re.compile(r"Emitted an asset event for (?P<uri>s3://\S+) through alias '(?P<alias>[^']+)'")
_RUN_DONE = re.compile(r"DagRun Finished: dag_id=(?P<dag>[\w.-]+),.*? state=(?P<state>\w+)")
_EXCEPTION = re.compile(r"^(?:[\w.]+\.)?(?P<name>\w*(?:Exception|Error|Exit)): (?P<message>.+)$")
_TIMESTAMP_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")


class DemoError(Exception):
    """A failure explained in one line."""


# --------------------------------------------------------------------------------------------------- console


class Console:
    """What the user sees: short lines on stdout; everything Airflow prints goes to the log file."""

    def __init__(self, log_path: Path, verbose: bool) -> None:
        self.log_path = log_path
        self.verbose = verbose
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log: IO[str] = log_path.open("w", encoding="utf-8")

    def say(self, text: str = "") -> None:
        print(text, flush=True)

    def step(self, label: str, text: str) -> None:
        self.say(f"  {label:<12}{text}")

    def write_log(self, line: str) -> None:
        self.log.write(line)
        self.log.flush()
        if self.verbose:
            sys.stdout.write(line)
            sys.stdout.flush()

    def close(self) -> None:
        self.log.close()


def _shown(path: Path) -> str:
    """A path relative to the current directory when it is below it (shorter to read, still clickable)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------------- processes


def free_port() -> int:
    """A free TCP port on loopback (the servers get fresh ports on every run)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _http(url: str, method: str = "GET", timeout: float = 5.0) -> Any:
    """GET (or POST) a loopback URL without any proxy; the JSON answer, or the raw bytes when it is not JSON."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with opener.open(request, timeout=timeout) as response:
        body = response.read()
    try:
        return json.loads(body)
    except ValueError:
        return body


@dataclass
class Server:
    """A child process in its own process group (so stopping it stops whatever it started)."""

    name: str
    process: subprocess.Popen[Any]
    log_path: Path
    url: str = ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it when it does not exit in time."""
        if self.process.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(STOP_TIMEOUT)
                return
            except subprocess.TimeoutExpired:
                continue

    def tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text[-lines:])


def _spawn(name: str, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> Server:
    log = log_path.open("wb")
    try:
        process = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
    finally:
        log.close()
    return Server(name, process, log_path)


def start_simulator(workdir: Path, pending: float, running: float) -> Server:
    """The DashScope simulator on a free loopback port (``--port 0 --port-file``)."""
    port_file = workdir / "simulator.port"
    port_file.unlink(missing_ok=True)
    server = _spawn(
        "DashScope simulator",
        [
            sys.executable, "-m", "airflow_provider_wan.simulator", "--host", LOOPBACK, "--port", "0",
            "--port-file", str(port_file), "--pending-seconds", str(pending), "--running-seconds", str(running),
            "--log-level", "warning",
        ],
        workdir / "simulator.log",
    )  # fmt: skip
    return _with_port_file(server, port_file)


def _with_port_file(server: Server, port_file: Path) -> Server:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if port_file.is_file() and port_file.read_text().strip():
            server.url = f"http://{LOOPBACK}:{int(port_file.read_text().strip())}"
            return server
        if not server.alive():
            raise DemoError(f"the {server.name} exited at start: {server.tail()}")
        time.sleep(0.05)
    server.stop()
    raise DemoError(f"the {server.name} did not start within {SERVER_START_TIMEOUT:.0f} s: {server.tail()}")


def start_s3(workdir: Path) -> Server:
    """moto in server mode (a local S3 API) on a free loopback port; retried on another port if that one is taken."""
    last = ""
    for _ in range(3):
        port = free_port()
        server = _spawn(
            "local S3 server (moto)",
            [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
            workdir / "s3.log",
        )
        server.url = f"http://{LOOPBACK}:{port}"
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline and server.alive():
            try:
                _http(f"{server.url}/moto-api/data.json", timeout=2)
                return server
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        last = server.tail()
        server.stop()
    raise DemoError(f"the local S3 server (moto) did not start: {last or 'no output'}; is moto installed (make venv)?")


# --------------------------------------------------------------------------------------------------- Airflow


def airflow_version() -> str:
    try:
        return version("apache-airflow")
    except PackageNotFoundError:
        return "unknown"


def child_env(home: Path, dags: Path, simulator_url: str, s3_url: str) -> dict[str, str]:
    """The environment of the Airflow child: its own home and DB, and connections to the local servers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_PREFIXES) and k not in _INHERITED_NAMES}
    loopback = f"{LOOPBACK},localhost"
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_DASHSCOPE_DEFAULT": json.dumps(
                {"conn_type": "dashscope", "password": DEMO_API_KEY, "extra": {"base_url": f"{simulator_url}/api/v1"}}
            ),
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                {
                    "conn_type": "aws",
                    "login": S3_ACCESS_KEY,
                    "password": S3_SECRET_KEY,
                    "extra": {"endpoint_url": s3_url, "region_name": S3_REGION},
                }
            ),
            "AWS_DEFAULT_REGION": S3_REGION,
            "NO_PROXY": loopback,
            "no_proxy": loopback,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _prepare_home(workdir: Path, repo_dag: Path) -> tuple[Path, Path]:
    """``.demo/airflow`` (AIRFLOW_HOME) and ``.demo/dags`` holding only the demo's DAG file (fast to parse)."""
    home = workdir / "airflow"
    dags = workdir / "dags"
    home.mkdir(parents=True, exist_ok=True)
    dags.mkdir(parents=True, exist_ok=True)
    for stale in dags.iterdir():
        if stale.is_file() or stale.is_symlink():
            stale.unlink()
    link = dags / DAG_FILE
    try:
        link.symlink_to(repo_dag)
    except OSError:
        link.write_bytes(repo_dag.read_bytes())
    return home, dags


def find_dag_file() -> Path:
    for folder in (Path(__file__).resolve().parent.parent / "example_dags", Path.cwd() / "example_dags"):
        if (folder / DAG_FILE).is_file():
            return folder / DAG_FILE
    raise DemoError(f"cannot find example_dags/{DAG_FILE}: run the demo from the airflow-provider-wan checkout")


def _migrate_stamp(home: Path) -> Path:
    return home / ".demo-migrated"


def start_migration(home: Path, env: dict[str, str], log_path: Path) -> Server | None:
    """``airflow db migrate`` in the background, unless this home was already migrated by this Airflow version."""
    stamp = _migrate_stamp(home)
    if (home / "airflow.db").is_file() and stamp.is_file() and stamp.read_text().strip() == airflow_version():
        return None
    return _spawn("airflow db migrate", [sys.executable, "-m", "airflow", "db", "migrate"], log_path, env)


def finish_migration(
    migration: Server | None, home: Path, env: dict[str, str], console: Console, servers: list[Server]
) -> None:
    """Wait for the migration; on failure start the demo's database afresh, once."""
    if migration is None:
        return
    try:
        code = migration.process.wait(MIGRATE_TIMEOUT)
    except subprocess.TimeoutExpired:
        migration.stop()
        raise DemoError(
            f"airflow db migrate took over {MIGRATE_TIMEOUT:.0f} s; see {_shown(migration.log_path)}"
        ) from None
    console.write_log("$ airflow db migrate\n" + migration.log_path.read_text(encoding="utf-8", errors="replace"))
    if code != 0:
        # A database left by another Airflow version (or a broken one): start this demo home afresh, once.
        (home / "airflow.db").unlink(missing_ok=True)
        retry = start_migration(home, env, migration.log_path)
        if retry is not None:
            servers.append(retry)
        if retry is None or retry.process.wait(MIGRATE_TIMEOUT) != 0:
            raise DemoError(f"airflow db migrate failed: {migration.tail(3)}")
        console.write_log(migration.log_path.read_text(encoding="utf-8", errors="replace"))
    _migrate_stamp(home).write_text(airflow_version())


# --------------------------------------------------------------------------------------------------- the run


@dataclass
class RunOutput:
    """What the DAG run printed that the summary needs."""

    exit_code: int = 0
    seconds: float = 0.0
    task_id: str | None = None
    deferred: bool = False
    poll_every: str = "?"
    transitions: list[tuple[str, int]] = field(default_factory=list)
    saved_uri: str | None = None
    run_state: str | None = None
    errors: list[str] = field(default_factory=list)


def run_dag(env: dict[str, str], conf: dict[str, Any], console: Console, timeout: float) -> RunOutput:
    """``airflow dags test`` the DAG; stream its output to the log and the milestones to the console."""
    argv = [sys.executable, "-m", "airflow", "dags", "test", DAG_ID, "--conf", json.dumps(conf)]
    console.write_log(f"\n$ airflow dags test {DAG_ID} --conf '{json.dumps(conf)}'\n")
    out = RunOutput(poll_every=f"{conf.get('poll_interval', 15):g}")
    started = time.monotonic()
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        start_new_session=True, text=True, encoding="utf-8", errors="replace", bufsize=1,
    )  # fmt: skip
    child = Server("airflow dags test", process, console.log_path)
    watchdog = threading.Timer(timeout, child.stop)  # a silent hang ends the output stream too
    watchdog.daemon = True
    watchdog.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:
            console.write_log(line)
            _milestone(line.rstrip("\n"), out, console)
        out.exit_code = process.wait()
        if time.monotonic() - started >= timeout:
            raise DemoError(f"the DAG run did not finish within {timeout:.0f} s")
    finally:
        watchdog.cancel()
        child.stop()
    out.seconds = time.monotonic() - started
    return out


def _milestone(line: str, out: RunOutput, console: Console) -> None:
    """Echo the lines that show the deferrable path at work; remember what the summary needs."""
    if match := _SUBMITTED.search(line):
        out.task_id = match["id"]
        console.step("submitted", f"DashScope task {match['id']} ({match['model']}, {match['size']}, {match['s']} s)")
    elif match := _DEFERRING.search(line):
        out.deferred = True
        console.step("deferred", f"worker slot released; the triggerer polls every {out.poll_every} s")
    elif (match := _TRANSITION.search(line)) and (out.task_id is None or match["id"] == out.task_id):
        out.transitions.append((match["change"], int(match["after"])))
        console.step("triggerer", f"{match['change']} after {match['after']} s")
    elif match := _SAVED.search(line):
        out.saved_uri = match["uri"]
        console.step("saved", f"{match['uri']} ({int(match['bytes']):,} bytes)")
    elif match := _ASSET.search(line):
        console.step("asset event", f"through alias {match['alias']!r}")
    elif match := _RUN_DONE.search(line):
        out.run_state = match["state"]
    elif match := _EXCEPTION.match(line.strip()):
        out.errors.append(f"{match['name']}: {match['message']}")


def failure_reason(out: RunOutput) -> str:
    """The most telling error line of a failed run."""
    for error in reversed(out.errors):
        if "SystemExit" not in error and "DagRun failed" not in error:
            return error
    return f"the DAG run ended {out.run_state or 'badly'} (exit status {out.exit_code})"


# --------------------------------------------------------------------------------------------------- results


def s3_client(s3_url: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=s3_url,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        region_name=S3_REGION,
    )


def ensure_bucket(client: Any, bucket: str) -> None:
    with suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket)


def _parse_time(value: Any) -> datetime | None:
    for fmt in _TIMESTAMP_FORMATS:
        with suppress(TypeError, ValueError):
            return datetime.strptime(str(value), fmt)
    return None


def lifecycle(timings: dict[str, Any]) -> str:
    """``PENDING 0.0 s → RUNNING 2.0 s → SUCCEEDED 8.0 s`` from DashScope's own task timestamps."""
    submitted = _parse_time(timings.get("submit_time"))
    if submitted is None:
        return "(no timestamps reported)"
    parts = ["PENDING 0.0 s"]
    for label, name in (("RUNNING", "scheduled_time"), ("SUCCEEDED", "end_time")):
        at = _parse_time(timings.get(name))
        if at is not None:
            parts.append(f"{label} {(at - submitted).total_seconds():.1f} s")
    return " → ".join(parts)


@dataclass
class Result:
    """The video as it landed in S3, read back from S3."""

    uri: str
    key: str
    manifest: dict[str, Any]
    video: Path
    manifest_copy: Path
    sha256: str
    size: int


def fetch_result(client: Any, bucket: str, task_id: str, output_dir: Path) -> Result:
    """Find the task's video in S3, download it and its manifest, and check both."""
    found = [
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for obj in page.get("Contents", [])
        if obj["Key"].endswith(f"/{task_id}.mp4") or obj["Key"] == f"{task_id}.mp4"
    ]
    if not found:
        raise DemoError(f"the DAG run succeeded but s3://{bucket} holds no video of task {task_id}")
    key = found[0]
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    manifest = json.loads(client.get_object(Bucket=bucket, Key=f"{key}.json")["Body"].read())
    digest = hashlib.sha256(body).hexdigest()
    if body[4:8] != b"ftyp":
        raise DemoError(f"s3://{bucket}/{key} is not an MP4 file (no ftyp box)")
    if manifest.get("sha256") != digest:
        raise DemoError(f"s3://{bucket}/{key}: sha256 {digest} differs from the manifest's {manifest.get('sha256')}")
    output_dir.mkdir(parents=True, exist_ok=True)
    video = output_dir / f"{task_id}.mp4"
    video.write_bytes(body)
    manifest_copy = output_dir / f"{task_id}.json"
    manifest_copy.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return Result(f"s3://{bucket}/{key}", key, manifest, video, manifest_copy, digest, len(body))


def print_summary(
    console: Console, out: RunOutput, result: Result, counters: dict[str, Any], sim_task: dict[str, Any] | None
) -> None:
    manifest = result.manifest
    timings = manifest.get("timings") or {}
    if not timings.get("submit_time") and sim_task:
        timings = sim_task
    usage = manifest.get("usage") or {}
    prompt = str(manifest.get("orig_prompt") or (manifest.get("request") or {}).get("prompt") or "")
    polls = int((counters.get("per_route") or {}).get("get", counters.get("polls", 0)))
    billed = manifest.get("billed_seconds")
    console.say()
    console.say("Summary")
    rows = [
        ("DAG run", f"{out.run_state or 'success'} in {out.seconds:.1f} s (generate deferred: "
                    f"{'yes' if out.deferred else 'no'})"),
        ("DashScope task", str(manifest.get("dashscope_task_id"))),
        ("prompt", prompt if len(prompt) <= 90 else prompt[:87] + "..."),
        ("states", lifecycle(timings)),
        ("polls", f"{polls} status requests to DashScope (triggerer every {out.poll_every} s)"),
        ("billed", f"{_number(billed)} s of {manifest.get('model')} at {manifest.get('size') or usage.get('size')}"),
        ("S3 object", f"{result.uri} ({result.size:,} bytes, video/mp4)"),
        ("sha256", result.sha256),
        ("manifest", f"{result.uri}.json"),
        ("local copy", f"{_shown(result.video)} (MP4, ftyp box checked)"),
        ("", f"{_shown(result.manifest_copy)} (manifest)"),
    ]  # fmt: skip
    for label, value in rows:
        console.say(f"  {label:<15}{value}")


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --------------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python demo/run.py",
        description=(
            f"Run {DAG_ID} end to end on this machine: the local DashScope simulator generates, a local S3 "
            "(moto) stores, and the video is copied to the output directory. No API key, no bill."
        ),
    )
    add = parser.add_argument
    add("--prompt", help="what the video shows (default: the DAG's default prompt)")
    add("--duration", type=int, help="seconds of video, 2-15 (default: the DAG's, 5)")
    add("--size", help="W*H such as 1280*720 (default: the DAG's)")
    add("--poll-interval", type=float, default=1.0, help="seconds between the triggerer's polls (default 1)")
    add("--pending-seconds", type=float, default=2.0, help="how long the simulator keeps a task PENDING (default 2)")
    add("--running-seconds", type=float, default=6.0, help="how long the simulator keeps a task RUNNING (default 6)")
    add("--workdir", type=Path, default=Path(".demo"), help="Airflow home, logs and state (default .demo)")
    add("--output-dir", type=Path, default=Path("demo-output"), help="where the video is saved (default demo-output)")
    add("--timeout", type=float, default=600.0, help="give up on the DAG run after this many seconds (default 600)")
    add("--keep", action="store_true", help="keep the simulator and S3 server running afterwards, until Ctrl+C")
    add("--verbose", "-v", action="store_true", help="stream Airflow's full output to the console too")
    return parser


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_args(args)
    except DemoError as err:
        print(f"demo failed: {err}", file=sys.stderr, flush=True)
        return 1
    workdir = args.workdir.resolve()
    output_dir = args.output_dir.resolve()
    console = Console(workdir / "demo.log", args.verbose)
    servers: list[Server] = []
    signal.signal(signal.SIGTERM, _on_sigterm)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = f"{LOOPBACK},localhost"
    started = time.monotonic()
    try:
        _demo(args, workdir, output_dir, console, servers)
        console.say(f"\nDone in {time.monotonic() - started:.0f} s. Full log: {_shown(console.log_path)}")
        return 0
    except DemoError as err:
        print(f"demo failed: {err} (full log: {_shown(console.log_path)})", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("demo interrupted; servers stopped", file=sys.stderr, flush=True)
        return 130
    finally:
        for server in reversed(servers):
            server.stop()
        console.close()


def check_args(args: argparse.Namespace) -> None:
    """Refuse what the DAG's params would refuse, before starting anything."""
    if args.prompt is not None and not args.prompt.strip():
        raise DemoError("--prompt is empty")
    if args.duration is not None and not 2 <= args.duration <= 15:
        raise DemoError(f"--duration {args.duration}: wan2.6-t2v makes 2 to 15 seconds of video")
    if args.size is not None and not re.fullmatch(r"\d+\*\d+", args.size):
        raise DemoError(f"--size {args.size!r}: give width*height, e.g. 1280*720")
    for name in ("poll_interval", "pending_seconds", "running_seconds", "timeout"):
        if getattr(args, name) < 0 or (name in ("poll_interval", "timeout") and getattr(args, name) == 0):
            raise DemoError(f"--{name.replace('_', '-')} {getattr(args, name)} is out of range")


def _demo(args: argparse.Namespace, workdir: Path, output_dir: Path, console: Console, servers: list[Server]) -> None:
    dag_file = find_dag_file()
    home, dags = _prepare_home(workdir, dag_file)
    console.say(f"Wan text-to-video demo: {DAG_ID} on Airflow {airflow_version()}, against local servers")
    console.say("(the DashScope simulator and moto S3 on loopback: no API key, no bill)")

    simulator = start_simulator(workdir, args.pending_seconds, args.running_seconds)
    servers.append(simulator)
    s3 = start_s3(workdir)
    servers.append(s3)
    env = child_env(home, dags, simulator.url, s3.url)
    migration = start_migration(home, env, workdir / "migrate.log")
    if migration is not None:
        servers.append(migration)
    console.step(
        "simulator", f"{simulator.url}/api/v1 (PENDING {args.pending_seconds:g} s, RUNNING {args.running_seconds:g} s)"
    )
    client = s3_client(s3.url)
    ensure_bucket(client, BUCKET)
    console.step("S3", f"{s3.url} (moto), bucket {BUCKET}")
    console.step("Airflow", f"home {_shown(home)}; {'migrating the database...' if migration else 'database ready'}")
    finish_migration(migration, home, env, console, servers)

    conf: dict[str, Any] = {"poll_interval": args.poll_interval, "bucket": BUCKET}
    for name in ("prompt", "duration", "size"):
        if getattr(args, name) is not None:
            conf[name] = getattr(args, name)
    console.say(f"\nRunning: airflow dags test {DAG_ID} (log: {_shown(console.log_path)})")
    out = run_dag(env, conf, console, args.timeout)
    if out.exit_code != 0 or out.run_state not in (None, "success"):
        raise DemoError(f"the DAG run failed: {failure_reason(out)}")
    if not out.task_id:
        raise DemoError("the DAG run succeeded but no DashScope task was submitted (see the log)")

    counters = _http(f"{simulator.url}/_simulator/counters")
    sim_task = _http(f"{simulator.url}/_simulator/tasks/{out.task_id}")
    result = fetch_result(client, BUCKET, out.task_id, output_dir)
    print_summary(console, out, result, counters, sim_task if isinstance(sim_task, dict) else None)
    if not out.deferred:
        console.say("  note           the task finished before the first poll: nothing was deferred")
    console.say(f"\nOpen {_shown(result.video)} in a video player.")
    if args.keep:
        _keep_running(console, simulator, s3, env)


def _keep_running(console: Console, simulator: Server, s3: Server, env: dict[str, str]) -> None:
    console.say("\nThe servers keep running; in another shell:")
    names = ("AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW_CONN_DASHSCOPE_DEFAULT", "AIRFLOW_CONN_AWS_DEFAULT")
    for name in names:
        console.say(f"  export {name}='{env[name]}'")
    console.say(f"  simulator admin: {simulator.url}/_simulator/counters   S3: {s3.url}")
    console.say("Press Ctrl+C to stop them.")
    try:
        while simulator.alive() and s3.alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.say("Stopping the servers.")
        return
    raise DemoError("a server stopped unexpectedly")


if __name__ == "__main__":
    sys.exit(main())
