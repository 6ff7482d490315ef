"""
WanVideoToS3Operator: save a generated Wan video to S3 before its 24-hour link dies.

The video is streamed from the signed link straight into an S3 multipart upload: memory stays at a few part
buffers whatever the video's size, every byte is hashed (SHA-256) on the way and checked by S3 where it can, and
the object appears only once the whole download checked out. A JSON manifest with the request, the usage and the
checksum is written beside it, and an asset event announces the new object.
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

from airflow_provider_wan import __version__
from airflow_provider_wan._failures import airflow_error
from airflow_provider_wan.exceptions import (
    WanError,
    WanRequestValidationError,
    WanS3KeyExistsError,
    WanTaskExpiredError,
    WanVideoNotReadyError,
    WanVideoUnavailableError,
)
from airflow_provider_wan.hooks.wan import WanHook, user_agent
from airflow_provider_wan.models import TaskStatus, WanTask
from airflow_provider_wan.settings import DEFAULT_DOWNLOAD_HOSTS, WanConnectionSettings
from airflow_provider_wan.transfers._download import (
    UrlPolicy,
    VideoDownload,
    redact,
    redacted_httpx_logs,
    secrets_of,
)
from airflow_provider_wan.transfers._s3upload import (
    MAX_PART_SIZE,
    MAX_PARTS,
    MIB,
    MIN_PART_SIZE,
    OBJECT_ARGS,
    REQUEST_ARGS,
    StreamingUpload,
    UploadResult,
    error_code,
    s3_error,
)

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context

#: Default bytes per multipart part (and the size under which a video is one PutObject).
DEFAULT_CHUNK_SIZE = 8 * MIB
#: Default ceiling on a video's size: 5 GiB (Wan videos are tens of MB; this only stops runaway bodies).
DEFAULT_MAX_BYTES = 5 * 1024 * MIB
DEFAULT_ASSET_ALIAS = "wan_videos"
VIDEO_CONTENT_TYPE = "video/mp4"
MANIFEST_CONTENT_TYPE = "application/json; charset=utf-8"
MANIFEST_VERSION = 1
#: User-metadata names (S3 sends them as ``x-amz-meta-<name>``).
META_TASK_ID = "wan-task-id"
META_SHA256 = "wan-sha256"
META_SIZE = "wan-size-bytes"
META_SOURCE = "wan-source"
_PROGRESS_EVERY = 256 * MIB
_NOT_FOUND = ("404", "NoSuchKey", "NotFound")
#: Characters kept as they are in an asset URI's key (asset URIs must be ASCII).
_ASSET_SAFE = "/-_.~!*'()+,;=:@&$"


def _ascii(value: Any) -> str:
    """An S3 metadata value: printable ASCII (anything else percent-encoded)."""
    return quote(str(value), safe=" !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class WanVideoToS3Operator(BaseOperator):
    """
    Stream the video of a Wan (DashScope) generation into S3, with checksum, metadata, manifest and asset event.

    The source is a DashScope task: ``dashscope_task_id`` or the ``generation`` result of
    :class:`~airflow_provider_wan.operators.wan.WanTextToVideoOperator`; a fresh signed link is fetched through
    the hook, so no link ever travels through XCom. A ``video_url`` can be given instead.

    What the transfer guarantees:

    * bounded memory: one part buffer being filled plus at most ``max_in_flight`` parts uploading, whatever the
      video's size (a video smaller than ``chunk_size`` is a single PutObject);
    * no partial or corrupt object: the download is checked (Content-Length, an MP4 ``ftyp`` box before anything is
      uploaded, ``max_bytes``) and hashed with SHA-256 while it streams; parts carry SHA-256 checksums S3 verifies;
      the upload is completed only after every check passed and aborted on any failure, so an object already at
      the key is never replaced by a failed attempt;
    * idempotent retries: when the key already holds the complete object of the same DashScope task (metadata,
      size and checksum agree), the task succeeds without downloading again;
    * safety: only https links (plain http only to loopback, or with ``allow_http``), hosts from an allowlist,
      redirects followed by hand and checked before they are requested; the signed query string is masked and
      never logged.

    The object gets ``Content-Type: video/mp4`` and the metadata ``wan-task-id``, ``wan-sha256``,
    ``wan-size-bytes``, ``wan-model``, ``wan-seed``, ``wan-request-id`` (and ``wan-source``, the link without its
    query). A UTF-8 JSON manifest ``<key>.json`` beside it records the request, prompts, usage, timings and the
    checksum. An asset event for ``s3://bucket/key`` is emitted through the :class:`~airflow.sdk.AssetAlias`
    ``asset_alias``, so DAGs can be scheduled on new videos.

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
        ``Tagging``, ``CacheControl``, ``Metadata``, ``ExpectedBucketOwner``; see :data:`OBJECT_ARGS`.
    :param write_manifest: write the JSON manifest ``<key>.json`` after the video.
    :param asset_alias: name of the asset alias the event goes through (added to ``outlets``); None: no event.
    :param chunk_size: bytes per multipart part (at least 5 MiB); grown automatically when a video would need
        more than 10,000 parts. Memory use is about ``(max_in_flight + 2) * chunk_size``.
    :param max_in_flight: parts uploading at once while the next one downloads.
    :param max_bytes: refuse videos larger than this (checked on Content-Length before reading, and while
        counting); None: no limit.
    :param allowed_hosts: host patterns (fnmatch, e.g. ``*.aliyuncs.com``) the link and redirects may use.
        Default: the connection's ``download_hosts`` (``*.aliyuncs.com`` plus its extra) and the host of its base
        URL.
    :param allow_http: allow plain http links to allowed hosts (https only otherwise; loopback is always allowed).
    :param s3_checksum: send SHA-256 checksums for S3 to verify (turned off automatically when an S3-compatible
        store refuses them).
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
        s3_checksum: bool = True,
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
        self._upload: StreamingUpload | None = None

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

    def _transfer(
        self,
        context: Context,
        generation: dict[str, Any] | None,
        dashscope_task_id: str | None,
        bucket: str,
        key: str,
    ) -> str:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        if self.video_url:
            _mask_all(secrets_of(self.video_url))
        client = S3Hook(aws_conn_id=self.aws_conn_id, verify=self.verify).get_conn()
        object_args = self._object_args()
        source = redact(self.video_url).replace("?<redacted>", "") if self.video_url else None
        existing = self._existing(client, bucket, key, object_args, dashscope_task_id, source)
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
        metadata = self._metadata(dashscope_task_id, generation, task, source)
        result, seconds = self._stream(url, client, bucket, key, object_args, metadata, dashscope_task_id)
        manifest_uri = None
        if self.write_manifest:
            manifest = self._manifest(
                context, bucket, key, result.sha256, result.size, dashscope_task_id, generation, task
            )
            manifest["transfer"] = {
                "transferred_at": _now(),
                "seconds": round(seconds, 3),
                "parts": result.parts,
                "s3_checksum_sha256": result.s3_checksum,
                "verified_by_s3": result.verified_by_s3,
                "source": source,
            }
            manifest_uri = self._put_manifest(client, bucket, key, object_args, manifest, dashscope_task_id)
        return self._finish(
            context, bucket, key, result.sha256, result.size, manifest_uri, dashscope_task_id, generation
        )

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
        """The dashscope connection's settings; None when a bare ``video_url`` comes without a connection."""
        try:
            return WanHook(dashscope_conn_id=self.dashscope_conn_id).get_settings()
        except Exception as err:
            self.log.info("No usable dashscope connection %r (%s); using defaults", self.dashscope_conn_id, err)
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
        client: Any,
        bucket: str,
        key: str,
        object_args: dict[str, Any],
        metadata: dict[str, str],
        dashscope_task_id: str | None,
    ) -> tuple[UploadResult, float]:
        settings = self._settings()
        policy = self._policy(settings)
        started = time.monotonic()
        with (
            redacted_httpx_logs(),
            VideoDownload(
                url,
                policy,
                max_bytes=self.max_bytes,
                connect_timeout=settings.connect_timeout if settings else 10.0,
                read_timeout=settings.read_timeout if settings else 60.0,
                user_agent=user_agent(),
                on_secret=_mask,
            ) as download,
        ):
            stats = download.open()
            total = stats.content_length
            self.log.info(
                "Downloading the video%s from %s (%s) to s3://%s/%s",
                f" of task {dashscope_task_id}" if dashscope_task_id else "",
                stats.final_url,
                f"{total} bytes" if total is not None else "size not announced",
                bucket,
                key,
            )
            if total is None:
                self.log.warning(
                    "The video host sent no Content-Length: a cut download can only be told by the "
                    "connection closing early"
                )
            upload = StreamingUpload(
                client,
                bucket,
                key,
                object_args=object_args,
                metadata=metadata,
                part_size=self._part_size(total),
                max_in_flight=self.max_in_flight,
                use_checksum=self.s3_checksum,
                log=self.log,
            )
            self._upload = upload
            try:
                next_report = _PROGRESS_EVERY
                for piece in download.chunks():
                    upload.write(piece)
                    if stats.received >= next_report:
                        self.log.info(
                            "%d MiB%s transferred",
                            stats.received // MIB,
                            f" of {total // MIB} MiB" if total else "",
                        )
                        next_report += _PROGRESS_EVERY
                result = upload.complete(
                    stats.hexdigest, {META_SHA256: stats.hexdigest, META_SIZE: str(stats.received)}
                )
            except BaseException:
                upload.abort()  # whatever happened (a check, S3, a kill): no parts and no object are left
                raise
            finally:
                self._upload = None
        seconds = time.monotonic() - started
        self.log.info(
            "Saved %d bytes to s3://%s/%s in %.1f s (%s, sha256 %s%s)",
            result.size,
            bucket,
            key,
            seconds,
            f"{result.parts} parts" if result.parts else "one PutObject",
            result.sha256,
            ", verified by S3" if result.verified_by_s3 else "",
        )
        return result, seconds

    def on_kill(self) -> None:
        """Abort the multipart upload in progress, so no parts are left behind."""
        upload = self._upload
        if upload is not None:
            upload.abort()

    # ------------------------------------------------------------------------------------------- idempotency

    def _existing(
        self,
        client: Any,
        bucket: str,
        key: str,
        object_args: dict[str, Any],
        dashscope_task_id: str | None,
        source: str | None,
    ) -> dict[str, Any] | None:
        """
        The head of the object at the key when it is already this task's complete video; None when the key is
        free (or may be replaced). Raises when a different object is there and ``replace`` is off.
        """
        request_args = {k: v for k, v in object_args.items() if k in REQUEST_ARGS}
        try:
            head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **request_args)
        except Exception as err:
            if error_code(err) in _NOT_FOUND:
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
            problem = _incomplete(head, meta)
            if problem is None:
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
        meta = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
        sha256, size = meta[META_SHA256], int(head["ContentLength"])
        dashscope_task_id = meta.get(META_TASK_ID)
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
                if error_code(err) not in _NOT_FOUND:
                    raise s3_error(err, "HeadObject (manifest)", bucket, manifest_key) from err
                manifest = self._manifest(context, bucket, key, sha256, size, dashscope_task_id, generation, None)
                manifest["transfer"] = {"transferred_at": head.get("LastModified"), "source": meta.get(META_SOURCE)}
                manifest_uri = self._put_manifest(client, bucket, key, object_args, manifest, dashscope_task_id)
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
            "wan-seed": _first((generation or {}).get("seed"), request.get("seed")),
            "wan-request-id": (generation or {}).get("request_id") or (task.request_id if task else None),
            META_SOURCE: source,
        }
        user = {k.lower(): str(v) for k, v in (self.extra_s3_args or {}).get("Metadata", {}).items()}
        return {**user, **{k: _ascii(v) for k, v in values.items() if v is not None and v != ""}}

    def _manifest(
        self,
        context: Context,
        bucket: str,
        key: str,
        sha256: str,
        size: int,
        dashscope_task_id: str | None,
        generation: dict[str, Any] | None,
        task: WanTask | None,
    ) -> dict[str, Any]:
        gen = generation or {}
        request = dict(gen.get("request") or {})
        usage = task.usage.model_dump(exclude_none=True) if task and task.usage else gen.get("usage")
        billed = task.usage.billed_seconds if task and task.usage else gen.get("billed_seconds")
        orig_prompt = gen.get("orig_prompt") or (task.orig_prompt if task else None) or request.get("prompt")
        if not request and orig_prompt:
            request = {"prompt": orig_prompt}

        def pick(name: str) -> Any:
            return _first(gen.get(name), getattr(task, name, None) if task else None)

        return {
            "manifest_version": MANIFEST_VERSION,
            "s3_uri": f"s3://{bucket}/{key}",
            "bucket": bucket,
            "key": key,
            "content_type": VIDEO_CONTENT_TYPE,
            "size_bytes": size,
            "sha256": sha256,
            "dashscope_task_id": dashscope_task_id,
            "request_id": pick("request_id"),
            "model": gen.get("model") or request.get("model"),
            "request": request,
            "orig_prompt": orig_prompt,
            "actual_prompt": pick("actual_prompt"),
            "size": gen.get("size") or (task.usage.output_size if task and task.usage else None),
            "duration": gen.get("duration"),
            "seed": _first(gen.get("seed"), request.get("seed")),
            "billed_seconds": billed,
            "usage": usage,
            "timings": {
                "submit_time": pick("submit_time"),
                "scheduled_time": pick("scheduled_time"),
                "end_time": pick("end_time"),
            },
            "airflow": _airflow_info(context, self.task_id),
            "producer": f"airflow-provider-wan/{__version__}",
        }

    def _put_manifest(
        self,
        client: Any,
        bucket: str,
        key: str,
        object_args: dict[str, Any],
        manifest: dict[str, Any],
        dashscope_task_id: str | None,
    ) -> str:
        import base64
        import hashlib

        manifest_key = f"{key}.json"
        body = json.dumps(manifest, ensure_ascii=False, indent=2, default=str).encode("utf-8")
        args = {k: v for k, v in object_args.items() if k in OBJECT_ARGS}
        args["ContentType"] = MANIFEST_CONTENT_TYPE
        meta = {**args.get("Metadata", {}), "wan-video-sha256": manifest["sha256"]}
        if dashscope_task_id:
            meta[META_TASK_ID] = _ascii(dashscope_task_id)
        args["Metadata"] = meta
        checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()
        try:
            try:
                client.put_object(Bucket=bucket, Key=manifest_key, Body=body, ChecksumSHA256=checksum, **args)
            except Exception as err:
                if error_code(err) not in ("InvalidArgument", "NotImplemented", "InvalidRequest"):
                    raise
                client.put_object(Bucket=bucket, Key=manifest_key, Body=body, **args)
        except Exception as err:
            raise s3_error(err, "PutObject (manifest)", bucket, manifest_key) from err
        self.log.info("Wrote the manifest s3://%s/%s (%d bytes)", bucket, manifest_key, len(body))
        return f"s3://{bucket}/{manifest_key}"

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
        ti = context["ti"]
        if manifest_uri:
            ti.xcom_push(key="manifest_uri", value=manifest_uri)
        ti.xcom_push(key="sha256", value=sha256)
        ti.xcom_push(key="size_bytes", value=size)
        if self.asset_alias:
            extra = {
                "sha256": sha256,
                "size_bytes": size,
                "dashscope_task_id": dashscope_task_id,
                "model": (generation or {}).get("model"),
                "manifest_uri": manifest_uri,
                "s3_uri": uri,
            }
            asset = Asset(uri=f"s3://{bucket}/{quote(key, safe=_ASSET_SAFE)}")
            context["outlet_events"][AssetAlias(self.asset_alias)].add(
                asset, extra={k: v for k, v in extra.items() if v is not None}
            )
            self.log.info("Emitted an asset event for %s through alias %r", asset.uri, self.asset_alias)
        return uri


