"""WanVideoToS3Operator against real loopback servers: the DashScope simulator serves the video, moto serves S3.

S3 is the moto server reached through the Airflow ``aws_default`` connection (``endpoint_url``); S3 failures are
real HTTP errors injected by a small proxy in front of moto. Memory is measured in fresh subprocesses.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import os
import re
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_wan._compat import AirflowException, AirflowFailException
from airflow_provider_wan.exceptions import WanRequestValidationError, WanVideoURLRefusedError
from airflow_provider_wan.hooks.wan import WanHook
from airflow_provider_wan.simulator import sample_video_bytes, synthetic_video_sha256
from airflow_provider_wan.transfers._download import UrlPolicy, redact, secrets_of
from airflow_provider_wan.transfers.wan_to_s3 import WanVideoToS3Operator
from tests.conftest import REPO, asset_events, task_states, xcom

MIB = 1024 * 1024
PROMPT_ZH = "一只纸船在雨夜的街道上漂流，霓虹灯倒映在水面"
FAST = "pending=0 running=0"


# ----------------------------------------------------------------------------------------------- helpers


class FakeTI:
    """What the operator uses of the task instance: xcom_push and try_number."""

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}
        self.try_number = 1

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def run_op(op: WanVideoToS3Operator) -> tuple[str, FakeTI, Any]:
    """Execute the operator with a minimal context; return its result, the TI and the outlet events."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    ti, events = FakeTI(), OutletEventAccessors()
    context: Any = {"ti": ti, "ds": "2026-01-02", "run_id": "manual__test", "outlet_events": events}
    return op.execute(context), ti, events


def submit(prompt: str = PROMPT_ZH, marker: str = FAST, wait: bool = True, **params: Any) -> str:
    """Submit a task to the simulator (scenario in a prompt marker); wait until it SUCCEEDED when asked."""
    hook = WanHook()
    task_id = hook.submit({"prompt": f"{prompt} [[sim: {marker}]]", "model": "wan2.6-t2v", **params})
    if wait:
        hook.wait_for_task(task_id, poll_interval=0.05, timeout=20)
    return task_id


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def served(task_id: str) -> bytes:
    """The video the simulator serves for ``task_id`` (fetched through a fresh link)."""
    import httpx

    link = WanHook().get_task(task_id).video_url
    assert link
    return httpx.get(link).raise_for_status().content


