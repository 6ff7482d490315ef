"""
A streamed S3 upload with bounded memory: one part buffer plus a bounded number of parts in flight.

A body smaller than one part becomes a single ``PutObject``; anything larger an explicit multipart upload whose
parts carry SHA-256 checksums that S3 verifies. The upload is completed only by :meth:`StreamingUpload.complete`,
after the caller has checked the whole download; any failure aborts it, so no partial object ever appears.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_wan.exceptions import WanS3UploadError

MIB = 1024 * 1024
#: S3's smallest part (except the last) and largest part.
MIN_PART_SIZE = 5 * MIB
MAX_PART_SIZE = 5 * 1024 * MIB
#: S3's largest number of parts in one upload.
MAX_PARTS = 10_000
#: The largest object one CopyObject can copy (larger ones need a multipart copy).
MAX_SINGLE_COPY = 5 * 1024 * MIB

#: Object-level arguments accepted by PutObject, CreateMultipartUpload and CopyObject alike.
OBJECT_ARGS = frozenset(
    {
        "ACL",
        "BucketKeyEnabled",
        "CacheControl",
        "ContentDisposition",
        "ContentEncoding",
        "ContentLanguage",
        "ContentType",
        "ExpectedBucketOwner",
        "Expires",
        "GrantFullControl",
        "GrantRead",
        "GrantReadACP",
        "GrantWriteACP",
        "Metadata",
        "ObjectLockLegalHoldStatus",
        "ObjectLockMode",
        "ObjectLockRetainUntilDate",
        "RequestPayer",
        "SSECustomerAlgorithm",
        "SSECustomerKey",
        "SSECustomerKeyMD5",
        "SSEKMSEncryptionContext",
        "SSEKMSKeyId",
        "ServerSideEncryption",
        "StorageClass",
        "Tagging",
        "WebsiteRedirectLocation",
    }
)
#: The subset every request about an existing object or upload must repeat (SSE-C keys, requester pays).
REQUEST_ARGS = ("SSECustomerAlgorithm", "SSECustomerKey", "SSECustomerKeyMD5", "RequestPayer", "ExpectedBucketOwner")
#: Error codes of S3-compatible stores that do not implement flexible checksums.
_CHECKSUM_UNSUPPORTED = frozenset(
    {"InvalidArgument", "NotImplemented", "InvalidRequest", "UnsupportedArgument", "XNotImplemented", "BadRequest"}
)
#: S3 errors a retry will not fix.
_PERMANENT = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "NoSuchBucket",
        "InvalidBucketName",
        "AccountProblem",
        "InvalidObjectState",
        "KMS.DisabledException",
        "KMS.NotFoundException",
        "InvalidStorageClass",
        "InvalidArgument",
        "403",
        "Forbidden",
    }
)


def b64_sha256(digest: bytes) -> str:
    """S3's form of a SHA-256 checksum: base64 of the raw digest."""
    return base64.b64encode(digest).decode()


def error_code(err: BaseException) -> str | None:
    """The S3 error code of a botocore ``ClientError``, or None."""
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def s3_error(err: BaseException, doing: str, bucket: str, key: str) -> WanS3UploadError:
    """
    Wrap a botocore error (or anything raised by the client) as :class:`WanS3UploadError`.

    :param err: what the client raised.
    :param doing: the operation, e.g. ``UploadPart 3``.
    :param bucket: the destination bucket.
    :param key: the destination key.
    """
    if isinstance(err, WanS3UploadError):
        return err
    code = error_code(err)
    wrapped = WanS3UploadError(f"S3 {doing} for s3://{bucket}/{key} failed: {type(err).__name__}: {err}")
    if code in _PERMANENT:
        wrapped.retryable = False  # an instance override: this one will fail the same way again
    return wrapped


@dataclass
class UploadResult:
    """
    What was written.

    :param bucket: the bucket.
    :param key: the key.
    :param size: bytes written.
    :param sha256: hex SHA-256 of the object, computed while streaming.
    :param parts: 0 for a single PutObject, else the number of parts.
    :param s3_checksum: the SHA-256 checksum S3 reported for the object (base64; composite ``...-N`` for parts).
    :param verified_by_s3: whether S3 confirmed a SHA-256 checksum of every byte written.
    :param etag: the object's ETag.
    :param version_id: the object's version, in a versioned bucket.
    """

    bucket: str
    key: str
    size: int
    sha256: str
    parts: int
    s3_checksum: str | None = None
    verified_by_s3: bool = False
    etag: str | None = None
    version_id: str | None = None


@dataclass
class _Part:
    number: int
    size: int
    etag: str = ""
    checksum: str | None = None
    s3_checksum: str | None = None
    digest: bytes = field(default=b"", repr=False)


