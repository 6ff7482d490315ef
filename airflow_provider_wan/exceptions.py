"""
The one exception hierarchy of this provider: what went wrong talking to DashScope, and whether trying again helps.

Catch the class that matches what you want to handle::

    WanError                                  base of everything raised here
    ├── WanRequestValidationError             (also ValueError) bad input, found before any HTTP request
    ├── WanConfigurationError                 the connection cannot be used (no key, bad region, bad URL)
    ├── WanTransportError           retryable the network failed before an answer arrived
    │   └── WanAmbiguousSubmitError           a submit was sent but its answer was lost: a task may exist
    ├── WanAPIError                           DashScope answered with an error code (carries code, message,
    │   │                                     request_id, status_code, task_id, retryable)
    │   ├── WanAuthenticationError            InvalidApiKey
    │   ├── WanPermissionError                AccessDenied*, Arrearage, bills overdue, free tier exhausted
    │   ├── WanInvalidRequestError            InvalidParameter, BadRequest.*, InvalidURL, UnsupportedOperation
    │   │   └── WanContentModerationError     DataInspectionFailed, IPInfringementSuspect
    │   ├── WanNotFoundError                  ModelNotFound, WorkSpaceNotFound, Model.NotExist, Endpoint.AccessDenied
    │   ├── WanThrottledError       retryable Throttling*, LimitRequests (HTTP 429)
    │   ├── WanServerError          retryable InternalError*, SystemError, ModelUnavailable, ModelServingError, 5xx
    │   └── WanProtocolError        retryable an answer that cannot be read (not JSON, wrong shape)
    │       └── WanUnexpectedStatusError      a relay reported a task status no vocabulary knows
    ├── WanTaskExpiredError                   the task is UNKNOWN (older than 24 h, or another region/account)
    │   └── WanVideoExpiredError              the signed video link answered 403: it expired after 24 h
    ├── WanTaskCanceledError                  the task was canceled
    ├── WanTimeoutError             retryable the wait ran past its deadline (the task may still finish)
    ├── WanBudgetExceededError                a spend cap (max_cost, daily_budget) refused a submit before its POST
    └── WanTransferError                      the video could not be saved to S3 (WanVideoToS3Operator)
        ├── WanVideoNotReadyError   retryable the task has not SUCCEEDED yet (PENDING, RUNNING)
        ├── WanVideoUnavailableError          the task ended without a video (FAILED, CANCELED) or the link 404s
        ├── WanVideoURLRefusedError           the link or a redirect is not https or not an allowed host
        ├── WanVideoDownloadError   retryable the download failed or was cut short (fewer bytes than announced)
        ├── WanVideoContentError              the body is not an MP4 (an error page); nothing was uploaded
        ├── WanVideoTooLargeError             the video is larger than ``max_bytes``
        ├── WanS3UploadError        retryable S3 failed the upload or a checksum mismatched (upload aborted)
        └── WanS3KeyExistsError               another object is at the key and ``replace`` is off

A task that ends FAILED (HTTP 200 with ``output.code``) raises the same :class:`WanAPIError` subclass its code maps
to, with ``task_id`` set. ``retryable`` says whether the same call (or, for a FAILED task, a new submission) can
succeed later; it is False for everything that would only cost money again.
"""

from __future__ import annotations

from typing import Any


class WanError(Exception):
    """
    Base class of every error raised by this provider.

    :param message: what happened and what to do about it.
    """

    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class WanRequestValidationError(WanError, ValueError):
    """A request parameter is invalid for the chosen model; raised before any HTTP request is sent."""


class WanConfigurationError(WanError):
    """The DashScope connection is unusable (no API key, unknown region, malformed base URL)."""


class WanTransportError(WanError):
    """The network failed (connect error, timeout, dropped connection) before DashScope's answer arrived."""

    retryable = True