def keys(s3_client: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def open_uploads(s3_client: Any, bucket: str) -> list[dict[str, Any]]:
    return list(s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def recorded(s3_client: Any, bucket: str, key: str) -> dict[str, str]:
    """What the transfer recorded of the object: its tags (wan-sha256, wan-size-bytes); streamed videos have no
    sha256 in their metadata, which is fixed before the upload starts."""
    return {t["Key"]: t["Value"] for t in s3_client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def _raw_checksum(algorithm: str, data: bytes) -> bytes:
    if algorithm == "SHA256":
        return hashlib.sha256(data).digest()
    if algorithm == "CRC32":
        return zlib.crc32(data).to_bytes(4, "big")
    from awscrt.checksums import crc64nvme

    return int(crc64nvme(data)).to_bytes(8, "big")


def composite(algorithm: str, data_parts: list[bytes]) -> str:
    """S3's composite checksum of a multipart upload: the checksum of the parts' checksums (base64)."""
    digests = b"".join(_raw_checksum(algorithm, part) for part in data_parts)
    return base64.b64encode(_raw_checksum(algorithm, digests)).decode()


def full_object(algorithm: str, data: bytes) -> str:
    """S3's full-object checksum (base64)."""
    return base64.b64encode(_raw_checksum(algorithm, data)).decode()


def has_awscrt() -> bool:
    try:
        import awscrt.checksums  # noqa: F401
    except ImportError:
        return False
    return True


def transfer(task_id: str | None, bucket: str, **kwargs: Any) -> WanVideoToS3Operator:
    kwargs.setdefault("s3_key", f"videos/{task_id}.mp4")
    return WanVideoToS3Operator(task_id="transfer", dashscope_task_id=task_id, s3_bucket=bucket, **kwargs)


# ----------------------------------------------------------------------------------------------- S3 proxy


class _S3Proxy(ThreadingHTTPServer):
    daemon_threads = True
    upstream: str
    fail_part: int | None = None
    reject_checksums: frozenset[str] = frozenset()  # algorithms answered with 400 InvalidArgument
    reject_multipart_only = False  # refuse them only on CreateMultipartUpload, UploadPart, CompleteMultipartUpload
    rewrite: Callable[[bytes], bytes] | None = None  # applied to every response body from moto
    rewrite_headers: Callable[[str, str, str], str] | None = None  # (method, name, value) -> value, from moto
    requests: list[str]
    headers: list[tuple[str, dict[str, str]]]  # every request: ("METHOD path", its lower-cased headers)


class _ProxyHandler(BaseHTTPRequestHandler):
    """Forwards S3 requests to moto; fails UploadPart N with a 500, or refuses checksums of some algorithms."""

    protocol_version = "HTTP/1.1"
    server: _S3Proxy

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _error(self, status: int, code: str) -> None:
        body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        body = self._body()
        server = self.server
        query = parse_qs(urlsplit(self.path).query)
        server.requests.append(f"{self.command} {self.path}")
        headers_in = {k.lower(): v for k, v in self.headers.items()}
        server.headers.append((f"{self.command} {self.path}", headers_in))
        if (
            server.fail_part is not None
            and self.command == "PUT"
            and query.get("partNumber") == [str(server.fail_part)]
        ):
            return self._error(500, "InternalError")
        asked = {
            headers_in.get("x-amz-checksum-algorithm", "").upper(),
            headers_in.get("x-amz-sdk-checksum-algorithm", "").upper(),
            *(name[len("x-amz-checksum-") :].upper() for name in headers_in if name.startswith("x-amz-checksum-")),
        }
        multipart = bool({"uploads", "uploadId"} & set(parse_qs(urlsplit(self.path).query, keep_blank_values=True)))
        if asked & server.reject_checksums and (multipart or not server.reject_multipart_only):
            return self._error(400, "InvalidArgument")
        skip = {"host", "connection", "expect", "transfer-encoding", "content-length", "keep-alive"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(server.upstream, timeout=60)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            if server.rewrite is not None and self.command != "HEAD":
                data = server.rewrite(data)
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() in ("transfer-encoding", "connection", "content-length", "date", "server"):
                    continue
                if server.rewrite_headers is not None:
                    value = server.rewrite_headers(self.command, name.lower(), value)
                self.send_header(name, value)
            length = response.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
            self.send_header("Content-Length", length or "0")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


@pytest.fixture
def s3_proxy(s3_server: str) -> Iterator[_S3Proxy]:
    """A proxy in front of moto, reachable through the ``aws_flaky`` connection (no client retries)."""
    proxy = _S3Proxy(("127.0.0.1", 0), _ProxyHandler)
    proxy.upstream = urlsplit(s3_server).netloc
    proxy.requests, proxy.headers = [], []
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    os.environ["AIRFLOW_CONN_AWS_FLAKY"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {
                "endpoint_url": f"http://127.0.0.1:{proxy.server_address[1]}",
                "region_name": "us-east-1",
                "config_kwargs": {"retries": {"max_attempts": 1, "mode": "standard"}},
            },
        }
    )
    yield proxy
    proxy.shutdown()
    proxy.server_close()
    os.environ.pop("AIRFLOW_CONN_AWS_FLAKY", None)


# ----------------------------------------------------------------------------------------------- a plain web server


class _Web(ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[str, Callable[[BaseHTTPRequestHandler], None]]
    hits: list[str]


class _WebHandler(BaseHTTPRequestHandler):
    server: _Web

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self.server.hits.append(path)
        route = self.server.routes.get(path)
        if route is None:
            self.send_error(404)
            return
        route(self)


@pytest.fixture
def web() -> Iterator[_Web]:
    """A loopback web server (HTTP/1.0: without Content-Length a body ends when the connection closes)."""
    server = _Web(("127.0.0.1", 0), _WebHandler)
    server.routes, server.hits = {}, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _serve(body: bytes | Callable[[], Iterator[bytes]], content_type: str = "video/mp4", length: bool = True) -> Any:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        if length and isinstance(body, bytes):
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        try:
            for piece in [body] if isinstance(body, bytes) else body():
                handler.wfile.write(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass

    return route


def _redirect(location: str) -> Any:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


# ----------------------------------------------------------------------------------------------- happy paths


def test_happy_path_checksum_metadata_manifest_and_asset_event(simulator, s3_client, bucket):
    task_id = submit(seed=42, negative_prompt="模糊，低质量")
    generation = {
        **WanHook().get_task(task_id).to_result(),
        "model": "wan2.6-t2v",
        "seed": 42,
        "duration": 5,
        "request": {
            "model": "wan2.6-t2v",
            "prompt": f"{PROMPT_ZH} [[sim: {FAST}]]",
            "negative_prompt": "模糊，低质量",
            "seed": 42,
            "size": "1920*1080",
            "duration": 5,
        },
    }
    uri, ti, events = run_op(WanVideoToS3Operator(task_id="transfer", generation=generation, s3_bucket=bucket))

    key = f"wan/2026-01-02/{task_id}.mp4"
    assert uri == f"s3://{bucket}/{key}"
    obj = s3_client.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    data = obj["Body"].read()
    assert data == served(task_id) and data[4:8] == b"ftyp"
    assert obj["ContentType"] == "video/mp4"
    assert obj["Metadata"] == {
        "wan-task-id": task_id,
        "wan-model": "wan2.6-t2v",
        "wan-seed": "42",
        "wan-request-id": generation["request_id"],
        "wan-sha256": sha256(data),
        "wan-size-bytes": str(len(data)),
        "wan-source": f"{simulator.root_url}/oss/{task_id}.mp4",
    }
    assert base64.b64decode(obj["ChecksumSHA256"]).hex() == sha256(data)  # S3's own checksum agrees

    raw = s3_client.get_object(Bucket=bucket, Key=f"{key}.json")
    assert raw["ContentType"] == "application/json; charset=utf-8"
    body = raw["Body"].read()
    assert PROMPT_ZH.encode() in body  # UTF-8, not \u escapes
    manifest = json.loads(body.decode("utf-8"))
    assert manifest["request"]["prompt"].startswith(PROMPT_ZH)
    assert manifest["request"]["negative_prompt"] == "模糊，低质量"
    assert manifest["sha256"] == sha256(data) and manifest["size_bytes"] == len(data)
    assert manifest["s3_uri"] == uri and manifest["dashscope_task_id"] == task_id
    assert manifest["model"] == "wan2.6-t2v" and manifest["seed"] == 42
    assert manifest["billed_seconds"] == generation["billed_seconds"] and manifest["usage"]
    assert manifest["timings"]["end_time"] == generation["end_time"]
    assert manifest["transfer"]["source"] == f"{simulator.root_url}/oss/{task_id}.mp4"
    assert "Signature" not in body.decode()

    assert ti.xcoms == {"manifest_uri": f"{uri}.json", "sha256": sha256(data), "size_bytes": len(data)}
    from airflow.sdk import AssetAlias

    alias_events = events[AssetAlias("wan_videos")].asset_alias_events
    assert [e.dest_asset_key.uri for e in alias_events] == [f"s3://{bucket}/wan"]  # one asset per destination
    assert alias_events[0].extra["sha256"] == sha256(data)
    assert alias_events[0].extra["key"] == key and alias_events[0].extra["s3_uri"] == uri
    assert alias_events[0].extra["dashscope_task_id"] == task_id and alias_events[0].extra["model"] == "wan2.6-t2v"
    assert open_uploads(s3_client, bucket) == []


@pytest.mark.parametrize(
    "checksum",
    [
        True,
        "SHA256",
        pytest.param(
            "CRC64NVME", marks=pytest.mark.skipif(not has_awscrt(), reason="CRC64NVME needs awscrt (boto3[crt])")
        ),
    ],
    ids=["default-crc32", "sha256", "crc64nvme"],
)
def test_large_video_goes_multipart_with_verified_parts(simulator, s3_client, bucket, s3_proxy, checksum):
    algorithm = "CRC32" if checksum is True else checksum
    size = 18 * MIB + 12345
    task_id = submit(marker=f"{FAST} video_bytes={size}")
    _, ti, _ = run_op(
        transfer(
            task_id, bucket, chunk_size=5 * MIB, write_manifest=False, aws_conn_id="aws_flaky", s3_checksum=checksum
        )
    )

    key = f"videos/{task_id}.mp4"
    expected = synthetic_video_sha256(size)
    head = s3_client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ContentLength"] == size and recorded(s3_client, bucket, key)["wan-sha256"] == expected
    digest, parts = hashlib.sha256(), []
    for piece in s3_client.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(5 * MIB):
        digest.update(piece)
        parts.append(piece)
    assert digest.hexdigest() == expected and len(parts) == 4
    # Every part went with its checksum for S3 to verify; the completion with the size S3 checks the object against.
    uploads = [h for r, h in s3_proxy.headers if r.startswith("PUT") and "partNumber=" in r]
    assert len(uploads) == 4 and all(f"x-amz-checksum-{algorithm.lower()}" in h for h in uploads)
    [complete] = [h for r, h in s3_proxy.headers if r.startswith("POST") and "uploadId=" in r]
    assert complete["x-amz-mp-object-size"] == str(size)
    if algorithm == "CRC64NVME":
        # S3 checked the whole object against the CRC64NVME the reader computed of every byte it read
        assert complete["x-amz-checksum-crc64nvme"] == full_object("CRC64NVME", b"".join(parts))
        assert head["ChecksumCRC64NVME"] == complete["x-amz-checksum-crc64nvme"]
        assert head["ChecksumType"] == "FULL_OBJECT"
    else:
        # S3's composite checksum is the one of the downloaded bytes' parts
        assert head[f"Checksum{algorithm}"].split("-")[0] == composite(algorithm, parts)
    assert ti.xcoms["sha256"] == expected and ti.xcoms["size_bytes"] == size
    assert "manifest_uri" not in ti.xcoms and keys(s3_client, bucket) == [key]
    assert open_uploads(s3_client, bucket) == []


MEMORY_SCRIPT = r"""
import json, resource, sys
from airflow.sdk.execution_time.context import OutletEventAccessors
from airflow_provider_wan.transfers.wan_to_s3 import WanVideoToS3Operator

class TI:
    try_number = 1
    def xcom_push(self, key, value):
        pass

def peak_kib():
    # VmHWM is this process image's own peak RSS; ru_maxrss also counts the parent's pages at fork time.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

task_id, bucket = sys.argv[1], sys.argv[2]
op = WanVideoToS3Operator(task_id="transfer", dashscope_task_id=task_id, s3_bucket=bucket, s3_key=task_id + ".mp4")
before = peak_kib()
uri = op.execute({"ti": TI(), "ds": "2026-01-02", "outlet_events": OutletEventAccessors()})
peak = peak_kib()
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("RESULT " + json.dumps({"uri": uri, "before_kib": before, "peak_kib": peak, "ru_maxrss_kib": maxrss}))
"""


def _measure(task_id: str, bucket: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, task_id, bucket], capture_output=True, text=True, env=env, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return dict(json.loads(line[len("RESULT ") :]))


def test_peak_memory_does_not_grow_with_the_video(simulator, s3_client, bucket, record_property):
    small, large = 16 * MIB, 256 * MIB
    results = {}
    for size in (small, large):
        task_id = submit(prompt="memory", marker=f"{FAST} video_bytes={size}")
        results[size] = _measure(task_id, bucket)
        head = s3_client.head_object(Bucket=bucket, Key=f"{task_id}.mp4")
        assert head["ContentLength"] == size
        assert recorded(s3_client, bucket, f"{task_id}.mp4")["wan-sha256"] == synthetic_video_sha256(size)
    growth = (results[large]["peak_kib"] - results[small]["peak_kib"]) * 1024
    summary = {f"{size // MIB}MiB_peak_rss_MiB": round(r["peak_kib"] / 1024, 1) for size, r in results.items()}
    summary["growth_MiB"] = round(growth / MIB, 1)
    record_property("memory", summary)
    print("peak RSS:", summary)
    assert growth < 64 * MIB, summary
    assert results[large]["peak_kib"] * 1024 < results[large]["before_kib"] * 1024 + 96 * MIB, results[large]


# ----------------------------------------------------------------------------------------------- never a partial object


def test_truncated_download_aborts_the_multipart_upload(simulator, s3_client, bucket):
    task_id = submit(marker=f"{FAST} video_bytes={16 * MIB} truncate_video=true")
    with pytest.raises(AirflowException) as info:
        run_op(transfer(task_id, bucket, chunk_size=5 * MIB))
    assert not isinstance(info.value, AirflowFailException)  # a retry can succeed
    assert "WanVideoDownloadError" in str(info.value)
    assert keys(s3_client, bucket) == []
    assert open_uploads(s3_client, bucket) == []


def test_truncated_small_video_writes_nothing(simulator, s3_client, bucket):
    task_id = submit(marker=f"{FAST} truncate_video=1")
    with pytest.raises(AirflowException, match=r"WanVideoDownloadError: .* failed after \d+ of \d+ bytes") as info:
        run_op(transfer(task_id, bucket))
    got, announced = map(int, re.findall(r"failed after (\d+) of (\d+) bytes", str(info.value))[0])
    assert got == announced // 2  # the simulator cut the body in half
    assert keys(s3_client, bucket) == []


def test_error_page_instead_of_video_writes_nothing(simulator, s3_client, bucket):
    task_id = submit(marker=f"{FAST} video_html=true")
    with pytest.raises(AirflowFailException, match=r"not a video|not an MP4"):
        run_op(transfer(task_id, bucket))
    assert keys(s3_client, bucket) == [] and open_uploads(s3_client, bucket) == []


def test_body_without_ftyp_is_refused_before_upload(web, s3_client, bucket):
    web.routes["/x.mp4"] = _serve(b"<Error><Code>AccessDenied</Code></Error>" * 400000, "application/octet-stream")
    op = WanVideoToS3Operator(
        task_id="transfer",
        video_url=f"http://127.0.0.1:{web.server_address[1]}/x.mp4?Signature=s3cr3tsig",
        s3_bucket=bucket,
        allowed_hosts=[f"127.0.0.1:{web.server_address[1]}"],
        chunk_size=5 * MIB,
    )
    with pytest.raises(AirflowFailException, match="not an MP4"):
        run_op(op)
    assert keys(s3_client, bucket) == [] and open_uploads(s3_client, bucket) == []


def test_s3_failure_mid_upload_aborts_and_leaves_nothing(simulator, s3_client, bucket, s3_proxy):
    s3_proxy.fail_part = 2
    task_id = submit(marker=f"{FAST} video_bytes={16 * MIB}")
    with pytest.raises(AirflowException) as info:
        run_op(transfer(task_id, bucket, aws_conn_id="aws_flaky", chunk_size=5 * MIB))
    assert not isinstance(info.value, AirflowFailException)
    assert "UploadPart 2" in str(info.value)
    assert any("partNumber=2" in r for r in s3_proxy.requests)
    assert any(r.startswith("DELETE") and "uploadId=" in r for r in s3_proxy.requests)  # AbortMultipartUpload
    assert keys(s3_client, bucket) == []
    assert open_uploads(s3_client, bucket) == []


@pytest.mark.parametrize(
    ("checksum", "refused", "calculation"),
    [(True, {"CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"}, "when_required"), ("SHA256", {"SHA256"}, None)],
    ids=["refuses-every-checksum", "refuses-sha256"],
)
def test_store_refusing_the_checksum_still_works(
    simulator, s3_client, bucket, s3_proxy, monkeypatch, checksum, refused, calculation
):
    # A store that refuses flexible checksums on multipart uploads works with boto3 only when its connection says so
    # (request_checksum_calculation="when_required"); the transfer asks for one, is refused, and goes without.
    s3_proxy.reject_checksums = frozenset(refused)
    if calculation:
        s3_proxy.reject_multipart_only = True
        conn = json.loads(os.environ["AIRFLOW_CONN_AWS_FLAKY"])
        conn["extra"]["config_kwargs"]["request_checksum_calculation"] = calculation
        monkeypatch.setenv("AIRFLOW_CONN_AWS_FLAKY", json.dumps(conn))
    size = 11 * MIB
    task_id = submit(marker=f"{FAST} video_bytes={size}")
    _, ti, _ = run_op(transfer(task_id, bucket, aws_conn_id="aws_flaky", chunk_size=5 * MIB, s3_checksum=checksum))
    assert simulator.counters()["video_requests"] == 2  # refused, then downloaded again and sent without
    assert any(r.startswith("POST") and r.endswith("?uploads") for r in s3_proxy.requests)
    head = s3_client.head_object(Bucket=bucket, Key=f"videos/{task_id}.mp4")
    assert head["ContentLength"] == size
    assert recorded(s3_client, bucket, f"videos/{task_id}.mp4")["wan-sha256"] == synthetic_video_sha256(size)
    assert synthetic_video_sha256(size) == ti.xcoms["sha256"]
    assert open_uploads(s3_client, bucket) == []


@pytest.mark.skipif(not has_awscrt(), reason="CRC64NVME needs awscrt (boto3[crt])")
def test_store_holding_other_bytes_than_were_read_keeps_no_object(simulator, s3_client, bucket, s3_proxy):
    # A store that does not check the full-object checksum at completion, and then reports another one.
    s3_proxy.rewrite_headers = lambda method, name, value: (
        "AAAAAAAAAAA=" if method == "HEAD" and name == "x-amz-checksum-crc64nvme" else value
    )
    task_id = submit(marker=f"{FAST} video_bytes={12 * MIB}")
    with pytest.raises(
        AirflowException, match="store holds other bytes than were read; the object was deleted"
    ) as info:
        run_op(transfer(task_id, bucket, aws_conn_id="aws_flaky", chunk_size=5 * MIB, s3_checksum="CRC64NVME"))
    assert not isinstance(info.value, AirflowFailException)  # a retry uploads it again
    assert keys(s3_client, bucket) == [] and open_uploads(s3_client, bucket) == []


def test_failed_attempt_leaves_the_existing_object_untouched(simulator, s3_client, bucket):
    key = "videos/existing.mp4"
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"previous video", Metadata={"owner": "someone"})
    before = s3_client.head_object(Bucket=bucket, Key=key)
    task_id = submit(marker=f"{FAST} video_bytes={12 * MIB} truncate_video=true")
    with pytest.raises(AirflowException):
        run_op(transfer(task_id, bucket, s3_key=key, replace=True, chunk_size=5 * MIB))
    after = s3_client.get_object(Bucket=bucket, Key=key)
    assert after["Body"].read() == b"previous video" and after["ETag"] == before["ETag"]
    assert keys(s3_client, bucket) == [key] and open_uploads(s3_client, bucket) == []


def test_s3_failure_leaves_the_existing_object_untouched(simulator, s3_client, bucket, s3_proxy):
    key = "videos/existing.mp4"
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"previous video")
    s3_proxy.fail_part = 3
    task_id = submit(marker=f"{FAST} video_bytes={16 * MIB}")
    with pytest.raises(AirflowException):
        run_op(transfer(task_id, bucket, s3_key=key, replace=True, aws_conn_id="aws_flaky", chunk_size=5 * MIB))
    assert s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"previous video"
    assert open_uploads(s3_client, bucket) == []


# ----------------------------------------------------------------------------------------------- idempotency


def test_retry_after_success_does_not_download_again(simulator, s3_client, bucket):
    task_id = submit()
    op = transfer(task_id, bucket)
    first, ti1, _ = run_op(op)
    served = simulator.counters()
    s3_client.delete_object(Bucket=bucket, Key=f"videos/{task_id}.mp4.json")  # the first try died before it

    second, ti2, events = run_op(transfer(task_id, bucket))
    assert second == first and ti2.xcoms == ti1.xcoms
    counters = simulator.counters()
    assert counters["video_requests"] == served["video_requests"] == 1
    assert counters["bytes_served"] == served["bytes_served"]
    assert counters["polls"] == served["polls"]  # not even a fresh link was asked for
    manifest = json.loads(s3_client.get_object(Bucket=bucket, Key=f"videos/{task_id}.mp4.json")["Body"].read())
    assert manifest["sha256"] == ti1.xcoms["sha256"]
    from airflow.sdk import AssetAlias

    alias_events = events[AssetAlias("wan_videos")].asset_alias_events
    assert [(e.dest_asset_key.uri, e.extra["s3_uri"]) for e in alias_events] == [(f"s3://{bucket}/videos", first)]


def test_unfinished_copy_of_the_same_task_is_rewritten(simulator, s3_client, bucket):
    task_id = submit()
    key = f"videos/{task_id}.mp4"
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"half", Metadata={"wan-task-id": task_id})  # no sha256
    run_op(transfer(task_id, bucket))
    assert s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == served(task_id)


def test_different_object_and_replace_false_is_a_clear_error(simulator, s3_client, bucket):
    key = "videos/taken.mp4"
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"somebody else's video")
    task_id = submit()
    with pytest.raises(AirflowFailException) as info:
        run_op(transfer(task_id, bucket, s3_key=key))
    assert f"s3://{bucket}/{key} already exists" in str(info.value) and "replace=True" in str(info.value)
    assert s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"somebody else's video"
    assert simulator.counters()["video_requests"] == 0


def test_replace_true_overwrites_a_different_object(simulator, s3_client, bucket):
    key = "videos/taken.mp4"
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"somebody else's video")
    task_id = submit()
    run_op(transfer(task_id, bucket, s3_key=key, replace=True))
    assert s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == served(task_id)


