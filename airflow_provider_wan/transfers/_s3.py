"""
S3 helpers of the transfer: which object arguments are accepted, how S3 errors become provider errors, the
``wan-*`` tags, and the clean-up of multipart uploads left at the key by earlier tries.

The upload itself is boto3's managed transfer (``upload_fileobj`` on ``S3Hook``'s client); nothing here streams.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from airflow_provider_wan.exceptions import WanError, WanRequestValidationError, WanS3UploadError
from airflow_provider_wan.transfers._digest import crc64nvme_function

MIB = 1024 * 1024
#: S3's smallest part (except the last) and largest part.
MIN_PART_SIZE = 5 * MIB
MAX_PART_SIZE = 5 * 1024 * MIB
#: S3's largest number of parts in one upload.
MAX_PARTS = 10_000
#: S3 allows 10 tags per object; the transfer uses two of them.
MAX_TAGS = 10

#: Object-level arguments accepted by both boto3's managed upload (``ExtraArgs``) and PutObject (the manifest).
OBJECT_ARGS = frozenset(
    {
        "ACL",
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
CHECKSUM_UNSUPPORTED = frozenset(
    {"InvalidArgument", "NotImplemented", "InvalidRequest", "UnsupportedArgument", "XNotImplemented", "BadRequest"}
)
NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
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
        "InvalidTag",
        "BadRequest",
        "403",
        "Forbidden",
    }
)


def error_code(err: BaseException) -> str | None:
    """The S3 error code of a botocore ``ClientError`` (also when wrapped by boto3), or None."""
    for candidate in (err, err.__cause__, err.__context__):
        response = getattr(candidate, "response", None)
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
    wrapped = WanS3UploadError(f"S3 {doing} for s3://{bucket}/{key} failed: {type(err).__name__}: {err}")
    if error_code(err) in _PERMANENT:
        wrapped.retryable = False  # an instance override: this one will fail the same way again
    return wrapped


def parse_tags(tagging: str | Mapping[str, Any] | None, task_id: str) -> dict[str, str]:
    """
    The user's ``Tagging`` object argument as a dict (S3 takes it URL-encoded: ``k1=v1&k2=v2``).

    :param tagging: the ``Tagging`` of ``extra_s3_args``: a URL-encoded string or a dict.
    :param task_id: the Airflow task, for the message.
    :raises WanRequestValidationError: it is neither, or leaves no room for the transfer's two tags.
    """
    if tagging is None or tagging == "":
        return {}
    if isinstance(tagging, Mapping):
        tags = {str(k): str(v) for k, v in tagging.items()}
    elif isinstance(tagging, str):
        tags = dict(parse_qsl(tagging, keep_blank_values=True))
    else:
        raise WanRequestValidationError(
            f"{task_id}: extra_s3_args['Tagging']={tagging!r} must be a URL-encoded string 'k1=v1&k2=v2' or a dict"
        )
    if len(tags) > MAX_TAGS - 2:
        raise WanRequestValidationError(
            f"{task_id}: extra_s3_args['Tagging'] has {len(tags)} tags; S3 allows {MAX_TAGS} per object and the "
            f"transfer adds wan-sha256 and wan-size-bytes, so at most {MAX_TAGS - 2} are allowed"
        )
    return tags


def encode_tags(tags: Mapping[str, str]) -> str:
    """Tags in the URL-encoded form of the ``Tagging`` argument."""
    return urlencode(dict(tags))


def tag_set(tags: Mapping[str, str]) -> dict[str, list[dict[str, str]]]:
    """Tags in the form of PutObjectTagging's ``Tagging``."""
    return {"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}


def read_tags(client: Any, bucket: str, key: str, version_id: str | None, request_args: Mapping[str, Any]) -> dict:
    """
    The object's tags (lower-case keys); empty when the store has none or the credentials may not read them.

    :param client: a boto3 S3 client.
    :param bucket: the bucket.
    :param key: the key.
    :param version_id: the version to read (None: the current one).
    :param request_args: ``ExpectedBucketOwner`` / ``RequestPayer`` to repeat.
    """
    args: dict[str, Any] = {k: v for k, v in request_args.items() if k in ("ExpectedBucketOwner", "RequestPayer")}
    if version_id and version_id != "null":
        args["VersionId"] = version_id
    try:
        response = client.get_object_tagging(Bucket=bucket, Key=key, **args)
    except Exception as err:
        if error_code(err) in NOT_FOUND:
            return {}
        if error_code(err) in ("AccessDenied", "403", "NotImplemented", "MethodNotAllowed"):
            return {}
        raise s3_error(err, "GetObjectTagging (reading the recorded sha256)", bucket, key) from err
    return {t["Key"].lower(): t["Value"] for t in response.get("TagSet", [])}


def abort_stale_uploads(
    client: Any, bucket: str, key: str, started_before: datetime, request_args: Mapping[str, Any], log: Any
) -> int:
    """
    Abort the multipart uploads at exactly ``key`` that started before ``started_before``: parts left by an earlier
    try whose abort could not reach S3 (an outage, a killed worker). Uploads at other keys are never touched.

    Best effort: a store or policy that refuses ListMultipartUploads is logged, not fatal. Returns how many were
    aborted.

    :param client: a boto3 S3 client.
    :param bucket: the bucket.
    :param key: the destination key of this transfer.
    :param started_before: when this try started (uploads initiated later belong to someone else's run).
    :param request_args: ``ExpectedBucketOwner`` / ``RequestPayer`` to repeat.
    :param log: where to report.
    """
    owner_args = {k: v for k, v in request_args.items() if k in ("ExpectedBucketOwner", "RequestPayer")}
    aborted = 0
    try:
        pages = client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=key, **owner_args)
        stale = [
            upload
            for page in pages
            for upload in page.get("Uploads", [])
            if upload.get("Key") == key and upload.get("Initiated") and upload["Initiated"] < started_before
        ]
    except Exception as err:
        log.warning(
            "Could not list the multipart uploads at s3://%s/%s (%s); parts of earlier failed tries, if any, stay "
            "until a lifecycle rule (AbortIncompleteMultipartUpload) removes them",
            bucket,
            key,
            error_code(err) or type(err).__name__,
        )
        return 0
    for upload in stale:
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"], **owner_args)
            aborted += 1
        except Exception as err:
            if error_code(err) in ("NoSuchUpload", "404"):
                continue  # finished or aborted meanwhile
            log.warning(
                "Could not abort the multipart upload %s left at s3://%s/%s by an earlier try: %s",
                upload["UploadId"],
                bucket,
                key,
                error_code(err) or type(err).__name__,
            )
    if aborted:
        log.info(
            "Aborted %d multipart upload(s) left at s3://%s/%s by earlier tries (started before %s)",
            aborted,
            bucket,
            key,
            started_before.isoformat(),
        )
    return aborted


