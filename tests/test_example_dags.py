"""The example DAGs: they parse, and each one runs end to end with ``dag.test()`` on the simulator and moto S3.

The DAGs run unchanged; only their params (bucket, short poll interval) come from the run conf, and the bucket of
the content pipeline from the Airflow Variable ``wan_video_bucket``, as a user would set them.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import json
import urllib.request
import wave
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import EXAMPLE_DAGS, asset_events, task_states, xcom, xcoms

EXAMPLE_DAG_IDS = {
    "example_wan_text_to_video",
    "example_wan_content_pipeline",
    "example_wan_daily_digest",
    "example_wan_multishot_audio",
    "example_wan_product_images",
}
FAST = 0.2  # poll interval (s) on the simulator (pending 0.2 s, running 0.5 s)


# ----------------------------------------------------------------------------------------------- helpers


@functools.cache
def _dagbag() -> Any:
    """The example DAGs as the DAG processor parses them (once per session)."""
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.2+
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    return DagBag(dag_folder=str(EXAMPLE_DAGS))


def _queued_runs(dag_id: str) -> list[str]:
    """URIs of the assets whose events queued a run of ``dag_id`` (what the scheduler turns into a DAG run)."""
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetModel.uri)
            .join(AssetDagRunQueue, AssetDagRunQueue.asset_id == AssetModel.id)
            .filter(AssetDagRunQueue.target_dag_id == dag_id)
            .all()
        )
        return sorted(r[0] for r in rows)


def _set_paused(dag_id: str, paused: bool) -> None:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id == dag_id).update({"is_paused": paused})


def _create_pool(name: str, slots: int) -> None:
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(name, slots, "Wan generations at once (test)", True)  # include_deferred


def _object(s3_client: Any, uri: str) -> tuple[bytes, dict[str, Any]]:
    parts = urlsplit(uri)
    head = s3_client.get_object(Bucket=parts.netloc, Key=parts.path.lstrip("/"))
    return head["Body"].read(), head


def _stored_values(dag_run: Any) -> list[Any]:
    """Every XCom value and rendered template field the metadata database holds for ``dag_run``."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        xcom_rows = session.query(XComModel).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).all()
        rtif_rows = (
            session.query(RenderedTaskInstanceFields).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).all()
        )
        return [row.value for row in xcom_rows] + [row.rendered_fields for row in rtif_rows]


def _check_video(s3_client: Any, uri: str, sha256: str) -> dict[str, Any]:
    """The object at ``uri`` is an MP4 with that checksum and a manifest that agrees; returns the manifest."""
    body, head = _object(s3_client, uri)
    assert body[4:8] == b"ftyp" and head["ContentType"] == "video/mp4"
    assert hashlib.sha256(body).hexdigest() == sha256
    manifest_body, _ = _object(s3_client, f"{uri}.json")
    manifest = json.loads(manifest_body)
    assert manifest["sha256"] == sha256 and manifest["s3_uri"] == uri and manifest["size_bytes"] == len(body)
    return manifest


# ----------------------------------------------------------------------------------------------- parsing


def test_example_dags_parse_without_import_errors():
    dagbag = _dagbag()
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXAMPLE_DAG_IDS
    for dag_id in EXAMPLE_DAG_IDS:
        dag = dagbag.dags[dag_id]
        assert "example" in dag.tags and dag.doc_md, dag_id
        for task in dag.tasks:
            conn_ids = {name: getattr(task, name, None) for name in ("dashscope_conn_id", "aws_conn_id")}
            if type(task).__name__ == "MappedOperator":
                conn_ids = {name: task.partial_kwargs.get(name) for name in conn_ids}
            assert conn_ids["dashscope_conn_id"] in (None, "dashscope_default"), (dag_id, task.task_id)
            assert conn_ids["aws_conn_id"] in (None, "aws_default"), (dag_id, task.task_id)


def test_example_dag_structure():
    dags = _dagbag().dags
    pipeline = dags["example_wan_content_pipeline"]
    assert pipeline.get_task("generate").pool == "wan_generation"
    assert type(pipeline.get_task("generate")).__name__ == "MappedOperator"
    assert type(pipeline.get_task("save_to_s3")).__name__ == "MappedOperator"
    assert pipeline.get_task("save_to_s3").upstream_task_ids == {"generate"}

    digest = dags["example_wan_daily_digest"]
    assert type(digest.timetable).__name__ == "AssetTriggeredTimetable"
    assert "AssetAlias(name='wan_videos'" in repr(digest.timetable.asset_condition)

    multishot = dags["example_wan_multishot_audio"]
    submit = multishot.get_task("submit")
    assert submit.shot_type == "multi" and submit.wait_for_completion is False
    assert multishot.get_task("submit").upstream_task_ids == {"ensure_soundtrack"}
    assert multishot.get_task("wait_for_video").upstream_task_ids == {"submit"}
    assert multishot.get_task("save_to_s3").upstream_task_ids == {"submit", "wait_for_video"}

    products = dags["example_wan_product_images"]
    animate = products.get_task("animate")
    assert type(animate).__name__ == "MappedOperator" and animate.pool == "wan_generation"
    assert animate.upstream_task_ids == {"list_product_images"}
    assert products.get_task("save_to_s3").upstream_task_ids == {"animate"}

    single = dags["example_wan_text_to_video"]
    assert single.get_task("generate").deferrable is True
    assert [o.name for o in single.get_task("save_to_s3").outlets] == ["wan_videos"]