# ----------------------------------------------------------------------------------------------- source problems


def test_expired_link_is_a_clear_non_retryable_error(simulator, s3_client, bucket):
    task_id = submit(marker=f"{FAST} link_ttl=0")
    with pytest.raises(AirflowFailException) as info:
        run_op(transfer(task_id, bucket))
    message = str(info.value)
    assert "WanVideoExpiredError" in message and "403" in message and "generate" in message
    assert keys(s3_client, bucket) == []


def test_unknown_task_is_a_clear_non_retryable_error(simulator, bucket):
    task_id = submit(marker=f"{FAST} task_ttl=0", wait=False)
    with pytest.raises(AirflowFailException, match=r"UNKNOWN.*generated again"):
        run_op(transfer(task_id, bucket))


def test_unfinished_task_is_retryable_and_failed_task_is_not(simulator, bucket):
    running = submit(marker="pending=0 running=60", wait=False)
    with pytest.raises(AirflowException, match="not SUCCEEDED") as info:
        run_op(transfer(running, bucket))
    assert not isinstance(info.value, AirflowFailException)

    failed = submit(marker=f"{FAST} outcome=FAILED code=DataInspectionFailed", wait=False)
    with pytest.raises(AirflowFailException, match=r"FAILED without a video.*DataInspectionFailed"):
        run_op(transfer(failed, bucket))


