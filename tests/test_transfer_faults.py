"""The transfer half of the fault matrix: real Airflow runs (``dag.test()``) against S3 failing for real.

S3 is moto behind :mod:`tests.s3_fault_proxy`, which answers chosen requests with 5xx errors or goes dark (resets
or holds connections) mid-upload and comes back for the retry. Every case checks the final state and the number of
tries, what is left in S3 (no partial object, no open multipart upload), and that neither the API key nor a signed
query string reached a log line, an XCom, a rendered field or an exception.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_wan.hooks.wan import WanHook
from airflow_provider_wan.simulator import synthetic_video_sha256
from tests.conftest import TEST_API_KEY, task_states, xcom
from tests.s3_fault_proxy import S3FaultProxy

MIB = 1024 * 1024
#: 12 MiB in 5 MiB parts: a three-part multipart upload.
SIZE = 12 * MIB
DAG_ID = "wan_test_transfer_faults"


@pytest.fixture
def proxy(s3_server: str) -> Iterator[S3FaultProxy]:
    """The fault proxy in front of moto, reachable through the ``aws_faulty`` connection (no client retries, 2 s
    timeouts, so a fault is seen by the operator and a held connection fails fast)."""
    with S3FaultProxy(s3_server) as proxy:
        os.environ["AIRFLOW_CONN_AWS_FAULTY"] = json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {
                    "endpoint_url": proxy.endpoint,
                    "region_name": "us-east-1",
                    "config_kwargs": {
                        "retries": {"total_max_attempts": 1, "mode": "standard"},
                        "connect_timeout": 2,
                        "read_timeout": 2,
                    },
                },
            }
        )
        yield proxy
    os.environ.pop("AIRFLOW_CONN_AWS_FAULTY", None)


def finished_task(size: int = SIZE, marker: str = "") -> str:
    hook = WanHook()
    task_id = hook.submit(
        {"prompt": f"fault matrix [[sim: pending=0 running=0 video_bytes={size} {marker}]]", "model": "wan2.6-t2v"}
    )
    hook.wait_for_task(task_id, poll_interval=0.05, timeout=20)
    return task_id


def tries(dag_run: Any, task_id: str = "transfer") -> int:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = (
            session.query(TaskInstance)
            .filter(TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id)
            .filter(TaskInstance.task_id == task_id)
            .one()
        )
        return int(ti.try_number)


def stored_text(dag_run: Any) -> str:
    """Every XCom and rendered field of the run, as text."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        values = [
            row.value
            for row in session.query(XComModel).filter(
                XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id
            )
        ]
        values += [
            row.rendered_fields
            for row in session.query(RTIF).filter(RTIF.dag_id == dag_run.dag_id, RTIF.run_id == dag_run.run_id)
        ]
    return json.dumps(values, default=str)


