"""
Lineage and the console link of the S3 transfer: the DashScope task is the input, the S3 object the output.

Plain values here; the OpenLineage classes are imported only when the optional openlineage provider asks for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseOperatorLink

from airflow_provider_wan.lineage import NAMESPACE_SCHEME

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

#: The AWS console's page of one object.
S3_CONSOLE_OBJECT = "https://console.aws.amazon.com/s3/object/{bucket}?prefix={key}"


@dataclass(frozen=True)
class TransferLineage:
    """
    What one transfer read and wrote, as ``(namespace, name)`` pairs (OpenLineage naming: ``s3://bucket`` + key).

    :param source: the DashScope task (``dashscope://<host>``, ``<model>/<task id>``), or the link's location
        without its query string when the video came from a bare ``video_url``.
    :param bucket: the destination bucket.
    :param key: the destination key.
    :param manifest_key: the manifest's key, when one was written.
    """

    source: tuple[str, str] | None
    bucket: str
    key: str
    manifest_key: str | None = None

    @property
    def output(self) -> tuple[str, str]:
        """The video object: ``("s3://<bucket>", "<key>")``."""
        return f"s3://{self.bucket}", self.key


def describe_transfer(
    bucket: str,
    key: str,
    *,
    dashscope_task_id: str | None,
    model: str | None,
    base_url: str | None,
    source_url: str | None = None,
    manifest_key: str | None = None,
) -> TransferLineage:
    """
    The lineage of a transfer from plain values.

    :param bucket: the destination bucket.
    :param key: the destination key.
    :param dashscope_task_id: the DashScope task id, when known.
    :param model: the Wan model (``wan`` when unknown), as in the generation's own lineage name.
    :param base_url: the dashscope connection's base URL (its host names the namespace).
    :param source_url: the link the video came from, already without its query string.
    :param manifest_key: the manifest's key.
    """
    source: tuple[str, str] | None = None
    if dashscope_task_id and base_url:
        host = urlsplit(base_url).netloc or "unknown"
        source = (f"{NAMESPACE_SCHEME}://{host}", f"{model or 'wan'}/{dashscope_task_id}")
    elif source_url:
        parts = urlsplit(source_url)
        if parts.scheme and parts.netloc:
            source = (f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}", parts.path.lstrip("/") or "/")
    return TransferLineage(source=source, bucket=bucket, key=key, manifest_key=manifest_key)


def operator_lineage(described: TransferLineage | None) -> OperatorLineage:
    """
    ``OperatorLineage`` of a transfer: the DashScope task (or link) as input, the S3 object as output.

    :param described: what the transfer recorded, or None when it did not get as far as writing.
    """
    from airflow.providers.common.compat.openlineage.facet import InputDataset, OutputDataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    if described is None:
        return OperatorLineage()
    inputs = [InputDataset(namespace=described.source[0], name=described.source[1])] if described.source else []
    namespace, name = described.output
    return OperatorLineage(inputs=inputs, outputs=[OutputDataset(namespace=namespace, name=name)])


def console_link(uri: Any) -> str:
    """
    The AWS console page of the object ``s3://bucket/key``; ``""`` for anything else.

    :param uri: the transfer's return value.
    """
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        return ""
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key:
        return ""
    return S3_CONSOLE_OBJECT.format(bucket=quote(bucket, safe=""), key=quote(key, safe=""))


class WanS3ObjectLink(BaseOperatorLink):
    """
    For :class:`~airflow_provider_wan.transfers.wan_to_s3.WanVideoToS3Operator`: the saved video in the AWS S3
    console (from the ``s3://`` URI the task returned; no link before it succeeded).
    """

    name = "S3 object"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """
        The console URL of the object the task instance ``ti_key`` wrote, or ``""``.

        :param operator: the transfer operator.
        :param ti_key: the task instance.
        """
        from airflow.sdk.execution_time.xcom import XCom

        return console_link(XCom.get_value(ti_key=ti_key, key="return_value"))