class WanAmbiguousSubmitError(WanTransportError):
    """
    A submit was sent but its answer does not prove whether DashScope created (and will bill) a task.

    Raised for a lost answer (connection reset, read timeout), a 2xx without a readable task id, and a 4xx/5xx
    without a DashScope error code (a gateway's page). Never retried automatically: a second POST could create a
    second billed task. The hook first looks for the task with the list API; ``candidates`` holds what it found.

    :param message: what happened and what to do.
    :param candidates: tasks of the same model created around the send time (``task_id``, ``status``,
        ``gmt_create``), any of which may be the one this submit created.
    :param checked: whether the list API could be asked at all.
    """

    retryable = False

    def __init__(self, message: str, *, candidates: list[dict[str, Any]] | None = None, checked: bool = False) -> None:
        super().__init__(message)
        self.candidates = list(candidates or [])
        self.checked = checked

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_ambiguous, (self.message, self.candidates, self.checked))


def _rebuild_ambiguous(message: str, candidates: list[dict[str, Any]], checked: bool) -> WanAmbiguousSubmitError:
    return WanAmbiguousSubmitError(message, candidates=candidates, checked=checked)


class WanAPIError(WanError):
    """
    DashScope answered with an error code, at the HTTP level or as a FAILED task.

    :param message: DashScope's message, or ours when it sent none.
    :param code: DashScope's error code, for example ``InvalidParameter``.
    :param request_id: the id of the HTTP exchange, for Alibaba Cloud support.
    :param status_code: the HTTP status (200 for a FAILED task).
    :param task_id: the DashScope task id, when the error belongs to a task.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        status_code: int | None = None,
        task_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id
        self.status_code = status_code
        self.task_id = task_id

    def __str__(self) -> str:
        details = [
            f"code={self.code}" if self.code else None,
            f"http={self.status_code}" if self.status_code else None,
            f"task_id={self.task_id}" if self.task_id else None,
            f"request_id={self.request_id}" if self.request_id else None,
        ]
        extra = ", ".join(d for d in details if d)
        return f"{self.message} ({extra})" if extra else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep keyword-only fields across pickling (Airflow ships exceptions between processes).
        return (
            _rebuild_api_error,
            (type(self), self.message, self.code, self.request_id, self.status_code, self.task_id),
        )


def _rebuild_api_error(
    cls: type[WanAPIError],
    message: str,
    code: str | None,
    request_id: str | None,
    status_code: int | None,
    task_id: str | None,
) -> WanAPIError:
    return cls(message, code=code, request_id=request_id, status_code=status_code, task_id=task_id)


class WanAuthenticationError(WanAPIError):
    """The API key is missing or wrong for this region (``InvalidApiKey``)."""


class WanPermissionError(WanAPIError):
    """The account may not use this model or workspace, or is out of money (``AccessDenied*``, ``Arrearage``)."""


class WanInvalidRequestError(WanAPIError):
    """DashScope rejected the request's parameters (``InvalidParameter``, ``BadRequest.*``, ``InvalidURL``)."""


class WanContentModerationError(WanInvalidRequestError):
    """The prompt, the audio or the generated video failed content moderation (``DataInspectionFailed``)."""


class WanNotFoundError(WanAPIError):
    """The model or workspace does not exist in this region (``ModelNotFound``, ``WorkSpaceNotFound``)."""


class WanThrottledError(WanAPIError):
    """A rate limit was hit (HTTP 429 ``Throttling*``); it usually recovers within a minute.

    :param retry_after: seconds DashScope asked us to wait, when it said.
    """

    retryable = True
    retry_after: float | None = None


class WanServerError(WanAPIError):
    """DashScope failed internally (``InternalError*``, ``SystemError``, ``ModelUnavailable``, HTTP 5xx)."""

    retryable = True


class WanProtocolError(WanAPIError):
    """An answer could not be read: not JSON (a gateway's HTML page), or missing the fields we need."""

    retryable = True


class WanUnexpectedStatusError(WanProtocolError):
    """
    A relay answered with a task status that no known vocabulary has; waiting longer would not make it readable.

    Not retryable: polling until the deadline would only hide the problem (the status is in the message).
    """

    retryable = False


class WanTaskExpiredError(WanAPIError):
    """The task is ``UNKNOWN``: older than 24 hours, or created in another region or account."""