def s3_state(s3_client: Any, bucket: str) -> tuple[list[str], list[str]]:
    """(object keys, keys with an open multipart upload) in the bucket."""
    objects = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    uploads = [u["Key"] for u in s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    return objects, uploads


@pytest.fixture
def run(run_dag: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Any:
    """Run the fault DAG; return (dag run, state, tries, all text that must hold no secret)."""
    caplog.set_level(logging.INFO)

    def _run(**conf: Any) -> tuple[Any, str, int, str]:
        dag_run = run_dag(DAG_ID, conf)
        out, err = capfd.readouterr()
        text = caplog.text + out + err + stored_text(dag_run)
        return dag_run, task_states(dag_run)["transfer"], tries(dag_run), text

    return _run


def assert_no_secrets(text: str) -> None:
    assert "Downloading the video" in text or "failed" in text  # the task's own log lines were captured
    assert TEST_API_KEY not in text
    assert "Signature=" not in text and "OSSAccessKeyId=" not in text


def assert_complete(s3_client: Any, bucket: str, task_id: str) -> None:
    key = f"videos/{task_id}.mp4"
    head = s3_client.head_object(Bucket=bucket, Key=key)
    tags = {t["Key"]: t["Value"] for t in s3_client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}
    assert head["ContentLength"] == SIZE and tags["wan-sha256"] == synthetic_video_sha256(SIZE)


# -------------------------------------------------------------------------------------- S3 fails, the retry succeeds


@pytest.mark.parametrize(
    ("operation", "part"),
    [("UploadPart", 2), ("CompleteMultipartUpload", None), ("CreateMultipartUpload", None)],
    ids=["upload-part-2-500", "complete-500", "create-500"],
)
def test_s3_5xx_once_fails_the_try_and_the_retry_succeeds(simulator, s3_client, bucket, proxy, run, operation, part):
    task_id = finished_task()
    proxy.fail(operation, part=part, status=500)
    dag_run, state, n, text = run(task_id=task_id, bucket=bucket, aws_conn_id="aws_faulty")

    assert (state, n) == ("success", 2), " ".join(f"{o}:{s}" for o, _, s in proxy.log)
    assert (operation, 500) in [(op, status) for op, _, status in proxy.log]
    assert "AbortMultipartUpload" in proxy.operations() or operation == "CreateMultipartUpload"
    assert s3_state(s3_client, bucket) == ([f"videos/{task_id}.mp4", f"videos/{task_id}.mp4.json"], [])
    assert_complete(s3_client, bucket, task_id)
    assert xcom(dag_run, "transfer") == f"s3://{bucket}/videos/{task_id}.mp4"
    assert_no_secrets(text)


@pytest.mark.parametrize("mode", ["reset", "hang"])
def test_s3_going_dark_mid_upload_leaves_no_orphaned_upload_after_the_retry(
    simulator, s3_client, bucket, proxy, run, mode
):
    task_id = finished_task()
    proxy.go_dark("UploadPart", part=2, mode=mode, until="HeadObject")  # back when the retry starts
    _, state, n, text = run(task_id=task_id, bucket=bucket, aws_conn_id="aws_faulty")

    assert (state, n) == ("success", 2)
    ops = proxy.operations()
    first_abort = ops.index("AbortMultipartUpload")
    assert [status for _, _, status in proxy.log][first_abort] == -1  # the first try's abort could not reach S3
    assert ops.count("AbortMultipartUpload") == 2  # the retry aborted what the first try left
    assert s3_state(s3_client, bucket) == ([f"videos/{task_id}.mp4", f"videos/{task_id}.mp4.json"], [])
    assert_complete(s3_client, bucket, task_id)
    assert_no_secrets(text)


# ------------------------------------------------------------------------------------------ failures that stay failures


def test_s3_failing_every_try_leaves_nothing(simulator, s3_client, bucket, proxy, run):
    task_id = finished_task()
    proxy.fail("UploadPart", part=3, times=-1, status=503)
    _, state, n, text = run(task_id=task_id, bucket=bucket, aws_conn_id="aws_faulty")

    assert (state, n) == ("failed", 2)
    assert s3_state(s3_client, bucket) == ([], [])
    assert "UploadPart 3" in text
    assert_no_secrets(text)


def test_missing_dashscope_connection_fails_without_retry(simulator, s3_client, bucket, proxy, run):
    task_id = finished_task()
    _, state, n, text = run(task_id=task_id, bucket=bucket, aws_conn_id="aws_faulty", dashscope_conn_id="nowhere")

    assert (state, n) == ("failed", 1)
    assert "nowhere" in text and "isn't defined" in text
    assert simulator.counters()["video_requests"] == 0
    assert s3_state(s3_client, bucket) == ([], [])
    assert_no_secrets(text)


@pytest.mark.parametrize(
    "link",
    [
        "http://127.0.0.1:{other}/oss/{task}.mp4?Signature=c2VjcmV0",  # loopback, another port
        "http://169.254.169.254/latest/meta-data/?Signature=c2VjcmV0",
        "https://dashscope.aliyuncs.com@127.0.0.1:{port}/oss/{task}.mp4?Signature=c2VjcmV0",
        "http://127.0.0.1:{port}/oss/{task}.mp4?Signature=c2VjcmV0\r\nX-Injected: 1",
        "http://127.0.0.1:99999/oss/{task}.mp4?Signature=c2VjcmV0",
        "file:///etc/passwd",
    ],
    ids=["other-port", "metadata-ip", "userinfo", "crlf", "port-99999", "file"],
)
def test_refused_links_fail_without_retry_before_any_request(simulator, s3_client, bucket, proxy, run, link):
    task_id = finished_task(size=MIB)
    port = int(simulator.root_url.rsplit(":", 1)[1])
    link = link.format(port=port, other=port + 1, task=task_id)
    _, state, n, text = run(task_id=task_id, bucket=bucket, aws_conn_id="aws_faulty", video_url=link)

    assert (state, n) == ("failed", 1)
    assert "WanVideoURLRefusedError" in text
    assert simulator.counters()["video_requests"] == 0
    assert not any(op in proxy.operations() for op in ("PutObject", "CreateMultipartUpload"))
    assert s3_state(s3_client, bucket) == ([], [])
    assert "c2VjcmV0" not in text
    assert_no_secrets(text)


# ------------------------------------------------------------------------------------------ the download fails


def test_download_cut_mid_upload_aborts_and_the_retry_succeeds(simulator, s3_client, bucket, proxy, run):
    task_id = finished_task(marker="truncate_video=1")  # the first download ends at half the announced length
    _, state, n, text = run(task_id=task_id, bucket=bucket, aws_conn_id="aws_faulty")

    assert (state, n) == ("success", 2)
    assert "WanVideoDownloadError" in text
    assert "AbortMultipartUpload" in proxy.operations()  # raised inside boto3's read: the upload was aborted
    assert s3_state(s3_client, bucket) == ([f"videos/{task_id}.mp4", f"videos/{task_id}.mp4.json"], [])
    assert_complete(s3_client, bucket, task_id)
    assert_no_secrets(text)


def test_error_page_instead_of_a_video_fails_without_retry_and_uploads_nothing(
    simulator, s3_client, bucket, proxy, run
):
    task_id = finished_task(marker="video_html=true")
    _, state, n, text = run(task_id=task_id, bucket=bucket, aws_conn_id="aws_faulty")

    assert (state, n) == ("failed", 1)
    assert "WanVideoContentError" in text
    assert not any(op in proxy.operations() for op in ("PutObject", "CreateMultipartUpload", "UploadPart"))
    assert s3_state(s3_client, bucket) == ([], [])
    assert_no_secrets(text)
