"""Beyond text, without Airflow: the capability rows of every image, keyframe and reference model, the input checks
(content sniffing) and the wire body each family sends."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from PIL import Image

from airflow_provider_wan.exceptions import WanRequestValidationError
from airflow_provider_wan.media import MediaInfo, problem, sniff
from airflow_provider_wan.models import (
    CAPABILITIES,
    IMAGE2VIDEO_ROUTE,
    SIZE_TIERS,
    VIDEO_SYNTHESIS_ROUTE,
    WanVideoRequest,
)
from airflow_provider_wan.operators.wan import (
    WanFirstLastFrameToVideoOperator,
    WanImageToVideoOperator,
    WanReferenceToVideoOperator,
    WanTextToVideoOperator,
)
from airflow_provider_wan.protocol import DashScopeProtocol, NewApiProtocol

MEDIA = [c for c in CAPABILITIES if c.family != "t2v"]
IMAGE = "s3://inputs/product.png"
INPUTS: dict[str, dict[str, Any]] = {
    "i2v": {"img_url": IMAGE},
    "kf2v": {"first_frame_url": IMAGE, "last_frame_url": "https://example.com/last.jpg"},
    "r2v": {"reference_urls": [IMAGE, "s3://inputs/clip.mp4"], "prompt": "character1 waves at character2"},
}


def build(cap: Any, **fields: Any) -> WanVideoRequest:
    return WanVideoRequest.build(model=cap.name, **{**INPUTS[cap.family], **fields})


def image(fmt: str = "PNG", size: tuple[int, int] = (1000, 720), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (200, 80, 40) if mode == "RGB" else (200, 80, 40, 128)).save(out, fmt)
    return out.getvalue()


# --------------------------------------------------------------------------------------------- the table


def test_every_family_has_rows_and_each_row_its_inputs():
    assert {c.family for c in MEDIA} == {"i2v", "kf2v", "r2v"}
    for cap in MEDIA:
        assert cap.inputs and set(cap.required_inputs) <= set(cap.inputs)
        assert (cap.route == IMAGE2VIDEO_ROUTE) == (cap.family == "kf2v")
        assert cap.default_duration in cap.durations and cap.default_resolution in cap.tiers


@pytest.mark.parametrize("cap", MEDIA, ids=lambda c: c.name)
@pytest.mark.parametrize("duration", range(1, 17))
def test_every_duration_is_accepted_exactly_when_the_model_allows_it(cap, duration):
    if duration in cap.durations:
        assert build(cap, duration=duration).effective_duration == duration
    else:
        with pytest.raises(WanRequestValidationError, match=rf"duration={duration} is not allowed for model"):
            build(cap, duration=duration)


@pytest.mark.parametrize("cap", MEDIA, ids=lambda c: c.name)
@pytest.mark.parametrize("tier", list(SIZE_TIERS))
def test_every_tier_is_accepted_exactly_when_the_model_renders_it(cap, tier):
    fields = {"resolution": tier} if cap.shape == "tier" else {"size": SIZE_TIERS[tier]["16:9"]}
    if tier in cap.tiers:
        assert build(cap, **fields).effective_resolution == tier
    else:
        with pytest.raises(WanRequestValidationError) as err:
            build(cap, **fields)
        assert cap.name in str(err.value) and "allowed" in str(err.value)


@pytest.mark.parametrize("cap", [c for c in MEDIA if c.shape == "tier"], ids=lambda c: c.name)
@pytest.mark.parametrize("field", ["size", "aspect_ratio"])
def test_image_led_models_refuse_an_aspect_ratio(cap, field):
    value = "1280*720" if field == "size" else "16:9"
    with pytest.raises(WanRequestValidationError, match=rf"{field}='{re.escape(value)}'.*aspect ratio of its input"):
        build(cap, **{field: value})


@pytest.mark.parametrize("cap", MEDIA, ids=lambda c: c.name)
def test_each_required_input_is_named_when_missing(cap):
    for name in cap.required_inputs:
        fields = {k: v for k, v in INPUTS[cap.family].items() if k != name}
        with pytest.raises(WanRequestValidationError, match=rf"{name} is required by model '{cap.name}'"):
            WanVideoRequest.build(model=cap.name, **fields)


@pytest.mark.parametrize("cap", CAPABILITIES, ids=lambda c: c.name)
def test_inputs_of_another_family_are_refused_naming_the_models_that_take_them(cap):
    foreign = {"img_url", "first_frame_url", "last_frame_url", "reference_urls"} - set(cap.inputs)
    for name in sorted(foreign):
        value = [IMAGE] if name == "reference_urls" else IMAGE
        fields = {**INPUTS.get(cap.family, {"prompt": "a fox"}), name: value}
        with pytest.raises(WanRequestValidationError, match=rf"{name} is not accepted by model '{cap.name}'"):
            WanVideoRequest.build(model=cap.name, **fields)


@pytest.mark.parametrize("cap", MEDIA, ids=lambda c: c.name)
def test_the_prompt_is_optional_only_for_image_led_models(cap):
    fields = {k: v for k, v in INPUTS[cap.family].items() if k != "prompt"}
    if cap.prompt_required:
        with pytest.raises(WanRequestValidationError, match="prompt is required by model"):
            WanVideoRequest.build(model=cap.name, **fields)
    else:
        assert WanVideoRequest.build(model=cap.name, **fields, prompt="  ").prompt is None


@pytest.mark.parametrize("cap", [c for c in MEDIA if c.family == "r2v"], ids=lambda c: c.name)
def test_references_are_counted(cap):
    many = [f"s3://inputs/ref{i}.png" for i in range(cap.references_max + 1)]
    with pytest.raises(WanRequestValidationError, match=rf"has {len(many)} references.*1 to {cap.references_max}"):
        build(cap, reference_urls=many)
    assert build(cap, reference_urls=many[:-1]).reference_urls == tuple(many[:-1])


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("s3://bucket/key.png", True),
        ("https://cdn.example.com/a.png?sig=1", True),
        ("oss://dashscope-instant/abc.png", True),
        ("s3://bucket", False),
        ("s3://bucket/", False),
        ("ftp://example.com/a.png", False),
        ("/tmp/a.png", False),
        ("file:///tmp/a.png", False),
    ],
)
def test_input_uris(value, ok):
    if ok:
        assert WanVideoRequest.build(model="wan2.6-i2v", img_url=value).img_url == value
    else:
        with pytest.raises(WanRequestValidationError, match=r"img_url=.* is not an input DashScope can fetch"):
            WanVideoRequest.build(model="wan2.6-i2v", img_url=value)


# --------------------------------------------------------------------------------------------- operators


@pytest.mark.parametrize(
    ("operator", "fields", "model", "other"),
    [
        (WanImageToVideoOperator, {"img_url": IMAGE}, "wan2.6-t2v", "WanTextToVideoOperator"),
        (WanTextToVideoOperator, {"prompt": "a fox"}, "wan2.6-i2v", "WanImageToVideoOperator"),
        (WanReferenceToVideoOperator, {"reference_urls": [IMAGE], "prompt": "x"}, "wan2.2-kf2v-flash", "WanFirst"),
        (
            WanFirstLastFrameToVideoOperator,
            {"first_frame_url": IMAGE, "last_frame_url": IMAGE},
            "wan2.6-r2v",
            "WanReferenceToVideoOperator",
        ),
    ],
)
def test_an_operator_refuses_a_model_of_another_family_at_parse_time(operator, fields, model, other):
    with pytest.raises(
        WanRequestValidationError, match=rf"model='{model}' is a .* model; {operator.__name__}.*{other}"
    ):
        operator(task_id="t", model=model, **fields)


def test_each_operator_has_its_family_default_model_and_templated_inputs_parse():
    assert WanImageToVideoOperator(task_id="a", img_url="{{ params.image }}").model == "wan2.6-i2v-flash"
    kf2v = WanFirstLastFrameToVideoOperator(task_id="b", first_frame_url="{{ x }}", last_frame_url="{{ y }}")
    assert kf2v.model == "wan2.2-kf2v-flash"
    r2v = WanReferenceToVideoOperator(task_id="c", reference_urls=["{{ a }}", IMAGE], prompt="character1 sings")
    assert r2v.model == "wan2.6-r2v-flash" and r2v.reference_urls == ["{{ a }}", IMAGE]
    assert {"img_url", "reference_urls", "first_frame_url", "last_frame_url"} <= set(r2v.template_fields)


def test_a_static_bad_input_fails_at_parse_time():
    with pytest.raises(WanRequestValidationError, match=r"img_url='/local/a\.png' is not an input"):
        WanImageToVideoOperator(task_id="a", img_url="/local/a.png")
    with pytest.raises(WanRequestValidationError, match="resolution='1080P' is not offered by model"):
        WanImageToVideoOperator(task_id="a", img_url=IMAGE, model="wanx2.1-i2v-turbo", resolution="1080P")


# --------------------------------------------------------------------------------------------- the wire


def test_each_family_sends_its_inputs_on_its_route_with_the_presigned_urls_only():
    signed = "http://127.0.0.1:9/inputs/product.png?X-Amz-Signature=abc"
    protocol = DashScopeProtocol()
    i2v = WanVideoRequest.build(model="wan2.6-i2v", img_url=IMAGE, resolution="720P").with_input_urls({IMAGE: signed})
    sent = protocol.submit_request(i2v)
    assert sent.path == VIDEO_SYNTHESIS_ROUTE
    assert sent.json["input"] == {"img_url": signed}
    assert sent.json["parameters"]["resolution"] == "720P" and "size" not in sent.json["parameters"]
    assert i2v.summary()["img_url"] == IMAGE  # what is logged, stored and fingerprinted: the URI as given

    kf2v = WanVideoRequest.build(model="wan2.2-kf2v-flash", **INPUTS["kf2v"]).with_input_urls({IMAGE: signed})
    sent = protocol.submit_request(kf2v)
    assert sent.path == IMAGE2VIDEO_ROUTE
    assert sent.json["input"] == {"first_frame_url": signed, "last_frame_url": "https://example.com/last.jpg"}

    r2v = WanVideoRequest.build(model="wan2.6-r2v", reference_urls=[IMAGE, "oss://tmp/clip.mp4"], prompt="character1")
    sent = protocol.submit_request(r2v.with_input_urls({IMAGE: signed}))
    assert sent.json["input"]["reference_urls"] == [signed, "oss://tmp/clip.mp4"]
    assert sent.json["parameters"]["size"] == "1920*1080"
    assert sent.headers["X-DashScope-OssResourceResolve"] == "enable"

    wan27 = WanVideoRequest.build(model="wan2.7-i2v", img_url=IMAGE, last_frame_url="https://e.com/z.png")
    media = protocol.submit_request(wan27.with_input_urls({IMAGE: signed})).json["input"]["media"]
    assert media == [{"type": "first_frame", "url": signed}, {"type": "last_frame", "url": "https://e.com/z.png"}]

    relayed = NewApiProtocol().submit_request(i2v).json
    assert relayed["metadata"]["input"]["img_url"] == signed and relayed["prompt"] == ""


def test_an_s3_uri_nobody_presigned_is_never_sent():
    request = WanVideoRequest.build(model="wan2.6-i2v", img_url=IMAGE)
    with pytest.raises(WanRequestValidationError, match="s3:// URI that was not presigned"):
        DashScopeProtocol().submit_request(request)


def test_presigned_urls_survive_the_connections_declared_models():
    from airflow_provider_wan.hooks.wan import _prepared
    from airflow_provider_wan.models import declare_models
    from airflow_provider_wan.settings import WanConnectionSettings

    request = WanVideoRequest.build(model="wan2.6-i2v", img_url=IMAGE).with_input_urls({IMAGE: "https://s/x?sig=1"})
    settings = WanConnectionSettings(
        api_key="sk-x",
        base_url="http://127.0.0.1:9",
        region=None,
        models=declare_models({"wan2.6-i2v": {"durations": "2-20"}}),
    )
    prepared = _prepared(request, settings)
    assert prepared.capability is not request.capability and prepared.wire_url(IMAGE) == "https://s/x?sig=1"


# --------------------------------------------------------------------------------------------- sniffing


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
def test_images_are_told_by_content_with_their_pixel_size(fmt):
    info = sniff(image(fmt, (1000, 720))[:65536])
    assert (info.kind, info.format, info.width, info.height) == ("image", fmt.lower(), 1000, 720)
    assert problem("img_url", "s3://b/k", info, 50_000, "image") is None


def test_what_dashscope_refuses_is_named_before_the_request():
    alpha = sniff(image("PNG", (800, 600), "RGBA"))
    assert "transparency" in str(problem("img_url", "s3://b/a.png", alpha, 1000, "image"))
    small = sniff(image("PNG", (200, 720)))
    assert "200x720 pixels; allowed: width and height from 360 to 2000" in str(
        problem("img_url", "s3://b/s.png", small, 1000, "image")
    )
    big = sniff(image("JPEG", (800, 600)))
    assert "11.0 MiB; allowed: at most 10 MiB" in str(problem("img_url", "s3://b/b.jpg", big, 11 * 2**20, "image"))
    assert problem("img_url", "s3://b/b.jpg", big, 11 * 2**20, "image", image_max_bytes=20 * 2**20) is None
    text = sniff(b"<html>not found</html>")
    assert (
        problem("img_url", "s3://b/x", text, 20, "image")
        == "img_url='s3://b/x' is unknown format by its content; allowed: jpeg, png, bmp, webp"
    )
    clip = sniff(b"\x00\x00\x00\x18ftypmp42" + bytes(100))
    assert clip == MediaInfo("video", "mp4") and problem("reference_urls[0]", "x", clip, 10, ("image", "video")) is None
    assert problem("img_url", "x", clip, 10, "image") is not None


def test_every_input_is_a_lineage_input_without_its_signature():
    from airflow_provider_wan.lineage import describe_generation

    request = WanVideoRequest.build(
        model="wan2.6-r2v", reference_urls=[IMAGE, "https://cdn.example.com/clip.mp4?sig=2"], prompt="character1"
    )
    described = describe_generation(
        "t-1", "https://dashscope-intl.aliyuncs.com/api/v1", request.model, request.summary()
    )
    assert described.inputs == (("s3://inputs", "product.png"), ("https://cdn.example.com", "clip.mp4"))
    assert described.description.startswith("Wan reference-to-video task t-1 (wan2.6-r2v")