class StreamingUpload:
    """
    Write a stream of bytes to ``s3://bucket/key`` through an explicit multipart upload, holding at most
    ``(max_in_flight + 2) * part_size`` bytes.

    Nothing is visible at the key until :meth:`complete`; :meth:`abort` (also called on any failure inside this
    class) removes every uploaded part.

    :param client: a boto3 S3 client (``S3Hook(...).get_conn()``).
    :param bucket: the destination bucket.
    :param key: the destination key.
    :param object_args: object-level arguments (ContentType, ACL, SSE, StorageClass, ...; see :data:`OBJECT_ARGS`).
    :param metadata: user metadata known before the upload (the sha256 is added at :meth:`complete`).
    :param part_size: bytes per part (at least :data:`MIN_PART_SIZE`).
    :param max_in_flight: parts uploading at once while the next one fills.
    :param use_checksum: send SHA-256 checksums for S3 to verify (falls back when the store refuses them).
    :param log: where progress goes.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        *,
        object_args: dict[str, Any],
        metadata: dict[str, str],
        part_size: int,
        max_in_flight: int = 2,
        use_checksum: bool = True,
        log: logging.Logger | Any = None,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size={part_size} is below S3's minimum of {MIN_PART_SIZE} bytes")
        self.client = client
        self.bucket = bucket
        self.key = key
        self.object_args = dict(object_args)
        self.request_args = {k: v for k, v in object_args.items() if k in REQUEST_ARGS}
        self.metadata = dict(metadata)
        self.part_size = min(part_size, MAX_PART_SIZE)
        self.max_in_flight = max(1, max_in_flight)
        self.use_checksum = use_checksum
        self.log = log or logging.getLogger(__name__)
        self.upload_id: str | None = None
        self.size = 0
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._parts: list[_Part] = []
        self._inflight: deque[Future[None]] = deque()
        self._executor: ThreadPoolExecutor | None = None
        self._done = False

    # ------------------------------------------------------------------------------------------- streaming

    def write(self, piece: bytes) -> None:
        """
        Add bytes; a full part is handed to an upload thread (waiting first when ``max_in_flight`` are busy).

        :param piece: the next bytes of the object.
        """
        if not piece:
            return
        self._buffer.append(piece)
        self._buffered += len(piece)
        self.size += len(piece)
        if self._buffered >= self.part_size:
            self._send_part()

    def _take_buffer(self) -> bytes:
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        return data

    def _send_part(self) -> None:
        if len(self._parts) >= MAX_PARTS:
            raise WanS3UploadError(
                f"s3://{self.bucket}/{self.key} would need more than {MAX_PARTS} parts of {self.part_size} bytes; "
                f"raise chunk_size"
            )
        if self.upload_id is None:
            self._create()
        while len(self._inflight) >= self.max_in_flight:
            self._inflight.popleft().result()
        data = self._take_buffer()
        part = _Part(number=len(self._parts) + 1, size=len(data))
        self._parts.append(part)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.max_in_flight, thread_name_prefix="wan-s3-part")
        self._inflight.append(self._executor.submit(self._upload_part, part, data))

    def _create(self) -> None:
        args: dict[str, Any] = {
            **self.object_args,
            "Bucket": self.bucket,
            "Key": self.key,
            "Metadata": {**self.object_args.get("Metadata", {}), **self.metadata},
        }
        try:
            if self.use_checksum:
                try:
                    response = self.client.create_multipart_upload(**args, ChecksumAlgorithm="SHA256")
                except Exception as err:
                    if error_code(err) not in _CHECKSUM_UNSUPPORTED:
                        raise
                    self._degrade(err)
                    response = self.client.create_multipart_upload(**args)
            else:
                response = self.client.create_multipart_upload(**args)
        except Exception as err:
            raise s3_error(err, "CreateMultipartUpload", self.bucket, self.key) from err
        self.upload_id = response["UploadId"]
        self.log.info(
            "Started multipart upload to s3://%s/%s (parts of %d MiB, %d in flight, checksums %s)",
            self.bucket,
            self.key,
            self.part_size // MIB,
            self.max_in_flight,
            "SHA-256" if self.use_checksum else "off",
        )

    def _degrade(self, err: BaseException) -> None:
        self.use_checksum = False
        self.log.warning(
            "The S3 endpoint refused SHA-256 checksums (%s); uploading without them. The sha256 computed while "
            "streaming is still stored in the metadata and the manifest.",
            error_code(err),
        )

    def _upload_part(self, part: _Part, data: bytes) -> None:
        digest = hashlib.sha256(data).digest()
        args: dict[str, Any] = {
            **self.request_args,
            "Bucket": self.bucket,
            "Key": self.key,
            "UploadId": self.upload_id,
            "PartNumber": part.number,
            "Body": data,
        }
        if self.use_checksum:
            part.checksum = b64_sha256(digest)
            args.update(ChecksumAlgorithm="SHA256", ChecksumSHA256=part.checksum)
        try:
            response = self.client.upload_part(**args)
        except Exception as err:
            raise s3_error(err, f"UploadPart {part.number}", self.bucket, self.key) from err
        part.etag = response["ETag"]
        part.digest = digest
        part.s3_checksum = response.get("ChecksumSHA256")
        if part.checksum and part.s3_checksum and part.s3_checksum != part.checksum:
            raise WanS3UploadError(
                f"S3 stored part {part.number} of s3://{self.bucket}/{self.key} with SHA-256 {part.s3_checksum}, "
                f"not the {part.checksum} that was sent"
            )

    # ------------------------------------------------------------------------------------------- finishing

    def complete(self, sha256_hex: str, final_metadata: dict[str, str] | None = None) -> UploadResult:
        """
        Make the object visible: a PutObject when it fits in one part, else the last part, CompleteMultipartUpload
        and an in-place copy that adds the sha256 to the metadata (S3 recomputes the whole-object checksum).

        Call it only after every check of the download passed.

        :param sha256_hex: the hex SHA-256 of every byte written, computed by the caller while streaming.
        :param final_metadata: user metadata known only now (the sha256, the size), added to ``metadata``.
        :raises WanS3UploadError: S3 failed or reported a different checksum (the upload is aborted).
        """
        metadata = {**self.metadata, **(final_metadata or {})}
        digest = bytes.fromhex(sha256_hex)
        try:
            if self.upload_id is None:
                result = self._put_whole(self._take_buffer(), metadata, digest)
            else:
                result = self._complete_multipart(metadata, digest)
        except BaseException:
            self.abort()
            raise
        finally:
            self.close()
        self._done = True
        return result

    def _put_whole(self, data: bytes, metadata: dict[str, str], digest: bytes) -> UploadResult:
        args: dict[str, Any] = {
            **self.object_args,
            "Bucket": self.bucket,
            "Key": self.key,
            "Body": data,
            "Metadata": {**self.object_args.get("Metadata", {}), **metadata},
        }
        checksum = b64_sha256(digest)
        try:
            if self.use_checksum:
                try:
                    response = self.client.put_object(**args, ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum)
                except Exception as err:
                    if error_code(err) not in _CHECKSUM_UNSUPPORTED:
                        raise
                    self._degrade(err)
                    response = self.client.put_object(**args)
            else:
                response = self.client.put_object(**args)
        except Exception as err:
            raise s3_error(err, "PutObject", self.bucket, self.key) from err
        reported = response.get("ChecksumSHA256")
        if reported and reported != checksum:  # S3 itself refuses a mismatch (BadDigest); this guards the others
            self._delete_corrupt(response.get("VersionId"))
            raise WanS3UploadError(f"S3 stored s3://{self.bucket}/{self.key} with SHA-256 {reported}, not {checksum}")
        return UploadResult(
            bucket=self.bucket,
            key=self.key,
            size=len(data),
            sha256=digest.hex(),
            parts=0,
            s3_checksum=reported,
            verified_by_s3=bool(self.use_checksum and reported),
            etag=response.get("ETag"),
            version_id=response.get("VersionId"),
        )

    def _complete_multipart(self, metadata: dict[str, str], digest: bytes) -> UploadResult:
        if self._buffered:
            self._send_part()
        while self._inflight:
            self._inflight.popleft().result()
        parts = []
        for part in self._parts:
            entry: dict[str, Any] = {"PartNumber": part.number, "ETag": part.etag}
            if part.checksum:
                entry["ChecksumSHA256"] = part.checksum
            parts.append(entry)
        composite = b64_sha256(hashlib.sha256(b"".join(p.digest for p in self._parts)).digest())
        composite += f"-{len(self._parts)}"
        try:
            response = self.client.complete_multipart_upload(
                **self.request_args,
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
            )
        except Exception as err:
            raise s3_error(err, "CompleteMultipartUpload", self.bucket, self.key) from err
        self.upload_id = None  # completed: nothing left to abort
        self.log.info("Completed multipart upload of %d parts to s3://%s/%s", len(parts), self.bucket, self.key)
        reported = response.get("ChecksumSHA256")
        parts_verified = self.use_checksum and all(p.s3_checksum == p.checksum for p in self._parts)
        try:
            if self.use_checksum and reported and reported != composite:
                raise WanS3UploadError(
                    f"S3 reports the composite SHA-256 {reported} for s3://{self.bucket}/{self.key}, not {composite}"
                )
            copy = self._finalize_metadata(metadata, digest, response.get("ETag"), response.get("VersionId"))
        except WanS3UploadError as err:
            if "SHA-256" in err.message:
                self._delete_corrupt(response.get("VersionId"))
            raise
        whole = copy.get("ChecksumSHA256")
        return UploadResult(
            bucket=self.bucket,
            key=self.key,
            size=self.size,
            sha256=digest.hex(),
            parts=len(parts),
            s3_checksum=whole or reported,
            verified_by_s3=bool(parts_verified or (whole and whole == b64_sha256(digest))),
            etag=copy.get("ETag") or response.get("ETag"),
            version_id=copy.get("VersionId") or response.get("VersionId"),
        )

    def _finalize_metadata(
        self, metadata: dict[str, str], digest: bytes, etag: str | None, version_id: str | None
    ) -> dict[str, Any]:
        """
        Copy the completed object onto itself with the final metadata (S3 copies server-side, nothing streams here).

        A multipart upload's metadata is fixed when it starts, before the sha256 is known.
        """
        source: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if version_id:
            source["VersionId"] = version_id
        args: dict[str, Any] = {
            **self.object_args,
            "Bucket": self.bucket,
            "Key": self.key,
            "CopySource": source,
            "MetadataDirective": "REPLACE",
            "Metadata": {**self.object_args.get("Metadata", {}), **metadata},
        }
        if etag:
            args["CopySourceIfMatch"] = etag
        if "Tagging" in args:
            args["TaggingDirective"] = "REPLACE"
        for name in ("SSECustomerAlgorithm", "SSECustomerKey", "SSECustomerKeyMD5"):
            if name in self.object_args:
                args[f"CopySource{name}"] = self.object_args[name]
        if self.use_checksum:
            args["ChecksumAlgorithm"] = "SHA256"
        try:
            if self.size > MAX_SINGLE_COPY:
                return self._managed_copy(args)
            response = self.client.copy_object(**args)
        except Exception as err:
            raise s3_error(err, "CopyObject (adding the sha256 metadata)", self.bucket, self.key) from err
        result: dict[str, Any] = dict(response.get("CopyObjectResult") or {})
        result.setdefault("VersionId", response.get("VersionId"))
        whole = result.get("ChecksumSHA256")
        if self.use_checksum and whole and "-" not in whole and whole != b64_sha256(digest):
            raise WanS3UploadError(
                f"S3 computed SHA-256 {whole} for s3://{self.bucket}/{self.key}, but the download's is "
                f"{b64_sha256(digest)}"
            )
        return result

    def _delete_corrupt(self, version_id: str | None) -> None:
        """Remove an object S3 stored with other bytes than were downloaded (never expected; S3 checks parts)."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if version_id:
            args["VersionId"] = version_id
        try:
            self.client.delete_object(**args)
            self.log.error("Deleted s3://%s/%s: its checksum does not match the download", self.bucket, self.key)
        except Exception as err:
            self.log.error("Could not delete the mismatching s3://%s/%s: %s", self.bucket, self.key, err)

    def _managed_copy(self, args: dict[str, Any]) -> dict[str, Any]:
        """Objects over 5 GiB: a multipart copy through boto3's managed transfer (UploadPartCopy)."""
        from boto3.s3.transfer import TransferConfig

        extra = {k: v for k, v in args.items() if k not in ("Bucket", "Key", "CopySource")}
        self.client.copy(
            args["CopySource"],
            self.bucket,
            self.key,
            ExtraArgs=extra,
            Config=TransferConfig(multipart_threshold=MAX_SINGLE_COPY, multipart_chunksize=self.part_size),
        )
        return {}

    def abort(self) -> None:
        """Stop the part threads and abort the multipart upload (best effort, logged); idempotent."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        self._inflight.clear()
        self._buffer.clear()
        upload_id, self.upload_id = self.upload_id, None
        if upload_id is None or self._done:
            return
        try:
            self.client.abort_multipart_upload(
                **self.request_args, Bucket=self.bucket, Key=self.key, UploadId=upload_id
            )
            self.log.info("Aborted multipart upload to s3://%s/%s; no object was written", self.bucket, self.key)
        except Exception as err:
            self.log.error(
                "Could not abort multipart upload %s to s3://%s/%s (%s: %s); its parts are billed until a bucket "
                "lifecycle rule (AbortIncompleteMultipartUpload) removes them",
                upload_id,
                self.bucket,
                self.key,
                type(err).__name__,
                err,
            )

    def close(self) -> None:
        """Release the part threads (after :meth:`complete` or :meth:`abort`)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
