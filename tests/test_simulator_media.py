"""The simulator beyond text, over real HTTP on loopback: image-to-video, first-and-last-frame and reference-to-video
submissions, the synchronous refusals, and DashScope's fetch of every input (served here by a loopback web server or
moto's S3), with the task failures a bad input causes.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from airflow_provider_wan.simulator import ManualClock, WanSimulator
from airflow_provider_wan.simulator.fetch import mp4_seconds, nearest_size
from tests.conftest import free_port
from tests.media_fixtures import Web, clip, image
from tests.test_simulator import HEADERS, KEY, SUBMIT, assert_error, poll
from tests.test_simulator_video import probe

Factory = Callable[..., WanSimulator]
IMAGE2VIDEO = "/services/aigc/image2video/video-synthesis"
SIGNED = "?X-Amz-Credential=AKIA&X-Amz-Signature=SECRETSIG"
OSS_HEADERS = {**HEADERS, "X-DashScope-OssResourceResolve": "enable"}
DATA_INSPECTION = "The media format is not supported or incorrect for the data inspection."


# helpers ------------------------------------------------------------------------------------------


def native(
    sim: WanSimulator,
    model: str,
    inputs: dict[str, Any],
    route: str = SUBMIT,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "input": inputs}
    if params:
        body["parameters"] = params
    return httpx.post(sim.base_url + route, json=body, headers=HEADERS if headers is None else headers)


def accepted(sim: WanSimulator, model: str, inputs: dict[str, Any], route: str = SUBMIT, **params: Any) -> str:
    response = native(sim, model, inputs, route, **params)
    assert response.status_code == 200, response.text
    return str(response.json()["output"]["task_id"])


def finished(sim: WanSimulator, task_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """Poll until the task ends, at 10 polls a second: well within the account's 20 queries per second."""
    deadline = time.monotonic() + timeout
    while True:
        body = poll(sim, task_id)
        if body["output"]["task_status"] in ("SUCCEEDED", "FAILED", "CANCELED") or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def failed(sim: WanSimulator, task_id: str, code: str, *fragments: str) -> dict[str, Any]:
    """The task FAILED with ``code`` (no usage, no link: not billed); its message holds no query string."""
    body = finished(sim, task_id)
    output = body["output"]
    assert output["task_status"] == "FAILED", body
    assert output["code"] == code
    for fragment in fragments:
        assert fragment in output["message"]
    assert "usage" not in body and "video_url" not in output and "scheduled_time" not in output
    assert "SECRETSIG" not in output["message"] and "X-Amz" not in output["message"]
    return output


def billed(sim: WanSimulator) -> int:
    """Tasks that SUCCEEDED: what DashScope bills (a FAILED task carries no usage)."""
    return sum(1 for task in sim.tasks() if task["status"] == "SUCCEEDED")


def video_size(usage: dict[str, Any]) -> str:
    return str(usage.get("size") or usage.get("video_ratio"))