# ----------------------------------------------------------------------------------------------- link safety


def test_disallowed_host_is_refused_before_any_request(simulator, bucket):
    op = WanVideoToS3Operator(
        task_id="transfer", video_url="https://videos.example.com/abc.mp4?Expires=1&Signature=zzz", s3_bucket=bucket
    )
    with pytest.raises(AirflowFailException, match=r"not allowed.*aliyuncs"):
        run_op(op)


def test_redirect_to_disallowed_host_is_refused_before_it_is_requested(simulator, s3_client, bucket):
    task_id = submit(marker=f"{FAST} video_redirect=https://evil.example.net/steal.mp4")
    with pytest.raises(AirflowFailException, match=re.escape("redirect target https://evil.example.net/steal.mp4")):
        run_op(transfer(task_id, bucket))
    counters = simulator.counters()
    assert counters["video_requests"] == 1 and counters["bytes_served"] == 0
    assert keys(s3_client, bucket) == []


def test_allowed_redirects_are_followed_and_checked(simulator, web, s3_client, bucket):
    task_id = submit()
    link = WanHook().get_task(task_id).video_url
    web.routes["/start.mp4"] = _redirect("/hop.mp4")  # relative
    web.routes["/hop.mp4"] = _redirect(link)  # to the simulator
    op = WanVideoToS3Operator(
        task_id="transfer",
        video_url=f"http://localhost:{web.server_address[1]}/start.mp4",
        dashscope_task_id=task_id,
        s3_bucket=bucket,
        allowed_hosts=[f"localhost:{web.server_address[1]}", f"127.0.0.1:{urlsplit(link).port}"],
    )
    uri, _, _ = run_op(op)
    assert web.hits == ["/start.mp4", "/hop.mp4"]
    assert s3_client.get_object(Bucket=bucket, Key=uri.split("/", 3)[3])["Body"].read() == served(task_id)

    web.routes["/loop.mp4"] = _redirect("/loop.mp4")
    loop = WanVideoToS3Operator(
        task_id="transfer",
        video_url=f"http://localhost:{web.server_address[1]}/loop.mp4",
        s3_bucket=bucket,
        allowed_hosts=[f"localhost:{web.server_address[1]}"],
    )
    with pytest.raises(AirflowFailException, match="more than 5 redirects"):
        run_op(loop)