class WanTaskCanceledError(WanAPIError):
    """The task was canceled before it produced a video."""


class WanTimeoutError(WanError):
    """Waiting for a task ran past its deadline; the task may still be running (and billed) on DashScope.

    :param task_id: the DashScope task id that was being waited on.
    :param reason: which limit passed: ``timeout`` (generation), ``queue_timeout`` or ``deadline`` (wall clock).
    """

    retryable = True

    def __init__(self, message: str, *, task_id: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.reason = reason
        if reason == "queue_timeout":
            self.retryable = False  # a retry would submit anew at the back of the same queue

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_timeout, (self.message, self.task_id, self.reason))


def _rebuild_timeout(message: str, task_id: str | None, reason: str | None = None) -> WanTimeoutError:
    return WanTimeoutError(message, task_id=task_id, reason=reason)


class WanBudgetExceededError(WanError):
    """
    A spend cap refused a submit before its POST: the request's estimate is over ``max_cost``, it would take the
    account over the connection's ``daily_budget``, or a cap is set but no price is known to enforce it.

    Not retryable: the same request is refused the same way (a new day or a higher cap is needed).
    """


#: DashScope error code -> exception class (reference section 5.2 and dashscope-wan-current.md). Prefix rules below
#: cover families; ``Throttling.AllocationQuota`` depends on its message (see :func:`error_class_for`).
ERROR_CODES: dict[str, type[WanAPIError]] = {
    "InvalidApiKey": WanAuthenticationError,
    "NOT AUTHORIZED": WanAuthenticationError,
    "AccessDenied": WanPermissionError,
    "AccessDenied.Unpurchased": WanPermissionError,
    "Workspace.AccessDenied": WanPermissionError,
    "Model.AccessDenied": WanPermissionError,
    "Arrearage": WanPermissionError,
    "AllocationQuota.FreeTierOnly": WanPermissionError,
    "PrepaidBillOverdue": WanPermissionError,
    "PostpaidBillOverdue": WanPermissionError,
    "CommodityNotPurchased": WanPermissionError,
    "InvalidParameter": WanInvalidRequestError,
    "InvalidParameter.DataInspection": WanInvalidRequestError,
    "InvalidURL": WanInvalidRequestError,
    "UnsupportedOperation": WanInvalidRequestError,
    "InvalidFile": WanInvalidRequestError,
    "DataInspectionFailed": WanContentModerationError,
    "IPInfringementSuspect": WanContentModerationError,
    "ModelNotFound": WanNotFoundError,
    "Model.NotExist": WanNotFoundError,
    "WorkSpaceNotFound": WanNotFoundError,
    "Endpoint.AccessDenied": WanNotFoundError,
    "Throttling": WanThrottledError,
    "Throttling.RateQuota": WanThrottledError,
    "Throttling.BurstRate": WanThrottledError,
    "LimitRequests": WanThrottledError,
    "RequestTimeOut": WanServerError,
    "InternalError": WanServerError,
    "InternalError.Algo": WanServerError,
    "InternalError.Timeout": WanServerError,
    "InternalError.Upload": WanServerError,
    "SystemError": WanServerError,
    "ModelUnavailable": WanServerError,
    "ModelServingError": WanServerError,
    "ModelServiceFailed": WanServerError,
    "ServiceUnavailable": WanServerError,
    "GatewayTimeout": WanServerError,
    # Relays (new-api): an unknown task id, and a status no vocabulary knows.
    "task_not_exist": WanTaskExpiredError,
    "UnexpectedStatus": WanUnexpectedStatusError,
}

_PREFIXES: tuple[tuple[str, type[WanAPIError]], ...] = (
    ("Throttling", WanThrottledError),
    ("InternalError", WanServerError),
    ("BadRequest", WanInvalidRequestError),
    ("InvalidParameter", WanInvalidRequestError),
    ("InvalidFile", WanInvalidRequestError),
    ("AccessDenied", WanPermissionError),
)