# each family accepted, end to end -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "resolution", "fmt", "picture", "size"),
    [
        ("wan2.6-i2v", "720P", "PNG", (1000, 1000), "960*960"),
        ("wan2.6-i2v-flash", None, "PNG", (1280, 720), "1920*1080"),
        ("wan2.2-i2v-flash", "480P", "JPEG", (720, 1000), "480*832"),
        ("wanx2.1-i2v-turbo", "720P", "WEBP", (1200, 900), "1088*832"),
        ("wan2.5-i2v-preview", "1080P", "BMP", (900, 1200), "1248*1632"),
    ],
)
def test_image_to_video_takes_the_aspect_ratio_of_its_first_frame(
    wan_simulator: WanSimulator, web: Web, model: str, resolution: str | None, fmt: str, picture: tuple, size: str
) -> None:
    url = web.serve("/shots/first", image(fmt, picture)) + SIGNED  # no extension: the content tells the format
    params = {"resolution": resolution} if resolution else {}
    task_id = accepted(wan_simulator, model, {"img_url": url}, **params)
    body = finished(wan_simulator, task_id)
    assert body["output"]["task_status"] == "SUCCEEDED", body
    assert video_size(body["usage"]) == size
    assert "orig_prompt" not in body["output"]  # no prompt was given: image-to-video animates without one
    width, height = (int(side) for side in size.split("*"))
    seen = probe(wan_simulator.video_bytes(task_id) or b"")
    assert (seen["width"], seen["height"]) == (width, height)
    [record] = wan_simulator.inputs(task_id) or []
    assert record == {
        "name": "input.img_url",
        "role": "first_frame",
        "url": web.root + "/shots/first",
        "status": "fetched",
        "http_status": 200,
        "bytes": len(web.routes["/shots/first"].body),
        "format": fmt.lower(),
        "kind": "image",
        "width": picture[0],
        "height": picture[1],
        "seconds": None,
        "fetches": 1,
        "error": None,
    }
    assert web.hits["/shots/first"] == 1  # DashScope downloads each input once
    counters = wan_simulator.counters()
    assert (counters["input_fetches"], counters["input_bytes"]) == (1, record["bytes"])
    assert billed(wan_simulator) == 1


def test_a_prompt_is_kept_and_usage_follows_the_generation(wan_simulator: WanSimulator, web: Web) -> None:
    url = web.serve("/cat.png", image("PNG", (720, 1280)))
    task_id = accepted(wan_simulator, "wan2.6-i2v", {"prompt": "the cat yawns", "img_url": url}, duration=3)
    body = finished(wan_simulator, task_id)
    assert body["output"]["orig_prompt"] == "the cat yawns"
    assert body["usage"] == {
        "duration": 3,
        "size": "1080*1920",
        "input_video_duration": 0,
        "output_video_duration": 3,
        "video_count": 1,
        "SR": 1080,
    }
    debug = wan_simulator.task(task_id)
    assert debug is not None and debug["effective"]["size"] == "1080*1920"
    assert debug["effective"]["resolution"] == "1080P"


