"""
Media inputs just before the submit: checked cheaply where they live, and ``s3://`` URIs presigned for DashScope.

An input DashScope would refuse (a missing object, a format it does not take, an image out of bounds, too many
bytes) fails here, before any money is at stake; the failure names the parameter, its URI and what is allowed. The
presigned URL is a bearer secret: it is registered with Airflow's secrets masker at once and lives only in the wire
request; nothing here logs it, and what is shown of an input is its URI as given (or a link without its query).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from airflow_provider_wan._compat import mask_secret
from airflow_provider_wan.exceptions import WanRequestValidationError
from airflow_provider_wan.media import HEAD_BYTES, Kind, MediaInfo, problem, sniff
from airflow_provider_wan.models import IMAGE_MAX_BYTES, WanVideoRequest, strip_query
from airflow_provider_wan.transfers._download import redacted_httpx_logs

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

#: SigV4's limit on a presigned URL's life.
PRESIGN_MAX_SECONDS = 7 * 24 * 3600
#: How long a check of an https input may take before it is skipped (DashScope fetches it anyway).
HTTP_CHECK_TIMEOUT = 15.0
#: Answers that mean DashScope could not fetch the input either.
_GONE = frozenset({401, 403, 404, 410})
_RANGE_TOTAL = re.compile(r"/(\d+)\s*$")


def input_kinds(name: str) -> tuple[Kind, ...]:
    """
    What a parameter takes: images for frames, images or videos for references, audio for soundtracks.

    :param name: a parameter name, ``reference_urls[2]`` included.
    """
    if name.startswith("reference_urls"):
        return ("image", "video")
    if name == "audio_url":
        return ("audio",)
    return ("image",)


class InputResolver:
    """
    Check a request's media inputs and presign its ``s3://`` ones.

    :param aws_conn_id: the AWS connection that reads and presigns ``s3://`` inputs (the amazon provider's S3 hook).
    :param expires_in: seconds a presigned URL stays valid.
    :param log: where to say what was checked (never a signed URL).
    """

    def __init__(self, aws_conn_id: str | None, expires_in: int, log: logging.Logger | Any) -> None:
        self.aws_conn_id = aws_conn_id
        self.expires_in = max(60, min(int(expires_in), PRESIGN_MAX_SECONDS))
        self.log = log
        self._s3: S3Hook | None = None

    @property
    def s3(self) -> S3Hook:
        """The S3 hook of ``aws_conn_id`` (created on first use: text-only requests never need AWS)."""
        if self._s3 is None:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            self._s3 = S3Hook(aws_conn_id=self.aws_conn_id)
        return self._s3

    def resolve(self, request: WanVideoRequest) -> WanVideoRequest:
        """
        Check every input and return the request with the URLs DashScope fetches (presigned for ``s3://``).

        :param request: the validated request, its inputs as given.
        :raises WanRequestValidationError: for an input DashScope would refuse; nothing has been sent.
        """
        cap = request.capability
        image_max = cap.image_max_bytes if cap is not None else IMAGE_MAX_BYTES
        urls: dict[str, str] = {}
        for name, uri in request.input_uris():
            scheme = urlsplit(uri).scheme.lower()
            if urlsplit(uri).query:
                mask_secret(uri)  # a link presigned by the user is as secret as ours
            if scheme == "s3":
                info, size = self._read_s3(name, uri)
            elif scheme in ("http", "https"):
                read = self._read_http(name, uri)
                if read is None:
                    continue
                info, size = read
            else:  # oss:// temporary uploads: only DashScope can read them
                continue
            refusal = problem(name, strip_query(uri), info, size, input_kinds(name), image_max)
            if refusal:
                raise WanRequestValidationError(f"Invalid Wan video input: {refusal}. Nothing was sent to DashScope")
            self.log.info("Input %s: %s (%s, %s bytes)", name, strip_query(uri), info.describe(), size)
            if scheme == "s3" and uri not in urls:
                urls[uri] = self._presign(name, uri)
        return request.with_input_urls(urls)

    # ----------------------------------------------------------------------------------------- s3

    def _read_s3(self, name: str, uri: str) -> tuple[MediaInfo, int | None]:
        """The first bytes and the size of an S3 object, with one ranged GET."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = self.s3.parse_s3_url(uri)
        try:
            answer = self.s3.get_conn().get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{HEAD_BYTES - 1}")
            head = answer["Body"].read()
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if status in _GONE or code in ("NoSuchKey", "NoSuchBucket", "AccessDenied", "404", "403"):
                raise WanRequestValidationError(
                    f"Invalid Wan video input: {name}={uri!r} cannot be read through aws_conn_id="
                    f"{self.aws_conn_id!r} ({code or status}); give an existing object the connection may read. "
                    f"Nothing was sent to DashScope"
                ) from None
            raise  # throttling, a 5xx: Airflow's retries apply
        except BotoCoreError:
            raise
        total = _RANGE_TOTAL.search(str(answer.get("ContentRange") or ""))
        size = int(total.group(1)) if total else answer.get("ContentLength")
        return sniff(head), size

    def _presign(self, name: str, uri: str) -> str:
        bucket, key = self.s3.parse_s3_url(uri)
        url = self.s3.generate_presigned_url(
            client_method="get_object", params={"Bucket": bucket, "Key": key}, expires_in=self.expires_in
        )
        if not url:
            raise WanRequestValidationError(
                f"Invalid Wan video input: {name}={uri!r} could not be presigned through aws_conn_id="
                f"{self.aws_conn_id!r}; check the connection's credentials. Nothing was sent to DashScope"
            )
        mask_secret(url)
        self.log.info("Presigned %s for %d s (the signed URL is masked and never stored)", uri, self.expires_in)
        return url

    # ----------------------------------------------------------------------------------------- http

    def _read_http(self, name: str, uri: str) -> tuple[MediaInfo, int | None] | None:
        """
        The first bytes and the size of a link, with one ranged GET; None when the worker cannot reach it (DashScope
        fetches from elsewhere, so that alone is no reason to refuse).
        """
        try:
            with (
                redacted_httpx_logs(),
                httpx.Client(timeout=HTTP_CHECK_TIMEOUT, follow_redirects=True) as client,
                client.stream("GET", uri, headers={"Range": f"bytes=0-{HEAD_BYTES - 1}"}) as answer,
            ):
                if answer.status_code in _GONE:
                    raise WanRequestValidationError(
                        f"Invalid Wan video input: {name}={strip_query(uri)!r} answers HTTP {answer.status_code}, "
                        f"so DashScope could not download it either; give a link that serves the file. Nothing "
                        f"was sent to DashScope"
                    )
                if answer.status_code >= 300:
                    self.log.warning(
                        "Could not check %s (%s answers HTTP %d); DashScope will fetch it itself",
                        name,
                        strip_query(uri),
                        answer.status_code,
                    )
                    return None
                head = bytearray()
                for chunk in answer.iter_bytes():
                    head += chunk
                    if len(head) >= HEAD_BYTES:
                        break
                total = _RANGE_TOTAL.search(answer.headers.get("content-range", ""))
                length = answer.headers.get("content-length")
                size = int(total.group(1)) if total else None
                if size is None and length and answer.status_code == 200:
                    size = int(length)
                return sniff(bytes(head[:HEAD_BYTES])), size
        except httpx.HTTPError as err:
            self.log.warning(
                "Could not check %s (%s: %s); DashScope will fetch it itself",
                name,
                strip_query(uri),
                type(err).__name__,
            )
            return None