def test_plain_http_to_a_remote_host_is_refused(bucket):
    op = WanVideoToS3Operator(
        task_id="transfer",
        video_url="http://dashscope-result-bj.oss-cn-beijing.aliyuncs.com/x.mp4?Signature=abc",
        s3_bucket=bucket,
        allowed_hosts=["*.aliyuncs.com"],
    )
    with pytest.raises(AirflowFailException, match="plain http"):
        run_op(op)


def test_url_policy_rules():
    policy = UrlPolicy(("*.aliyuncs.com", "127.0.0.1:8080"))
    assert policy.check("https://dashscope-result.oss-cn-beijing.aliyuncs.com/a.mp4?x=1")
    assert policy.check("http://127.0.0.1:8080/a.mp4")
    for bad in (
        "http://127.0.0.1:8081/a.mp4",  # a host:port pattern allows that port only
        "http://127.0.0.1/a.mp4",
        "https://x.aliyuncs.com:8443/a.mp4",  # a pattern without a port allows only the default port
        "https://aliyuncs.com.evil.net/a.mp4",
        "https://x.aliyuncs.com@evil.net/a.mp4",
        "ftp://x.aliyuncs.com/a.mp4",
        "http://x.aliyuncs.com/a.mp4",
        "file:///etc/passwd",
    ):
        with pytest.raises(WanVideoURLRefusedError):
            policy.check(bad)
    assert UrlPolicy(("*.aliyuncs.com",), allow_http=True).check("http://x.aliyuncs.com/a.mp4")
    assert (
        redact("https://h.aliyuncs.com/a.mp4?Expires=1&Signature=abc%2B") == "https://h.aliyuncs.com/a.mp4?<redacted>"
    )
    assert "abc%2B" in secrets_of("https://h.aliyuncs.com/a.mp4?Expires=1&Signature=abc%2Bdef")[1]


