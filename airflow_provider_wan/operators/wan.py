"""
The Wan generate operators: submit a generation and wait for it without holding a worker slot.

One lifecycle (:class:`WanVideoGenerationOperator`) and one operator per intent, differing only in their inputs:
:class:`WanTextToVideoOperator`, :class:`WanImageToVideoOperator`, :class:`WanFirstLastFrameToVideoOperator` and
:class:`WanReferenceToVideoOperator`. Retries reconnect to the task already submitted (Airflow 3.3+
``task_state_store``) instead of paying twice.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from airflow_provider_wan._compat import (
    AIRFLOW_V_3_3_PLUS,
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
)
from airflow_provider_wan._failures import airflow_error
from airflow_provider_wan.events import CANCELED, TIMEOUT, event_error, task_error, validate_event
from airflow_provider_wan.exceptions import (
    WanError,
    WanRequestValidationError,
    WanTaskExpiredError,
    WanTimeoutError,
)
from airflow_provider_wan.hooks.wan import WanHook
from airflow_provider_wan.links import WanTaskLink
from airflow_provider_wan.models import (
    CAPABILITIES,
    DEFAULT_MODEL,
    FAMILY_NAMES,
    INPUT_FIELDS,
    Family,
    TaskStatus,
    WanTask,
    WanVideoRequest,
    get_capability,
)
from airflow_provider_wan.operators._cost import (
    ESTIMATE_KEY,
    PRICED_FIELDS,
    WanCostMixin,
    check_max_cost_statically,
    max_cost_limit,
)
from airflow_provider_wan.operators._inputs import PRESIGN_MAX_SECONDS, InputResolver
from airflow_provider_wan.triggers.wan import WanTaskTrigger
from airflow_provider_wan.waiting import QUEUE_TIMEOUT, WaitPolicy, wait_sync

if TYPE_CHECKING:
    from airflow.sdk import Context

#: task_state_store key holding the submitted task. Never rename: in-flight retries read the old key.
STATE_KEY = "wan_dashscope_task"
#: Default ceiling on how long DashScope may generate one video (videos take 1-5 minutes; queue time not counted).
DEFAULT_TIMEOUT = timedelta(hours=1)
#: Extra seconds given to Airflow's own defer timeout, so the trigger's timeout event wins the race.
DEFER_TIMEOUT_BUFFER = 300.0
_REQUEST_FIELDS = (
    "model",
    "prompt",
    "negative_prompt",
    "size",
    "resolution",
    "aspect_ratio",
    "duration",
    "prompt_extend",
    "watermark",
    "seed",
    "audio",
    "audio_url",
    "shot_type",
    "extra_input",
    "extra_parameters",
    *INPUT_FIELDS,
)
#: What a templated media input stands for while the DAG is parsed (it is checked again once rendered).
_TEMPLATED_INPUT = "s3://templated/input"
_warned_no_state_store = False


def default_deferrable() -> bool:
    """
    Whether operators and sensors defer by default: Airflow's ``[operators] default_deferrable`` when the deployment
    sets it (environment or airflow.cfg), else True, since waiting minutes for a video should not hold a worker slot.
    """
    from airflow.configuration import conf

    explicit = os.environ.get("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE") is not None or (
        configparser.ConfigParser.has_option(conf, "operators", "default_deferrable")
    )
    return conf.getboolean("operators", "default_deferrable", fallback=True) if explicit else True


def missing_connection(err: Exception, what: str) -> AirflowFailException:
    """
    A missing connection fails the task without retries: every retry would fail the same way.

    :param err: the lookup's error.
    :param what: what was being done.
    """
    return AirflowFailException(
        f"{what} failed: {err}. What to do: create the `dashscope` connection (or set DASHSCOPE_API_KEY); "
        f"retrying cannot help until then."
    )


def _seconds(value: float | timedelta | None) -> float | None:
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def positive_seconds(value: Any, name: str) -> float:
    """
    ``value`` as a positive number of seconds (rendered templates arrive as strings).

    :param value: the value given or rendered.
    :param name: the argument's name, for the error.
    """
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0:
        raise WanRequestValidationError(f"{name}={value!r} must be a positive number of seconds")
    return seconds


def is_templated(value: Any, exts: Sequence[str]) -> bool:
    """Whether ``value`` is only known after rendering (a Jinja string, a template file, an XComArg)."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value or value.endswith(tuple(exts))
    if isinstance(value, dict):
        return any(is_templated(v, exts) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(is_templated(v, exts) for v in value)
    return value is not None and not isinstance(value, (int, float, bool))


class WanWaitMixin:
    """What the operator and the sensor share: the hook, deferral and turning an event into a result."""

    dashscope_conn_id: str
    poll_interval: Any  # seconds; a template until rendered
    cancel_on_kill: bool
    log: Any

    @cached_property
    def hook(self) -> WanHook:
        """The hook of ``dashscope_conn_id``."""
        return WanHook(dashscope_conn_id=self.dashscope_conn_id)

    def _limits(self) -> tuple[float | None, float | None]:
        """(generation timeout, queue timeout) of the wait; the sensor has neither, only its own deadline."""
        return None, None

    def _policy(self, deadline: float | None) -> WaitPolicy:
        timeout, queue_timeout = self._limits()
        return WaitPolicy(self.poll_interval, timeout=timeout, queue_timeout=queue_timeout, deadline=deadline)

    def _defer_wait(self, dashscope_task_id: str, deadline: float | None, started_at: float) -> None:
        backstop = (
            None if deadline is None else timedelta(seconds=max(0.0, deadline - time.time()) + DEFER_TIMEOUT_BUFFER)
        )
        timeout, queue_timeout = self._limits()
        self.log.info("Deferring: the triggerer now polls task %s every %g s", dashscope_task_id, self.poll_interval)
        self.defer(  # type: ignore[attr-defined]
            trigger=WanTaskTrigger(
                dashscope_task_id=dashscope_task_id,
                dashscope_conn_id=self.dashscope_conn_id,
                poll_interval=self.poll_interval,
                deadline=deadline,
                cancel_on_kill=self.cancel_on_kill,
                started_at=started_at,
                timeout=timeout,
                queue_timeout=queue_timeout,
            ),
            method_name="execute_complete",
            timeout=backstop,
        )

    def _wait_in_worker(self, dashscope_task_id: str, deadline: float | None) -> WanTask:
        """The same wait policy as the trigger, driven from the worker (``deferrable=False``)."""
        return wait_sync(self.hook, dashscope_task_id, self._policy(deadline), self.log)

    def _retry_reconnects(self, context: Context | None) -> bool:
        """Whether a retry of this try will reconnect to its task (the sensor never submits: no)."""
        return False

    def _at_limit(self, context: Context | None, dashscope_task_id: str, reason: str | None) -> None:
        """
        A wait ended at a limit. A task that is still queued or generating keeps its place when a retry will
        reconnect to it (a queued task's place is worth keeping); otherwise it is canceled, if still PENDING (free),
        so nothing is billed for a video no one will collect. ``queue_timeout`` always cancels: that is its point.
        """
        if reason != QUEUE_TIMEOUT and self._retry_reconnects(context):
            self.log.info(
                "Task %s keeps its place at DashScope: the retry of this task reconnects to it", dashscope_task_id
            )
            return
        self._cancel_best_effort(dashscope_task_id)

    def _check_once(self, dashscope_task_id: str) -> WanTask | None:
        """Read the task before waiting; a transient failure here is left to the wait, not fatal to the try."""
        try:
            return self.hook.get_task(dashscope_task_id)
        except WanError as err:
            if not err.retryable:
                raise
            self.log.warning("Could not check task %s before waiting (%s); waiting anyway", dashscope_task_id, err)
            return None

    def _finish(self, task: WanTask, what: str) -> dict[str, Any]:
        """Return the result of a SUCCEEDED task, raise the matching Airflow error otherwise."""
        error = task_error(task)
        if error is not None:
            raise airflow_error(error, what)
        return task.to_result()

    def _complete(self, event: Any, what: str, context: Context | None = None) -> dict[str, Any]:
        """Validate a trigger event; return the result for ``success``, raise for everything else."""
        try:
            event = validate_event(event)
        except WanError as err:
            raise AirflowException(f"{what}: {err}") from None
        error = event_error(event)
        if error is None:
            self.log.info(
                "Task %s SUCCEEDED after %.0f s (billed %s s)",
                event["task_id"],
                event.get("elapsed") or 0,
                event.get("billed_seconds"),
            )
            return {k: v for k, v in event.items() if k not in ("status", "elapsed")}
        if event["status"] == TIMEOUT:
            self._at_limit(context, event["task_id"], event.get("reason"))
        raise airflow_error(error, what)

    def _cancel_best_effort(self, dashscope_task_id: str) -> None:
        if not self.cancel_on_kill:
            return
        if not self.hook.protocol.supports_cancel:
            self.log.warning("The connection's protocol cannot cancel; task %s keeps running", dashscope_task_id)
            return
        try:
            self.hook.cancel_task(dashscope_task_id)
            self.log.info("Canceled DashScope task %s", dashscope_task_id)
        except WanError as err:
            self.log.warning(
                "Could not cancel task %s (DashScope cancels only PENDING tasks): %s", dashscope_task_id, err
            )


class WanVideoGenerationOperator(WanCostMixin, WanWaitMixin, BaseOperator):
    """
    Generate a video with any Wan model and wait for it, deferring to the triggerer by default.

    The lifecycle every generate operator shares; use the operator of your intent (:class:`WanTextToVideoOperator`,
    :class:`WanImageToVideoOperator`, :class:`WanFirstLastFrameToVideoOperator`,
    :class:`WanReferenceToVideoOperator`), which differ only in their inputs and default model.

    The DashScope task id is pushed to XCom (key ``task_id``) as soon as the task exists. The return value is a
    JSON dict: task id and status, model, request, size, duration, seed, billed seconds, usage, original and
    rewritten prompt, timestamps and request id. It never contains the signed ``video_url`` (a 24-hour bearer
    link); :class:`~airflow_provider_wan.transfers.wan_to_s3.WanVideoToS3Operator` fetches it fresh by task id.

    Parameters that are not templated are validated when the DAG is parsed; everything is validated again after
    rendering, before the request is sent. Content moderation, invalid parameters, a bad key and account problems
    fail the task without retries (:class:`AirflowFailException`); throttling, server errors and timeouts raise
    ordinary errors so Airflow's retries apply. A submit whose answer does not prove whether a task was created
    (a lost answer, a gateway page) is never retried: the account's task list is checked, and the error names the
    tasks that may be it (adopt one with ``adopt_task_id``).

    Retries and clears (Airflow 3.3+ ``task_state_store``), as Airflow's durable operators: a stored task still
    queued or running is waited on again (its place in DashScope's queue is kept); a failed, canceled or expired one
    is replaced by a fresh submit; a succeeded one is returned without a new bill (a clear of a generation that
    already delivered its video says so in the log; ``regenerate=True`` makes it generate a new one). Clearing a
    deferred task cancels its task if it is still PENDING (``cancel_on_kill``); the new try then submits a fresh
    one instead of failing on that cancel.

    Media inputs (``img_url``, ``first_frame_url``, ``last_frame_url``, ``reference_urls``, ``audio_url``) may be
    ``s3://bucket/key`` URIs: just before the submit each is checked (format by content, pixel size, file size)
    and presigned through the amazon provider's S3 hook (``aws_conn_id``) for the task's lifetime; the signed URL
    is masked in logs and never stored (XCom, rendered fields and the result keep the ``s3://`` URI). https URLs
    are checked the same way with a ranged GET when the worker can reach them; ``oss://`` uploads are sent as given.
    A bad input fails the task without retry and without any request to DashScope.

    Templated: ``prompt``, ``negative_prompt``, ``model``, ``size``, ``resolution``, ``aspect_ratio``,
    ``duration``, ``seed``, ``audio_url``, ``shot_type``, ``extra_input``, ``extra_parameters``,
    ``poll_interval``, ``adopt_task_id``, ``max_cost`` and the media inputs; a ``prompt``
    ending in ``.txt``, ``.md`` or ``.j2`` is read from that file next to the DAG.

    :param prompt: what the video shows (1500 characters for wan2.5/2.6, 800 for older models); optional for
        image-to-video and first-and-last-frame models.
    :param negative_prompt: what it must not show (at most 500 characters).
    :param model: the Wan model, ``wan2.6-t2v`` by default; newer models pass through with a warning.
    :param size: ``W*H`` such as ``1280*720`` (``1280x720`` works too).
    :param resolution: ``480P``, ``720P`` or ``1080P``, with ``aspect_ratio``, instead of ``size``.
    :param aspect_ratio: ``16:9``, ``9:16``, ``1:1``, ``4:3`` or ``3:4`` (with ``resolution``).
    :param duration: seconds of video, billed per second (wan2.6: 2-15; others: per model).
    :param prompt_extend: let DashScope rewrite the prompt (DashScope's default: on).
    :param watermark: add the "AI-generated" watermark (default: off).
    :param seed: an integer in [0, 2147483647] for more repeatable results.
    :param audio: auto-dubbing on or off (wan2.5 and wan2.6 only).
    :param audio_url: a wav/mp3 soundtrack: an ``s3://`` URI, an https URL or an ``oss://`` upload.
    :param shot_type: ``single`` or ``multi`` (wan2.6 multi-shot narrative; needs prompt_extend on).
    :param extra_input: more ``input`` fields, passed through verbatim (for API additions).
    :param extra_parameters: more ``parameters`` fields, passed through verbatim.
    :param truncate_prompt: cut over-long prompts to the model's limit instead of failing.
    :param dashscope_conn_id: the ``dashscope`` connection.
    :param deferrable: wait on the triggerer instead of in the worker. Default: Airflow's
        ``[operators] default_deferrable`` when the deployment sets it, else True.
    :param wait_for_completion: wait for the video; with False, return right after the submit (use
        :class:`~airflow_provider_wan.sensors.wan.WanTaskSensor` later).
    :param poll_interval: seconds between status polls (DashScope suggests 15); templated.
    :param timeout: how long DashScope may spend generating, in seconds or a timedelta (default one hour), counted
        from the first time the task is seen RUNNING: time queued PENDING behind the account's other tasks does not
        count (the place in the queue is worth keeping). ``execution_timeout`` stays a wall-clock bound on the try.
    :param queue_timeout: how long the task may wait PENDING in DashScope's queue before it is canceled (free) and
        the task fails without retry; None (default): as long as it is queued.
    :param cancel_on_kill: cancel the DashScope task when the Airflow task is killed, cleared or marked, or
        times out (best effort: only PENDING tasks can be canceled).
    :param adopt_task_id: wait for this existing DashScope task instead of submitting one (templated), for
        example a candidate named by an ambiguous-submit error; it is remembered for retries.
    :param regenerate: when a cleared try finds that this task instance already delivered its video, generate
        (and pay for) a new one instead of returning the stored result.
    :param max_cost: the most this video may cost: a number in the price's currency, or ``{"amount": 1.5,
        "currency": "USD"}`` (templated). The estimate (logged before the POST, XCom ``estimated_cost``) uses the
        effective size and duration, model defaults included, and the connection's region and ``prices``; over
        it, or with no known price, the task fails without retry and without any request. At DAG parse time (no
        connection read) a static request is refused only when it is over ``max_cost`` at the lowest list price of
        every region. The connection's ``daily_budget`` caps the account's day (UTC+8) the same way. The result
        carries ``estimated_cost`` and, once the task succeeded, ``billed_cost`` (from DashScope's ``usage``).
    :param img_url: the first frame (image-to-video).
    :param first_frame_url: the first frame (first-and-last-frame).
    :param last_frame_url: the last frame (first-and-last-frame; wan2.7 image-to-video).
    :param reference_urls: reference images and videos (reference-to-video), named ``character1``, ... in the prompt.
    :param aws_conn_id: the AWS connection that reads and presigns ``s3://`` inputs.
    """

    #: The family this operator generates (None: any); a model of another family is refused at parse time.
    family: ClassVar[Family | None] = None
    #: The model used when none is given.
    default_model: ClassVar[str] = DEFAULT_MODEL

    template_fields: Sequence[str] = (
        "prompt",
        "negative_prompt",
        "model",
        "size",
        "resolution",
        "aspect_ratio",
        "duration",
        "seed",
        "audio_url",
        "shot_type",
        "extra_input",
        "extra_parameters",
        "poll_interval",
        "adopt_task_id",
        "max_cost",
        *INPUT_FIELDS,
    )
    template_ext: Sequence[str] = (".txt", ".md", ".j2")
    template_fields_renderers = {
        "prompt": "md",
        "extra_input": "json",
        "extra_parameters": "json",
        "reference_urls": "json",
    }
    ui_color = "#ff6a00"
    operator_extra_links = (WanTaskLink(),)

    def __init__(
        self,
        *,
        prompt: str | None = None,
        negative_prompt: str | None = None,
        model: str | None = None,
        size: str | None = None,
        resolution: str | None = None,
        aspect_ratio: str | None = None,
        duration: int | str | None = None,
        prompt_extend: bool | None = None,
        watermark: bool | None = None,
        seed: int | str | None = None,
        audio: bool | None = None,
        audio_url: str | None = None,
        shot_type: str | None = None,
        extra_input: dict[str, Any] | None = None,
        extra_parameters: dict[str, Any] | None = None,
        truncate_prompt: bool = False,
        dashscope_conn_id: str = WanHook.default_conn_name,
        deferrable: bool | None = None,
        wait_for_completion: bool = True,
        poll_interval: float | str = 15.0,
        timeout: float | timedelta | None = DEFAULT_TIMEOUT,
        queue_timeout: float | timedelta | None = None,
        cancel_on_kill: bool = True,
        adopt_task_id: str | None = None,
        regenerate: bool = False,
        max_cost: float | str | dict[str, Any] | None = None,
        img_url: str | None = None,
        first_frame_url: str | None = None,
        last_frame_url: str | None = None,
        reference_urls: Sequence[str] | str | None = None,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.negative_prompt = negative_prompt
        self.model = model or self.default_model
        self.img_url = img_url
        self.first_frame_url = first_frame_url
        self.last_frame_url = last_frame_url
        self.reference_urls = list(reference_urls) if isinstance(reference_urls, (list, tuple)) else reference_urls
        self.aws_conn_id = aws_conn_id
        self.size = size
        self.resolution = resolution
        self.aspect_ratio = aspect_ratio
        self.duration = duration
        self.prompt_extend = prompt_extend
        self.watermark = watermark
        self.seed = seed
        self.audio = audio
        self.audio_url = audio_url
        self.shot_type = shot_type
        self.extra_input = extra_input or {}
        self.extra_parameters = extra_parameters or {}
        self.truncate_prompt = truncate_prompt
        self.dashscope_conn_id = dashscope_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.wait_for_completion = wait_for_completion
        self.poll_interval: Any = (
            poll_interval if is_templated(poll_interval, ()) else positive_seconds(poll_interval, "poll_interval")
        )
        self.timeout = _seconds(timeout)
        self.queue_timeout = _seconds(queue_timeout)
        self.cancel_on_kill = cancel_on_kill
        self.adopt_task_id = adopt_task_id
        self.regenerate = regenerate
        self.max_cost = max_cost
        self._dashscope_task_id: str | None = None
        self._check_at_parse_time()

    # ----------------------------------------------------------------------------------------- request

    def _request_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _REQUEST_FIELDS}

    def _check_at_parse_time(self) -> None:
        """Validate what is already known, so a bad size fails at DAG import rather than at 3 a.m."""
        fields, templated = {}, []
        for name, value in self._request_fields().items():
            if is_templated(value, self.template_ext):
                templated.append(name)
            else:
                fields[name] = value
        if "prompt" in templated:
            fields["prompt"] = "(templated)"
        for name in INPUT_FIELDS:
            if name in templated:  # known once rendered: stand in a placeholder so "required" holds
                fields[name] = [_TEMPLATED_INPUT] if name == "reference_urls" else _TEMPLATED_INPUT
        fields.setdefault("model", self.default_model)
        if "model" in templated:
            kept = ("prompt", "seed", "duration", "audio_url", "model", *INPUT_FIELDS)
            fields = {k: v for k, v in fields.items() if k in kept}
        else:
            self._check_family(str(fields["model"]))
        request = WanVideoRequest.build(
            **fields,
            truncate_prompt=True if "prompt" in templated else self.truncate_prompt,
            skip_capabilities="model" in templated,
        )
        if not is_templated(self.max_cost, ()):
            priced = [name for name in templated if name in PRICED_FIELDS]
            check_max_cost_statically(request, max_cost_limit(self.max_cost), priced)

    def _check_family(self, model: str) -> None:
        """Refuse a model of another family than this operator's, naming the operator that takes it."""
        cap = get_capability(model)
        if self.family is None or cap is None or cap.family == self.family:
            return
        ours = [c.name for c in CAPABILITIES if c.family == self.family]
        raise WanRequestValidationError(
            f"Invalid Wan video request: model={model!r} is a {FAMILY_NAMES[cap.family]} model; "
            f"{type(self).__name__} generates {FAMILY_NAMES[self.family]} (models: {', '.join(ours)}). "
            f"Use {OPERATOR_BY_FAMILY[cap.family]} for {model!r}"
        )

    def build_request(self) -> WanVideoRequest:
        """The rendered, validated request (raises :class:`WanRequestValidationError` naming the parameter)."""
        self._check_family(str(self.model))
        return WanVideoRequest.build(**self._request_fields(), truncate_prompt=self.truncate_prompt)

    def _fingerprint(self, request: WanVideoRequest) -> str:
        return hashlib.sha256(json.dumps(request.summary(), sort_keys=True).encode()).hexdigest()[:16]

    def _describe(self, request: WanVideoRequest) -> dict[str, Any]:
        summary = request.summary()
        described = {"model": request.model, "request": summary, "duration": summary["duration"], "seed": request.seed}
        return {**described, ESTIMATE_KEY: self._estimate(request).to_dict()}

    # ----------------------------------------------------------------------------------------- execute

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate, reconnect, adopt or submit, then wait (deferred by default)."""
        try:
            request = self.build_request()
            self.poll_interval = positive_seconds(self.poll_interval, "poll_interval")
        except WanRequestValidationError as err:
            raise airflow_error(err, "Wan video request") from None
        try:
            context["ti"].xcom_push(key=ESTIMATE_KEY, value=self._estimate(request).to_dict())
            task_id, known = self._reconnect_or_submit(context, request)
            if known is not None and known.task_status.is_terminal:
                return self._deliver(context, request, known)
            if not self.wait_for_completion:
                return {**self._describe(request), "task_id": task_id, "task_status": "PENDING"}
            return self._wait(context, request, task_id)
        except WanError as err:
            if isinstance(err, WanTimeoutError) and self._dashscope_task_id:
                self._at_limit(context, self._dashscope_task_id, err.reason)
            raise airflow_error(err, "Wan video generation") from None
        except AirflowNotFoundException as err:
            raise missing_connection(err, "Wan video generation") from None

    def _wait(self, context: Context, request: WanVideoRequest, task_id: str) -> dict[str, Any]:
        """Wait for ``task_id``: check once, then defer (or poll in the worker); resubmit after a clear's cancel."""
        started = self._first_submitted(context)
        deadline = self._deadline(context, time.time())
        task = self._check_once(task_id)  # a fast task never needs the triggerer
        if task is None or not task.task_status.is_terminal:
            if self.deferrable:
                self._defer_wait(task_id, deadline, started)
            task = self._wait_in_worker(task_id, deadline)
        if self._canceled_by_earlier_try(context, task):
            return self._wait(context, request, self._submit(context, request))
        return self._deliver(context, request, task)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: return the result for ``success``, raise for everything else."""
        try:
            request: WanVideoRequest | None = self.build_request()
        except WanRequestValidationError:
            request = None
        if request is not None and isinstance(event, dict) and event.get("status") == CANCELED:
            canceled = WanTask(task_id=str(event.get("task_id")), task_status=TaskStatus.CANCELED)
            if self._canceled_by_earlier_try(context, canceled):
                try:
                    return self._wait(context, request, self._submit(context, request))
                except WanError as err:
                    raise airflow_error(err, "Wan video generation") from None
        if isinstance(event, dict) and event.get("task_id"):
            self._dashscope_task_id = str(event["task_id"])  # a fresh operator after deferral: lineage needs it
        result = self._complete(event, "Wan video generation", context)
        self._mark_delivered(context)
        if request is None:
            return {"model": self.model, **result}
        return self._with_billed(request, {**self._describe(request), **result})

    def _deliver(self, context: Context, request: WanVideoRequest, task: WanTask) -> dict[str, Any]:
        """The result of a finished task (raising for a failed one), recorded as delivered for later clears."""
        result = {**self._describe(request), **self._finish(task, "Wan video generation")}
        self._mark_delivered(context)
        return self._with_billed(request, result)

    def _limits(self) -> tuple[float | None, float | None]:
        return self.timeout, self.queue_timeout

    def _retry_reconnects(self, context: Context | None) -> bool:
        ti = context.get("ti") if context is not None else None
        retries_left = getattr(ti, "try_number", 1) <= getattr(ti, "max_tries", self.retries or 0)
        return retries_left and context is not None and self._state_store(context) is not None

    def _deadline(self, context: Context, now: float) -> float | None:
        """The wall-clock bound of this try: ``execution_timeout`` (Airflow does not enforce it while deferred)."""
        if self.execution_timeout is None:
            return None
        ti = context.get("ti")
        start = getattr(ti, "start_date", None)
        began = start.timestamp() if start is not None else now
        return began + self.execution_timeout.total_seconds()

    # ----------------------------------------------------------------------------------------- reconnect

    def _reconnect_or_submit(self, context: Context, request: WanVideoRequest) -> tuple[str, WanTask | None]:
        """
        Decide between the task of an earlier try (or ``adopt_task_id``) and a fresh submit.

        As Airflow's ResumableJobMixin, for retries and clears alike: a stored task that is still queued or
        running is waited on; a failed, canceled or expired one is replaced by a fresh submit; a succeeded one is
        returned, unless it was already delivered once and ``regenerate`` asks for a new video.
        """
        adopt = str(self.adopt_task_id or "").strip()
        if adopt:
            return self._adopt(context, request, adopt)
        stored = self._stored(context)
        if stored is not None and stored.get("fingerprint") != self._fingerprint(request):
            self.log.warning("The request changed since task %s was submitted; submitting anew", stored["task_id"])
        elif stored is not None:
            task = self.hook.get_task(stored["task_id"])
            status = task.task_status
            if status is TaskStatus.SUCCEEDED and stored.get("delivered") and self.regenerate:
                self.log.warning(
                    "Task %s already delivered its video to an earlier try; regenerate=True, so a new video is "
                    "generated (and billed)",
                    task.task_id,
                )
            elif status.is_active or status is TaskStatus.SUCCEEDED:
                self._log_reconnect(task, stored)
                self._remember(context, task.task_id)
                return task.task_id, task
            else:
                self.log.warning("Earlier task %s ended %s; submitting anew", task.task_id, status.value)
        return self._submit(context, request), None

    def _log_reconnect(self, task: WanTask, stored: dict[str, Any]) -> None:
        if task.task_status is TaskStatus.SUCCEEDED and stored.get("delivered"):
            self.log.warning(
                "This task instance already generated its video (DashScope task %s, submitted by try %s): it is "
                "returned again and nothing new is generated or billed. To generate a new video, pass "
                "regenerate=True, change the request, or delete the task state key %r",
                task.task_id,
                stored.get("try_number"),
                STATE_KEY,
            )
            return
        self.log.info(
            "Reconnecting to DashScope task %s (%s) submitted by try %s; not submitting again",
            task.task_id,
            task.task_status.value,
            stored.get("try_number"),
        )

    def _adopt(self, context: Context, request: WanVideoRequest, task_id: str) -> tuple[str, WanTask | None]:
        task = self.hook.get_task(task_id)
        if task.task_status is TaskStatus.UNKNOWN:
            raise WanTaskExpiredError(
                f"adopt_task_id={task_id!r} is UNKNOWN to DashScope: it does not exist in this account and region, "
                f"or it expired after 24 hours",
                code="UNKNOWN",
                task_id=task_id,
            )
        self.log.info("Adopting DashScope task %s (%s) instead of submitting", task_id, task.task_status.value)
        self._record(context, request, task_id)
        self._remember(context, task_id)
        return task_id, task

    def _submit(self, context: Context, request: WanVideoRequest) -> str:
        guard, cost = self._check_daily_budget(self._check_max_cost(request))
        if request.input_uris():
            # Checked and presigned now, just before the POST: the signed URLs live only in the wire request.
            request = InputResolver(self.aws_conn_id, self._presign_seconds(), self.log).resolve(request)
        submitted = self.hook.submit_task(request)
        guard.record(submitted.task_id, cost)
        self._record(context, request, submitted.task_id)
        self._remember(context, submitted.task_id)
        self.log.info(
            "Submitted DashScope task %s: model %s, size %s, %s s; %s s will be billed on success (request %s)",
            submitted.task_id,
            request.model,
            request.effective_size or f"{request.effective_resolution} at the input image's aspect ratio",
            request.effective_duration,
            request.effective_duration,
            submitted.request_id,
        )
        return submitted.task_id

    def _presign_seconds(self) -> int:
        """
        How long a presigned input stays valid: the task's lifetime at DashScope (its queue time, 24 hours unless
        ``queue_timeout`` says less, plus its generation ``timeout``), within SigV4's 7-day limit.
        """
        queued = self.queue_timeout if self.queue_timeout is not None else 24 * 3600.0
        return int(min(PRESIGN_MAX_SECONDS, queued + (self.timeout or DEFAULT_TIMEOUT.total_seconds()) + 600))

    def _canceled_by_earlier_try(self, context: Context, task: WanTask) -> bool:
        """
        Whether ``task`` ended CANCELED because a user cleared an earlier try while it waited (that try's kill
        cancels its PENDING task), after this try had already reconnected to it. A canceled task was never billed,
        so this try submits a fresh one instead of failing.
        """
        if task.task_status is not TaskStatus.CANCELED:
            return False
        stored = self._stored(context)
        ti = context.get("ti")
        earlier = (
            stored is not None
            and stored.get("task_id") == task.task_id
            and stored.get("try_number") != getattr(ti, "try_number", None)
        )
        if earlier:
            self.log.warning(
                "Task %s, submitted by try %s, was canceled when that try was cleared; submitting anew",
                task.task_id,
                stored.get("try_number") if stored else None,
            )
        return earlier

    # ----------------------------------------------------------------------------------------- state store

    def _stored(self, context: Context) -> dict[str, Any] | None:
        store = self._state_store(context)
        stored = store.get(STATE_KEY) if store is not None else None
        return stored if isinstance(stored, dict) and stored.get("task_id") else None

    def _record(self, context: Context, request: WanVideoRequest, task_id: str) -> None:
        store = self._state_store(context)
        if store is None:
            return
        previous = self._stored(context) or {}
        store.set(
            STATE_KEY,
            {
                "task_id": task_id,
                "fingerprint": self._fingerprint(request),
                "submitted_at": time.time(),
                "first_submitted_at": previous.get("first_submitted_at") or previous.get("submitted_at") or time.time(),
                "try_number": getattr(context.get("ti"), "try_number", None),
                "delivered": False,
            },
        )

    def _mark_delivered(self, context: Context) -> None:
        store = self._state_store(context)
        stored = self._stored(context)
        if store is not None and stored is not None and not stored.get("delivered"):
            store.set(STATE_KEY, {**stored, "delivered": True})

    def _first_submitted(self, context: Context) -> float:
        """When this task instance first submitted, across retries and clears (elapsed times count from there)."""
        stored = self._stored(context) or {}
        return float(stored.get("first_submitted_at") or stored.get("submitted_at") or time.time())

    def _remember(self, context: Context, dashscope_task_id: str) -> None:
        self._dashscope_task_id = dashscope_task_id
        context["ti"].xcom_push(key="task_id", value=dashscope_task_id)

    def _state_store(self, context: Context) -> Any:
        global _warned_no_state_store
        store = context.get("task_state_store") if AIRFLOW_V_3_3_PLUS else None  # type: ignore[typeddict-item]
        if store is None and not _warned_no_state_store:
            _warned_no_state_store = True
            self.log.warning(
                "Airflow %s has no task_state_store: a retry of this task submits (and bills) a new video. "
                "Airflow 3.3+ reconnects to the task already submitted.",
                "< 3.3" if not AIRFLOW_V_3_3_PLUS else "without a state store",
            )
        return store

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """
        OpenLineage for the OpenLineage listener: the DashScope task as output, the soundtrack as input.

        :param task_instance: the finished task instance.
        """
        from airflow_provider_wan.lineage import generation_lineage

        # The listener may run in a forked process where reading XCom hangs: pass the id this operator holds.
        return generation_lineage(self, task_instance, dashscope_task_id=self._dashscope_task_id)

    def on_kill(self) -> None:
        """Cancel the DashScope task when the worker-side wait is killed (best effort, PENDING only)."""
        if self._dashscope_task_id:
            self._cancel_best_effort(self._dashscope_task_id)


class WanTextToVideoOperator(WanVideoGenerationOperator):
    """
    Generate a video from a prompt with a Wan text-to-video model (``wan2.6-t2v`` by default) and wait for it.

    Everything but the inputs is :class:`WanVideoGenerationOperator`'s: see it for the parameters, retries, clears
    and the result.

    :param prompt: what the video shows (1500 characters for wan2.5/2.6, 800 for older models).
    :param model: a text-to-video model (:data:`~airflow_provider_wan.models.CAPABILITIES`, family ``t2v``).
    :param kwargs: the parameters of :class:`WanVideoGenerationOperator`.
    """

    family = "t2v"
    default_model = DEFAULT_MODEL

    def __init__(self, *, prompt: str, model: str | None = None, **kwargs: Any) -> None:
        super().__init__(prompt=prompt, model=model, **kwargs)


class WanImageToVideoOperator(WanVideoGenerationOperator):
    """
    Animate an image: the video starts from ``img_url`` (``wan2.6-i2v-flash`` by default) and follows the prompt.

    The video takes the image's aspect ratio; choose its ``resolution`` tier. Everything but the inputs is
    :class:`WanVideoGenerationOperator`'s.

    :param img_url: the first frame: an ``s3://`` URI (presigned for the task), an https URL or an ``oss://``
        upload; JPEG, PNG (no transparency), BMP or WEBP of 360-2000 px per side (templated).
    :param prompt: the motion and story (optional).
    :param model: an image-to-video model (family ``i2v``).
    :param last_frame_url: the last frame, for models that take one (wan2.7-i2v).
    :param kwargs: the parameters of :class:`WanVideoGenerationOperator` (``resolution``, ``duration``,
        ``audio_url``, ``shot_type``, ...).
    """

    family = "i2v"
    default_model = "wan2.6-i2v-flash"

    def __init__(
        self,
        *,
        img_url: str,
        prompt: str | None = None,
        model: str | None = None,
        last_frame_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(img_url=img_url, prompt=prompt, model=model, last_frame_url=last_frame_url, **kwargs)


class WanFirstLastFrameToVideoOperator(WanVideoGenerationOperator):
    """
    Generate the motion between two keyframes (``wan2.2-kf2v-flash`` by default): the video starts at
    ``first_frame_url`` and ends at ``last_frame_url``.

    The video takes the first frame's aspect ratio; choose its ``resolution`` tier. Everything but the inputs is
    :class:`WanVideoGenerationOperator`'s.

    :param first_frame_url: the first frame: an ``s3://`` URI, an https URL or an ``oss://`` upload (templated).
    :param last_frame_url: the last frame, likewise.
    :param prompt: what happens in between (optional).
    :param model: a first-and-last-frame model (family ``kf2v``).
    :param kwargs: the parameters of :class:`WanVideoGenerationOperator`.
    """

    family = "kf2v"
    default_model = "wan2.2-kf2v-flash"

    def __init__(
        self,
        *,
        first_frame_url: str,
        last_frame_url: str,
        prompt: str | None = None,
        model: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            first_frame_url=first_frame_url, last_frame_url=last_frame_url, prompt=prompt, model=model, **kwargs
        )


class WanReferenceToVideoOperator(WanVideoGenerationOperator):
    """
    Cast subjects from reference images and clips (``wan2.6-r2v-flash`` by default) into a new scene.

    The prompt names each reference by its place in ``reference_urls``: ``character1`` is the first, and so on.
    Everything but the inputs is :class:`WanVideoGenerationOperator`'s (``size`` or ``resolution`` +
    ``aspect_ratio``, ``duration``, ``shot_type``, ``audio``, ...).

    :param reference_urls: 1 to 5 references (at most 3 videos): ``s3://`` URIs, https URLs or ``oss://`` uploads;
        images as for image-to-video, MP4/MOV clips of 2-30 s and at most 100 MB (templated).
    :param prompt: the scene, naming the references ``character1``, ``character2``, ...
    :param model: a reference-to-video model (family ``r2v``).
    :param kwargs: the parameters of :class:`WanVideoGenerationOperator`.
    """

    family = "r2v"
    default_model = "wan2.6-r2v-flash"

    def __init__(
        self, *, reference_urls: Sequence[str] | str, prompt: str, model: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(reference_urls=reference_urls, prompt=prompt, model=model, **kwargs)


#: The operator of each family, for error messages.
OPERATOR_BY_FAMILY: dict[str, str] = {
    "t2v": WanTextToVideoOperator.__name__,
    "i2v": WanImageToVideoOperator.__name__,
    "kf2v": WanFirstLastFrameToVideoOperator.__name__,
    "r2v": WanReferenceToVideoOperator.__name__,
}
