"""The transfer's streaming parts on their own: the digest thread, the part reader, and what stops an upload.

The reader is fed pieces of odd sizes (as a socket returns them); the uploads go to the moto server, so an aborted
upload is checked for what it leaves in S3: no object, no open multipart upload.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_wan._compat import AirflowException, AirflowFailException
from airflow_provider_wan.exceptions import WanS3UploadError, WanVideoDownloadError
from airflow_provider_wan.transfers._digest import StreamDigest, crc64nvme_function
from airflow_provider_wan.transfers._download import DownloadStats, VideoReader
from airflow_provider_wan.transfers._s3 import ManagedUpload
from airflow_provider_wan.transfers.wan_to_s3 import WanVideoToS3Operator

MIB = 1024 * 1024


class Pieces:
    """Stands in for an opened ``VideoDownload``: ``chunks()`` yields the given pieces, then raises ``error``."""

    def __init__(self, pieces: list[bytes], error: BaseException | None = None) -> None:
        self.pieces = pieces
        self.error = error
        self.taken = 0

    def chunks(self) -> Iterator[bytes]:
        for piece in self.pieces:
            self.taken += 1
            yield piece
        if self.error is not None:
            raise self.error


def random_pieces(total: int, seed: int = 7) -> tuple[bytes, list[bytes]]:
    """``total`` bytes cut in pieces of 1 byte to 70 KiB (a socket returns up to 64 KiB a read)."""
    rng = random.Random(seed)
    data = rng.randbytes(total)
    pieces, at = [], 0
    while at < total:
        size = rng.choice([1, 11, 4096, 65536, 70000, rng.randint(1, 70000)])
        pieces.append(data[at : at + size])
        at += size
    return data, pieces


def reader_of(pieces: list[bytes], error: BaseException | None = None, **digest: Any) -> VideoReader:
    return VideoReader(Pieces(pieces, error), StreamDigest(**digest))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- the digest


@pytest.mark.parametrize("threaded", [True, False], ids=["thread", "inline"])
def test_digest_is_the_sha256_of_the_buffers_in_order(threaded):
    data, pieces = random_pieces(3 * MIB + 5)
    digest = StreamDigest(threaded=threaded)
    for piece in pieces:
        digest.update(piece)
    result = digest.result()
    assert result.sha256 == hashlib.sha256(data).hexdigest() and result.size == len(data)
    assert result.crc64nvme is None and digest.result() is result  # idempotent
    digest.close()  # a no-op once finished
    with pytest.raises(RuntimeError, match="already finished"):
        digest.update(b"more")


def test_digest_computes_crc64nvme_when_asked():
    crc64nvme = crc64nvme_function()
    if crc64nvme is None:
        with pytest.raises(RuntimeError, match="awscrt"):
            StreamDigest(crc64nvme=True)
        return
    data, pieces = random_pieces(2 * MIB)
    digest = StreamDigest(crc64nvme=True)
    for piece in pieces:
        digest.update(piece)
    assert digest.result().crc64nvme == crc64nvme(data, 0)


def test_digest_thread_failure_is_raised_and_never_blocks_the_reader(monkeypatch):
    calls = 0
    real = StreamDigest._hash

    def failing(self: StreamDigest, data: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise MemoryError("no room to hash")
        real(self, data)

    monkeypatch.setattr(StreamDigest, "_hash", failing)
    digest = StreamDigest(depth=1)
    with pytest.raises(MemoryError):
        for _ in range(200):  # after the failure the thread keeps taking buffers: update() raises, never hangs
            digest.update(b"x" * 4096)
    with pytest.raises(MemoryError):
        digest.result()
    digest.close()


def test_closed_digest_drops_what_is_queued_and_stops_its_thread():
    digest = StreamDigest()
    digest.update(b"x" * MIB)
    digest.close()
    assert not any(t.name == "wan-transfer-digest" for t in threading.enumerate())
    with pytest.raises(RuntimeError, match="closed before it finished"):
        digest.result()


# ----------------------------------------------------------------------------------------------- the reader


def test_reader_returns_exact_parts_and_hashes_each_byte_once():
    data, pieces = random_pieces(5 * MIB + 777)
    reader = reader_of(pieces)
    assert not reader.fill(2 * MIB)  # read ahead: nothing returned, nothing hashed yet
    assert reader.returned == 0 and reader.digest.size == 0
    parts = []
    while part := reader.read(MIB + 3):
        parts.append(part)
    assert [len(p) for p in parts[:-1]] == [MIB + 3] * (len(parts) - 1) and 0 < len(parts[-1]) <= MIB + 3
    assert b"".join(parts) == data and reader.done and reader.returned == len(data)
    assert reader.digest.result().sha256 == hashlib.sha256(data).hexdigest()
    assert reader.read(MIB) == b""


def test_reader_reads_a_small_body_whole():
    data, pieces = random_pieces(300_000)
    reader = reader_of(pieces)
    assert reader.fill(MIB)  # the body ended before a part was full
    assert reader.read() == data and reader.done
    assert reader.digest.result().sha256 == hashlib.sha256(data).hexdigest()


def test_reader_raises_what_the_download_raised_and_stop_raises_on_the_next_read():
    _, pieces = random_pieces(3 * MIB)
    reader = reader_of(pieces, WanVideoDownloadError("cut after 3 MiB"))
    assert len(reader.read(2 * MIB)) == 2 * MIB
    with pytest.raises(WanVideoDownloadError, match="cut after"):
        reader.read(2 * MIB)
    assert not reader.done
    reader.close()

    reader = reader_of(pieces)
    reader.read(MIB)
    reader.stop(RuntimeError("killed"))
    with pytest.raises(RuntimeError, match="killed"):
        reader.read(MIB)
    reader.close()


# ----------------------------------------------------------------------------------------------- what stops an upload


class EndsEarly:
    """A reader that returns two full parts, then an empty read, though it has not read its body to the end."""

    def __init__(self) -> None:
        self.parts_left = 2
        self.digest = StreamDigest()
        self.done = False

    def read(self, size: int = -1) -> bytes:
        if not self.parts_left:
            return b""
        self.parts_left -= 1
        data = b"\0" * size
        self.digest.update(data)
        return data


def test_upload_is_never_completed_before_the_whole_body_was_read(s3_server, s3_client, bucket):
    import boto3
    from boto3.s3.transfer import TransferConfig

    client = boto3.client(
        "s3", endpoint_url=s3_server, aws_access_key_id="t", aws_secret_access_key="t", region_name="us-east-1"
    )
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=2)
    upload, reader = ManagedUpload(client, config, bucket, "videos/short.mp4", {}, {}), EndsEarly()
    with upload, pytest.raises(WanS3UploadError, match="about to complete before the whole video was read"):
        upload.put_stream(reader, DownloadStats())
    reader.digest.close()
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    # Its handlers left the client with it: the same event no longer reaches the upload.
    upload._streaming = reader
    model = client.meta.service_model.operation_model("CompleteMultipartUpload")
    params = {"Bucket": bucket, "Key": "videos/short.mp4", "UploadId": "x"}
    client.meta.events.emit("before-parameter-build.s3.CompleteMultipartUpload", params=params, model=model, context={})


def test_failed_hashing_aborts_the_upload_and_leaves_nothing(simulator, s3_client, bucket, monkeypatch):
    from tests.test_transfer_wan_to_s3 import FAST, open_uploads, run_op, submit, transfer

    real, calls = StreamDigest._hash, []

    def failing(self: StreamDigest, data: bytes) -> None:
        calls.append(len(data))
        if len(calls) == 2:
            raise MemoryError("no room to hash")
        real(self, data)

    monkeypatch.setattr(StreamDigest, "_hash", failing)
    task_id = submit(marker=f"{FAST} video_bytes={24 * MIB}")
    with pytest.raises(AirflowException):
        run_op(transfer(task_id, bucket, chunk_size=5 * MIB))
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert open_uploads(s3_client, bucket) == []
    assert not any(t.name == "wan-transfer-digest" for t in threading.enumerate())


# ----------------------------------------------------------------------------------------------- s3_checksum


def test_s3_checksum_is_checked_when_the_dag_is_parsed():
    for good in (True, False, "crc32", "SHA256", "CRC64NVME", "crc-64nvme"):
        WanVideoToS3Operator(task_id="t", dashscope_task_id="x", s3_bucket="b", s3_checksum=good)
    with pytest.raises(ValueError, match="s3_checksum='MD5' is not one of"):
        WanVideoToS3Operator(task_id="t", dashscope_task_id="x", s3_bucket="b", s3_checksum="MD5")


@pytest.mark.skipif(crc64nvme_function() is not None, reason="awscrt is installed")
def test_crc64nvme_without_awscrt_fails_before_any_request(simulator, s3_client, bucket):
    from tests.test_transfer_wan_to_s3 import run_op, submit, transfer

    task_id = submit()
    with pytest.raises(AirflowFailException, match=r"awscrt.*boto3\[crt\]"):
        run_op(transfer(task_id, bucket, s3_checksum="CRC64NVME"))
    assert simulator.counters()["video_requests"] == 0
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_the_classic_transfer_manager_is_used_even_with_awscrt():
    hook = WanVideoToS3Operator(task_id="t", dashscope_task_id="x", s3_bucket="b", aws_conn_id=None)._s3_hook()
    assert hook.transfer_config.preferred_transfer_client == "classic"
    assert hook.transfer_config.max_in_memory_upload_chunks == 3  # max_in_flight + 1: memory stays flat