#: ``Throttling.AllocationQuota`` means two things: a TPS/TPM limit (transient; the quota can be raised) or, with
#: this in its message, "Free allocated quota exceeded" (the free quota is used up and the model is not on
#: pay-as-you-go: permanent until billing changes).
ALLOCATION_QUOTA = "Throttling.AllocationQuota"
FREE_QUOTA_MARKER = "free"

_BY_STATUS: dict[int, type[WanAPIError]] = {
    400: WanInvalidRequestError,
    401: WanAuthenticationError,
    403: WanPermissionError,
    404: WanNotFoundError,
    408: WanServerError,
    413: WanInvalidRequestError,
    415: WanInvalidRequestError,
    429: WanThrottledError,
}

#: What the user should do next, by class; appended to messages raised by operators.
ADVICE: dict[type[WanError], str] = {
    WanAuthenticationError: "check the API key in the connection and that it belongs to the connection's region",
    WanPermissionError: "check the account's balance, the model's activation and the workspace in Model Studio",
    WanContentModerationError: "change the prompt or audio; retrying the same input fails the same way",
    WanInvalidRequestError: "fix the parameters; retrying the same request fails the same way",
    WanNotFoundError: "check the model name and that the region offers it",
    WanThrottledError: "lower concurrency (an Airflow pool) or raise the account's rate limit",
    WanServerError: "DashScope (or a gateway in front of it) had an internal problem; a retry usually succeeds",
    WanProtocolError: "check that the connection's base URL points at a DashScope-compatible endpoint",
    WanUnexpectedStatusError: "the relay reports a status this provider does not know: check the connection's "
    "protocol (dashscope, unified, newapi, openai) and the relay's documentation",
    WanTaskExpiredError: "the video is gone after 24 hours; generate it again",
    WanTaskCanceledError: "the task was canceled; submit it again if the video is still needed",
    WanTimeoutError: "raise `timeout`, or keep waiting with WanTaskSensor on the same task id",
    WanBudgetExceededError: "raise the cap (max_cost on the operator, daily_budget on the connection), ask for a "
    "smaller or shorter video, or wait for the next day (UTC+8); retrying the same request is refused the same way",
    WanAmbiguousSubmitError: "adopt the task that was created (adopt_task_id=... on the operator, or a WanTaskSensor "
    "on its id) or, once you are sure none was, clear the task to submit again; an automatic retry could pay twice",
}


def error_class_for(code: str | None, status_code: int | None, message: str | None = None) -> type[WanAPIError]:
    """
    Pick the exception class for a DashScope error code (falling back to the HTTP status).

    :param code: the ``code`` field of the error body or of a FAILED task.
    :param status_code: the HTTP status of the answer.
    :param message: the error message; it tells the two meanings of ``Throttling.AllocationQuota`` apart.
    """
    if code == ALLOCATION_QUOTA:
        return WanPermissionError if is_free_quota_exhausted(code, message) else WanThrottledError
    if code:
        if code in ERROR_CODES:
            return ERROR_CODES[code]
        for prefix, cls in _PREFIXES:
            if code.startswith(prefix):
                return cls
    if status_code is not None:
        if status_code >= 500:
            return WanServerError
        if status_code in _BY_STATUS:
            return _BY_STATUS[status_code]
    return WanAPIError


def is_free_quota_exhausted(code: str | None, message: str | None) -> bool:
    """
    Whether an error is "Free allocated quota exceeded" (permanent), not a passing TPS/TPM limit.

    :param code: the error code.
    :param message: the error message.
    """
    return code == ALLOCATION_QUOTA and FREE_QUOTA_MARKER in (message or "").lower()


