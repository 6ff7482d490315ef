"""OpenLineage for a generation: the DashScope task as the output dataset, the soundtrack as input, no signed link.

``describe_generation`` is pure; ``describe_operator_run`` and ``generation_lineage`` run in a real worker
(``dag.test()`` of ``wan_test_lineage``, whose success callback gets the same operator and task instance as the
OpenLineage listener). ``generation_lineage`` needs the optional openlineage provider: its test runs where it is
installed and is skipped elsewhere.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from airflow_provider_wan.hooks.wan import WanHook
from airflow_provider_wan.lineage import GenerationLineage, describe_generation, describe_operator_run
from airflow_provider_wan.operators.wan import WanTextToVideoOperator
from airflow_provider_wan.settings import WanConnectionSettings
from tests.conftest import task_states, xcom

SIGNED_AUDIO = "https://media.example.com/sound/track.wav?X-Amz-Credential=AKIA&X-Amz-Signature=abc123"
HAS_OPENLINEAGE = importlib.util.find_spec("airflow.providers.openlineage") is not None


def _settings(base_url: str) -> WanConnectionSettings:
    return WanConnectionSettings.from_parts(
        password="sk-x", host=base_url, port=None, schema=None, extra={}, source="test"
    )


def test_the_dashscope_task_is_the_dataset():
    described = describe_generation(
        "8cb5-task",
        "https://dashscope-intl.aliyuncs.com/api/v1",
        "wan2.6-t2v",
        {"prompt": "a red fox", "negative_prompt": "blur", "size": "1280*720", "duration": 5},
    )
    assert described == GenerationLineage(
        namespace="dashscope://dashscope-intl.aliyuncs.com",
        name="wan2.6-t2v/8cb5-task",
        dashscope_task_id="8cb5-task",
        description="Wan text-to-video task 8cb5-task (wan2.6-t2v, 1280*720, 5 s). Prompt: a red fox. "
        "Negative prompt: blur",
        inputs=(),
    )


def test_the_soundtrack_is_an_input_without_its_signature():
    described = describe_generation("t", "http://127.0.0.1:8040/api/v1", "wan2.6-t2v", {"audio_url": SIGNED_AUDIO})
    assert described.namespace == "dashscope://127.0.0.1:8040"
    assert described.inputs == (("https://media.example.com", "sound/track.wav"),)
    assert "Signature" not in json.dumps(described.__dict__)


def test_an_oss_soundtrack_keeps_its_bucket_as_namespace():
    described = describe_generation("t", "https://x/api/v1", "wan2.6-t2v", {"audio_url": "oss://bucket/a/b.mp3"})
    assert described.inputs == (("oss://bucket", "a/b.mp3"),)


def test_a_task_id_the_operator_knows_needs_no_xcom():
    """The listener's default forked process may not reach XCom: the operator passes the id it holds."""

    class NoXCom:
        task_id = "generate"

        def xcom_pull(self, **_: object) -> None:
            raise AssertionError("XCom was read")

    operator = WanTextToVideoOperator(task_id="generate", prompt="a red fox", size="1280*720", duration=5)
    operator.hook = WanHook(settings=_settings("https://dashscope.aliyuncs.com/api/v1"))
    described = describe_operator_run(operator, NoXCom(), dashscope_task_id="t-1")
    assert described is not None
    assert (described.namespace, described.name) == ("dashscope://dashscope.aliyuncs.com", "wan2.6-t2v/t-1")


def soundtrack_in_s3(s3_client, bucket) -> str:
    """A real soundtrack in the local S3: the operator presigns it, DashScope (the simulator) downloads it."""
    from tests.media_fixtures import silent_wav

    s3_client.put_object(Bucket=bucket, Key="sound/track.wav", Body=silent_wav(3))
    return f"s3://{bucket}/sound/track.wav"


def test_the_lineage_of_a_real_run(simulator, run_dag, s3_client, bucket):
    audio = soundtrack_in_s3(s3_client, bucket)
    dag_run = run_dag("wan_test_lineage", {"prompt": "a lighthouse at dawn", "audio_url": audio})
    assert task_states(dag_run) == {"generate": "success"}
    dashscope_task_id = xcom(dag_run, "generate", "task_id")
    lineage = xcom(dag_run, "generate", "lineage")
    host = simulator.base_url.split("://", 1)[1].split("/", 1)[0]
    assert lineage["namespace"] == f"dashscope://{host}"
    assert lineage["name"] == f"wan2.6-t2v/{dashscope_task_id}"
    assert "a lighthouse at dawn" in lineage["description"] and "1280*720, 5 s" in lineage["description"]
    assert lineage["inputs"] == [[f"s3://{bucket}", "sound/track.wav"]]
    assert "Signature" not in json.dumps(lineage) and "video_url" not in json.dumps(lineage)


@pytest.mark.skipif(not HAS_OPENLINEAGE, reason="the openlineage provider is not installed")
def test_generation_lineage_returns_the_openlineage_datasets(simulator, run_dag, s3_client, bucket):
    audio = soundtrack_in_s3(s3_client, bucket)
    dag_run = run_dag("wan_test_lineage", {"prompt": "a lighthouse at dawn", "audio_url": audio})
    dashscope_task_id = xcom(dag_run, "generate", "task_id")
    event = xcom(dag_run, "generate", "openlineage")
    [output] = event["outputs"]
    assert (output["namespace"], output["name"]) == (
        xcom(dag_run, "generate", "lineage")["namespace"],
        f"wan2.6-t2v/{dashscope_task_id}",
    )
    assert "a lighthouse at dawn" in output["facets"]["documentation"]["description"]
    assert [(i["namespace"], i["name"]) for i in event["inputs"]] == [(f"s3://{bucket}", "sound/track.wav")]
    assert event["run_facets"]["externalQuery"]["externalQueryId"] == dashscope_task_id
    assert "Signature" not in json.dumps(event)