def test_text_to_video_params_are_validated():
    from airflow.sdk.definitions.param import ParamsDict

    dag = _dagbag().dags["example_wan_text_to_video"]  # freshly parsed: dag.test() runs may have set params
    assert dag.params["poll_interval"] == 15 and dag.params["duration"] == 5
    for name, bad in (("size", "832*480"), ("duration", 20), ("duration", 1), ("prompt", ""), ("poll_interval", 0)):
        params = ParamsDict(dag.params)
        with pytest.raises(Exception, match=r"(?i)valid"):
            params[name] = bad
            params.validate()


# ----------------------------------------------------------------------------------------------- end to end


def test_text_to_video_generates_defers_and_saves_to_s3(simulator, s3_client, bucket, run_dag):
    prompt = "A lighthouse on a cliff at dawn, waves crashing below, slow aerial orbit"
    dag_run = run_dag(
        "example_wan_text_to_video",
        {"prompt": prompt, "size": "1920*1080", "duration": 3, "bucket": bucket, "poll_interval": FAST},
    )
    assert task_states(dag_run) == {"generate": "success", "save_to_s3": "success"}

    generation = xcom(dag_run, "generate")
    task_id = generation["task_id"]
    assert xcom(dag_run, "generate", "task_id") == task_id
    assert generation["task_status"] == "SUCCEEDED" and generation["model"] == "wan2.6-t2v"
    assert generation["billed_seconds"] == 3 and "video_url" not in json.dumps(generation)

    uri = xcom(dag_run, "save_to_s3")
    assert uri.startswith(f"s3://{bucket}/wan/") and uri.endswith(f"/{task_id}.mp4")
    manifest = _check_video(s3_client, uri, xcom(dag_run, "save_to_s3", "sha256"))
    assert xcom(dag_run, "save_to_s3", "manifest_uri") == f"{uri}.json"
    assert manifest["request"]["prompt"] == prompt and manifest["size"] == "1920*1080"

    # The trigger polled the task on the triggerer (dag.test runs it inline) until it SUCCEEDED.
    sim_task = simulator.task(task_id)
    assert sim_task["status"] == "SUCCEEDED" and sim_task["effective"]["size"] == "1920*1080"
    assert simulator.counters()["polls"] > 2

    events = asset_events(f"s3://{bucket}/wan")  # one asset per destination; the video is in the event's extra
    assert [e[:3] for e in events] == [("example_wan_text_to_video", "save_to_s3", dag_run.run_id)]
    assert events[0][3]["sha256"] == manifest["sha256"] and events[0][3]["dashscope_task_id"] == task_id
    assert events[0][3]["s3_uri"] == uri