def _incomplete(head: dict[str, Any], meta: dict[str, str]) -> str | None:
    """Why an object of the right task is not a finished transfer, or None when it is."""
    sha256 = meta.get(META_SHA256)
    if not sha256:
        return "no sha256 in its metadata"
    size = meta.get(META_SIZE)
    if size is not None and size != str(head.get("ContentLength")):
        return f"its size {head.get('ContentLength')} is not the recorded {size}"
    reported = head.get("ChecksumSHA256")
    if reported and "-" not in reported:
        import base64

        try:
            if base64.b64decode(reported).hex() != sha256:
                return "S3's SHA-256 of it differs from the recorded sha256"
        except ValueError:
            return "S3 reported an unreadable checksum"
    return None


def _check_extra_args(extra: dict[str, Any], task_id: str) -> None:
    unknown = sorted(set(extra) - OBJECT_ARGS)
    if unknown:
        raise WanRequestValidationError(
            f"{task_id}: extra_s3_args has {', '.join(unknown)}, which is not an object argument accepted by "
            f"PutObject, CreateMultipartUpload and CopyObject; allowed: {', '.join(sorted(OBJECT_ARGS))}"
        )


def _run_date(context: Context) -> str:
    ds = context.get("ds")
    if ds:
        return str(ds)
    dag_run = context.get("dag_run")
    run_after = getattr(dag_run, "run_after", None)
    if isinstance(run_after, datetime):
        return run_after.date().isoformat()
    return datetime.now(timezone.utc).date().isoformat()


def _airflow_info(context: Context, task_id: str) -> dict[str, Any]:
    dag = context.get("dag")
    ti = context.get("ti")
    return {
        "dag_id": getattr(dag, "dag_id", None),
        "run_id": context.get("run_id"),
        "task_id": task_id,
        "try_number": getattr(ti, "try_number", None),
    }


def _first(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


def _mask(secret: str) -> None:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDK layout
        from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]
    mask_secret(secret)


def _mask_all(secrets: list[str]) -> None:
    for secret in secrets:
        _mask(secret)


__all__ = ["DEFAULT_ASSET_ALIAS", "DEFAULT_CHUNK_SIZE", "DEFAULT_MAX_BYTES", "WanVideoToS3Operator"]
