"""
WanVideoToS3Operator: save a generated Wan video to S3 before its 24-hour link dies.

The video is streamed from the signed link through a checking reader (MP4 signature, length, size limit) into boto3's
managed upload on the amazon provider's ``S3Hook``, its SHA-256 computed beside the upload in a thread of its own:
memory stays at a few parts whatever the video's size, S3 verifies a checksum of every part, and a failed check
aborts the upload, so the object appears only once the whole download checked out. A JSON manifest is written beside
it and an asset event announces it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from airflow.sdk import Asset, AssetAlias, BaseOperator

from airflow_provider_wan._compat import AirflowFailException, AirflowNotFoundException, mask_secret
from airflow_provider_wan._failures import airflow_error
from airflow_provider_wan.exceptions import (
    WanError,
    WanRequestValidationError,
    WanS3KeyExistsError,
    WanS3UploadError,
    WanTaskExpiredError,
    WanTransferError,
    WanVideoNotReadyError,
    WanVideoUnavailableError,
)
from airflow_provider_wan.hooks.wan import WanHook, user_agent
from airflow_provider_wan.models import TaskStatus, WanTask
from airflow_provider_wan.settings import DEFAULT_DOWNLOAD_HOSTS, WanConnectionSettings
from airflow_provider_wan.transfers._digest import StreamDigest
from airflow_provider_wan.transfers._download import (
    UrlPolicy,
    VideoDownload,
    VideoReader,
    redact,
    redacted_httpx_logs,
    secrets_of,
)
from airflow_provider_wan.transfers._lineage import (
    TransferLineage,
    WanS3ObjectLink,
    describe_transfer,
    operator_lineage,
)
from airflow_provider_wan.transfers._manifest import (
    META_TASK_ID,
    VIDEO_CONTENT_TYPE,
    ascii_value,
    build_manifest,
    first,
    put_manifest,
)
from airflow_provider_wan.transfers._s3 import (
    CRC32,
    CRC64NVME,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIB,
    MIN_PART_SIZE,
    NOT_FOUND,
    OBJECT_ARGS,
    REQUEST_ARGS,
    TAG_SHA256,
    TAG_SIZE,
    ManagedUpload,
    UploadResult,
    abort_stale_uploads,
    checksum_name,
    encode_tags,
    error_code,
    parse_tags,
    read_tags,
    s3_error,
    stream_checksum,
)

if TYPE_CHECKING:
    import jinja2
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

#: Default bytes per multipart part (and the size under which a video is one PutObject).
DEFAULT_CHUNK_SIZE = 8 * MIB
#: Default ceiling on a video's size: 5 GiB (Wan videos are tens of MB; this only stops runaway bodies).
DEFAULT_MAX_BYTES = 5 * 1024 * MIB
DEFAULT_ASSET_ALIAS = "wan_videos"
#: User-metadata names (S3 sends them as ``x-amz-meta-<name>``).
META_SHA256 = TAG_SHA256
META_SIZE = TAG_SIZE
META_SOURCE = "wan-source"
#: S3's own integrity check of a streamed upload (``s3_checksum=True``): CRC32 on every part, boto3's own default and
#: the cheapest checksum botocore computes without extra packages. The object's SHA-256 is computed anyway (the tag
#: and the manifest record it), so S3's check only has to catch damage on the way to S3; SHA-256 part checksums
#: would hash every byte a second time for that. ``s3_checksum="CRC64NVME"`` (with awscrt) has S3 check the whole
#: object against the reader's own CRC64NVME; ``"SHA256"`` keeps SHA-256 per part. A video smaller than a part is
#: always sent with the SHA-256 computed while downloading, so S3 checks the very digest the manifest records.
S3_CHECKSUM_ALGORITHM = CRC32
#: Characters kept as they are in an asset URI's key (asset URIs must be ASCII).
_ASSET_SAFE = "/-_.~!*'()+,;=:@&$"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class WanVideoToS3Operator(BaseOperator):
    """
    Stream the video of a Wan (DashScope) generation into S3, with checksum, metadata, manifest and asset event.

    The source is a DashScope task: ``dashscope_task_id`` or the ``generation`` result of
    :class:`~airflow_provider_wan.operators.wan.WanTextToVideoOperator`; a fresh signed link is fetched through
    the hook, so no link ever travels through XCom. A ``video_url`` can be given instead.

    What the transfer guarantees:

    * bounded memory: about ``max_in_flight + 3`` parts of ``chunk_size``, whatever the video's size (a video
      smaller than ``chunk_size`` is read whole and sent as one PutObject);
    * no partial or corrupt object: the download is checked (an MP4 ``ftyp`` box before anything is uploaded,
      ``max_bytes``, Content-Length) inside the reader boto3 pulls from, so a failed check makes boto3 abort the
      multipart upload, which is completed only once the whole body was read and checked; S3 verifies a checksum
      of every part (``s3_checksum``), the object's size, and for a single PutObject the SHA-256 of the whole
      object; an object already at the key is never replaced by a failed attempt, and no copy is made after the
      upload (no extra version in a versioned bucket);
    * no orphaned parts: multipart uploads left at the key by earlier tries (an S3 outage can stop even the
      abort) are aborted before a retry uploads;
    * idempotent retries: when the key already holds the complete object of the same DashScope task (task id,
      size and recorded sha256 agree), the task succeeds without downloading again;
    * safety: only https links (plain http only to loopback, or with ``allow_http``), ``host`` or ``host:port``
      from an allowlist (a host without a port allows only the default port), no link-local or metadata
      addresses, malformed links refused before any request, redirects followed by hand and checked before they
      are requested; the signed query string is masked and never logged.

    The object gets ``Content-Type: video/mp4``, the metadata ``wan-task-id``, ``wan-model``, ``wan-seed``,
    ``wan-request-id`` and ``wan-source`` (the link without its query), and the tags ``wan-sha256`` and
    ``wan-size-bytes``. Metadata is fixed when an upload starts, before the sha256 of a streamed video is known, so
    the sha256 is a tag set after the upload (PutObjectTagging changes no data and creates no version; the
    credentials need ``s3:PutObjectTagging`` and, for retries, ``s3:GetObjectTagging``). A video smaller than
    ``chunk_size`` also carries ``wan-sha256`` and ``wan-size-bytes`` in its metadata. A UTF-8 JSON manifest
    ``<key>.json`` beside it records the request, prompts, usage, timings and the checksum.
    An asset event is emitted through the :class:`~airflow.sdk.AssetAlias` ``asset_alias`` on one stable asset per
    destination, ``s3://<bucket>/<key's first folder>`` (see :func:`destination_asset_uri`), with the object's
    ``key``, ``s3_uri``, ``dashscope_task_id``, ``sha256``, ``size_bytes``, ``model`` and ``manifest_uri`` in the
    event's extra, so DAGs can be scheduled on new videos.

    Returns the ``s3://bucket/key`` URI; also pushes the XCom keys ``manifest_uri`` (when a manifest is written),
    ``sha256`` and ``size_bytes``.

    Templated fields: ``dashscope_task_id``, ``generation``, ``video_url``, ``s3_bucket``, ``s3_key``,
    ``dashscope_conn_id``, ``aws_conn_id``, ``extra_s3_args``.

    :param s3_bucket: the destination bucket (templated). May be omitted when ``s3_key`` is an ``s3://`` URL.
    :param s3_key: the destination key (templated): a key, an ``s3://bucket/key`` URL, or a prefix ending in
        ``/`` to which ``<DashScope task id>.mp4`` is appended. Default: ``wan/<ds or run date>/<task id>.mp4``.
    :param dashscope_task_id: the DashScope task id (templated), typically
        ``"{{ ti.xcom_pull(task_ids='generate', key='task_id') }}"``.
    :param generation: the generation result dict of ``WanTextToVideoOperator`` (templated; typically
        ``generate.output``). Supplies the task id and the request recorded in the manifest.
    :param video_url: a video link to download instead of fetching one by task id (templated; masked in logs and
        rendered fields). Give ``dashscope_task_id`` too to label the object with it.
    :param dashscope_conn_id: the ``dashscope`` connection (templated).
    :param aws_conn_id: the AWS connection of the amazon provider's ``S3Hook`` (templated); every auth method and
        ``endpoint_url`` work. None uses boto3's default credential chain.
    :param verify: TLS verification of S3 (``S3Hook``'s ``verify``): a bool or a CA bundle path.
    :param replace: overwrite a different object already at the key. Either way the object of the same DashScope
        task is recognised and kept (a retry succeeds without downloading).
    :param encrypt: server-side encryption with S3-managed keys (``AES256``).
    :param sse_kms_key_id: server-side encryption with this KMS key (``aws:kms``); overrides ``encrypt``.
    :param acl_policy: a canned ACL for the video and the manifest, e.g. ``bucket-owner-full-control``.
    :param extra_s3_args: further object arguments for both objects (templated), e.g. ``StorageClass``,
        ``Tagging`` (at most 8 tags, URL-encoded or a dict), ``CacheControl``, ``Metadata``,
        ``ExpectedBucketOwner``; see :data:`~airflow_provider_wan.transfers._s3.OBJECT_ARGS`.
    :param write_manifest: write the JSON manifest ``<key>.json`` after the video.
    :param asset_alias: name of the asset alias the event goes through (added to ``outlets``); None: no event.
    :param chunk_size: bytes per multipart part and the size from which a video is uploaded in parts (at least
        5 MiB); grown automatically when a video would need more than 10,000 parts. Memory use is about
        ``(max_in_flight + 3) * chunk_size``.
    :param max_in_flight: parts uploading at once while the next one downloads (boto3's ``max_concurrency``).
    :param max_bytes: refuse videos larger than this (checked on Content-Length before reading, and while
        counting); None: no limit.
    :param allowed_hosts: ``host`` or ``host:port`` patterns (fnmatch on the host, e.g. ``*.aliyuncs.com``,
        ``127.0.0.1:8080``; ``host:*`` for any port) the link and redirects may use; a pattern without a port allows
        only the scheme's default port. Default: the connection's ``download_hosts`` (``*.aliyuncs.com`` plus its
        extra) and the host:port of its base URL.
    :param allow_http: allow plain http links to allowed hosts (https only otherwise; loopback is always allowed).
    :param s3_checksum: the checksum S3 verifies on every part of a streamed upload: True or ``"CRC32"`` (the
        default, boto3's own), ``"SHA256"``, or ``"CRC64NVME"`` (needs awscrt, ``pip install 'boto3[crt]'``: S3 then
        also checks the whole object against the CRC64NVME computed while reading); False for none. Turned off
        automatically, at the cost of downloading again, when an S3-compatible store refuses it. The video's SHA-256
        is computed and recorded whatever this is.
    """

    template_fields: Sequence[str] = (
        "dashscope_task_id",
        "generation",
        "video_url",
        "s3_bucket",
        "s3_key",
        "dashscope_conn_id",
        "aws_conn_id",
        "extra_s3_args",
    )
    template_fields_renderers = {"generation": "json", "extra_s3_args": "json"}
    ui_color = "#ff6a00"
    operator_extra_links = (WanS3ObjectLink(),)

    def __init__(
        self,
        *,
        s3_bucket: str | None = None,
        s3_key: str | None = None,
        dashscope_task_id: str | None = None,
        generation: dict[str, Any] | str | None = None,
        video_url: str | None = None,
        dashscope_conn_id: str = WanHook.default_conn_name,
        aws_conn_id: str | None = "aws_default",
        verify: bool | str | None = None,
        replace: bool = False,
        encrypt: bool = False,
        sse_kms_key_id: str | None = None,
        acl_policy: str | None = None,
        extra_s3_args: dict[str, Any] | None = None,
        write_manifest: bool = True,
        asset_alias: str | None = DEFAULT_ASSET_ALIAS,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_in_flight: int = 2,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        allowed_hosts: Sequence[str] | None = None,
        allow_http: bool = False,
        s3_checksum: bool | str = True,
        **kwargs: Any,
    ) -> None:
        if asset_alias:
            outlets = kwargs.pop("outlets", None) or []
            outlets = list(outlets) if isinstance(outlets, (list, tuple)) else [outlets]
            alias = AssetAlias(asset_alias)
            # A mapped transfer declares the alias in partial(outlets=...) for parse-time lineage; keep one copy.
            kwargs["outlets"] = outlets if alias in outlets else [*outlets, alias]
        super().__init__(**kwargs)
        if dashscope_task_id is None and generation is None and video_url is None:
            raise ValueError(
                f"{self.task_id}: give dashscope_task_id, generation (the generate task's output) or video_url"
            )
        if not MIN_PART_SIZE <= chunk_size <= MAX_PART_SIZE:
            raise ValueError(
                f"{self.task_id}: chunk_size={chunk_size} is out of range; S3 parts are 5 MiB to 5 GiB "
                f"({MIN_PART_SIZE} to {MAX_PART_SIZE} bytes)"
            )
        if max_in_flight < 1:
            raise ValueError(f"{self.task_id}: max_in_flight={max_in_flight} must be at least 1")
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError(f"{self.task_id}: max_bytes={max_bytes} must be positive (or None for no limit)")
        if isinstance(allowed_hosts, str):
            allowed_hosts = [h.strip() for h in allowed_hosts.split(",") if h.strip()]
        if isinstance(extra_s3_args, dict):
            _check_extra_args(extra_s3_args, self.task_id)
        try:
            checksum_name(s3_checksum)
        except WanRequestValidationError as err:
            raise ValueError(f"{self.task_id}: {err}") from None
        self.s3_bucket = s3_bucket
        self.s3_key = s3_key
        self.dashscope_task_id = dashscope_task_id
        self.generation = generation
        self.video_url = video_url
        self.dashscope_conn_id = dashscope_conn_id
        self.aws_conn_id = aws_conn_id
        self.verify = verify
        self.replace = replace
        self.encrypt = encrypt
        self.sse_kms_key_id = sse_kms_key_id
        self.acl_policy = acl_policy
        self.extra_s3_args = extra_s3_args or {}
        self.write_manifest = write_manifest
        self.asset_alias = asset_alias
        self.chunk_size = chunk_size
        self.max_in_flight = max_in_flight
        self.max_bytes = max_bytes
        self.allowed_hosts = tuple(allowed_hosts) if allowed_hosts is not None else None
        self.allow_http = allow_http
        self.s3_checksum = s3_checksum
        self._reader: VideoReader | None = None
        self._lineage: TransferLineage | None = None

    # ------------------------------------------------------------------------------------------- templating

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Render as usual, then mask a rendered ``video_url`` before the rendered fields are stored or shown."""
        super().render_template_fields(context, jinja_env)
        if isinstance(self.video_url, str):
            _mask_all(secrets_of(self.video_url))

    # ------------------------------------------------------------------------------------------- execute

    def execute(self, context: Context) -> str:
        """Transfer the video; return its ``s3://`` URI."""
        what = "Transfer of the Wan video"
        try:
            generation = self._generation()
            dashscope_task_id = self._task_id(generation)
            bucket, key = self._destination(context, dashscope_task_id)
            what += f"{f' of task {dashscope_task_id}' if dashscope_task_id else ''} to s3://{bucket}/{key}"
            return self._transfer(context, generation, dashscope_task_id, bucket, key)
        except WanError as err:
            raise airflow_error(err, what) from err
        except AirflowNotFoundException as err:
            # A missing connection stays missing on every retry: fail now instead of spending them.
            raise AirflowFailException(
                f"{what} failed: the connection is not defined (dashscope_conn_id={self.dashscope_conn_id!r}, "
                f"aws_conn_id={self.aws_conn_id!r}): {err}"
            ) from err

    def _transfer(
        self,
        context: Context,
        generation: dict[str, Any] | None,
        dashscope_task_id: str | None,
        bucket: str,
        key: str,
    ) -> str:
        try_started = _try_started(context)
        if self.video_url:
            _mask_all(secrets_of(self.video_url))
        hook = self._s3_hook()
        client = hook.get_conn()
        stream_checksum(self.s3_checksum, client)  # CRC64NVME without awscrt fails here, before any request
        object_args = self._object_args()
        request_args = {k: v for k, v in object_args.items() if k in REQUEST_ARGS}
        source = redact(self.video_url).replace("?<redacted>", "") if self.video_url else None
        existing = self._existing(client, bucket, key, request_args, dashscope_task_id, source)
        if existing is not None:
            return self._already_there(context, client, bucket, key, object_args, existing, generation)

        task: WanTask | None = None
        url = self.video_url
        if not url:
            if not dashscope_task_id:  # _task_id() refuses this; keeps the types honest
                raise WanRequestValidationError("no DashScope task id and no video_url to transfer")
            task = self._finished_task(dashscope_task_id)
            url = task.video_url or ""
            _mask_all(secrets_of(url))
            source = redact(url).replace("?<redacted>", "")
        settings = self._settings()
        policy = self._policy(settings)
        policy.check(url)  # a refused link fails before anything is requested, from S3 too
        abort_stale_uploads(client, bucket, key, try_started, request_args, self.log)
        metadata = self._metadata(dashscope_task_id, generation, task, source)
        started = time.monotonic()
        with ManagedUpload(
            client, hook.transfer_config, bucket, key, object_args, metadata, self.s3_checksum
        ) as upload:
            result = self._stream(url, settings, policy, upload, dashscope_task_id)
            if upload.checksum_refused and result is None:
                self.log.warning(
                    "The S3 endpoint refused the checksums asked for; downloading again and uploading without "
                    "them. The sha256 computed while streaming is still recorded (tag, manifest)."
                )
                upload.use_checksum = False
                result = self._stream(url, settings, policy, upload, dashscope_task_id)
        if result is None:  # pragma: no cover - _stream returns None only for a refused checksum
            raise WanS3UploadError(f"S3 refused the upload to s3://{bucket}/{key}")
        seconds = time.monotonic() - started
        self.log.info(
            "Saved %d bytes to s3://%s/%s in %.1f s (%s, sha256 %s%s)",
            result.size,
            bucket,
            key,
            seconds,
            f"{result.parts} parts" if result.parts else "one PutObject",
            result.sha256,
            _verified(result),
        )
        manifest_uri = None
        if self.write_manifest:
            manifest = build_manifest(
                context, self.task_id, bucket, key, result.sha256, result.size, dashscope_task_id, generation, task
            )
            manifest["transfer"] = {
                "transferred_at": _now(),
                "seconds": round(seconds, 3),
                "parts": result.parts,
                "s3_checksum": result.s3_checksum,
                "verified_by_s3": result.verified_by_s3,
                "version_id": result.version_id,
                "source": source,
            }
            manifest_uri = put_manifest(client, bucket, key, object_args, manifest, dashscope_task_id, self.log)
        return self._finish(
            context, bucket, key, result.sha256, result.size, manifest_uri, dashscope_task_id, generation
        )

    def _s3_hook(self) -> Any:
        """The amazon provider's S3Hook, its managed-transfer settings bounded by ``chunk_size``/``max_in_flight``."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        part = self._part_size(None)
        hook = S3Hook(
            aws_conn_id=self.aws_conn_id,
            verify=self.verify,
            transfer_config_args={
                "multipart_threshold": part,
                "multipart_chunksize": part,
                "max_concurrency": self.max_in_flight,
                "use_threads": True,
                # boto3's CRT transfer client (chosen by "auto" on some instance types when awscrt is installed)
                # ignores the settings above and the reader's one-part reads; the classic one honours them.
                "preferred_transfer_client": "classic",
            },
        )
        # boto3 holds up to this many parts of a non-seekable stream in memory (10 by default): the uploading
        # ones plus one read ahead keeps memory flat whatever the video's size.
        hook.transfer_config.max_in_memory_upload_chunks = self.max_in_flight + 1
        return hook

    # ------------------------------------------------------------------------------------------- inputs

    def _generation(self) -> dict[str, Any] | None:
        value = self.generation
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise WanRequestValidationError(
                    f"generation is not the generate task's result dict (got a string that is not JSON: "
                    f"{value[:80]!r}); pass generate.output"
                ) from None
        if not isinstance(value, dict):
            raise WanRequestValidationError(
                f"generation must be the generate task's result dict, got {type(value).__name__}; pass generate.output"
            )
        return value

    def _task_id(self, generation: dict[str, Any] | None) -> str | None:
        explicit = str(self.dashscope_task_id).strip() if self.dashscope_task_id not in (None, "") else None
        from_generation = str(generation.get("task_id") or "").strip() or None if generation else None
        if explicit and from_generation and explicit != from_generation:
            raise WanRequestValidationError(
                f"dashscope_task_id={explicit!r} and generation['task_id']={from_generation!r} disagree; "
                f"give one of them"
            )
        task_id = explicit or from_generation
        if not task_id and not self.video_url:
            raise WanRequestValidationError(
                "no DashScope task id: dashscope_task_id rendered empty and generation has no task_id "
                "(did the generate task push one?)"
            )
        return task_id

    def _destination(self, context: Context, dashscope_task_id: str | None) -> tuple[str, str]:
        bucket = (self.s3_bucket or "").strip() or None
        key = (self.s3_key or "").strip() or None
        if key and key.startswith("s3://"):
            parts = urlsplit(key)
            url_bucket, key = parts.netloc, parts.path.lstrip("/")
            if bucket and bucket != url_bucket:
                raise WanRequestValidationError(
                    f"s3_bucket={bucket!r} contradicts s3_key={self.s3_key!r}; give one bucket"
                )
            bucket = url_bucket
        if not bucket:
            raise WanRequestValidationError("no destination bucket: give s3_bucket or an s3://bucket/key s3_key")
        name = self._file_name(dashscope_task_id)
        if not key:
            key = f"wan/{_run_date(context)}/{name}"
        elif key.endswith("/"):
            key = f"{key}{name}"
        return bucket, key

    def _file_name(self, dashscope_task_id: str | None) -> str:
        if dashscope_task_id:
            return dashscope_task_id.replace("/", "_") + ".mp4"
        path = urlsplit(self.video_url or "").path.rsplit("/", 1)[-1]
        return path if path.lower().endswith(".mp4") else f"{path or 'video'}.mp4"

    def _object_args(self) -> dict[str, Any]:
        extra = dict(self.extra_s3_args or {})
        _check_extra_args(extra, self.task_id)
        if "Tagging" in extra:
            extra["Tagging"] = encode_tags(parse_tags(extra["Tagging"], self.task_id))
        args: dict[str, Any] = {**extra, "ContentType": VIDEO_CONTENT_TYPE}
        if self.encrypt:
            args["ServerSideEncryption"] = "AES256"
        if self.sse_kms_key_id:
            args["ServerSideEncryption"] = "aws:kms"
            args["SSEKMSKeyId"] = self.sse_kms_key_id
        if self.acl_policy:
            args["ACL"] = self.acl_policy
        return args

    # ------------------------------------------------------------------------------------------- the task

    def _finished_task(self, dashscope_task_id: str) -> WanTask:
        hook = WanHook(dashscope_conn_id=self.dashscope_conn_id)
        try:
            task = hook.get_task(dashscope_task_id)
        finally:
            hook.close()
        status = task.task_status
        if status is TaskStatus.SUCCEEDED:
            if not task.video_url:
                raise WanVideoUnavailableError(
                    f"DashScope task {dashscope_task_id} SUCCEEDED but returned no video_url"
                )
            return task
        if status is TaskStatus.UNKNOWN:
            raise WanTaskExpiredError(
                f"DashScope task {dashscope_task_id} is UNKNOWN: it expired (tasks and their video links live 24 "
                f"hours) or belongs to another region or account. The video is gone and must be generated again",
                code="UNKNOWN",
                request_id=task.request_id,
                task_id=dashscope_task_id,
            )
        if status.is_active:
            raise WanVideoNotReadyError(
                f"DashScope task {dashscope_task_id} is {status.value}, not SUCCEEDED: there is no video yet. "
                f"Run the transfer after the generate task (or a WanTaskSensor) has finished"
            )
        cause = ": ".join(part for part in (task.code, task.message) if part)
        raise WanVideoUnavailableError(
            f"DashScope task {dashscope_task_id} ended {status.value} without a video"
            + (f" ({cause})" if cause else "")
        )

    def _settings(self) -> WanConnectionSettings | None:
        """
        The dashscope connection's settings; None when a bare ``video_url`` comes without a connection. A connection
        that exists but is unusable fails (WanConfigurationError, not retried).
        """
        try:
            return WanHook(dashscope_conn_id=self.dashscope_conn_id).get_settings()
        except AirflowNotFoundException:
            if not self.video_url:
                raise
            self.log.info("No dashscope connection %r; using the default download hosts", self.dashscope_conn_id)
            return None

    def _policy(self, settings: WanConnectionSettings | None) -> UrlPolicy:
        if self.allowed_hosts is not None:
            return UrlPolicy(tuple(self.allowed_hosts), self.allow_http)
        hosts = (*settings.download_hosts, settings.base_host) if settings else DEFAULT_DOWNLOAD_HOSTS
        return UrlPolicy(tuple(h for h in hosts if h), self.allow_http)

    # ------------------------------------------------------------------------------------------- streaming

    def _part_size(self, content_length: int | None) -> int:
        if content_length is None:
            return self.chunk_size
        needed = math.ceil(content_length / MAX_PARTS)
        if needed <= self.chunk_size:
            return self.chunk_size
        part = min(MAX_PART_SIZE, math.ceil(needed / MIB) * MIB)
        self.log.info(
            "Raising the part size to %d MiB so %d bytes fit in %d parts", part // MIB, content_length, MAX_PARTS
        )
        return part

    def _stream(
        self,
        url: str,
        settings: WanConnectionSettings | None,
        policy: UrlPolicy,
        upload: ManagedUpload,
        dashscope_task_id: str | None,
    ) -> UploadResult | None:
        """Download through the checking reader into the upload; None when S3 refused the checksum."""
        with (
            redacted_httpx_logs(),
            VideoDownload(
                url,
                policy,
                max_bytes=self.max_bytes,
                connect_timeout=settings.connect_timeout if settings else 10.0,
                read_timeout=settings.read_timeout if settings else 60.0,
                user_agent=user_agent(),
                on_secret=mask_secret,
            ) as download,
        ):
            stats = download.open()
            total = stats.content_length
            self.log.info(
                "Downloading the video%s from %s (%s) to s3://%s/%s",
                f" of task {dashscope_task_id}" if dashscope_task_id else "",
                stats.final_url,
                f"{total} bytes" if total is not None else "size not announced",
                upload.bucket,
                upload.key,
            )
            if total is None:
                self.log.warning(
                    "The video host sent no Content-Length: a cut download can only be told by the "
                    "connection closing early"
                )
            part = self._part_size(total)
            upload.set_part_size(part)
            # The SHA-256 (and a full-object CRC64NVME) is computed in a thread of its own, beside the download.
            digest = StreamDigest(crc64nvme=upload.use_checksum and upload.stream_algorithm == CRC64NVME)
            reader = VideoReader(download, digest)
            self._reader = reader
            try:
                # The MP4 signature is checked here, before any S3 request.
                if reader.fill(part):  # the whole video is smaller than a part: one PutObject
                    data = reader.read()
                    return upload.put_whole(data, digest.result().sha256)
                return upload.put_stream(reader, stats)
            finally:
                self._reader = None
                reader.close()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """
        OpenLineage of a finished transfer: the DashScope task as input (``dashscope://<host>``,
        ``<model>/<task id>``, the name the generate operator gives its output) and the S3 object as output
        (``s3://<bucket>``, key). Never the signed link. Needs the optional openlineage provider, which calls it.

        :param task_instance: the finished task instance (unused: the transfer recorded what it wrote).
        """
        return operator_lineage(self._lineage)

    def _lineage_base_url(self) -> str | None:
        try:
            settings = WanHook(dashscope_conn_id=self.dashscope_conn_id).get_settings()
        except (WanError, AirflowNotFoundException):
            return None
        return settings.base_url

    def on_kill(self) -> None:
        """Stop reading the video: boto3 then aborts the multipart upload, so no parts are left behind."""
        reader = self._reader
        if reader is not None:
            reader.stop(WanTransferError("the task was killed; the upload was aborted"))

    # ------------------------------------------------------------------------------------------- idempotency

    def _existing(
        self,
        client: Any,
        bucket: str,
        key: str,
        request_args: dict[str, Any],
        dashscope_task_id: str | None,
        source: str | None,
    ) -> dict[str, Any] | None:
        """
        What is recorded of the object at the key (its head, plus its metadata and tags merged under
        ``"record"``) when it is already this task's complete video; None when the key is free (or may be
        replaced). Raises when a different object is there and ``replace`` is off.
        """
        try:
            head = dict(client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **request_args))
        except Exception as err:
            if error_code(err) in NOT_FOUND:
                return None
            if error_code(err) in ("403", "AccessDenied") and self.replace:
                self.log.warning(
                    "Cannot read s3://%s/%s (HeadObject denied): cannot tell whether this video is already there; "
                    "transferring it again (replace=True)",
                    bucket,
                    key,
                )
                return None
            raise s3_error(err, "HeadObject (checking the key before writing)", bucket, key) from err
        meta = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
        same = (
            meta.get(META_TASK_ID) == dashscope_task_id
            if dashscope_task_id
            else source is not None and meta.get(META_SOURCE) == source
        )
        if same:
            record = dict(meta)
            if META_SHA256 not in record:  # a streamed video records its sha256 in a tag
                record.update(read_tags(client, bucket, key, head.get("VersionId"), request_args))
            problem = _incomplete(head, record)
            if problem is None:
                head["record"] = record
                return head
            self.log.warning(
                "s3://%s/%s holds an earlier, unfinished copy of this video (%s); writing it again",
                bucket,
                key,
                problem,
            )
            return None
        owner = meta.get(META_TASK_ID)
        described = f"the video of DashScope task {owner}" if owner else "an object not written by this operator"
        if not self.replace:
            raise WanS3KeyExistsError(
                f"s3://{bucket}/{key} already exists and holds {described} "
                f"({head.get('ContentLength')} bytes); it was left untouched. Pass replace=True to overwrite it"
            )
        self.log.info("s3://%s/%s holds %s; it will be replaced once the new video is complete", bucket, key, described)
        return None

    def _already_there(
        self,
        context: Context,
        client: Any,
        bucket: str,
        key: str,
        object_args: dict[str, Any],
        head: dict[str, Any],
        generation: dict[str, Any] | None,
    ) -> str:
        record = head["record"]
        sha256, size = record[META_SHA256], int(head["ContentLength"])
        dashscope_task_id = record.get(META_TASK_ID)
        self.log.info(
            "s3://%s/%s already holds this video (%d bytes, sha256 %s): nothing to download", bucket, key, size, sha256
        )
        manifest_uri = None
        if self.write_manifest:
            manifest_key = f"{key}.json"
            try:
                client.head_object(
                    Bucket=bucket, Key=manifest_key, **{k: v for k, v in object_args.items() if k in REQUEST_ARGS}
                )
                manifest_uri = f"s3://{bucket}/{manifest_key}"
            except Exception as err:
                if error_code(err) not in NOT_FOUND:
                    raise s3_error(err, "HeadObject (manifest)", bucket, manifest_key) from err
                manifest = build_manifest(
                    context, self.task_id, bucket, key, sha256, size, dashscope_task_id, generation, None
                )
                manifest["transfer"] = {"transferred_at": head.get("LastModified"), "source": record.get(META_SOURCE)}
                manifest_uri = put_manifest(client, bucket, key, object_args, manifest, dashscope_task_id, self.log)
        return self._finish(context, bucket, key, sha256, size, manifest_uri, dashscope_task_id, generation)

    # ------------------------------------------------------------------------------------------- metadata

    def _metadata(
        self,
        dashscope_task_id: str | None,
        generation: dict[str, Any] | None,
        task: WanTask | None,
        source: str | None,
    ) -> dict[str, str]:
        request = (generation or {}).get("request") or {}
        values = {
            META_TASK_ID: dashscope_task_id,
            "wan-model": (generation or {}).get("model") or request.get("model"),
            "wan-seed": first((generation or {}).get("seed"), request.get("seed")),
            "wan-request-id": (generation or {}).get("request_id") or (task.request_id if task else None),
            META_SOURCE: source,
        }
        user = {k.lower(): str(v) for k, v in (self.extra_s3_args or {}).get("Metadata", {}).items()}
        return {**user, **{k: ascii_value(v) for k, v in values.items() if v is not None and v != ""}}

    # ------------------------------------------------------------------------------------------- results

    def _finish(
        self,
        context: Context,
        bucket: str,
        key: str,
        sha256: str,
        size: int,
        manifest_uri: str | None,
        dashscope_task_id: str | None,
        generation: dict[str, Any] | None,
    ) -> str:
        uri = f"s3://{bucket}/{key}"
        self._lineage = describe_transfer(
            bucket,
            key,
            dashscope_task_id=dashscope_task_id,
            model=(generation or {}).get("model"),
            base_url=self._lineage_base_url() if dashscope_task_id else None,
            source_url=redact(self.video_url).replace("?<redacted>", "") if self.video_url else None,
            manifest_key=manifest_uri.split("/", 3)[3] if manifest_uri else None,
        )
        ti = context["ti"]
        if manifest_uri:
            ti.xcom_push(key="manifest_uri", value=manifest_uri)
        ti.xcom_push(key="sha256", value=sha256)
        ti.xcom_push(key="size_bytes", value=size)
        if self.asset_alias:
            extra = {
                "s3_uri": uri,
                "bucket": bucket,
                "key": key,
                "dashscope_task_id": dashscope_task_id,
                "sha256": sha256,
                "size_bytes": size,
                "model": (generation or {}).get("model"),
                "manifest_uri": manifest_uri,
                "airflow_task_id": self.task_id,
            }
            asset = Asset(uri=destination_asset_uri(bucket, key))
            context["outlet_events"][AssetAlias(self.asset_alias)].add(
                asset, extra={k: v for k, v in extra.items() if v is not None}
            )
            self.log.info("Emitted an asset event for %s (%s) through alias %r", asset.uri, key, self.asset_alias)
        return uri


def destination_asset_uri(bucket: str, key: str) -> str:
    """
    The one asset that stands for every video saved under the same destination: ``s3://<bucket>/<first folder>``
    (``s3://<bucket>/`` for a key without a folder; written without the trailing slash, as Airflow's S3 asset URI
    normaliser stores it). One asset per destination, not one per video, so the Assets page does not grow with
    every video; each event's extra names the object (``key``, ``s3_uri``).

    :param bucket: the bucket.
    :param key: the object's key, e.g. ``wan/2026-01-02/<task id>.mp4`` -> ``s3://<bucket>/wan``.
    """
    folder = key.split("/", 1)[0] if "/" in key.strip("/") else ""
    return f"s3://{bucket}/{quote(folder, safe=_ASSET_SAFE)}"


def _incomplete(head: dict[str, Any], record: dict[str, str]) -> str | None:
    """Why an object of the right task is not a finished transfer, or None when it is."""
    sha256 = record.get(META_SHA256)
    if not sha256:
        return "no sha256 recorded in its tags or metadata"
    size = record.get(META_SIZE)
    if size != str(head.get("ContentLength")):
        return f"its size {head.get('ContentLength')} is not the recorded {size}"
    reported = head.get("ChecksumSHA256")
    multipart = "-" in str(head.get("ETag") or "") or head.get("ChecksumType") == "COMPOSITE"
    if reported and not multipart and "-" not in reported:  # a composite checksum is not the object's SHA-256
        import base64

        try:
            if base64.b64decode(reported).hex() != sha256:
                return "S3's SHA-256 of it differs from the recorded sha256"
        except ValueError:
            return "S3 reported an unreadable checksum"
    return None


def _verified(result: UploadResult) -> str:
    """What S3 verified of the upload, for the log line."""
    if not (result.verified_by_s3 and result.s3_checksum):
        return ""
    return f", {result.s3_checksum['algorithm']} ({result.s3_checksum['type'].lower()}) verified by S3"


def _check_extra_args(extra: dict[str, Any], task_id: str) -> None:
    unknown = sorted(set(extra) - OBJECT_ARGS)
    if unknown:
        raise WanRequestValidationError(
            f"{task_id}: extra_s3_args has {', '.join(unknown)}, which is not an object argument accepted by "
            f"boto3's managed upload and PutObject; allowed: {', '.join(sorted(OBJECT_ARGS))}"
        )
    if "Tagging" in extra:
        parse_tags(extra["Tagging"], task_id)


def _try_started(context: Context) -> datetime:
    """When this try started (the task instance's start date; now when it has none, e.g. outside Airflow)."""
    started = getattr(context.get("ti"), "start_date", None)
    now = datetime.now(timezone.utc)
    if isinstance(started, datetime):
        started = started if started.tzinfo else started.replace(tzinfo=timezone.utc)
        return min(started, now)
    return now


def _run_date(context: Context) -> str:
    ds = context.get("ds")
    if ds:
        return str(ds)
    dag_run = context.get("dag_run")
    run_after = getattr(dag_run, "run_after", None)
    if isinstance(run_after, datetime):
        return run_after.date().isoformat()
    return datetime.now(timezone.utc).date().isoformat()


def _mask_all(secrets: list[str]) -> None:
    for secret in secrets:
        mask_secret(secret)


__all__ = [
    "DEFAULT_ASSET_ALIAS",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_BYTES",
    "WanS3ObjectLink",
    "WanVideoToS3Operator",
    "destination_asset_uri",
]