def test_content_pipeline_maps_prompts_and_triggers_the_digest(simulator, s3_client, bucket, run_dag, monkeypatch):
    from airflow_provider_wan.transfers.wan_to_s3 import DEFAULT_ASSET_ALIAS

    prompts = [
        line.strip()
        for line in (EXAMPLE_DAGS / "prompts.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(prompts) >= 3 and DEFAULT_ASSET_ALIAS == "wan_videos"
    monkeypatch.setenv("AIRFLOW_VAR_WAN_VIDEO_BUCKET", bucket)  # the bucket from the Variable, as in production
    _create_pool("wan_generation", 2)

    # The digest must be known and unpaused for the asset events to queue a run of it (as in the UI).
    empty = run_dag("example_wan_daily_digest", {"bucket": bucket})
    assert task_states(empty) == {"list_videos": "success"} and xcom(empty, "list_videos") == []
    _set_paused("example_wan_daily_digest", False)

    dag_run = run_dag("example_wan_content_pipeline", {"poll_interval": FAST})
    states = task_states(dag_run)
    assert states.pop("load_prompts") == "success"
    assert states == {
        **{f"generate[{i}]": "success" for i in range(len(prompts))},
        **{f"save_to_s3[{i}]": "success" for i in range(len(prompts))},
    }
    assert xcom(dag_run, "load_prompts") == prompts

    generations = xcoms(dag_run, "generate")
    uris = xcoms(dag_run, "save_to_s3")
    checksums = xcoms(dag_run, "save_to_s3", "sha256")
    assert [g["orig_prompt"] for g in generations] == prompts
    assert simulator.counters()["tasks_created"] == len(prompts)  # one billed task per prompt, no more
    day = uris[0].split("/")[4]
    for generation, uri, sha256 in zip(generations, uris, checksums, strict=True):
        assert uri == f"s3://{bucket}/wan/{day}/{generation['task_id']}.mp4"
        _check_video(s3_client, uri, sha256)
    events = asset_events(f"s3://{bucket}/wan")  # one asset for the destination, one event per video
    assert sorted(e[3]["s3_uri"] for e in events) == sorted(uris)
    assert {e[:2] for e in events} == {("example_wan_content_pipeline", "save_to_s3")}
    assert f"s3://{bucket}/wan" in _queued_runs("example_wan_daily_digest")  # the scheduler would start it now

    digest = run_dag("example_wan_daily_digest", {"bucket": bucket, "day": day})
    assert task_states(digest) == {"list_videos": "success"}
    listed = xcom(digest, "list_videos")
    assert sorted(v["uri"] for v in listed) == sorted(uris)
    assert sorted(v["prompt"] for v in listed) == sorted(prompts)
    assert all(v["model"] == "wan2.6-t2v" and v["duration"] == 5 for v in listed)


def test_digest_takes_bucket_and_day_from_the_triggering_events():
    spec = importlib.util.spec_from_file_location(
        "_example_wan_daily_digest", EXAMPLE_DAGS / "example_wan_daily_digest.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def event(uri: str, **extra: Any) -> Any:
        return SimpleNamespace(asset=SimpleNamespace(uri=uri), extra=extra)

    events = {  # as Airflow's accessor: the events under their alias (and their asset, here left out)
        "wan_videos": [
            event("s3://videos-a/wan", bucket="videos-a", key="wan/2026-01-02/t1.mp4"),
            event("s3://videos-a/wan", bucket="videos-a", key="wan/2026-01-02/t2.mp4"),
            event("s3://videos-b/wan/2026-01-03/a%20b.mp4"),  # an event of an older version: one asset per video
        ]
    }
    assert module._day_prefixes({"triggering_asset_events": events}) == {
        ("videos-a", "wan/2026-01-02/"),
        ("videos-b", "wan/2026-01-03/"),
    }
    assert module._day_prefixes({"triggering_asset_events": {}}) == set()


def test_multishot_audio_presigns_the_soundtrack_in_the_submit_senses_and_saves(simulator, s3_client, bucket, run_dag):
    key = "soundtracks/test-soundtrack.wav"
    dag_run = run_dag(
        "example_wan_multishot_audio",
        {"bucket": bucket, "duration": 10, "soundtrack_key": key, "poll_interval": FAST},
    )
    assert task_states(dag_run) == {
        "ensure_soundtrack": "success",
        "submit": "success",
        "wait_for_video": "success",
        "save_to_s3": "success",
    }

    # A silent 10 s WAV placeholder was uploaded; the next task gets its s3:// URI, not a signed link.
    wav_bytes = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    with wave.open(io.BytesIO(wav_bytes)) as wav:
        assert wav.getnframes() / wav.getframerate() == 10
    assert xcom(dag_run, "ensure_soundtrack") == f"s3://{bucket}/{key}"

    # The submit returned at once; the sensor waited for the same task; the request was multi-shot with audio.
    submitted = xcom(dag_run, "submit")
    task_id = xcom(dag_run, "submit", "task_id")
    assert submitted["task_id"] == task_id and submitted["task_status"] == "PENDING"
    assert xcom(dag_run, "wait_for_video")["task_status"] == "SUCCEEDED"
    effective = simulator.task(task_id)["effective"]
    assert effective["shot_type"] == "multi" and effective["duration"] == 10
    assert simulator.counters()["tasks_created"] == 1

    # DashScope got a presigned link, made inside the submit, that really serves the soundtrack ...
    audio_url = effective["audio_url"]
    assert urlsplit(audio_url).path == f"/{bucket}/{key}" and "Signature=" in urlsplit(audio_url).query
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(audio_url, timeout=10) as response:
        assert response.read() == wav_bytes
    # ... and no signed link is in XCom or in the rendered templates the UI shows.
    stored = json.dumps(_stored_values(dag_run), default=str)
    assert "Signature" not in stored and f'"audio_url": "s3://{bucket}/{key}"' in stored

    uri = xcom(dag_run, "save_to_s3")
    assert uri.endswith(f"/{task_id}.mp4")
    manifest = _check_video(s3_client, uri, xcom(dag_run, "save_to_s3", "sha256"))
    assert manifest["request"]["shot_type"] == "multi" and manifest["billed_seconds"] == 10
    assert "Signature" not in json.dumps(manifest)  # the presigned link's signature is not recorded
    events = asset_events(f"s3://{bucket}/{uri.split('/')[3]}")
    assert [(e[:2], e[3]["s3_uri"]) for e in events] == [(("example_wan_multishot_audio", "save_to_s3"), uri)]


def test_multishot_audio_keeps_an_existing_soundtrack(simulator, s3_client, bucket, run_dag):
    key = "soundtracks/mine.mp3"
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"ID3 my own soundtrack")
    dag_run = run_dag("example_wan_multishot_audio", {"bucket": bucket, "soundtrack_key": key, "poll_interval": FAST})
    assert set(task_states(dag_run).values()) == {"success"}
    assert s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"ID3 my own soundtrack"
    task_id = xcom(dag_run, "submit", "task_id")
    assert urlsplit(simulator.task(task_id)["effective"]["audio_url"]).path == f"/{bucket}/{key}"
