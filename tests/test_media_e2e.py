"""Beyond text, end to end: real Airflow (``dag.test()``), the simulator fetching each input the way DashScope does,
inputs in moto's S3 (presigned by the operator) or on a loopback web server, and the video transferred back to S3.

Every run asserts what the simulator created and billed, and that no signed URL reaches logs, XCom or rendered
fields.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_wan._compat import AIRFLOW_V_3_3_PLUS
from tests.conftest import asset_events, task_states, xcom, xcoms
from tests.media_fixtures import clip, image
from tests.test_fault_matrix import billed, stored_values
from tests.test_operator import try_numbers


def put(s3_client: Any, bucket: str, key: str, body: bytes) -> str:
    s3_client.put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def run(run_dag: Any, capfd: pytest.CaptureFixture[str], dag_id: str, **conf: Any) -> tuple[Any, str]:
    dag_run = run_dag(dag_id, conf)
    out, err = capfd.readouterr()
    return dag_run, out + err


def assert_no_signatures(dag_run: Any, logs: str) -> None:
    for where, text in (("logs", logs), ("XCom and rendered fields", stored_values(dag_run))):
        assert "Signature=" not in text and "X-Amz-Credential" not in text, f"a signed input URL leaked into {where}"


def fetched(simulator: Any, task_id: str) -> list[dict[str, Any]]:
    """What the simulator downloaded for a task (URL without query, format, size)."""
    return list(simulator.task(task_id)["inputs"])


# --------------------------------------------------------------------------------------------- each family


def test_image_to_video_from_s3_lands_in_s3(simulator, run_dag, capfd, s3_client, bucket):
    uri = put(s3_client, bucket, "products/teapot.png", image("PNG", (1280, 720)))
    dag_run, logs = run(run_dag, capfd, "wan_test_i2v", img_url=uri, bucket=bucket)
    assert task_states(dag_run) == {"generate": "success", "transfer": "success"}
    result = xcom(dag_run, "generate")
    assert result["request"]["img_url"] == uri and result["model"] == "wan2.6-i2v-flash"
    assert result["size"] == "1280*720"  # 720P at the image's aspect ratio
    [task] = simulator.tasks()
    assert simulator.counters()["tasks_created"] == 1 and billed(simulator) == 1
    [seen] = fetched(simulator, task["task_id"])  # DashScope downloaded the presigned object, once
    assert seen["format"] == "png" and (seen["width"], seen["height"]) == (1280, 720)
    assert seen["url"].startswith(f"{simulator_s3(s3_client)}/{bucket}/products/teapot.png")
    key = xcom(dag_run, "transfer")
    assert key.startswith(f"s3://{bucket}/") and key.endswith(f"{task['task_id']}.mp4")
    assert "Presigned s3://" in logs and "masked and never stored" in logs
    assert_no_signatures(dag_run, logs)


def simulator_s3(s3_client: Any) -> str:
    return str(s3_client.meta.endpoint_url).rstrip("/")


def test_image_to_video_from_https_in_the_worker(simulator, run_dag, capfd, web):
    url = web.serve("/shots/boat.jpg", image("JPEG", (720, 1000)))
    dag_run, logs = run(run_dag, capfd, "wan_test_i2v_sync", img_url=url)
    assert task_states(dag_run) == {"generate": "success"}
    result = xcom(dag_run, "generate")
    assert result["model"] == "wan2.2-i2v-flash" and result["size"] == "480*832"  # portrait, 480P
    assert web.hits["/shots/boat.jpg"] == 2  # the worker's ranged check, then DashScope's download
    assert billed(simulator) == 1 and "Input img_url: " + url + " (jpeg 720x1000" in logs


def test_first_and_last_frame_on_the_image2video_route(simulator, run_dag, capfd, s3_client, bucket, web):
    first = put(s3_client, bucket, "frames/bud.webp", image("WEBP", (1280, 720)))
    last = web.serve("/frames/flower.png", image("PNG", (1280, 720)))
    dag_run, logs = run(run_dag, capfd, "wan_test_kf2v", first=first, last=last, bucket=bucket)
    assert task_states(dag_run) == {"generate": "success", "transfer": "success"}
    result = xcom(dag_run, "generate")
    assert result["model"] == "wan2.2-kf2v-flash"
    assert (result["request"]["first_frame_url"], result["request"]["last_frame_url"]) == (first, last)
    [task] = simulator.tasks()
    assert [f["format"] for f in fetched(simulator, task["task_id"])] == ["webp", "png"]
    assert billed(simulator) == 1
    assert_no_signatures(dag_run, logs)


def test_reference_to_video_with_an_image_and_a_clip(simulator, run_dag, capfd, s3_client, bucket, web):
    face = put(s3_client, bucket, "cast/host.png", image("PNG", (800, 800)))
    video = web.serve("/cast/guest.mp4", clip())  # one reference from S3, one from a web link
    dag_run, logs = run(run_dag, capfd, "wan_test_r2v", ref1=face, ref2=video, bucket=bucket)
    assert task_states(dag_run) == {"generate": "success", "transfer": "success"}
    result = xcom(dag_run, "generate")
    assert result["request"]["reference_urls"] == [face, video] and result["size"] == "1280*720"
    [task] = simulator.tasks()
    assert [f["format"] for f in fetched(simulator, task["task_id"])] == ["png", "mp4"]
    assert billed(simulator) == 1
    assert_no_signatures(dag_run, logs)


# --------------------------------------------------------------------------------------------- inputs that fail


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing object", "cannot be read through aws_conn_id='aws_default' (NoSuchKey)"),
        ("transparent png", "is a PNG with transparency"),
        ("too small", "is 300x300 pixels; allowed: width and height from 360 to 2000"),
        ("not an image", "is unknown format by its content; allowed: jpeg, png, bmp, webp"),
    ],
)
def test_a_bad_s3_input_fails_before_any_request_without_retry(
    simulator, run_dag, capfd, s3_client, bucket, case, expected
):
    bodies = {
        "transparent png": image("PNG", (800, 600), "RGBA"),
        "too small": image("PNG", (300, 300)),
        "not an image": b"%PDF-1.7 a brochure, not a photo",
    }
    key = "products/item.png"
    if case in bodies:
        put(s3_client, bucket, key, bodies[case])
    dag_run, logs = run(run_dag, capfd, "wan_test_i2v", img_url=f"s3://{bucket}/{key}", bucket=bucket)
    assert task_states(dag_run)["generate"] == "failed"
    assert try_numbers(dag_run, "generate") == [1]  # retries=2, none spent: the same input fails the same way
    assert expected in logs and f"img_url='s3://{bucket}/{key}'" in logs and "Nothing was sent to DashScope" in logs
    assert simulator.counters()["submissions"] == 0  # not a single request, nothing billed


def test_a_link_that_answers_404_fails_before_any_request(simulator, run_dag, capfd, web):
    url = web.root + "/shots/missing.png?token=secret-token-1"
    dag_run, logs = run(run_dag, capfd, "wan_test_i2v_sync", img_url=url)
    assert task_states(dag_run) == {"generate": "failed"} and try_numbers(dag_run, "generate") == [1]
    assert "answers HTTP 404, so DashScope could not download it either" in logs
    assert simulator.counters()["submissions"] == 0
    assert "secret-token-1" not in logs  # the user's own signed link is masked too


def test_an_input_dashscope_cannot_download_fails_the_task_without_retry_or_bill(simulator, run_dag, capfd, web):
    # The worker's check reads the image; by the time DashScope fetches it the link is gone (an expired signature).
    url = web.serve("/shots/expiring.png", image("PNG", (1000, 720)), then=403) + "?X-Amz-Signature=deadbeef"
    dag_run, logs = run(run_dag, capfd, "wan_test_i2v_sync", img_url=url)
    assert task_states(dag_run) == {"generate": "failed"} and try_numbers(dag_run, "generate") == [1]
    [task] = simulator.tasks()
    assert task["status"] == "FAILED" and billed(simulator) == 0
    assert "InvalidParameter" in logs and "Failed to download" in logs
    assert "deadbeef" not in logs  # DashScope's message names the link; its signature is redacted


# --------------------------------------------------------------------------------------------- the example


def test_the_product_images_example_end_to_end(simulator, run_dag, capfd, s3_client, bucket):
    from tests.test_example_dags import _create_pool

    _create_pool("wan_generation", 2)
    dag_run, logs = run(run_dag, capfd, "example_wan_product_images", bucket=bucket, poll_interval=0.2)
    states = task_states(dag_run)
    assert states.pop("list_product_images") == "success"
    assert states == {
        **{f"animate[{i}]": "success" for i in range(2)},
        **{f"save_to_s3[{i}]": "success" for i in range(2)},
    }
    images = xcom(dag_run, "list_product_images")
    assert images == [f"s3://{bucket}/products/sneaker.png", f"s3://{bucket}/products/teapot.png"]
    generations = xcoms(dag_run, "animate")
    assert [g["request"]["img_url"] for g in generations] == images
    assert [g["size"] for g in generations] == ["720*1280", "1280*720"]  # portrait and landscape shots
    assert simulator.counters()["tasks_created"] == 2 and billed(simulator) == 2
    uris = xcoms(dag_run, "save_to_s3")
    assert sorted(e[3]["s3_uri"] for e in asset_events(f"s3://{bucket}/wan")) == sorted(uris)
    assert_no_signatures(dag_run, logs)


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="reconnecting needs task_state_store (Airflow 3.3)")
def test_a_retry_reconnects_without_presigning_or_submitting_again(simulator, run_dag, capfd, s3_client, bucket):
    uri = put(s3_client, bucket, "products/lamp.png", image("PNG", (1280, 720)))
    dag_run, logs = run(run_dag, capfd, "wan_test_i2v_reconnect", img_url=uri)
    assert task_states(dag_run) == {"generate": "success"}
    assert try_numbers(dag_run, "generate") == [1, 2]
    assert simulator.counters()["submissions"] == 1 and billed(simulator) == 1
    [task] = simulator.tasks()
    [seen] = fetched(simulator, task["task_id"])
    assert seen["fetches"] == 1  # DashScope read the image once; try 2 only waited for the same task
    assert logs.count(f"Presigned {uri}") == 1
    assert_no_signatures(dag_run, logs)