def test_first_and_last_frame_on_the_image2video_route(wan_simulator: WanSimulator, web: Web) -> None:
    first = web.serve("/frames/bud.webp", image("WEBP", (720, 1280)))
    last = web.serve("/frames/flower.png", image("PNG", (1280, 720)))
    inputs = {"first_frame_url": first, "last_frame_url": last + SIGNED}
    task_id = accepted(wan_simulator, "wan2.2-kf2v-flash", inputs, IMAGE2VIDEO, resolution="720P", duration=5)
    body = finished(wan_simulator, task_id)
    assert body["output"]["task_status"] == "SUCCEEDED"
    assert body["usage"] == {"video_count": 1, "video_duration": 5, "video_ratio": "720*1280"}  # the first frame's
    records = wan_simulator.inputs(task_id) or []
    assert [(r["name"], r["role"], r["format"], r["url"]) for r in records] == [
        ("input.first_frame_url", "first_frame", "webp", first),
        ("input.last_frame_url", "last_frame", "png", last),
    ]
    assert web.hits == Counter({"/frames/bud.webp": 1, "/frames/flower.png": 1})
    listed = httpx.get(f"{wan_simulator.base_url}/tasks", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert listed["data"][0]["user_api_unique_key"].startswith("apikey:v1:aigc:image2video:video-synthesis:")


def test_reference_to_video_bills_the_reference_clips(wan_simulator: WanSimulator, web: Web) -> None:
    face = web.serve("/cast/host.png", image("PNG", (800, 800)))
    guest = web.serve("/cast/guest.mp4", clip(3))
    inputs = {"prompt": "character1 hands character2 a cup of tea", "reference_urls": [face, guest + SIGNED]}
    task_id = accepted(wan_simulator, "wan2.6-r2v", inputs, size="1280*720", duration=4, shot_type="multi")
    body = finished(wan_simulator, task_id)
    assert body["output"]["task_status"] == "SUCCEEDED", body
    assert body["usage"] == {
        "duration": 7,
        "size": "1280*720",
        "input_video_duration": 3,
        "output_video_duration": 4,
        "video_count": 1,
        "SR": 720,
    }
    records = wan_simulator.inputs(task_id) or []
    assert [(r["name"], r["kind"], r["format"], r["seconds"]) for r in records] == [
        ("input.reference_urls[0]", "image", "png", None),
        ("input.reference_urls[1]", "video", "mp4", 3.0),
    ]
    assert all(r["fetches"] == 1 for r in records) and sum(web.hits.values()) == 2


def test_wan27_image_to_video_reads_its_media_list(wan_simulator: WanSimulator, web: Web) -> None:
    first = web.serve("/m/first.jpg", image("JPEG", (1000, 1000)))
    last = web.serve("/m/last.jpg", image("JPEG", (1000, 1000)))
    media = [{"type": "first_frame", "url": first + SIGNED}, {"type": "last_frame", "url": last}]
    task_id = accepted(wan_simulator, "wan2.7-i2v", {"media": media}, resolution="720P", duration=2)
    body = finished(wan_simulator, task_id)
    assert body["output"]["task_status"] == "SUCCEEDED"
    assert body["usage"]["size"] == "960*960" and body["usage"]["output_video_duration"] == 2
    records = wan_simulator.inputs(task_id) or []
    assert [(r["name"], r["role"], r["url"]) for r in records] == [
        ("input.media[0]", "first_frame", first),
        ("input.media[1]", "last_frame", last),
    ]


def test_the_new_api_relay_carries_img_url_in_metadata_input(wan_simulator: WanSimulator, web: Web) -> None:
    url = web.serve("/relay/dog.png", image("PNG", (1280, 720)))
    body = {
        "model": "wan2.6-i2v",
        "prompt": "",
        "duration": 5,
        "metadata": {"input": {"img_url": url + SIGNED}, "parameters": {"resolution": "720P"}},
    }
    auth = {"Authorization": f"Bearer {KEY}"}
    answer = httpx.post(wan_simulator.root_url + "/v1/video/generations", json=body, headers=auth)
    assert answer.status_code == 200, answer.text
    task_id = answer.json()["task_id"]
    deadline = time.monotonic() + 5
    while True:
        dto = httpx.get(f"{wan_simulator.root_url}/v1/video/generations/{task_id}", headers=auth).json()["data"]
        if dto["status"] in ("SUCCESS", "FAILURE") or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert dto["status"] == "SUCCESS" and dto["action"] == "generate"
    assert dto["data"]["usage"]["size"] == "1280*720"
    [record] = wan_simulator.inputs(task_id) or []
    assert (record["name"], record["url"], record["fetches"]) == ("metadata.input.img_url", url, 1)
    refused = httpx.post(
        wan_simulator.root_url + "/v1/video/generations",
        json={**body, "metadata": {"input": {}, "parameters": {"resolution": "720P"}}},
        headers=auth,
    )
    assert refused.status_code == 400 and refused.json()["code"] == "ali_api_error"
    assert "Field required: metadata.input.img_url" in refused.json()["message"]


def test_the_unified_relay_takes_flat_inputs(wan_simulator: WanSimulator, web: Web) -> None:
    url = web.serve("/flat.png", image("PNG", (960, 960)))
    body = {"model": "wan2.2-i2v-flash", "img_url": url, "resolution": "480P"}
    answer = httpx.post(wan_simulator.unified_url, json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 200, answer.text
    task_id = answer.json()["task_id"]
    assert finished(wan_simulator, task_id)["usage"]["video_ratio"] == "624*624"
    assert web.hits["/flat.png"] == 1


def test_an_oss_input_needs_the_resolve_header_and_is_taken_unread(wan_simulator: WanSimulator) -> None:
    inputs = {"img_url": "oss://dashscope-instant/abc/cat.png"}
    refused = native(wan_simulator, "wan2.6-i2v", inputs, resolution="720P")
    assert_error(refused, 400, "InvalidParameter", "X-DashScope-OssResourceResolve", "input.img_url")
    task_id = accepted_with(wan_simulator, "wan2.6-i2v", inputs, OSS_HEADERS, resolution="720P")
    body = finished(wan_simulator, task_id)
    assert body["output"]["task_status"] == "SUCCEEDED"
    assert body["usage"]["size"] == "1280*720"  # not read: the tier's 16:9 size
    [record] = wan_simulator.inputs(task_id) or []
    assert (record["status"], record["fetches"], record["url"]) == ("resolved", 0, inputs["img_url"])
    assert wan_simulator.counters()["input_fetches"] == 0


def accepted_with(sim: WanSimulator, model: str, inputs: dict[str, Any], headers: dict[str, str], **params: Any) -> str:
    response = native(sim, model, inputs, SUBMIT, headers, **params)
    assert response.status_code == 200, response.text
    return str(response.json()["output"]["task_id"])


# synchronous refusals: 400, no task, nothing fetched ----------------------------------------------

U = "{web}/any.png"


@pytest.mark.parametrize(
    ("model", "route", "inputs", "params", "fragments"),
    [
        ("wan2.6-i2v", SUBMIT, {"prompt": "x"}, {}, ("Field required: input.img_url",)),
        ("wan2.2-kf2v-flash", IMAGE2VIDEO, {"last_frame_url": U}, {}, ("Field required: input.first_frame_url",)),
        ("wan2.2-kf2v-flash", IMAGE2VIDEO, {"first_frame_url": U}, {}, ("Field required: input.last_frame_url",)),
        ("wan2.6-r2v", SUBMIT, {"prompt": "x"}, {}, ("Field required: input.reference_urls",)),
        ("wan2.6-r2v", SUBMIT, {"prompt": "x", "reference_urls": []}, {}, ("Field required: input.reference_urls",)),
        ("wan2.6-r2v", SUBMIT, {"reference_urls": [U]}, {}, ("input.prompt",)),
        ("wan2.7-i2v", SUBMIT, {"media": [{"type": "last_frame", "url": U}]}, {}, ("input.media", "first_frame")),
        ("wan2.7-i2v", SUBMIT, {"img_url": U}, {}, ("input.img_url", "input.media")),
        ("wan2.7-i2v", SUBMIT, {"media": [{"type": "reference_video", "url": U}]}, {}, ("input.media[0].type",)),
        ("wan2.6-t2v", SUBMIT, {"prompt": "x", "img_url": U}, {}, ("input.img_url", "text-to-video")),
        ("wan2.6-i2v", SUBMIT, {"img_url": U, "reference_urls": [U]}, {}, ("input.reference_urls",)),
        ("wan2.6-i2v", SUBMIT, {"img_url": U, "last_frame_url": U}, {}, ("input.last_frame_url",)),
        ("wan2.6-r2v", SUBMIT, {"prompt": "x", "reference_urls": [U] * 6}, {}, ("input.reference_urls", "1 to 5")),
        ("wan2.6-i2v", SUBMIT, {"img_url": U}, {"size": "1280*720"}, ("parameters.size", "first frame")),
        ("wan2.6-i2v", SUBMIT, {"img_url": U}, {"ratio": "16:9"}, ("parameters.ratio",)),
        ("wan2.6-i2v", SUBMIT, {"img_url": U}, {"resolution": "480P"}, ("parameters.resolution", "720P, 1080P")),
        ("wanx2.1-kf2v-plus", IMAGE2VIDEO, {"first_frame_url": U, "last_frame_url": U}, {"resolution": "1080P"}, ()),
        ("wan2.2-kf2v-flash", SUBMIT, {"first_frame_url": U, "last_frame_url": U}, {}, ("Model not exist.",)),
        ("wan2.6-i2v", IMAGE2VIDEO, {"img_url": U}, {}, ("Model not exist.",)),
        (
            "wan2.6-i2v",
            SUBMIT,
            {"img_url": "s3://bucket/cat.png" + SIGNED},
            {},
            ("input.img_url", "s3://bucket/cat.png"),
        ),
        ("wan2.6-i2v", SUBMIT, {"img_url": "ftp://host/cat.png"}, {}, ("input.img_url",)),
        ("wan2.6-i2v", SUBMIT, {"img_url": ["not", "a", "string"]}, {}, ("input.img_url",)),
    ],
)
def test_a_submission_dashscope_refuses_is_400_naming_the_field_with_no_task(
    wan_simulator: WanSimulator,
    web: Web,
    model: str,
    route: str,
    inputs: dict[str, Any],
    params: dict[str, Any],
    fragments: tuple[str, ...],
) -> None:
    def filled(value: Any) -> Any:
        if isinstance(value, str):
            return value.format(web=web.root)
        if isinstance(value, list):
            return [filled(v) for v in value]
        return {k: filled(v) for k, v in value.items()} if isinstance(value, dict) else value

    body = assert_error(native(wan_simulator, model, filled(inputs), route, **params), 400, "InvalidParameter")
    for fragment in fragments or ("parameters.resolution",):
        assert fragment in body["message"]
    assert "SECRETSIG" not in body["message"]
    counters = wan_simulator.counters()
    assert (counters["tasks_created"], counters["input_fetches"]) == (0, 0) and not web.hits


# inputs DashScope cannot use: the task FAILS, unbilled --------------------------------------------


def test_a_404_input_fails_the_task_without_its_query_in_any_message_or_log(
    wan_simulator: WanSimulator, web: Web, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    # Earlier tests may have quietened httpx's logger: hear it directly, whatever its state.
    httpx_logger = logging.getLogger("httpx")
    monkeypatch.setattr(httpx_logger, "disabled", False)
    monkeypatch.setattr(httpx_logger, "propagate", True)
    monkeypatch.setattr(httpx_logger, "level", logging.INFO)
    url = web.root + "/gone/cat.png"
    task_id = accepted(wan_simulator, "wan2.6-i2v", {"img_url": url + SIGNED})
    output = failed(wan_simulator, task_id, "InvalidParameter")
    assert output["message"] == f"Failed to download the media resource: {url}"
    [record] = wan_simulator.inputs(task_id) or []
    assert (record["status"], record["http_status"], record["error"], record["url"]) == ("failed", 404, "HTTP 404", url)
    assert web.hits["/gone/cat.png"] == 1  # not retried
    assert billed(wan_simulator) == 0 and wan_simulator.counters()["tasks_created"] == 1
    assert f"HTTP Request: GET {url} " in caplog.text  # httpx's own log line, redacted
    assert url in caplog.text and "SECRETSIG" not in caplog.text and "X-Amz-Credential" not in caplog.text
    unified = httpx.get(f"{wan_simulator.unified_url}/{task_id}", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert unified["status"] == "FAILURE" and "SECRETSIG" not in unified["fail_reason"]


def test_presigned_moto_objects_are_fetched_and_a_missing_one_fails(
    wan_simulator: WanSimulator, s3_client: Any, bucket: str
) -> None:
    s3_client.put_object(Bucket=bucket, Key="shots/cat.png", Body=image("PNG", (1280, 720)))

    def presigned(key: str) -> str:
        params = {"Bucket": bucket, "Key": key}
        return str(s3_client.generate_presigned_url("get_object", Params=params, ExpiresIn=600))

    found = accepted(wan_simulator, "wan2.6-i2v", {"img_url": presigned("shots/cat.png")}, resolution="720P")
    assert finished(wan_simulator, found)["usage"]["size"] == "1280*720"
    [record] = wan_simulator.inputs(found) or []
    endpoint = str(s3_client.meta.endpoint_url).rstrip("/")
    assert record["url"] == f"{endpoint}/{bucket}/shots/cat.png" and record["format"] == "png"
    missing = accepted(wan_simulator, "wan2.6-i2v", {"img_url": presigned("shots/none.png")}, resolution="720P")
    output = finished(wan_simulator, missing)["output"]
    assert output["code"] == "InvalidParameter"
    assert output["message"] == f"Failed to download the media resource: {endpoint}/{bucket}/shots/none.png"


@pytest.mark.parametrize("case", ["connection refused", "too slow", "redirect loop"])
def test_an_input_that_cannot_be_downloaded_fails_the_task(wan_simulator_factory: Factory, web: Web, case: str) -> None:
    sim = wan_simulator_factory(fetch_timeout_seconds=0.3)
    urls = {
        "connection refused": f"http://127.0.0.1:{free_port()}/cat.png",
        "too slow": web.serve("/slow.png", image(), delay=1.5),
        "redirect loop": web.serve("/loop.png", status=302, location="/loop.png"),
    }
    task_id = accepted(sim, "wan2.6-i2v", {"img_url": urls[case] + SIGNED})
    output = failed(sim, task_id, "InvalidParameter", "Failed to download the media resource: ")
    assert output["message"].endswith(urls[case])
    [record] = sim.inputs(task_id) or []
    assert record["status"] == "failed" and record["fetches"] == 1 and record["error"]


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("a text page", b"<html>this is not a picture</html>"),
        ("a PDF", b"%PDF-1.7 a brochure"),
        ("a WAV", b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64)),
        ("an MP4", clip(2)),
    ],
)
def test_content_that_is_not_an_image_fails_the_data_inspection(
    wan_simulator: WanSimulator, web: Web, name: str, body: bytes
) -> None:
    task_id = accepted(wan_simulator, "wan2.6-i2v", {"img_url": web.serve("/photo.png", body)})
    output = failed(wan_simulator, task_id, "InvalidParameter.DataInspection")
    assert output["message"] == DATA_INSPECTION
    [record] = wan_simulator.inputs(task_id) or []
    assert record["status"] == "refused" and record["error"] == DATA_INSPECTION


@pytest.mark.parametrize(
    ("model", "fmt", "picture", "mode", "fragment"),
    [
        ("wan2.6-i2v", "PNG", (300, 300), "RGB", "is 300x300 pixels; allowed: width and height from 360 to 2000"),
        ("wan2.6-i2v", "JPEG", (2100, 600), "RGB", "is 2100x600 pixels"),
        ("wan2.6-i2v", "PNG", (800, 600), "RGBA", "is a PNG with transparency"),
        ("wan2.6-i2v", "BMP", (2000, 1800), "RGB", "allowed: at most 10 MiB for images"),
    ],
)
def test_an_image_out_of_bounds_fails_the_task_naming_the_field(
    wan_simulator: WanSimulator, web: Web, model: str, fmt: str, picture: tuple, mode: str, fragment: str
) -> None:
    url = web.serve("/big/photo", image(fmt, picture, mode))
    task_id = accepted(wan_simulator, model, {"img_url": url + SIGNED})
    failed(wan_simulator, task_id, "InvalidParameter", fragment, f"input.img_url={url!r}")
    assert billed(wan_simulator) == 0


def test_the_flash_line_takes_images_up_to_20_mb(wan_simulator: WanSimulator, web: Web) -> None:
    url = web.serve("/big/photo.bmp", image("BMP", (2000, 1800)))  # 10.3 MiB
    task_id = accepted(wan_simulator, "wan2.6-i2v-flash", {"img_url": url}, resolution="720P")
    assert finished(wan_simulator, task_id)["output"]["task_status"] == "SUCCEEDED"
    assert (wan_simulator.inputs(task_id) or [{}])[0]["bytes"] > 10 * 1024 * 1024


def test_reference_counts_and_lengths_are_checked_once_read(wan_simulator: WanSimulator, web: Web) -> None:
    clips = [web.serve(f"/refs/clip{i}.mp4", clip(3)) for i in range(4)]
    too_many = accepted(wan_simulator, "wan2.6-r2v", {"prompt": "x", "reference_urls": clips})
    failed(wan_simulator, too_many, "InvalidParameter", "input.reference_urls holds 4 videos", "and 3 videos")
    assert sum(web.hits.values()) == 4
    short = web.serve("/refs/short.mp4", clip(1))
    one_second = accepted(wan_simulator, "wan2.6-r2v", {"prompt": "x", "reference_urls": [short]})
    failed(wan_simulator, one_second, "InvalidParameter", "input.reference_urls[0]", "is 1.0 s long")


def test_a_redirect_is_followed_and_the_input_counts_one_fetch(wan_simulator: WanSimulator, web: Web) -> None:
    target = web.serve("/cdn/cat.png", image("PNG", (1280, 720)))
    link = web.serve("/short/cat", status=302, location=target)
    task_id = accepted(wan_simulator, "wan2.2-i2v-flash", {"img_url": link}, resolution="720P")
    assert finished(wan_simulator, task_id)["output"]["task_status"] == "SUCCEEDED"
    [record] = wan_simulator.inputs(task_id) or []
    assert (record["url"], record["fetches"], record["format"]) == (link, 1, "png")
    assert web.hits == Counter({"/short/cat": 1, "/cdn/cat.png": 1})


# lifecycle with fetches -------------------------------------------------------------------------


def test_on_a_manual_clock_a_task_never_runs_before_its_inputs_are_read(
    wan_simulator_factory: Factory, web: Web
) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    sim = wan_simulator_factory(clock=clock, pending_seconds=1, running_seconds=2)
    url = web.serve("/slow/cat.png", image("PNG", (1280, 720)), delay=0.4)
    task_id = accepted(sim, "wan2.6-i2v", {"img_url": url})
    clock.advance(100)  # far beyond PENDING + RUNNING, while the input is still downloading
    assert poll(sim, task_id)["output"]["task_status"] == "PENDING"
    sim.wait_for_inputs(task_id)
    running = poll(sim, task_id)["output"]  # ready once read: RUNNING from the moment the fetch ended
    assert running["task_status"] == "RUNNING" and running["scheduled_time"] == "2027-01-15 16:01:40.000"
    clock.advance(2)
    assert poll(sim, task_id)["output"]["task_status"] == "SUCCEEDED"


def test_on_a_manual_clock_a_fast_fetch_keeps_the_timeline_of_text_to_video(
    wan_simulator_factory: Factory, web: Web
) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    sim = wan_simulator_factory(clock=clock, pending_seconds=1, running_seconds=2)
    task_id = accepted(sim, "wan2.6-i2v", {"img_url": web.serve("/cat.png", image())})
    sim.wait_for_inputs(task_id)  # the clock has not moved: the inputs were read at the submit time
    assert poll(sim, task_id)["output"]["task_status"] == "PENDING"
    clock.advance(1)
    running = poll(sim, task_id)["output"]
    assert running["task_status"] == "RUNNING" and running["scheduled_time"] == "2027-01-15 16:00:01.000"
    clock.advance(2)
    done = poll(sim, task_id)["output"]
    assert done["task_status"] == "SUCCEEDED" and done["end_time"] == "2027-01-15 16:00:03.000"
    failing = accepted(sim, "wan2.6-i2v", {"img_url": web.root + "/nothing.png"})
    sim.wait_for_inputs(failing)
    output = poll(sim, failing)["output"]
    assert output["task_status"] == "FAILED" and output["end_time"] == "2027-01-15 16:00:03.000"


def test_a_task_canceled_while_its_inputs_download_stays_canceled(wan_simulator: WanSimulator, web: Web) -> None:
    url = web.serve("/slow/gone.png", status=404, delay=0.4)
    task_id = accepted(wan_simulator, "wan2.6-i2v", {"img_url": url})
    auth = {"Authorization": f"Bearer {KEY}"}
    assert httpx.post(f"{wan_simulator.base_url}/tasks/{task_id}/cancel", headers=auth).status_code == 200
    wan_simulator.wait_for_inputs(task_id)
    assert poll(wan_simulator, task_id)["output"]["task_status"] == "CANCELED"
    assert wan_simulator.counters()["tasks_canceled"] == 1


def test_the_admin_view_shows_the_fetch_over_http(wan_simulator: WanSimulator, web: Web) -> None:
    task_id = accepted(wan_simulator, "wan2.6-i2v", {"img_url": web.serve("/cat.png", image()) + SIGNED})
    wan_simulator.wait_for_inputs(task_id)
    debug = httpx.get(f"{wan_simulator.root_url}/_simulator/tasks/{task_id}").json()
    assert debug["fetch"]["status"] == "done" and debug["fetch"]["failure"] is None
    assert debug["fetch"]["output_size"] == "1920*1080"
    assert [(r["url"], r["status"]) for r in debug["inputs"]] == [(web.root + "/cat.png", "fetched")]
    assert debug["body"]["input"]["img_url"].endswith(SIGNED)  # the body as received, for debugging
    text_only = httpx.post(
        wan_simulator.base_url + SUBMIT, json={"model": "wan2.6-t2v", "input": {"prompt": "x"}}, headers=HEADERS
    ).json()["output"]["task_id"]
    debug = httpx.get(f"{wan_simulator.root_url}/_simulator/tasks/{text_only}").json()
    assert (debug["fetch"], debug["inputs"]) == (None, [])


# settings -----------------------------------------------------------------------------------------


def test_fetching_can_be_turned_off(wan_simulator_factory: Factory) -> None:
    sim = wan_simulator_factory(fetch_inputs=False)
    task_id = accepted(sim, "wan2.2-i2v-flash", {"img_url": "https://media.example.invalid/cat.png"})
    body = finished(sim, task_id)
    assert body["output"]["task_status"] == "SUCCEEDED" and body["usage"]["video_ratio"] == "1280*720"
    assert [r["status"] for r in sim.inputs(task_id) or []] == ["skipped"]


def test_soundtracks_are_fetched_by_default_and_can_be_skipped(wan_simulator_factory: Factory, web: Web) -> None:
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64)
    inputs = {"img_url": web.serve("/cat.png", image()), "audio_url": web.serve("/track", wav)}
    strict = wan_simulator_factory()
    heard = accepted(strict, "wan2.6-i2v", inputs)
    assert finished(strict, heard)["output"]["task_status"] == "SUCCEEDED"
    assert [(r["role"], r["format"]) for r in strict.inputs(heard) or []] == [("first_frame", "png"), ("audio", "wav")]
    not_sound = accepted(strict, "wan2.6-i2v", {**inputs, "audio_url": inputs["img_url"]})
    failed(strict, not_sound, "InvalidParameter.DataInspection")
    hits = web.hits["/track"]
    quiet = wan_simulator_factory(fetch_audio=False)
    skipped = accepted(quiet, "wan2.6-i2v", inputs)
    assert finished(quiet, skipped)["output"]["task_status"] == "SUCCEEDED"
    assert [r["status"] for r in quiet.inputs(skipped) or []] == ["fetched", "skipped"]
    assert web.hits["/track"] == hits


# helpers of the fetch -----------------------------------------------------------------------------


def test_the_length_of_a_clip_is_read_from_its_movie_header() -> None:
    assert mp4_seconds(clip(3)) == pytest.approx(3.0, abs=0.05)
    assert mp4_seconds(b"\x00\x00\x00\x08free") is None
    assert mp4_seconds(image()) is None


@pytest.mark.parametrize(
    ("tier", "picture", "size"),
    [
        ("720P", (1280, 720), "1280*720"),
        ("720P", (500, 1000), "720*1280"),
        ("1080P", (1100, 1000), "1440*1440"),
        ("480P", (1200, 900), "832*480"),  # 480P has no 4:3: the nearest is 16:9
        ("720P", (None, None), "1280*720"),
    ],
)
def test_the_video_takes_the_tier_size_nearest_to_the_first_frame(tier: str, picture: tuple, size: str) -> None:
    assert nearest_size(tier, *picture) == size
