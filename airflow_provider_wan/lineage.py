"""
OpenLineage for a Wan generation: the DashScope task is the output dataset, the soundtrack (if any) the input.

The openlineage provider is optional: nothing here imports it until a lineage is built, which happens only when
it is installed (its listener is what asks the operator for lineage).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_wan._compat import AirflowNotFoundException
from airflow_provider_wan.exceptions import WanError
from airflow_provider_wan.models import FAMILY_NAMES, INPUT_FIELDS, get_capability

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

#: The OpenLineage namespace scheme of DashScope tasks: ``dashscope://<host>``.
NAMESPACE_SCHEME = "dashscope"


@dataclass(frozen=True)
class GenerationLineage:
    """
    What the lineage of one generation says, as plain values (no OpenLineage classes, no signed links).

    :param namespace: ``dashscope://<host>`` of the endpoint that ran the task.
    :param name: ``<model>/<DashScope task id>``.
    :param dashscope_task_id: the DashScope task id.
    :param description: the model, size, duration and prompts, for the dataset's documentation facet.
    :param inputs: ``(namespace, name)`` of each input (frames, references, soundtrack): its location without its
        query string (``s3://bucket`` + key for an S3 input).
    """

    namespace: str
    name: str
    dashscope_task_id: str
    description: str
    inputs: tuple[tuple[str, str], ...] = ()


def describe_generation(
    dashscope_task_id: str, base_url: str, model: str, request: dict[str, Any] | None = None
) -> GenerationLineage:
    """
    The lineage of a generation from plain values.

    :param dashscope_task_id: the DashScope task id.
    :param base_url: the API root the task was submitted to (the connection's base URL).
    :param model: the Wan model.
    :param request: the request summary (:meth:`WanVideoRequest.summary`: prompts, size, duration, audio_url).
    """
    request = request or {}
    cap = get_capability(model)
    family = FAMILY_NAMES[cap.family] if cap is not None else "video"
    parts = [f"Wan {family} task {dashscope_task_id} ({model}"]
    if request.get("size"):
        parts.append(f", {request['size']}")
    if request.get("duration"):
        parts.append(f", {request['duration']} s")
    parts.append(")")
    if request.get("prompt"):
        parts.append(f". Prompt: {request['prompt']}")
    if request.get("negative_prompt"):
        parts.append(f". Negative prompt: {request['negative_prompt']}")
    given: list[str] = []
    for name in (*INPUT_FIELDS, "audio_url"):  # frames, references, soundtrack: each an input dataset
        value = request.get(name)
        given.extend(value if isinstance(value, list) else [value] if value else [])
    inputs = tuple(_location(uri) for uri in given)
    return GenerationLineage(
        namespace=f"{NAMESPACE_SCHEME}://{urlsplit(base_url).netloc or 'unknown'}",
        name=f"{model}/{dashscope_task_id}",
        dashscope_task_id=dashscope_task_id,
        description="".join(parts),
        inputs=tuple(i for i in inputs if i is not None),
    )


def describe_operator_run(
    operator: Any, task_instance: Any, dashscope_task_id: str | None = None
) -> GenerationLineage | None:
    """
    The lineage of the generation a Wan generate operator's task instance submitted, or None before a submit.

    :param operator: the rendered operator (as the OpenLineage listener holds it in the worker).
    :param task_instance: its task instance.
    :param dashscope_task_id: the DashScope task id when the operator knows it; else the task instance's XCom
        ``task_id`` is read (the listener's default forked process may not reach XCom: pass the id when known).
    """
    if not dashscope_task_id:
        dashscope_task_id = task_instance.xcom_pull(task_ids=task_instance.task_id, key="task_id")
    if not dashscope_task_id:
        return None
    try:
        request = operator.build_request()
        model, summary = request.model, request.summary()
    except WanError:  # lineage never fails a task that succeeded
        model, summary = str(operator.model), None
    try:
        base_url = operator.hook.get_settings().base_url
    except (WanError, AirflowNotFoundException):
        base_url = ""
    return describe_generation(str(dashscope_task_id), base_url, model, summary)


def generation_lineage(operator: Any, task_instance: Any, dashscope_task_id: str | None = None) -> OperatorLineage:
    """
    The ``OperatorLineage`` of a generation: for ``WanTextToVideoOperator.get_openlineage_facets_on_complete``.

    Output: the DashScope task (namespace ``dashscope://<host>``, name ``<model>/<task id>``) with a documentation
    facet naming the model, size, duration and prompts. Input: the soundtrack (``audio_url`` without its query, so
    no signature). Run facet ``externalQuery``: the DashScope task id. Never the signed video link.

    :param operator: the rendered operator.
    :param task_instance: its task instance.
    :param dashscope_task_id: the DashScope task id when the operator knows it (else read from XCom ``task_id``).
    """
    from airflow.providers.common.compat.openlineage.facet import (
        DocumentationDatasetFacet,
        ExternalQueryRunFacet,
        InputDataset,
        OutputDataset,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    described = describe_operator_run(operator, task_instance, dashscope_task_id)
    if described is None:
        return OperatorLineage()
    return OperatorLineage(
        inputs=[InputDataset(namespace=namespace, name=name) for namespace, name in described.inputs],
        outputs=[
            OutputDataset(
                namespace=described.namespace,
                name=described.name,
                facets={"documentation": DocumentationDatasetFacet(description=described.description)},
            )
        ],
        run_facets={
            "externalQuery": ExternalQueryRunFacet(
                externalQueryId=described.dashscope_task_id, source=described.namespace
            )
        },
    )


def _location(url: str) -> tuple[str, str] | None:
    """``(namespace, name)`` of a URL, without its query string or fragment (a presigned link's signature)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}", parts.path.lstrip("/") or "/"
