"""The request model and capability table: every model, every limit, messages that name the field and value."""

from __future__ import annotations

import pytest

from airflow_provider_wan.exceptions import WanRequestValidationError
from airflow_provider_wan.models import (
    CAPABILITIES,
    SIZE_TIERS,
    SIZE_TO_TIER,
    TaskStatus,
    WanTask,
    WanUsage,
    WanVideoRequest,
    get_capability,
)

ALL_SIZES = sorted(SIZE_TO_TIER)


#: The text-to-video rows; the image, keyframe and reference rows have their own tables (test_media_models.py).
T2V = [c for c in CAPABILITIES if c.family == "t2v"]


def build(**fields: object) -> WanVideoRequest:
    return WanVideoRequest.build(**{"prompt": "a red fox in the snow", **fields})


@pytest.mark.parametrize("cap", T2V, ids=lambda c: c.name)
@pytest.mark.parametrize("size", ALL_SIZES)
def test_every_size_is_accepted_exactly_when_the_model_offers_its_tier(cap, size):
    if SIZE_TO_TIER[size] in cap.tiers:
        assert build(model=cap.name, size=size).size == size
    else:
        with pytest.raises(WanRequestValidationError) as err:
            build(model=cap.name, size=size)
        message = str(err.value)
        assert f"size='{size}'" in message and cap.name in message and "allowed:" in message


@pytest.mark.parametrize("cap", T2V, ids=lambda c: c.name)
@pytest.mark.parametrize("duration", range(1, 17))
def test_every_duration_is_accepted_exactly_when_the_model_allows_it(cap, duration):
    if duration in cap.durations:
        assert build(model=cap.name, duration=duration).duration == duration
    else:
        with pytest.raises(WanRequestValidationError, match=rf"duration={duration} is not allowed for model"):
            build(model=cap.name, duration=duration)


@pytest.mark.parametrize("cap", T2V, ids=lambda c: c.name)
def test_prompt_limit_per_model_refuses_by_default_and_truncates_on_request(cap):
    assert build(model=cap.name, prompt="x" * cap.prompt_max).prompt == "x" * cap.prompt_max
    with pytest.raises(
        WanRequestValidationError, match=rf"prompt is {cap.prompt_max + 1} characters.*{cap.prompt_max}"
    ):
        build(model=cap.name, prompt="x" * (cap.prompt_max + 1))
    longer = "x" * (cap.prompt_max + 100)
    assert len(build(model=cap.name, prompt=longer, truncate_prompt=True).prompt) == cap.prompt_max


@pytest.mark.parametrize("cap", T2V, ids=lambda c: c.name)
def test_audio_is_refused_on_silent_models(cap):
    if cap.audio:
        request = build(model=cap.name, audio=True, audio_url="https://example.com/a/track.mp3")
        assert request.audio is True
    else:
        with pytest.raises(WanRequestValidationError, match="audio=True is not supported by model"):
            build(model=cap.name, audio=True)
        with pytest.raises(WanRequestValidationError, match="audio_url is not supported by model"):
            build(model=cap.name, audio_url="https://example.com/track.wav")
        assert build(model=cap.name, audio=False).audio is False


@pytest.mark.parametrize("cap", T2V, ids=lambda c: c.name)
def test_multi_shot_only_where_supported(cap):
    if cap.multi_shot:
        assert build(model=cap.name, shot_type="multi").shot_type == "multi"
        with pytest.raises(WanRequestValidationError, match="prompt_extend=False would be silently ignored"):
            build(model=cap.name, shot_type="multi", prompt_extend=False)
    else:
        with pytest.raises(WanRequestValidationError, match="shot_type='multi' is not supported by model"):
            build(model=cap.name, shot_type="multi")


@pytest.mark.parametrize("cap", T2V, ids=lambda c: c.name)
def test_default_size_and_duration_are_allowed_by_their_own_model(cap):
    request = build(model=cap.name)
    assert request.effective_size == cap.default_size in cap.sizes
    assert request.effective_duration == cap.default_duration in cap.durations


