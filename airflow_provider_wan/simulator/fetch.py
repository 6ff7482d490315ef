"""DashScope's side of media inputs: the simulator fetches every input URL of a task as the real service does.

A task with media inputs (first frames, last frames, reference images and videos) is accepted at once; its inputs
are then fetched in the background, on the server's event loop (``httpx.AsyncClient``: loopback allowed, redirects
followed, a bounded time per input), while the task waits PENDING: it cannot take a processing slot, hence cannot
succeed, before every input is read. What is read is judged by its content (:func:`airflow_provider_wan.media.sniff`
and :func:`~airflow_provider_wan.media.problem`, the checks the operators run before the request):

* not fetched (an HTTP status outside 2xx, a connection error, the time limit) -> FAILED ``InvalidParameter``
  "Failed to download the media resource: <URL without its query>";
* not a format the parameter takes -> FAILED ``InvalidParameter.DataInspection`` "The media format is not supported
  or incorrect for the data inspection.";
* an image outside 360-2000 pixels a side, over the model's byte limit or a PNG with transparency, a reference video
  outside 2-30 s, more reference images or videos than the model takes -> FAILED ``InvalidParameter`` naming the
  parameter.

A failed task carries no usage (nothing is billed). ``oss://`` inputs are taken as resolved (the simulator has no
OSS; their content is not checked). No URL's query string (a presigned URL's signature) ever reaches a message, a
record or a log line: httpx's own request log lines are redacted while the simulator fetches.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from airflow_provider_wan import __version__
from airflow_provider_wan.media import HEAD_BYTES, MediaInfo, problem, sniff
from airflow_provider_wan.models import SIZE_TIERS, VIDEO_MAX_BYTES
from airflow_provider_wan.simulator.validation import MediaInput, SubmitRequest, shown_url

if TYPE_CHECKING:
    from airflow_provider_wan.simulator.state import SimTask, SimulatorState

log = logging.getLogger(__name__)

#: The codes and messages of a failed input, as DashScope reports them in the task's ``output``.
INVALID = "InvalidParameter"
DATA_INSPECTION = "InvalidParameter.DataInspection"
DATA_INSPECTION_MESSAGE = "The media format is not supported or incorrect for the data inspection."
#: DashScope's observed text is "Failed to download https://…"; the simulator names the resource and keeps the query
#: (a presigned URL's signature) out.
DOWNLOAD_FAILED = "Failed to download the media resource: {url}"
#: The length of a reference video DashScope takes (the Reference-to-video API reference), in seconds.
REFERENCE_VIDEO_SECONDS = (2.0, 30.0)
#: Redirects followed per input.
MAX_REDIRECTS = 10
USER_AGENT = f"wan-simulator/{__version__} (DashScope media fetch)"

#: What an input record says: being fetched, read, read but refused, not fetched, or an ``oss://`` upload taken
#: as resolved.
PENDING, FETCHED, FAILED, REFUSED, SKIPPED, RESOLVED = "pending", "fetched", "failed", "refused", "skipped", "resolved"

#: Set inside the simulator's fetches, so the redacting filter below touches only their log lines.
_FETCHING: contextvars.ContextVar[bool] = contextvars.ContextVar("wan_simulator_fetching", default=False)


class _RedactFetchedUrls(logging.Filter):
    """httpx logs each request's URL (INFO "HTTP Request: GET …"): inside the simulator's fetches, without its query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _FETCHING.get() and isinstance(record.args, tuple):
            record.args = tuple(shown_url(str(arg)) if isinstance(arg, httpx.URL) else arg for arg in record.args)
        return True


logging.getLogger("httpx").addFilter(_RedactFetchedUrls())


