"""
S3 helpers of the transfer: which object arguments are accepted, how S3 errors become provider errors, the
``wan-*`` tags, and the clean-up of multipart uploads left at the key by earlier tries.

The upload itself is boto3's managed transfer (``S3Hook.load_file_obj``); nothing here streams.
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


@dataclass
class UploadResult:
    """
    What was written.

    :param size: bytes written.
    :param sha256: hex SHA-256 of the object, computed while downloading.
    :param parts: 0 for a single PutObject, else the number of parts.
    :param s3_checksum: the SHA-256 checksum S3 reports (base64; composite of the parts' for a multipart upload).
    :param verified_by_s3: whether S3 verified SHA-256 checksums of every byte written.
    :param version_id: the object's version, in a versioned bucket.
    """

    size: int
    sha256: str
    parts: int
    s3_checksum: str | None = None
    verified_by_s3: bool = False
    version_id: str | None = None


class ManagedUpload:
    """
    One object written through boto3's managed transfer (``upload_fileobj``) of an ``S3Hook`` client.

    A body that fits in one part is sent whole (its sha256 known in advance goes into the metadata, the tags and
    the checksum S3 verifies); a longer one is streamed from a reader into a multipart upload that boto3 aborts on
    any failure, then tagged with its sha256 (PutObjectTagging: no copy, no new version).

    :param client: the boto3 S3 client (``S3Hook.get_conn()``).
    :param config: the ``TransferConfig`` (``S3Hook.transfer_config``).
    :param bucket: the bucket.
    :param key: the key.
    :param object_args: object arguments (ContentType, ACL, SSE, StorageClass, Metadata, Tagging, ...).
    :param metadata: metadata known before the upload (task id, model, ...).
    :param use_checksum: have S3 verify SHA-256 checksums.
    """

    def __init__(
        self,
        client: Any,
        config: Any,
        bucket: str,
        key: str,
        object_args: Mapping[str, Any],
        metadata: Mapping[str, str],
        use_checksum: bool = True,
    ) -> None:
        self.client = client
        self.config = config
        self.bucket = bucket
        self.key = key
        self.user_tags = parse_tags(object_args.get("Tagging"), "extra_s3_args")
        self.object_args = {k: v for k, v in object_args.items() if k != "Tagging"}
        self.request_args = {k: v for k, v in object_args.items() if k in REQUEST_ARGS}
        self.metadata = {**(object_args.get("Metadata") or {}), **metadata}
        self.use_checksum = use_checksum
        self.checksum_refused = False
        self._failed_parts: list[int] = []
        # Which part failed is not in boto3's error; the client's events tell (one registration per upload).
        events, me = client.meta.events, id(self)
        events.register("before-parameter-build.s3.UploadPart", self._note_part, unique_id=f"wan-note-part-{me}")
        events.register("after-call.s3.UploadPart", self._part_answered, unique_id=f"wan-part-answered-{me}")
        events.register("after-call-error.s3.UploadPart", self._part_failed, unique_id=f"wan-part-failed-{me}")

    def set_part_size(self, part_size: int) -> None:
        """
        Parts of ``part_size`` bytes, and multipart from that size on.

        :param part_size: bytes per part.
        """
        self.config.multipart_chunksize = part_size
        self.config.multipart_threshold = part_size

    # -------------------------------------------------------------------------------------- which part failed

    @staticmethod
    def _note_part(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["wan_part"] = params.get("PartNumber")

    def _part_answered(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        if getattr(http_response, "status_code", 200) >= 300 and context.get("wan_part"):
            self._failed_parts.append(int(context["wan_part"]))

    def _part_failed(self, context: dict[str, Any], **_: Any) -> None:
        if context.get("wan_part"):
            self._failed_parts.append(int(context["wan_part"]))

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
        return UploadResult(size=len(data), sha256=sha256, parts=0, verified_by_s3=self.use_checksum)

    def put_stream(self, reader: Any, stats: Any) -> UploadResult | None:
        """
        Stream ``reader`` into a multipart upload, then tag the object; None when S3 refused the checksum.

        :param reader: a :class:`~airflow_provider_wan.transfers._download.VideoReader`.
        :param stats: its download's :class:`~airflow_provider_wan.transfers._download.DownloadStats`.
        """
        extra: dict[str, Any] = {**self.object_args, "Metadata": dict(self.metadata)}
        if self.user_tags:
            extra["Tagging"] = encode_tags(self.user_tags)
        if self.use_checksum:
            extra["ChecksumAlgorithm"] = "SHA256"
        if not self._upload(reader, extra):
            return None
        if not reader.at_end:  # boto3 stops at the first empty read; anything else is a bug, never an object
            raise WanS3UploadError(f"the upload to s3://{self.bucket}/{self.key} ended before the download did")
        head = self._head()
        size, sha256 = stats.received, stats.hexdigest
        if head.get("ContentLength") != size:
            raise WanS3UploadError(
                f"s3://{self.bucket}/{self.key} holds {head.get('ContentLength')} bytes after the upload, but "
                f"{size} were downloaded"
            )
        version_id = head.get("VersionId")
        self._tag(version_id, {**self.user_tags, TAG_SHA256: sha256, TAG_SIZE: str(size)})
        etag = str(head.get("ETag") or "")
        parts = int(etag.rsplit("-", 1)[1].strip('"')) if "-" in etag else 1
        return UploadResult(
            size=size,
            sha256=sha256,
            parts=parts,
            s3_checksum=head.get("ChecksumSHA256"),
            verified_by_s3=bool(self.use_checksum and head.get("ChecksumSHA256")),
            version_id=version_id,
        )

    def _upload(self, body: Any, extra: dict[str, Any]) -> bool:
        self._failed_parts.clear()
        try:
            self.client.upload_fileobj(body, self.bucket, self.key, ExtraArgs=extra, Config=self.config)
        except WanError:
            raise  # a check of the download failed inside read(); boto3 has aborted the upload
        except Exception as err:
            operation = str(getattr(err, "operation_name", "") or "")
            if (
                self.use_checksum
                and error_code(err) in CHECKSUM_UNSUPPORTED
                and operation in ("PutObject", "CreateMultipartUpload", "UploadPart")
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