@pytest.mark.parametrize(
    ("alias", "canonical"), [("wan2.1-t2v-turbo", "wanx2.1-t2v-turbo"), ("wan2.1-t2v-plus", "wanx2.1-t2v-plus")]
)
def test_seed_000_spellings_are_accepted(alias, canonical):
    assert get_capability(alias) is get_capability(canonical)
    assert build(model=alias, size="1280*720").model == alias  # sent as the user wrote it


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("1280x720", "1280*720"), ("1280×720", "1280*720"), (" 1280 * 720 ", "1280*720"), ("960X960", "960*960")],
)
def test_friendly_sizes_are_normalised(typed, expected):
    assert build(size=typed).size == expected


@pytest.mark.parametrize(
    ("resolution", "ratio", "expected"),
    [
        ("720P", "16:9", "1280*720"),
        ("720p", "9:16", "720*1280"),
        ("1080P", "1:1", "1440*1440"),
        ("1080P", "4:3", "1632*1248"),
    ],
)
def test_resolution_and_aspect_ratio_become_a_size(resolution, ratio, expected):
    assert build(resolution=resolution, aspect_ratio=ratio).size == expected


def test_resolution_alone_defaults_to_16_9_and_ratio_alone_to_the_models_default_tier():
    assert build(resolution="720P").size == "1280*720"
    assert build(aspect_ratio="9:16").size == "1080*1920"
    assert build(model="wanx2.1-t2v-turbo", aspect_ratio="1:1").size == "960*960"


def test_resolution_errors_name_what_is_allowed():
    with pytest.raises(WanRequestValidationError, match=r"resolution='4K' is not a tier; allowed: 480P, 720P, 1080P"):
        build(resolution="4K")
    with pytest.raises(WanRequestValidationError, match=r"aspect_ratio='4:3' is not available at 480P"):
        build(model="wan2.5-t2v-preview", resolution="480P", aspect_ratio="4:3")
    with pytest.raises(WanRequestValidationError, match=r"contradicts resolution"):
        build(size="1920*1080", resolution="720P")
    with pytest.raises(WanRequestValidationError, match=r"resolution='480P' \(size 832\*480\) is not offered") as err:
        build(resolution="480P")
    assert "size=" not in str(err.value)  # the user never passed a size: the message names what they did pass
    assert "allowed: resolution 720P or 1080P" in str(err.value)


def test_messages_name_the_parameter_and_the_value_passed():
    with pytest.raises(WanRequestValidationError, match=r"duration=True is a boolean; allowed: a number of seconds"):
        build(duration=True)
    with pytest.raises(WanRequestValidationError, match=r"seed=False is a boolean; allowed: an integer"):
        build(seed=False)
    with pytest.raises(WanRequestValidationError) as err:
        WanVideoRequest.build(prompt=None, size="1280*720", negative_prompt="blurry")
    assert str(err.value) == (
        "Invalid Wan video request: prompt is required (it was not given or is None); describe the video to generate"
    )  # not a dump of the whole request


@pytest.mark.parametrize("seed", [-1, 2_147_483_648, 10**12])
def test_seed_out_of_range(seed):
    with pytest.raises(
        WanRequestValidationError, match=rf"seed={seed} is out of range; allowed: an integer in \[0, 2147483647\]"
    ):
        build(seed=seed)


@pytest.mark.parametrize("seed", [0, 2_147_483_647, "42"])
def test_seed_in_range(seed):
    assert build(seed=seed).seed == int(seed)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/a.mp3", "not a URL DashScope can fetch"),
        ("/local/track.mp3", "not a URL DashScope can fetch"),
        ("file:///tmp/track.mp3", "not a URL DashScope can fetch"),
    ],
)
def test_bad_audio_url(url, message):
    with pytest.raises(WanRequestValidationError, match=message):
        build(audio_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "https://bucket.s3.amazonaws.com/a/b.MP3?X-Amz-Signature=abc&X-Amz-Expires=3600",
        "oss://dashscope-instant/x/a.wav",
        "http://example.com/a.wav",
        # The format is a property of the content: no extension is needed (issue 12).
        "https://bucket.s3.amazonaws.com/soundtracks/take-7?X-Amz-Signature=abc&X-Amz-Expires=3600",
        "https://cdn.example.com/audio?id=42&format=mp3",
        "oss://dashscope-instant/x/track",
    ],
)
def test_good_audio_url_including_presigned_s3(url):
    assert build(audio_url=url).audio_url == url