@dataclass
class InputRecord:
    """
    What the simulator did with one media input of a task (the admin view's ``inputs``).

    :param name: where the input sits in the body, e.g. ``input.img_url`` or ``input.reference_urls[1]``.
    :param role: ``first_frame``, ``last_frame``, ``reference`` or ``audio``.
    :param url: the URL without its query.
    :param status: ``pending``, ``fetched``, ``failed`` (not downloaded), ``refused`` (read, then refused),
        ``skipped`` (not fetched: a soundtrack, or fetching off) or ``resolved`` (``oss://``, content not checked).
    :param http_status: the final answer's status (after redirects).
    :param size: bytes read.
    :param format: the format by content (``png``, ``jpeg``, ``mp4``...).
    :param kind: ``image``, ``video`` or ``audio`` by content.
    :param width: an image's width in pixels.
    :param height: an image's height in pixels.
    :param seconds: a video's length.
    :param fetches: how many times it was fetched (a redirect chain is one fetch).
    :param error: why it was not downloaded, or why its content was refused.
    """

    name: str
    role: str
    url: str
    status: str
    http_status: int | None = None
    size: int | None = None
    format: str | None = None
    kind: str | None = None
    width: int | None = None
    height: int | None = None
    seconds: float | None = None
    fetches: int = 0
    error: str | None = None

    def apply(self, result: FetchResult) -> None:
        """
        Take in what a fetch gave.

        :param result: the fetch's result.
        """
        self.fetches += 1
        self.http_status = result.http_status
        self.size = result.size
        self.error = result.error
        self.status = FAILED if result.error is not None else FETCHED
        info = result.info
        if info is not None:
            self.format, self.kind, self.width, self.height = info.format, info.kind, info.width, info.height
        self.seconds = None if result.seconds is None else round(result.seconds, 3)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description (``bytes`` is the size read)."""
        return {
            "name": self.name,
            "role": self.role,
            "url": self.url,
            "status": self.status,
            "http_status": self.http_status,
            "bytes": self.size,
            "format": self.format,
            "kind": self.kind,
            "width": self.width,
            "height": self.height,
            "seconds": self.seconds,
            "fetches": self.fetches,
            "error": self.error,
        }


@dataclass(frozen=True)
class FetchResult:
    """
    What one fetch of an input gave.

    :param http_status: the final answer's status, if one came.
    :param size: bytes read.
    :param info: the content as sniffed (None when nothing was read).
    :param seconds: a video's length from its ``mvhd`` box, when readable.
    :param error: why the download failed (never a URL), or None.
    """

    http_status: int | None = None
    size: int = 0
    info: MediaInfo | None = None
    seconds: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class FetchOutcome:
    """
    What a task's inputs mean for it, once all are fetched.

    :param failure: ``(code, message)`` the task fails with, or None.
    :param failed_index: the input that caused the failure.
    :param output_size: the video's ``W*H`` for a tier-shape model whose first frame was read (its tier at the
        nearest aspect ratio), else None.
    :param input_video_seconds: the seconds of reference videos (billed as ``input_video_duration``).
    """

    failure: tuple[str, str] | None = None
    failed_index: int | None = None
    output_size: str | None = None
    input_video_seconds: float = 0.0


@dataclass
class InputFetch:
    """
    A task's media inputs and where their fetching stands.

    :param records: one per input, in body order.
    :param done_at: when the last fetch ended (simulator clock), None while fetching.
    :param failure: ``(code, message)`` when an input failed the task.
    :param output_size: the video size the first frame decided (tier-shape models).
    :param input_video_seconds: seconds of reference videos read.
    """

    records: list[InputRecord]
    done_at: float | None = None
    failure: tuple[str, str] | None = None
    output_size: str | None = None
    input_video_seconds: float = 0.0

    @property
    def done(self) -> bool:
        """Whether every input is fetched (or needs no fetch)."""
        return self.done_at is not None

    @property
    def status(self) -> str:
        """``pending``, ``failed`` or ``done``."""
        if self.done_at is None:
            return PENDING
        return FAILED if self.failure is not None else "done"

    def pending_indexes(self) -> list[int]:
        """The inputs still to fetch."""
        return [index for index, record in enumerate(self.records) if record.status == PENDING]

    def finish(self, now: float, results: Mapping[int, FetchResult], outcome: FetchOutcome) -> None:
        """
        Record the fetches' results and what they mean.

        :param now: the simulator's time.
        :param results: input index -> what its fetch gave.
        :param outcome: the judgement of the whole.
        """
        for index, result in results.items():
            self.records[index].apply(result)
        if outcome.failed_index is not None and outcome.failure is not None:
            record = self.records[outcome.failed_index]
            if record.status == FETCHED:
                record.status, record.error = REFUSED, outcome.failure[1]
        self.done_at = now
        self.failure = outcome.failure
        self.output_size = outcome.output_size
        self.input_video_seconds = outcome.input_video_seconds

    def describe(self, timestamp: Callable[[float], str]) -> dict[str, Any]:
        """
        A JSON-safe description for the admin view.

        :param timestamp: turns the simulator's epoch seconds into its timestamp text.
        """
        return {
            "status": self.status,
            "finished_time": None if self.done_at is None else timestamp(self.done_at),
            "failure": None if self.failure is None else {"code": self.failure[0], "message": self.failure[1]},
            "output_size": self.output_size,
            "input_video_seconds": self.input_video_seconds,
        }


def plan_fetch(request: SubmitRequest, now: float, fetch_inputs: bool, fetch_audio: bool) -> InputFetch | None:
    """
    The fetch a new task needs: None without media inputs; done at once when nothing must go over the network.

    :param request: the validated submission.
    :param now: the submission time (the fetch of a task with nothing to fetch is done then).
    :param fetch_inputs: fetch image and video inputs (the simulator's ``fetch_inputs`` setting).
    :param fetch_audio: fetch soundtracks too (``fetch_audio``).
    """
    if not request.inputs:
        return None
    records = []
    for item in request.inputs:
        if item.oss:
            status = RESOLVED
        elif not fetch_inputs or (item.role == "audio" and not fetch_audio):
            status = SKIPPED
        else:
            status = PENDING
        records.append(InputRecord(item.name, item.role, item.shown, status))
    fetch = InputFetch(records)
    if not fetch.pending_indexes():
        fetch.done_at = now
    return fetch


def nearest_size(tier: str, width: int | None, height: int | None) -> str:
    """
    The size of ``tier`` whose aspect ratio is nearest to an image's (16:9 when the image's size is unknown).

    :param tier: ``480P``, ``720P`` or ``1080P``.
    :param width: the image's width.
    :param height: the image's height.
    """
    sizes = SIZE_TIERS[tier]
    if not width or not height:
        return sizes["16:9"]
    target = math.log(width / height)

    def distance(size: str) -> float:
        w, _, h = size.partition("*")
        return abs(math.log(int(w) / int(h)) - target)

    return min(sizes.values(), key=distance)


def _box(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    """The payload span of the first ISO-BMFF box of type ``kind`` among the boxes in ``data[start:end]``."""
    offset = start
    while offset + 8 <= end:
        size, name = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            if offset + 16 > end:
                return None
            (size,) = struct.unpack_from(">Q", data, offset + 8)
            header = 16
        elif size == 0:
            size = end - offset
        if size < header:
            return None
        if name == kind:
            return offset + header, min(offset + size, end)
        offset += size
    return None


def mp4_seconds(data: bytes) -> float | None:
    """
    An MP4 or MOV file's length from its movie header (``moov/mvhd``), or None when it cannot be read.

    :param data: the whole file.
    """
    moov = _box(data, 0, len(data), b"moov")
    mvhd = _box(data, *moov, b"mvhd") if moov else None
    if mvhd is None:
        return None
    start, end = mvhd
    layout, offset = (">IQ", start + 20) if data[start] == 1 else (">II", start + 12)
    if offset + struct.calcsize(layout) > end:
        return None
    timescale, duration = struct.unpack_from(layout, data, offset)
    return duration / timescale if timescale else None


def _judge(item: MediaInput, result: FetchResult, image_max_bytes: int) -> tuple[str, str] | None:
    """What DashScope would fail the task with for this input, or None."""
    if result.error is not None or result.info is None:
        return INVALID, DOWNLOAD_FAILED.format(url=item.shown)
    info = result.info
    if info.kind not in item.kinds:
        return DATA_INSPECTION, DATA_INSPECTION_MESSAGE
    message = problem(item.name, item.shown, info, result.size, item.kinds, image_max_bytes)
    if message is not None:
        return INVALID, message
    if info.kind == "video":
        if result.seconds is None:
            return DATA_INSPECTION, DATA_INSPECTION_MESSAGE
        low, high = REFERENCE_VIDEO_SECONDS
        if not low <= result.seconds <= high:
            return INVALID, (
                f"{item.name}={item.shown!r} is {result.seconds:.1f} s long; allowed: reference videos of {low:g} "
                f"to {high:g} seconds"
            )
    return None


def assess(request: SubmitRequest, results: Mapping[int, FetchResult]) -> FetchOutcome:
    """
    Judge a task's fetched inputs as DashScope does: the first input in body order that fails decides.

    :param request: the submission.
    :param results: input index -> what its fetch gave (inputs not fetched are absent).
    """
    counts = {"image": 0, "video": 0}
    seconds = 0.0
    for index, item in enumerate(request.inputs):
        result = results.get(index)
        if result is None:
            continue
        failure = _judge(item, result, request.image_max_bytes)
        if failure is not None:
            return FetchOutcome(failure, index)
        if item.role == "reference" and result.info is not None and result.info.kind in counts:
            counts[result.info.kind] += 1
            seconds += result.seconds or 0.0
    cap = request.capability
    if cap is not None and cap.family == "r2v":
        references = [item for item in request.inputs if item.role == "reference"]
        name = references[0].name.rsplit("[", 1)[0] if references else "reference_urls"
        for kind, most in (("image", cap.reference_images), ("video", cap.reference_videos)):
            if counts[kind] > most:
                message = (
                    f"The reference_urls has too many {kind}s for model {request.model}: {name} holds {counts[kind]} "
                    f"{kind}s; allowed: at most {cap.reference_images} images and {cap.reference_videos} videos, "
                    f"{cap.references_max} references in all"
                )
                return FetchOutcome((INVALID, message))
    output_size = None
    if request.resolution is not None:
        first = next((i for i, item in enumerate(request.inputs) if item.role == "first_frame"), None)
        info = results[first].info if first is not None and first in results else None
        if info is not None:
            output_size = nearest_size(request.resolution, info.width, info.height)
    return FetchOutcome(output_size=output_size, input_video_seconds=round(seconds, 3))


async def _download(client: httpx.AsyncClient, url: str) -> FetchResult:
    """GET one input; the head is sniffed, a video is kept whole (at most 100 MB) to read its length."""
    async with client.stream("GET", url) as response:
        if not response.is_success:
            return FetchResult(http_status=response.status_code, error=f"HTTP {response.status_code}")
        head = bytearray()
        whole: bytearray | None = None
        info: MediaInfo | None = None
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if info is None:
                head += chunk
                if len(head) >= HEAD_BYTES:
                    info = sniff(bytes(head[:HEAD_BYTES]))
                    whole = head if info.kind == "video" else None
            elif whole is not None:
                if size > VIDEO_MAX_BYTES:
                    whole = None  # too big anyway: the size decides, not the length
                else:
                    whole += chunk
        if info is None:
            info = sniff(bytes(head))
            whole = head if info.kind == "video" else None
        seconds = mp4_seconds(bytes(whole)) if whole is not None else None
        return FetchResult(http_status=response.status_code, size=size, info=info, seconds=seconds)


class InputFetcher:
    """
    Fetches the media inputs of accepted tasks on the server's event loop, then tells the state what they mean.

    :param state: the simulator state.
    """

    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self._running: set[asyncio.Task[None]] = set()

    def start(self, task: SimTask) -> None:
        """
        Start fetching a new task's inputs in the background (call from the event loop).

        :param task: the task just created.
        """
        fetch = task.fetch
        if fetch is None or fetch.done:
            return
        job = asyncio.get_running_loop().create_task(
            self._run(task.task_id, task.request, fetch.pending_indexes()), name=f"wan-simulator-fetch-{task.task_id}"
        )
        self._running.add(job)
        job.add_done_callback(self._running.discard)

    async def _run(self, task_id: str, request: SubmitRequest, indexes: list[int]) -> None:
        timeout = self.state.config.fetch_timeout_seconds
        _FETCHING.set(True)
        try:
            async with httpx.AsyncClient(
                follow_redirects=True,
                max_redirects=MAX_REDIRECTS,
                timeout=timeout,
                trust_env=False,  # DashScope fetches directly: no proxy from the environment, loopback included
                headers={"User-Agent": USER_AGENT},
            ) as client:
                jobs = (self._one(client, task_id, request.inputs[index], timeout) for index in indexes)
                fetched = await asyncio.gather(*jobs)
            results = dict(zip(indexes, fetched, strict=True))
            outcome = assess(request, results)
        except Exception:  # a simulator bug must not leave the task PENDING for ever
            log.exception("Wan simulator: fetching the inputs of task %s broke", task_id)
            results, outcome = {}, FetchOutcome(("InternalError", "The media inputs could not be processed."))
        self.state.finish_fetch(task_id, results, outcome)
        if outcome.failure is not None:
            log.info("Wan simulator: task %s fails on its inputs: %s %s", task_id, *outcome.failure)

    async def _one(self, client: httpx.AsyncClient, task_id: str, item: MediaInput, timeout: float) -> FetchResult:
        self.state.count("input_fetches")
        try:
            async with asyncio.timeout(timeout):
                result = await _download(client, item.url)
        except TimeoutError:
            result = FetchResult(error=f"no complete answer within {timeout:g} s")
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as err:
            result = FetchResult(error=type(err).__name__)  # the name only: messages may carry the URL
        self.state.count("input_bytes", result.size)
        what = result.error or (result.info.describe() if result.info else "nothing")
        log.info(
            "Wan simulator: task %s fetched %s %s: %s, %d bytes", task_id, item.name, item.shown, what, result.size
        )
        return result