def test_max_bytes_refuses_a_large_content_length_before_reading(simulator, s3_client, bucket):
    task_id = submit(marker=f"{FAST} video_bytes={64 * MIB}")
    with pytest.raises(AirflowFailException, match="over max_bytes"):
        run_op(transfer(task_id, bucket, max_bytes=MIB))
    # The body was never read: only what the server pushed into the socket buffers before we hung up was "served".
    assert simulator.counters()["bytes_served"] < 16 * MIB
    assert keys(s3_client, bucket) == [] and open_uploads(s3_client, bucket) == []


def test_max_bytes_stops_a_body_without_content_length(web, s3_client, bucket):
    def endless() -> Iterator[bytes]:
        yield b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41"
        for _ in range(64):
            yield b"\x00" * MIB

    web.routes["/live.mp4"] = _serve(endless, length=False)
    op = WanVideoToS3Operator(
        task_id="transfer",
        video_url=f"http://127.0.0.1:{web.server_address[1]}/live.mp4",
        s3_bucket=bucket,
        allowed_hosts=[f"127.0.0.1:{web.server_address[1]}"],
        max_bytes=7 * MIB,
        chunk_size=5 * MIB,
    )
    with pytest.raises(AirflowFailException, match="larger than max_bytes"):
        run_op(op)
    assert keys(s3_client, bucket) == [] and open_uploads(s3_client, bucket) == []