def test_presigned_query_never_reaches_the_summary_or_error_text():
    url = "ftp://bucket.s3.amazonaws.com/a/b.mp3?X-Amz-Signature=SECRETSIG"
    with pytest.raises(WanRequestValidationError) as err:
        build(audio_url=url)
    assert "SECRETSIG" not in str(err.value)
    ok = build(audio_url="https://bucket.s3.amazonaws.com/a/b.mp3?X-Amz-Signature=SECRETSIG")
    assert "SECRETSIG" not in str(ok.summary())


@pytest.mark.parametrize("prompt", ["", "   ", "\n"])
def test_empty_prompt(prompt):
    with pytest.raises(WanRequestValidationError, match="prompt is empty"):
        build(prompt=prompt)


def test_negative_prompt_limit():
    assert build(negative_prompt="n" * 500).negative_prompt == "n" * 500
    with pytest.raises(WanRequestValidationError, match="negative_prompt is 501 characters, over the limit of 500"):
        build(negative_prompt="n" * 501)


def test_chinese_characters_count_as_one_each():
    assert build(prompt="狐" * 1500).prompt == "狐" * 1500
    with pytest.raises(WanRequestValidationError, match="prompt is 1501 characters"):
        build(prompt="狐" * 1501)


def test_unknown_model_passes_through_with_a_warning_and_the_newer_shape(caplog):
    request = build(model="wan9.0-t2v", duration=30, resolution="720P", aspect_ratio="16:9")
    assert request.model == "wan9.0-t2v" and request.capability is None
    assert "not in this provider's capability table" in caplog.text
    assert request.effective_duration == 30
    assert (request.shape, request.effective_resolution, request.effective_ratio) == ("resolution", "720P", "16:9")


def test_extras_cannot_bypass_validation_of_named_parameters():
    with pytest.raises(WanRequestValidationError, match="extra_parameters sets size, which have their own arguments"):
        build(extra_parameters={"size": "1*1"})
    with pytest.raises(WanRequestValidationError, match="extra_input sets prompt"):
        build(extra_input={"prompt": "other"})


def test_unknown_field_and_wrong_types_are_named():
    with pytest.raises(WanRequestValidationError, match="sizes is not a Wan request parameter"):
        WanVideoRequest.build(prompt="x", sizes="1280*720")
    with pytest.raises(WanRequestValidationError, match="duration='ten'"):
        build(duration="ten")
    with pytest.raises(WanRequestValidationError, match="shot_type='triple'"):
        build(shot_type="triple")


def test_templated_strings_are_coerced():
    request = build(duration="10", seed="7", prompt_extend="false", watermark="true")
    assert (request.duration, request.seed, request.prompt_extend, request.watermark) == (10, 7, False, True)


def test_size_tiers_table_is_consistent():
    assert len(SIZE_TO_TIER) == sum(len(v) for v in SIZE_TIERS.values())
    for cap in CAPABILITIES:
        assert cap.default_duration in cap.durations and cap.default_resolution in cap.tiers
        assert cap.shape == "tier" or cap.default_size in cap.sizes


@pytest.mark.parametrize(
    ("usage", "billed", "size"),
    [
        (
            {
                "duration": 10.0,
                "size": "1280*720",
                "input_video_duration": 0,
                "output_video_duration": 10,
                "video_count": 1,
                "SR": "720",
            },
            10,
            "1280*720",
        ),
        ({"video_count": 1, "video_duration": 5, "video_ratio": "832*480"}, 5, "832*480"),
    ],
    ids=["wan2.6", "wan2.5-and-older"],
)
def test_both_usage_shapes_normalise(usage, billed, size):
    parsed = WanUsage.model_validate(usage)
    assert parsed.billed_seconds == billed and parsed.output_size == size


def test_task_result_never_contains_the_signed_url():
    task = WanTask(task_id="t1", task_status=TaskStatus.SUCCEEDED, video_url="https://x.aliyuncs.com/v.mp4?Signature=S")
    assert "Signature" not in repr(task)
    assert "video_url" not in task.to_result() and "Signature" not in str(task.to_result())


def test_terminal_statuses():
    assert {s for s in TaskStatus if s.is_terminal} == {
        TaskStatus.SUCCEEDED,
        TaskStatus.FAILED,
        TaskStatus.CANCELED,
        TaskStatus.UNKNOWN,
    }
