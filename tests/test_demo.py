"""``make demo`` (``python demo/run.py``) as a user runs it: a subprocess, a real Airflow run.

The first run migrates a fresh Airflow home and generates a video; the second reuses the home (no migration),
gets fresh servers and ports, and fails on purpose (content moderation) to show the one-line reason and that the
servers it started are stopped either way.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import REPO

TASK_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _demo(workdir: Path, output_dir: Path, *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return subprocess.run(
        [
            sys.executable, str(REPO / "demo" / "run.py"), "--workdir", str(workdir), "--output-dir",
            str(output_dir), "--pending-seconds", "1", "--running-seconds", "2", "--poll-interval", "0.5", *args,
        ],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def _closed(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((parts.hostname or "127.0.0.1", parts.port or 80)) != 0


def _server_urls(stdout: str) -> list[str]:
    return re.findall(r"^  (?:simulator|S3)\s+(http://127\.0\.0\.1:\d+)", stdout, flags=re.M)


@pytest.fixture(scope="module")
def demo_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("demo")
    return {"workdir": root / ".demo", "output": root / "demo-output"}


@pytest.fixture(scope="module")
def first_run(demo_dirs: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    return _demo(demo_dirs["workdir"], demo_dirs["output"], "--prompt", "A red fox in fresh snow, close-up")


def test_demo_generates_a_video_and_lands_it_in_s3(first_run: Any, demo_dirs: dict[str, Path]):
    out = first_run.stdout
    assert first_run.returncode == 0, first_run.stderr + out[-3000:]
    assert first_run.stderr.strip() == ""

    # The deferrable path at work: submitted, deferred, the trigger saw the transitions.
    assert re.search(rf"submitted\s+DashScope task {TASK_ID} \(wan2\.6-t2v, 1280\*720, 5 s\)", out)
    assert "deferred    worker slot released; the triggerer polls every 0.5 s" in out
    assert re.search(r"triggerer\s+PENDING → RUNNING after \d+ s", out)
    assert re.search(r"triggerer\s+RUNNING → SUCCEEDED after \d+ s", out)

    # The summary.
    task_id = re.search(rf"DashScope task ({TASK_ID})\n", out)
    assert task_id, out
    task_id_ = task_id.group(1)
    assert re.search(r"DAG run\s+success in [\d.]+ s \(generate deferred: yes\)", out)
    assert re.search(r"states\s+PENDING 0\.0 s → RUNNING [\d.]+ s → SUCCEEDED [\d.]+ s", out)
    polls = re.search(r"polls\s+(\d+) status requests", out)
    assert polls and int(polls.group(1)) > 2
    assert re.search(r"billed\s+5 s of wan2\.6-t2v at 1280\*720", out)
    assert "prompt         A red fox in fresh snow, close-up" in out
    uri = re.search(rf"S3 object\s+(s3://wan-videos/wan/\d{{4}}-\d{{2}}-\d{{2}}/{task_id_}\.mp4) \(", out)
    assert uri, out
    sha256 = re.search(r"sha256\s+([0-9a-f]{64})", out)
    assert sha256

    # The local copy: an MP4 whose checksum is the one printed, and the manifest beside it.
    video = demo_dirs["output"] / f"{task_id_}.mp4"
    data = video.read_bytes()
    assert data[4:8] == b"ftyp" and hashlib.sha256(data).hexdigest() == sha256.group(1)
    manifest = json.loads((demo_dirs["output"] / f"{task_id_}.json").read_text(encoding="utf-8"))
    assert manifest["s3_uri"] == uri.group(1) and manifest["sha256"] == sha256.group(1)
    assert manifest["request"]["prompt"] == "A red fox in fresh snow, close-up"

    # Quiet console, full log on disk; the servers are gone.
    assert "[info" not in out and "DAG TEST" not in out
    log = (demo_dirs["workdir"] / "demo.log").read_text(encoding="utf-8")
    assert "$ airflow db migrate" in log and "$ airflow dags test example_wan_text_to_video" in log
    assert f"Deferring: the triggerer now polls task {task_id_}" in log
    urls = _server_urls(out)
    assert len(urls) == 2 and all(_closed(url) for url in urls)


def test_second_run_reuses_the_home_and_reports_a_failure_in_one_line(first_run: Any, demo_dirs: dict[str, Path]):
    assert first_run.returncode == 0
    failed = _demo(
        demo_dirs["workdir"], demo_dirs["output"], "--prompt", "a cat [[sim: outcome=FAILED code=DataInspectionFailed]]"
    )
    assert failed.returncode == 1
    assert "database ready" in failed.stdout  # no second migration
    errors = failed.stderr.strip().splitlines()
    assert len(errors) == 1, failed.stderr
    assert errors[0].startswith("demo failed: the DAG run failed: ")
    assert "DataInspectionFailed" in errors[0] and "demo.log" in errors[0]
    urls = _server_urls(failed.stdout)
    assert len(urls) == 2 and all(_closed(url) for url in urls)
    assert urls != _server_urls(first_run.stdout)  # fresh ports


def test_bad_arguments_fail_fast_with_the_reason(tmp_path: Path):
    result = _demo(tmp_path / ".demo", tmp_path / "out", "--duration", "99", timeout=30)
    assert result.returncode == 1 and result.stdout == ""
    reason = "demo failed: --duration 99: wan2.6-t2v makes 2 to 15 seconds of video"
    assert result.stderr.strip().splitlines() == [reason]
    assert not (tmp_path / "out").exists() and not (tmp_path / ".demo").exists()