def test_signed_query_never_appears_in_logs_or_errors(simulator, s3_client, bucket, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # Airflow quiets httpx; let its request lines through
    ok = submit()
    expired = submit(marker=f"{FAST} link_ttl=0")
    secrets = []
    for task_id in (ok, expired):
        link = WanHook().get_task(task_id).video_url
        assert link
        query = urlsplit(link).query
        secrets += [query, *(v for k, v in parse_qs(query).items() for v in v if k in ("Signature",))]
    run_op(transfer(ok, bucket))
    with pytest.raises(AirflowFailException) as info:
        run_op(transfer(expired, bucket))
    out, err = capfd.readouterr()  # the task SDK renders operator logs with structlog, stdlib loggers reach caplog
    text = caplog.text + out + err + str(info.value) + repr(info.value.__cause__)
    assert "Downloading the video" in text and "HTTP Request: GET" in caplog.text  # both kinds were captured
    assert f"/oss/{ok}.mp4?<redacted>" in text
    for secret in secrets:
        assert secret not in text
    assert "OSSAccessKeyId=" not in text and "Expires=" not in text  # (botocore logs its own SigV4 Signature=)


# ----------------------------------------------------------------------------------------------- arguments


def test_destination_forms(bucket):
    op = WanVideoToS3Operator(task_id="t", dashscope_task_id="abc", s3_key=f"s3://{bucket}/x/y.mp4")
    assert op._destination({}, "abc") == (bucket, "x/y.mp4")
    op = WanVideoToS3Operator(task_id="t", dashscope_task_id="abc", s3_bucket=bucket, s3_key="prefix/")
    assert op._destination({}, "abc") == (bucket, "prefix/abc.mp4")
    op = WanVideoToS3Operator(task_id="t", dashscope_task_id="abc", s3_bucket=bucket)
    assert op._destination({"ds": "2026-03-04"}, "abc") == (bucket, "wan/2026-03-04/abc.mp4")
    op = WanVideoToS3Operator(task_id="t", dashscope_task_id="abc", s3_bucket="other", s3_key=f"s3://{bucket}/k")
    with pytest.raises(WanRequestValidationError, match="contradicts"):
        op._destination({}, "abc")


def test_arguments_are_checked_when_the_dag_is_parsed():
    with pytest.raises(ValueError, match="dashscope_task_id, generation"):
        WanVideoToS3Operator(task_id="t", s3_bucket="b")
    with pytest.raises(ValueError, match="chunk_size"):
        WanVideoToS3Operator(task_id="t", dashscope_task_id="x", s3_bucket="b", chunk_size=MIB)
    with pytest.raises(ValueError, match="NotAnArg"):
        WanVideoToS3Operator(task_id="t", dashscope_task_id="x", s3_bucket="b", extra_s3_args={"NotAnArg": 1})
    op = WanVideoToS3Operator(task_id="t", dashscope_task_id="x", s3_bucket="b", outlets=[])
    assert [getattr(o, "name", None) for o in op.outlets] == ["wan_videos"]
    assert "dashscope_task_id" in op.template_fields and "generation" in op.template_fields


def test_sse_acl_and_extra_arguments_reach_both_objects(simulator, s3_client, bucket):
    task_id = submit()
    run_op(
        transfer(
            task_id,
            bucket,
            encrypt=True,
            acl_policy="bucket-owner-full-control",
            extra_s3_args={"StorageClass": "STANDARD_IA", "CacheControl": "max-age=60", "Metadata": {"team": "ads"}},
        )
    )
    for key in (f"videos/{task_id}.mp4", f"videos/{task_id}.mp4.json"):
        head = s3_client.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == "AES256"
        assert head["StorageClass"] == "STANDARD_IA" and head["CacheControl"] == "max-age=60"
        assert head["Metadata"]["team"] == "ads" and head["Metadata"]["wan-task-id"] == task_id


# ----------------------------------------------------------------------------------------------- end to end


def test_dag_submit_wait_transfer_records_the_asset_event(simulator, s3_client, bucket, run_dag):
    dag_run = run_dag("wan_test_transfer", {"bucket": bucket})
    assert task_states(dag_run) == {"submit": "success", "wait": "success", "transfer": "success"}
    uri = xcom(dag_run, "transfer")
    task_id = xcom(dag_run, "wait")
    assert uri.startswith(f"s3://{bucket}/videos/") and uri.endswith(f"/{task_id}.mp4")
    key = uri.split("/", 3)[3]
    data = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert sha256(data) == xcom(dag_run, "transfer", "sha256")
    assert xcom(dag_run, "transfer", "manifest_uri") == f"{uri}.json"
    events = asset_events(f"s3://{bucket}/videos")  # one asset for the destination, the object in the extra
    assert [(e[0], e[1], e[2]) for e in events] == [("wan_test_transfer", "transfer", dag_run.run_id)]
    assert events[0][3]["sha256"] == sha256(data) and events[0][3]["dashscope_task_id"] == task_id
    assert events[0][3]["s3_uri"] == uri and events[0][3]["key"] == key
    assert asset_events(uri) == []  # no asset per video


def test_dag_with_the_generate_operator_passes_its_result(simulator, s3_client, bucket, run_dag):
    dag_run = run_dag("wan_test_transfer_generate", {"bucket": bucket})
    assert task_states(dag_run) == {"generate": "success", "transfer": "success"}
    generation = xcom(dag_run, "generate")
    uri = xcom(dag_run, "transfer")
    assert uri.endswith(f"/{generation['task_id']}.mp4")
    key = uri.split("/", 3)[3]
    head = s3_client.head_object(Bucket=bucket, Key=key)
    assert head["Metadata"]["wan-model"] == "wan2.6-t2v" and head["Metadata"]["wan-seed"] == "11"
    manifest = json.loads(s3_client.get_object(Bucket=bucket, Key=f"{key}.json")["Body"].read())
    assert manifest["request"]["prompt"].startswith("一只纸船") and manifest["model"] == "wan2.6-t2v"
    [event] = asset_events(f"s3://{bucket}/wan")
    assert event[:3] == ("wan_test_transfer_generate", "transfer", dag_run.run_id) and event[3]["s3_uri"] == uri


def test_rendered_video_url_is_masked_before_it_is_stored():
    from airflow.sdk._shared.secrets_masker import redact

    op = WanVideoToS3Operator(
        task_id="transfer", video_url="{{ params.link }}", s3_bucket="b", allowed_hosts=["*.aliyuncs.com"]
    )
    link = "https://r.oss-cn-beijing.aliyuncs.com/t.mp4?Expires=99&OSSAccessKeyId=LTAIkey1234&Signature=c2VjcmV0c2ln"
    op.render_template_fields({"params": {"link": link}})  # type: ignore[arg-type]
    assert op.video_url == link
    shown = str(redact(op.video_url, "video_url"))
    assert "c2VjcmV0c2ln" not in shown and "LTAIkey1234" not in shown


# ----------------------------------------------------------------------------------------------- no copy, no orphans


def test_versioned_bucket_gets_exactly_one_version_of_each_object(simulator, s3_client, bucket):
    s3_client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    size = 12 * MIB
    task_id = submit(marker=f"{FAST} video_bytes={size}")
    key = f"videos/{task_id}.mp4"
    run_op(transfer(task_id, bucket, chunk_size=5 * MIB))
    run_op(transfer(task_id, bucket, chunk_size=5 * MIB))  # a retry after success writes nothing

    versions = s3_client.list_object_versions(Bucket=bucket).get("Versions", [])
    assert sorted(v["Key"] for v in versions) == [key, f"{key}.json"]  # no copy-onto-itself version
    assert recorded(s3_client, bucket, key) == {"wan-sha256": synthetic_video_sha256(size), "wan-size-bytes": str(size)}
    assert open_uploads(s3_client, bucket) == []


def test_uploads_left_at_the_key_by_earlier_tries_are_aborted_and_no_others(simulator, s3_client, bucket):
    task_id = submit()
    key = f"videos/{task_id}.mp4"
    s3_client.create_multipart_upload(Bucket=bucket, Key=key)  # an earlier try whose abort never reached S3
    s3_client.create_multipart_upload(Bucket=bucket, Key=f"{key}.bak")  # same prefix, another key
    s3_client.create_multipart_upload(Bucket=bucket, Key="videos/other.mp4")
    _, ti, _ = run_op(transfer(task_id, bucket))
    assert sorted(u["Key"] for u in open_uploads(s3_client, bucket)) == [f"{key}.bak", "videos/other.mp4"]
    assert sha256(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()) == ti.xcoms["sha256"]


def test_uploads_started_after_this_try_began_are_left_alone(simulator, s3_client, bucket, s3_proxy):
    from datetime import datetime, timedelta, timezone

    task_id = submit()
    key = f"videos/{task_id}.mp4"
    s3_client.create_multipart_upload(Bucket=bucket, Key=key)  # e.g. a concurrent run writing the same key
    # moto reports one fixed date for every upload: the proxy dates it an hour ahead, after this try began
    later = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    s3_proxy.rewrite = lambda body: re.sub(
        rb"<Initiated>[^<]*</Initiated>", f"<Initiated>{later}</Initiated>".encode(), body
    )
    run_op(transfer(task_id, bucket, aws_conn_id="aws_flaky"))
    assert [u["Key"] for u in open_uploads(s3_client, bucket)] == [key]


# ----------------------------------------------------------------------------------------------- malformed links


@pytest.mark.parametrize(
    ("link", "says"),
    [
        ("https://x.aliyuncs.com/a.mp4?Signature=abc\n", "line feed"),
        ("https://x.aliyuncs.com/a.mp4\r\nHost: evil", "carriage return"),
        ("https://x.aliyuncs.com/a b.mp4", "a space"),
        ("https://x.aliyuncs.com:99999/a.mp4", "Port out of range"),
        ("https://x.aliyuncs.com:http/a.mp4", "not a valid URL"),
        ("https://[::1/a.mp4", "not a valid URL"),
        ("https://ｘ.aliyuncs.com/a.mp4", "non-ASCII host"),
        ("https://aliyuncs.com.evil.net/a.mp4", "not allowed"),
        ("https://X.ALIYUNCS.COM.EVIL.NET/a.mp4", "not allowed"),
        ("https://x.aliyuncs.com@evil.com/a.mp4", "user info"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[fe80::1]/a.mp4", "link-local"),
        ("https://0.0.0.0/a.mp4", "unspecified"),
        ("HTTP://127.0.0.1:2/a.mp4", "not allowed"),
        ("http://localhost/a.mp4", "not allowed"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("//x.aliyuncs.com/a.mp4", "scheme 'none'"),
    ],
)
def test_malformed_and_probing_links_are_refused_with_the_reason(link, says):
    policy = UrlPolicy(("*.aliyuncs.com", "127.0.0.1:1"))
    with pytest.raises(WanVideoURLRefusedError, match=re.escape(says)) as info:
        policy.check(link)
    assert not info.value.retryable and "abc" not in str(info.value)


def test_malformed_link_fails_the_task_without_retry_before_any_request(simulator, s3_client, bucket, web):
    for link in (f"http://127.0.0.1:{web.server_address[1]}/a.mp4\n", "http://127.0.0.1:99999/a.mp4"):
        op = WanVideoToS3Operator(task_id="transfer", video_url=link, s3_bucket=bucket, allowed_hosts=["127.0.0.1:*"])
        with pytest.raises(AirflowFailException, match="WanVideoURLRefusedError"):
            run_op(op)
    assert web.hits == [] and keys(s3_client, bucket) == []


def test_base_url_host_is_allowed_on_its_own_port_only(simulator, s3_client, bucket, web):
    link = WanHook().get_task(submit()).video_url
    assert link
    other = f"http://127.0.0.1:{web.server_address[1]}/oss/x.mp4"
    web.routes["/oss/x.mp4"] = _serve(sample_video_bytes())
    web.routes["/hop.mp4"] = _redirect(other)
    with pytest.raises(AirflowFailException, match=f"127.0.0.1:{web.server_address[1]}, which is not allowed"):
        run_op(WanVideoToS3Operator(task_id="transfer", video_url=other, s3_bucket=bucket))
    assert web.hits == []
    uri, _, _ = run_op(WanVideoToS3Operator(task_id="transfer", video_url=link, s3_bucket=bucket))
    assert uri.startswith(f"s3://{bucket}/")


def test_unusable_dashscope_connection_fails_without_retry(simulator, bucket, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DASHSCOPE_BROKEN", json.dumps({"conn_type": "dashscope", "extra": {}}))
    with pytest.raises(AirflowFailException, match="no API key"):
        run_op(transfer(submit(), bucket, dashscope_conn_id="dashscope_broken"))
    with pytest.raises(AirflowFailException, match=r"dashscope_missing.*isn't defined"):
        run_op(transfer(submit(), bucket, dashscope_conn_id="dashscope_missing"))