#: What to do next for codes whose class's advice would mislead (exact code first, then a prefix ending in ``.``).
CODE_ADVICE: dict[str, str] = {
    "Endpoint.AccessDenied": "the model was retired by Alibaba: switch `model` to a current one (wan2.7-t2v or "
    "wan2.6-t2v); retrying fails the same way",
    "NOT AUTHORIZED": "check the workspace ID and the endpoint: a workspace domain, the key and the region must "
    "belong together",
    "InvalidFile.": "check the soundtrack (audio_url): wav or mp3 content, 2-30 s, at most 15 MB, and a link DashScope "
    "can download; retrying the same file fails the same way",
    "Throttling.BurstRate": "requests rose too quickly: ramp submissions up gradually (an Airflow pool); a retry "
    "after a pause usually succeeds",
    "InternalError.Timeout": "DashScope gave up on the task after 3 hours without a video (nothing is billed); "
    "submit it again",
    "InternalError.Upload": "DashScope could not store the finished video (nothing is billed); submit it again",
    "ModelServingError": "the model is short of capacity right now; a retry later usually succeeds",
    "ModelServiceFailed": "the model service failed on this task (nothing is billed); submit it again",
    "task_not_exist": "the relay does not know the task (expired, or created through another relay or key); "
    "generate it again",
}
_FREE_QUOTA_ADVICE = (
    "the model's free quota is used up and the model is not on pay-as-you-go: turn off 'free quota only' for it in "
    "Model Studio (billing) or switch model; retrying fails the same way"
)


def advice_for(error: BaseException) -> str | None:
    """
    What to do about ``error``, in one phrase, or None.

    :param error: an exception raised by this provider.
    """
    code, message = getattr(error, "code", None), getattr(error, "message", None)
    if is_free_quota_exhausted(code, message):
        return _FREE_QUOTA_ADVICE
    if code:
        if code in CODE_ADVICE:
            return CODE_ADVICE[code]
        for prefix, advice in CODE_ADVICE.items():
            if prefix.endswith(".") and code.startswith(prefix):
                return advice
    for cls in type(error).__mro__:
        if cls in ADVICE:
            return ADVICE[cls]
    return None


# ----------------------------------------------------------------------------------------- transfer to S3


class WanTransferError(WanError):
    """Base of the errors of :class:`~airflow_provider_wan.transfers.wan_to_s3.WanVideoToS3Operator`."""


class WanVideoNotReadyError(WanTransferError):
    """The task has not SUCCEEDED yet (PENDING, RUNNING, SUSPENDED): there is no video to transfer so far."""

    retryable = True


class WanVideoUnavailableError(WanTransferError):
    """The task ended without a video (FAILED, CANCELED) or its link answered a permanent error (404)."""


class WanVideoURLRefusedError(WanTransferError):
    """The video link or a redirect is not https, or its host is not allowed; nothing was requested from it."""


class WanVideoDownloadError(WanTransferError):
    """The download failed or was cut short (connection lost, fewer bytes than Content-Length, HTTP 5xx)."""

    retryable = True


class WanVideoContentError(WanTransferError):
    """The link served something that is not an MP4 (an error page, XML, JSON); nothing was uploaded."""


class WanVideoTooLargeError(WanTransferError):
    """The video is larger than the transfer's ``max_bytes`` guard."""


class WanS3UploadError(WanTransferError):
    """S3 refused or failed the upload (or a checksum did not match); the multipart upload was aborted."""

    retryable = True


class WanS3KeyExistsError(WanTransferError):
    """A different object already exists at the destination key and ``replace`` is off; it was left untouched."""


class WanVideoExpiredError(WanTaskExpiredError):
    """The signed video link answered 403: it expired (links live 24 hours); the video must be generated again."""


ADVICE.update(
    {
        WanVideoNotReadyError: "wait for the task to finish (WanTextToVideoOperator or WanTaskSensor) before the "
        "transfer; a retry later can succeed",
        WanVideoUnavailableError: "the task produced no video; generate it again if it is still needed",
        WanVideoURLRefusedError: "use the https link DashScope returned, or add its host to `allowed_hosts` or the "
        "connection's `download_hosts` extra",
        WanVideoDownloadError: "the network or the video host failed; a retry downloads it again",
        WanVideoContentError: "the link served an error page instead of the video; check the link or proxy",
        WanVideoTooLargeError: "raise `max_bytes` if this size is expected",
        WanS3UploadError: "check the bucket, the AWS connection's permissions and S3's health; a retry starts over",
        WanS3KeyExistsError: "pass replace=True to overwrite it, or choose another `s3_key`",
        WanVideoExpiredError: "the video link expired (links live 24 hours); generate the video again",
    }
)