#: Tag (and, for a single-part video, metadata) names of what is known only once the whole video was read.
TAG_SHA256 = "wan-sha256"
TAG_SIZE = "wan-size-bytes"


def b64_sha256(hex_digest: str) -> str:
    """S3's form of a SHA-256 checksum (base64 of the raw digest) from a hex digest."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


#: The checksums S3 can be asked to verify on a streamed (multipart) upload (``s3_checksum``); see
#: :func:`stream_checksum`. The default is CRC32, boto3's own default.
CRC32 = "CRC32"
SHA256 = "SHA256"
CRC64NVME = "CRC64NVME"
STREAM_CHECKSUMS = (CRC32, SHA256, CRC64NVME)


def checksum_name(requested: bool | str | None) -> str | None:
    """
    The algorithm named by an ``s3_checksum`` argument: True means :data:`CRC32`, False or None no checksum.

    :param requested: True, False, None or one of :data:`STREAM_CHECKSUMS` (any case).
    :raises WanRequestValidationError: anything else.
    """
    if requested is None or requested is False:
        return None
    if requested is True:
        return CRC32
    name = str(requested).strip().upper().replace("-", "")
    if name not in STREAM_CHECKSUMS:
        raise WanRequestValidationError(
            f"s3_checksum={requested!r} is not one of True, False, {', '.join(repr(n) for n in STREAM_CHECKSUMS)}"
        )
    return name


def stream_checksum(requested: bool | str | None, client: Any) -> str | None:
    """
    The checksum S3 is asked to verify on each part of a streamed (multipart) upload with ``client``.

    * ``CRC32`` (the default, and boto3's own): S3 checks a CRC32 of every part; the object's checksum is a composite
      of the parts'. The cheapest to compute without extra packages.
    * ``SHA256``: the same with SHA-256 (per part; the composite is not the object's SHA-256).
    * ``CRC64NVME``: a full-object checksum. S3 checks each part as it arrives and, when the upload completes, the
      whole object against the CRC64NVME the reader computed of every byte it read. Needs awscrt (``boto3[crt]``):
      botocore computes CRC64NVME only with it.

    Whatever the choice, the object's own SHA-256 is computed while streaming and recorded (tag, manifest), and a
    video smaller than a part goes in one PutObject whose SHA-256 S3 checks.

    :param requested: the ``s3_checksum`` argument (see :func:`checksum_name`).
    :param client: the boto3 S3 client.
    :raises WanRequestValidationError: CRC64NVME was asked for and this installation cannot compute it.
    """
    name = checksum_name(requested)
    if name != CRC64NVME:
        return name
    problem = _full_object_problem(client)
    if problem:
        raise WanRequestValidationError(f"s3_checksum='CRC64NVME' needs {problem}; or leave s3_checksum at CRC32")
    return name


def _full_object_problem(client: Any) -> str | None:
    """What is missing for a full-object CRC64NVME upload, or None."""
    try:
        from botocore.compat import HAS_CRT, has_minimum_crt_version
        from s3transfer.manager import TransferManager
    except ImportError:  # pragma: no cover - botocore and s3transfer come with boto3
        return "botocore and s3transfer"
    if not (HAS_CRT and has_minimum_crt_version((0, 23, 4)) and crc64nvme_function() is not None):
        return "the awscrt package (pip install 'boto3[crt]'), with which botocore computes CRC64NVME"
    if "ChecksumType" not in TransferManager.ALLOWED_UPLOAD_ARGS:
        return "a newer boto3 (s3transfer 0.11 or later, for full-object checksums)"
    if not {"ChecksumCRC64NVME", "ChecksumType"} <= _input_members(client, "CompleteMultipartUpload"):
        return "a newer botocore (1.36 or later, for full-object checksums)"
    return None


def _input_members(client: Any, operation: str) -> set[str]:
    try:
        return set(client.meta.service_model.operation_model(operation).input_shape.members)
    except Exception:
        return set()


@dataclass
class UploadResult:
    """
    What was written.

    :param size: bytes written.
    :param sha256: hex SHA-256 of the object, computed while downloading.
    :param parts: 0 for a single PutObject, else the number of parts.
    :param s3_checksum: the checksum S3 reports for the object (base64), in S3's form: ``algorithm``, ``type``
        (``FULL_OBJECT`` or ``COMPOSITE``) and ``value``; None when S3 reported none.
    :param verified_by_s3: whether S3 verified a checksum of every byte written (and, for a single PutObject or a
        full-object checksum, the whole object against the one computed while downloading).
    :param version_id: the object's version, in a versioned bucket.
    """

    size: int
    sha256: str
    parts: int
    s3_checksum: dict[str, str] | None = None
    verified_by_s3: bool = False
    version_id: str | None = None


class ManagedUpload:
    """
    One object written through boto3's managed transfer (``upload_fileobj``) of an ``S3Hook`` client.

    A body that fits in one part is sent whole (its sha256 known in advance goes into the metadata, the tags and
    the SHA-256 checksum S3 verifies); a longer one is streamed from a reader into a multipart upload that boto3
    aborts on any failure, then tagged with its sha256 (PutObjectTagging: no copy, no new version). S3 verifies the
    checksum of :func:`stream_checksum` on every part, and the upload completes only once the reader has read and
    checked the whole body (then S3 also checks the object's size and, with CRC64NVME, the whole object's checksum).

    Use as a context manager, or call :meth:`close`: it removes the handlers registered on the client's events.

    :param client: the boto3 S3 client (``S3Hook.get_conn()``).
    :param config: the ``TransferConfig`` (``S3Hook.transfer_config``).
    :param bucket: the bucket.
    :param key: the key.
    :param object_args: object arguments (ContentType, ACL, SSE, StorageClass, Metadata, Tagging, ...).
    :param metadata: metadata known before the upload (task id, model, ...).
    :param checksum: the ``s3_checksum`` argument: which checksum S3 verifies on a streamed upload (see
        :func:`stream_checksum`); False for none.
    """

    def __init__(
        self,
        client: Any,
        config: Any,
        bucket: str,
        key: str,
        object_args: Mapping[str, Any],
        metadata: Mapping[str, str],
        checksum: bool | str | None = True,
    ) -> None:
        self.client = client
        self.config = config
        self.bucket = bucket
        self.key = key
        self.user_tags = parse_tags(object_args.get("Tagging"), "extra_s3_args")
        self.object_args = {k: v for k, v in object_args.items() if k != "Tagging"}
        self.request_args = {k: v for k, v in object_args.items() if k in REQUEST_ARGS}
        self.metadata = {**(object_args.get("Metadata") or {}), **metadata}
        #: The checksum S3 verifies on a streamed upload (see :func:`stream_checksum`).
        self.stream_algorithm = stream_checksum(checksum, client)
        #: Whether checksums are asked for (turned off when the store refused them).
        self.use_checksum = self.stream_algorithm is not None
        self.checksum_refused = False
        self._complete_members = _input_members(client, "CompleteMultipartUpload")
        self._failed_parts: list[int] = []
        self._streaming: Any = None  # the reader of the multipart upload under way
        # Which part failed is not in boto3's error; the client's events tell (one registration per upload).
        me = id(self)
        self._handlers = [
            ("before-parameter-build.s3.UploadPart", self._note_part, f"wan-note-part-{me}"),
            ("after-call.s3.UploadPart", self._part_answered, f"wan-part-answered-{me}"),
            ("after-call-error.s3.UploadPart", self._part_failed, f"wan-part-failed-{me}"),
            ("before-parameter-build.s3.CompleteMultipartUpload", self._before_complete, f"wan-complete-{me}"),
        ]
        for event, handler, unique_id in self._handlers:
            client.meta.events.register(event, handler, unique_id=unique_id)

    def __enter__(self) -> ManagedUpload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Unregister this upload's handlers from the client's events (the client may be used again)."""
        for event, handler, unique_id in self._handlers:
            self.client.meta.events.unregister(event, handler, unique_id=unique_id)
        self._handlers = []

    def set_part_size(self, part_size: int) -> None:
        """
        Parts of ``part_size`` bytes, and multipart from that size on.

        :param part_size: bytes per part.
        """
        self.config.multipart_chunksize = part_size
        self.config.multipart_threshold = part_size

    # -------------------------------------------------------------------------------------- client events

    @staticmethod
    def _note_part(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["wan_part"] = params.get("PartNumber")

    def _part_answered(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        if getattr(http_response, "status_code", 200) >= 300 and context.get("wan_part"):
            self._failed_parts.append(int(context["wan_part"]))

    def _part_failed(self, context: dict[str, Any], **_: Any) -> None:
        if context.get("wan_part"):
            self._failed_parts.append(int(context["wan_part"]))

    def _before_complete(self, params: dict[str, Any], **_: Any) -> None:
        """
        Just before CompleteMultipartUpload: refuse to complete an upload whose body was not read and checked to
        the end (raising here makes boto3 abort it), and give S3 what to check the whole object against.
        """
        reader = self._streaming
        if reader is None or params.get("Bucket") != self.bucket or params.get("Key") != self.key:
            return
        if not reader.done:
            raise WanS3UploadError(
                f"the upload to s3://{self.bucket}/{self.key} was about to complete before the whole video was read "
                f"and checked; it was aborted"
            )
        if not self.use_checksum:
            return
        digests = reader.digest.result()  # waits for the last part to be hashed
        if "MpuObjectSize" in self._complete_members:
            params["MpuObjectSize"] = digests.size  # S3 refuses to complete an object of another size
        if self.stream_algorithm == CRC64NVME and digests.crc64nvme is not None:
            params["ChecksumCRC64NVME"] = digests.crc64nvme_b64  # and one whose bytes are not the ones read

    # -------------------------------------------------------------------------------------- uploads

    def put_whole(self, data: bytes, sha256: str) -> UploadResult | None:
        """
        Send a body read whole (smaller than one part) as one PutObject; None when S3 refused the checksum.

        :param data: the whole video.
        :param sha256: its hex SHA-256.
        """
        record = {TAG_SHA256: sha256, TAG_SIZE: str(len(data))}
        extra: dict[str, Any] = {
            **self.object_args,
            "Metadata": {**self.metadata, **record},
            "Tagging": encode_tags({**self.user_tags, **record}),
        }
        if self.use_checksum:
            extra["ChecksumAlgorithm"] = "SHA256"
            extra["ChecksumSHA256"] = b64_sha256(sha256)  # S3 answers BadDigest unless it got these very bytes
        if not self._upload(io.BytesIO(data), extra):
            return None
        checksum = {"algorithm": "SHA256", "type": "FULL_OBJECT", "value": b64_sha256(sha256)}
        return UploadResult(
            size=len(data),
            sha256=sha256,
            parts=0,
            s3_checksum=checksum if self.use_checksum else None,
            verified_by_s3=self.use_checksum,
        )

    def put_stream(self, reader: Any, stats: Any) -> UploadResult | None:
        """
        Stream ``reader`` into a multipart upload, then tag the object; None when S3 refused the checksum.

        :param reader: a :class:`~airflow_provider_wan.transfers._download.VideoReader`.
        :param stats: its download's :class:`~airflow_provider_wan.transfers._download.DownloadStats`.
        """
        extra: dict[str, Any] = {**self.object_args, "Metadata": dict(self.metadata)}
        if self.user_tags:
            extra["Tagging"] = encode_tags(self.user_tags)
        algorithm = self.stream_algorithm if self.use_checksum else None
        if algorithm:
            extra["ChecksumAlgorithm"] = algorithm
            if algorithm == CRC64NVME:
                extra["ChecksumType"] = "FULL_OBJECT"
        self._streaming = reader
        try:
            if not self._upload(reader, extra):
                return None
        finally:
            self._streaming = None
        if not reader.done:  # boto3 stops at the first empty read; anything else is a bug, never an object
            raise WanS3UploadError(f"the upload to s3://{self.bucket}/{self.key} ended before the download did")
        digests = reader.digest.result()
        size, sha256 = digests.size, digests.sha256
        head = self._head()
        if head.get("ContentLength") != size or stats.received != size:
            raise WanS3UploadError(
                f"s3://{self.bucket}/{self.key} holds {head.get('ContentLength')} bytes after the upload, but "
                f"{stats.received} were downloaded"
            )
        version_id = head.get("VersionId")
        reported = head.get(f"Checksum{algorithm}") if algorithm else None
        checksum = None
        if reported:
            kind = str(head.get("ChecksumType") or ("COMPOSITE" if "-" in str(reported) else "FULL_OBJECT"))
            checksum = {"algorithm": str(algorithm), "type": kind, "value": str(reported)}
        verified = bool(reported)
        if algorithm == CRC64NVME and reported and reported != digests.crc64nvme_b64:
            removed = self._remove(version_id)
            raise WanS3UploadError(
                f"S3 reports the CRC64NVME {reported} for s3://{self.bucket}/{self.key}, but the {size} bytes "
                f"downloaded have {digests.crc64nvme_b64}: the store holds other bytes than were read; "
                + ("the object was deleted" if removed else "the object could not be deleted")
            )
        self._tag(version_id, {**self.user_tags, TAG_SHA256: sha256, TAG_SIZE: str(size)})
        etag = str(head.get("ETag") or "")
        parts = int(etag.rsplit("-", 1)[1].strip('"')) if "-" in etag else 1
        return UploadResult(
            size=size,
            sha256=sha256,
            parts=parts,
            s3_checksum=checksum,
            verified_by_s3=verified,
            version_id=version_id,
        )

    def _upload(self, body: Any, extra: dict[str, Any]) -> bool:
        self._failed_parts.clear()
        try:
            self.client.upload_fileobj(body, self.bucket, self.key, ExtraArgs=extra, Config=self.config)
        except WanError:
            raise  # a check of the download failed inside read() (or before completing); boto3 has aborted
        except Exception as err:
            operation = str(getattr(err, "operation_name", "") or "")
            if (
                self.use_checksum
                and error_code(err) in CHECKSUM_UNSUPPORTED
                and operation in ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload")
            ):
                self.checksum_refused = True
                return False
            if operation == "UploadPart" and self._failed_parts:
                operation = f"UploadPart {min(self._failed_parts)}"
            raise s3_error(err, operation or "upload", self.bucket, self.key) from err
        return True

    def _head(self) -> dict[str, Any]:
        try:
            return dict(
                self.client.head_object(Bucket=self.bucket, Key=self.key, ChecksumMode="ENABLED", **self.request_args)
            )
        except Exception as err:
            raise s3_error(err, "HeadObject (after the upload)", self.bucket, self.key) from err

    def _remove(self, version_id: str | None) -> bool:
        """Delete what this upload wrote (exactly its version, in a versioned bucket); whether that worked."""
        args = {k: v for k, v in self.request_args.items() if k in ("ExpectedBucketOwner", "RequestPayer")}
        if version_id and version_id != "null":
            args["VersionId"] = version_id
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key, **args)
        except Exception:
            return False
        return True

    def _tag(self, version_id: str | None, tags: Mapping[str, str]) -> None:
        args: dict[str, Any] = {
            k: v for k, v in self.request_args.items() if k in ("ExpectedBucketOwner", "RequestPayer")
        }
        if version_id and version_id != "null":
            args["VersionId"] = version_id  # exactly the version just written, never a newer one
        try:
            self.client.put_object_tagging(Bucket=self.bucket, Key=self.key, Tagging=tag_set(tags), **args)
        except Exception as err:
            raise s3_error(
                err,
                "PutObjectTagging (recording the sha256; the credentials need s3:PutObjectTagging)",
                self.bucket,
                self.key,
            ) from err
