"""
WanHook: the ``dashscope`` connection turned into sync and async DashScope clients.

Sync and async twins (``get_task`` / ``aget_task``) differ only in transport; both go through :mod:`protocol`.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from functools import cached_property
from typing import Any, TypeVar

import httpx
from airflow.sdk import BaseHook

from airflow_provider_wan import __version__
from airflow_provider_wan._compat import AirflowNotFoundException, mask_secret
from airflow_provider_wan.events import task_error
from airflow_provider_wan.exceptions import WanAmbiguousSubmitError, WanError, WanThrottledError
from airflow_provider_wan.hooks._transport import (
    TLS_CONTEXT,
    RetryPolicy,
    SharedAsyncClient,
    _SharedClient,
    transport_error,
)
from airflow_provider_wan.hooks._watch import TaskWatcher, Watch
from airflow_provider_wan.models import TaskStatus, WanTask, WanVideoRequest, check_region, get_capability
from airflow_provider_wan.protocol import (
    AMBIGUITY_MAX_PAGES,
    HttpRequest,
    HttpResponse,
    SubmitResult,
    WanProtocol,
    WanTaskPage,
    candidate_filters,
    candidates_of,
    get_protocol,
)
from airflow_provider_wan.settings import UI_FIELD_BEHAVIOUR, WanConnectionSettings, form_fields
from airflow_provider_wan.waiting import WaitPolicy, wait_sync

T = TypeVar("T")

ENV_API_KEY = "DASHSCOPE_API_KEY"
ENV_REGION = "DASHSCOPE_REGION"
ENV_BASE_URL = "DASHSCOPE_BASE_URL"
ENV_WORKSPACE = "DASHSCOPE_WORKSPACE"
#: How many times a submit whose answer was lost is sent again once the task list proved no task was created.
AMBIGUOUS_RESUBMITS = 1


def user_agent() -> str:
    """The User-Agent every request carries: this package, Airflow, httpx and Python versions."""
    try:
        from airflow import __version__ as airflow_version
    except ImportError:  # pragma: no cover - Airflow is a dependency
        airflow_version = "unknown"
    return (
        f"airflow-provider-wan/{__version__} apache-airflow/{airflow_version} "
        f"httpx/{httpx.__version__} python/{platform.python_version()}"
    )


def _env_settings(conn_id: str) -> WanConnectionSettings | None:
    if not os.environ.get(ENV_API_KEY):
        return None
    extra = {"region": os.environ.get(ENV_REGION), "base_url": os.environ.get(ENV_BASE_URL)}
    extra["workspace"] = os.environ.get(ENV_WORKSPACE)
    return WanConnectionSettings.from_parts(
        password=os.environ[ENV_API_KEY],
        host=None,
        port=None,
        schema=None,
        extra={k: v for k, v in extra.items() if v},
        source=f"environment ({ENV_API_KEY}, connection {conn_id!r} not found)",
    )


def _conn_settings(conn: Any) -> WanConnectionSettings:
    # Parse the raw extra ourselves: Connection.extra_dejson masks secrets synchronously, which can deadlock in
    # an async context on some Airflow versions.
    raw = conn.extra or "{}"
    try:
        extra = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except ValueError:
        extra = {}
    return WanConnectionSettings.from_parts(
        password=conn.password,
        host=conn.host,
        port=conn.port,
        schema=conn.schema,
        extra=extra if isinstance(extra, dict) else {},
        source=f"connection {conn.conn_id!r}",
    )


class WanHook(BaseHook):
    """
    Talk to DashScope's Wan text-to-video API through an Airflow ``dashscope`` connection.

    The API key is the connection's password; the region (``singapore`` by default, ``beijing``, ``virginia``)
    or an explicit base URL (host field or ``base_url`` extra, for gateways and the simulator) picks the
    endpoint. When the connection does not exist but ``DASHSCOPE_API_KEY`` is set, that key is used (region
    from ``DASHSCOPE_REGION``).

    :param dashscope_conn_id: the Airflow connection id.
    :param settings: ready settings, bypassing the connection lookup (tests, scripts).
    """

    #: Seconds to wait after a lost submit answer before reading the task list (it may lag a moment behind).
    ambiguity_settle: float = 2.0

    conn_name_attr = "dashscope_conn_id"
    default_conn_name = "dashscope_default"
    conn_type = "dashscope"
    hook_name = "Alibaba Cloud DashScope (Wan)"

    def __init__(
        self,
        dashscope_conn_id: str = default_conn_name,
        *,
        settings: WanConnectionSettings | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dashscope_conn_id = dashscope_conn_id
        self._settings = settings
        self._session: _SharedClient | None = None

    def __repr__(self) -> str:
        return f"WanHook(dashscope_conn_id={self.dashscope_conn_id!r})"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form of Airflow 3.1 (3.2+ reads ``conn-fields`` from the provider info)."""
        return {
            "hidden_fields": UI_FIELD_BEHAVIOUR["hidden-fields"],
            "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
            "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """
        The connection's extras as inputs of the Airflow 3.1 form (3.2+ renders ``conn-fields`` instead).

        Built from the same table as ``conn-fields`` (:func:`~airflow_provider_wan.settings.form_fields`).
        wtforms and flask_appbuilder are imported only here: Airflow 3.1's API server provides stand-ins for them;
        elsewhere, without them installed, there is no form to build and this returns no inputs.
        """
        try:
            from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
            from wtforms import IntegerField, StringField
            from wtforms.validators import Optional, any_of
        except ImportError:
            return {}
        widgets: dict[str, Any] = {}
        for spec in form_fields():
            validators = [Optional()] + ([any_of(list(spec.choices))] if spec.choices else [])
            field_class = IntegerField if spec.kind == "integer" else StringField
            widgets[spec.name] = field_class(
                spec.label,
                validators=validators,
                description=spec.description,
                default=spec.default,
                widget=BS3TextFieldWidget(),
            )
        return widgets

    # ----------------------------------------------------------------------------------------- settings

    def get_settings(self) -> WanConnectionSettings:
        """Resolve the connection (or the environment fallback) once; masks the key in logs."""
        if self._settings is None:
            try:
                settings = _conn_settings(self.get_connection(self.dashscope_conn_id))
            except AirflowNotFoundException:
                settings = self._fallback_settings()
                mask_secret(settings.api_key)
            self._settings = settings
        return self._settings

    async def aget_settings(self) -> WanConnectionSettings:
        """
        Async twin of :meth:`get_settings`: reads the connection without blocking the event loop.

        Every wait of a connection in one triggerer would otherwise read it separately: 1,000 waits, 1,000 reads of
        the secrets backend, each masking the key again. So a connection is resolved once per event loop, the
        lookups of waits starting together share it, and it is kept for :data:`SETTINGS_TTL` seconds (a rotated
        key is picked up after that).
        """
        if self._settings is None:
            self._settings = await _shared_settings(self.dashscope_conn_id, self._aresolve_settings)
        return self._settings

    async def _aresolve_settings(self) -> WanConnectionSettings:
        try:
            return _conn_settings(await _aget_connection(self.dashscope_conn_id))
        except AirflowNotFoundException:
            settings = self._fallback_settings()
            await _amask(settings.api_key)
            return settings

    def _fallback_settings(self) -> WanConnectionSettings:
        settings = _env_settings(self.dashscope_conn_id)
        if settings is None:
            raise AirflowNotFoundException(
                f"The conn_id `{self.dashscope_conn_id}` isn't defined and {ENV_API_KEY} is not set; create a "
                f"`dashscope` connection (or AIRFLOW_CONN_{self.dashscope_conn_id.upper()}) with the API key"
            )
        self.log.info(
            "Connection %r not found; using %s from the environment (base URL %s)",
            self.dashscope_conn_id,
            ENV_API_KEY,
            settings.base_url,
        )
        return settings

    @cached_property
    def protocol(self) -> WanProtocol:
        """The wire flavour chosen by the connection's ``protocol`` (and ``unified_path``) extras."""
        settings = self.get_settings()
        return get_protocol(settings.protocol, settings.unified_path)

    def prepare_request(self, request: WanVideoRequest | Mapping[str, Any]) -> WanVideoRequest:
        """
        The request as this connection sends it: validated with the models the connection declares (``models``
        extra) and checked against the connection's region. Pure once the connection is read: no request is sent.

        :param request: a :class:`WanVideoRequest` or the same fields as a mapping.
        :raises WanRequestValidationError: for a bad field, or a model the region does not offer.
        """
        return _prepared(_validated(request), self.get_settings())

    async def aprepare_request(self, request: WanVideoRequest | Mapping[str, Any]) -> WanVideoRequest:
        """Async twin of :meth:`prepare_request`. :param request: the request."""
        return _prepared(_validated(request), await self.aget_settings())

    def _retry_policy(self, settings: WanConnectionSettings) -> RetryPolicy:
        return RetryPolicy(max_attempts=settings.max_retries + 1, budget=settings.retry_budget)

    def _client_options(self, settings: WanConnectionSettings) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {settings.api_key}", "User-Agent": user_agent()}
        headers["Accept"] = "application/json"
        if settings.workspace:
            headers["X-DashScope-WorkSpace"] = settings.workspace
        return {
            "base_url": settings.base_url + "/",
            "headers": headers,
            "timeout": httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            "follow_redirects": False,
            "verify": TLS_CONTEXT,
        }

    # ----------------------------------------------------------------------------------------- sync

    @cached_property
    def _client(self) -> httpx.Client:
        return httpx.Client(**self._client_options(self.get_settings()))

    def close(self) -> None:
        """Close the sync client's connections."""
        if "_client" in self.__dict__:
            self.__dict__.pop("_client").close()

    def _call(self, request: HttpRequest, parse: Callable[[HttpResponse], T]) -> T:
        settings = self.get_settings()
        policy = self._retry_policy(settings)
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return parse(self._send(request, settings))
            except WanError as err:
                delay = policy.delay(attempt, err, request, time.monotonic() - started)
                if delay is None:
                    raise
                self._log_retry(request, err, attempt, delay)
                time.sleep(delay)

    def _send(self, request: HttpRequest, settings: WanConnectionSettings) -> HttpResponse:
        try:
            response = self._client.request(
                request.method, request.path, json=request.json, params=request.params, headers=request.headers
            )
        except httpx.HTTPError as err:
            raise transport_error(err, request, settings.read_timeout) from None
        return HttpResponse(response.status_code, response.headers, response.content)

    def _log_retry(self, request: HttpRequest, err: WanError, attempt: int, delay: float) -> None:
        self.log.warning(
            "%s %s failed (%s: %s); retry %d in %.1f s",
            request.method,
            request.path,
            type(err).__name__,
            err,
            attempt,
            delay,
        )

    def submit_task(self, request: WanVideoRequest | Mapping[str, Any]) -> SubmitResult:
        """
        Create a generation task and return its id, first status and request id.

        Never creates two tasks for one call. When the answer does not prove whether a task was created (see
        :meth:`WanProtocol.read_submit`), the account's task list is read for tasks of this model created while the
        submit was in flight: none at all proves the submit was lost, and it is sent once more; otherwise
        :class:`WanAmbiguousSubmitError` names the candidates.

        :param request: a :class:`WanVideoRequest` or the same fields as a mapping (validated first).
        """
        validated = self.prepare_request(request)
        for attempt in range(1, AMBIGUOUS_RESUBMITS + 2):
            sent_at = time.time()
            try:
                return self._call(self.protocol.submit_request(validated), self.protocol.read_submit)
            except WanAmbiguousSubmitError as err:
                answered_at = time.time()
                time.sleep(self.ambiguity_settle)  # let the list catch up with a task created a moment ago
                verdict = self._lookup_candidates(validated.model, sent_at, answered_at, err)
                self._after_ambiguous(verdict, attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _lookup_candidates(
        self, model: str, sent_at: float, answered_at: float, err: WanAmbiguousSubmitError
    ) -> WanAmbiguousSubmitError:
        if not self.protocol.supports_list:
            return _ambiguous(err, None, f"the {self.protocol.name} protocol cannot list tasks to check")
        try:
            rows = self._candidate_rows(model, sent_at, answered_at)
        except WanError as lookup_error:
            return _ambiguous(err, None, f"the task list could not be read ({type(lookup_error).__name__})")
        return _ambiguous(err, rows, None)

    def _candidate_rows(self, model: str, sent_at: float, answered_at: float) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for page_no in range(1, AMBIGUITY_MAX_PAGES + 1):
            page = self.list_tasks(**candidate_filters(model, sent_at, answered_at, page_no))
            rows += candidates_of(page)
            if page.is_last(page_no):
                break
        return rows

    def _after_ambiguous(self, verdict: WanAmbiguousSubmitError, attempt: int) -> None:
        """Raise the verdict unless the list proved no task exists and a resubmit is still allowed."""
        if verdict.checked and not verdict.candidates and attempt <= AMBIGUOUS_RESUBMITS:
            self.log.warning(
                "The submit's answer was lost, and the task list shows no task of this model created meanwhile: "
                "nothing was created, so it is sent once more"
            )
            return
        raise verdict

    def submit(self, request: WanVideoRequest | Mapping[str, Any]) -> str:
        """
        Create a generation task and return the DashScope task id.

        :param request: a :class:`WanVideoRequest` or the same fields as a mapping (validated first).
        """
        return self.submit_task(request).task_id

    def get_task(self, task_id: str) -> WanTask:
        """
        Read a task's status and, once SUCCEEDED, its result (including the signed ``video_url``).

        :param task_id: the DashScope task id.
        """
        return self._call(self.protocol.get_task_request(task_id), lambda r: self.protocol.parse_task(r, task_id))

    def cancel_task(self, task_id: str) -> None:
        """
        Cancel a task. DashScope only cancels PENDING tasks; others answer ``UnsupportedOperation``.

        :param task_id: the DashScope task id.
        """
        self._call(self.protocol.cancel_request(task_id), self.protocol.parse_cancel)

    def list_tasks(self, **filters: Any) -> WanTaskPage:
        """
        List the account's tasks (native protocol only).

        :param filters: ``page_no``, ``page_size``, ``status``, ``model_name``, ``start_time``, ``end_time``.
        """
        return self._call(self.protocol.list_request(**filters), self.protocol.parse_list)

    def wait_for_task(
        self,
        task_id: str,
        poll_interval: float = 15.0,
        timeout: float | None = None,
        queue_timeout: float | None = None,
    ) -> WanTask:
        """
        Poll until the task ends; return it when SUCCEEDED, raise the matching error otherwise.

        The same policy as the operator and the trigger (:mod:`airflow_provider_wan.waiting`): time spent
        PENDING in DashScope's queue does not count against ``timeout``.

        :param task_id: the DashScope task id.
        :param poll_interval: seconds between polls (DashScope suggests 15).
        :param timeout: seconds of generation to wait for; None waits until the task ends.
        :param queue_timeout: seconds PENDING in the queue to wait for; None waits as long as it is queued.
        :raises WanTimeoutError: when a limit passes first (the task may still finish).
        """
        policy = WaitPolicy(poll_interval=poll_interval, timeout=timeout, queue_timeout=queue_timeout)
        return _result_or_raise(wait_sync(self, task_id, policy, self.log))

    def test_connection(self) -> tuple[bool, str]:
        """Check the key and endpoint with a call that spends nothing (reading a task id that does not exist)."""
        try:
            settings = self.get_settings()
            self._call(self.protocol.probe_request(), lambda r: self.protocol.parse_task(r, "probe"))
        except Exception as err:
            return False, f"{type(err).__name__}: {err}"
        finally:
            self.close()
        return True, f"Connected to {settings.base_url} ({settings.protocol}); the API key was accepted"

    # ----------------------------------------------------------------------------------------- async

    @asynccontextmanager
    async def async_session(self) -> AsyncIterator[WanHook]:
        """
        Hold this connection's shared ``AsyncClient`` (one per event loop) for a series of async calls.

        Every user of the same connection on the loop shares the client and its ``poll_qps`` budget.
        """
        async with self._shared(await self.aget_settings()) as shared:
            self._session = shared
            try:
                yield self
            finally:
                self._session = None

    def _shared(self, settings: WanConnectionSettings) -> SharedAsyncClient:
        return SharedAsyncClient(
            settings.cache_key(),
            build=lambda: httpx.AsyncClient(**self._client_options(settings)),
            rate=settings.poll_qps,
            ceiling=settings.query_qps,
        )

    @asynccontextmanager
    async def watch(self, task_id: str, poll_interval: float) -> AsyncIterator[Watching]:
        """
        Watch a task through the connection's shared :class:`TaskWatcher` (inside :meth:`async_session`).

        Every wait of the connection on this loop registers with one watcher, which spends the account's query
        budget where it tells the most (see :mod:`airflow_provider_wan.hooks._watch`).

        :param task_id: the DashScope task id.
        :param poll_interval: seconds between reads of this task when it is read by id.
        """
        shared = self._session
        if shared is None:
            raise RuntimeError("WanHook.watch() needs an open async_session()")
        if shared.watcher is None:
            settings = await self.aget_settings()
            protocol = get_protocol(settings.protocol)

            async def send(request: HttpRequest) -> HttpResponse:
                return await self._asend(shared.client, request, settings)

            shared.watcher = TaskWatcher(protocol, send, shared.limiter)
        watcher: TaskWatcher = shared.watcher
        watch = watcher.register(task_id, poll_interval)
        try:
            yield Watching(watcher, watch)
        finally:
            watcher.unregister(watch)

    async def _acall(self, request: HttpRequest, parse: Callable[[HttpResponse], T]) -> T:
        settings = await self.aget_settings()
        policy = self._retry_policy(settings)
        async with self._shared(settings) as shared:
            started = time.monotonic()
            attempt = 0
            while True:
                attempt += 1
                try:
                    if request.method == "GET":
                        await shared.limiter.acquire()
                    result = parse(await self._asend(shared.client, request, settings))
                    if request.method == "GET":
                        shared.limiter.succeeded()
                    return result
                except WanError as err:
                    if isinstance(err, WanThrottledError) and request.method == "GET":
                        shared.limiter.throttled(err.retry_after)
                    delay = policy.delay(attempt, err, request, time.monotonic() - started)
                    if delay is None:
                        raise
                    self._log_retry(request, err, attempt, delay)
                    await asyncio.sleep(delay)

    async def _asend(
        self, client: httpx.AsyncClient, request: HttpRequest, settings: WanConnectionSettings
    ) -> HttpResponse:
        try:
            response = await client.request(
                request.method, request.path, json=request.json, params=request.params, headers=request.headers
            )
        except httpx.HTTPError as err:
            raise transport_error(err, request, settings.read_timeout) from None
        return HttpResponse(response.status_code, response.headers, response.content)

    async def _aprotocol(self) -> WanProtocol:
        settings = await self.aget_settings()
        return get_protocol(settings.protocol, settings.unified_path)

    async def asubmit_task(self, request: WanVideoRequest | Mapping[str, Any]) -> SubmitResult:
        """Async twin of :meth:`submit_task`. :param request: the request (validated first)."""
        validated = await self.aprepare_request(request)
        protocol = await self._aprotocol()
        for attempt in range(1, AMBIGUOUS_RESUBMITS + 2):
            sent_at = time.time()
            try:
                return await self._acall(protocol.submit_request(validated), protocol.read_submit)
            except WanAmbiguousSubmitError as err:
                answered_at = time.time()
                await asyncio.sleep(self.ambiguity_settle)
                verdict = await self._alookup_candidates(protocol, validated.model, sent_at, answered_at, err)
                self._after_ambiguous(verdict, attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _alookup_candidates(
        self, protocol: WanProtocol, model: str, sent_at: float, answered_at: float, err: WanAmbiguousSubmitError
    ) -> WanAmbiguousSubmitError:
        if not protocol.supports_list:
            return _ambiguous(err, None, f"the {protocol.name} protocol cannot list tasks to check")
        rows: list[dict[str, Any]] = []
        try:
            for page_no in range(1, AMBIGUITY_MAX_PAGES + 1):
                page = await self.alist_tasks(**candidate_filters(model, sent_at, answered_at, page_no))
                rows += candidates_of(page)
                if page.is_last(page_no):
                    break
        except WanError as lookup_error:
            return _ambiguous(err, None, f"the task list could not be read ({type(lookup_error).__name__})")
        return _ambiguous(err, rows, None)

    async def asubmit(self, request: WanVideoRequest | Mapping[str, Any]) -> str:
        """Async twin of :meth:`submit`. :param request: the request (validated first)."""
        return (await self.asubmit_task(request)).task_id

    async def aget_task(self, task_id: str) -> WanTask:
        """Async twin of :meth:`get_task`. :param task_id: the DashScope task id."""
        protocol = await self._aprotocol()
        return await self._acall(protocol.get_task_request(task_id), lambda r: protocol.parse_task(r, task_id))

    async def acancel_task(self, task_id: str) -> None:
        """Async twin of :meth:`cancel_task`. :param task_id: the DashScope task id."""
        protocol = await self._aprotocol()
        await self._acall(protocol.cancel_request(task_id), protocol.parse_cancel)

    async def alist_tasks(self, **filters: Any) -> WanTaskPage:
        """Async twin of :meth:`list_tasks`. :param filters: as for :meth:`list_tasks`."""
        protocol = await self._aprotocol()
        return await self._acall(protocol.list_request(**filters), protocol.parse_list)


class Watching:
    """
    One registered wait, as :meth:`WanHook.watch` yields it.

    :param watcher: the connection's watcher on this loop.
    :param watch: the registration.
    """

    def __init__(self, watcher: TaskWatcher, watch: Watch) -> None:
        self.watcher = watcher
        self.watch = watch

    async def next(self, timeout: float | None) -> WanTask | None:
        """
        The next read that changed the task's status (or ended it), or None after ``timeout`` seconds.

        :param timeout: seconds to wait at most; None waits for news.
        :raises WanError: a non-retryable error reading the task.
        """
        return await self.watcher.next(self.watch, timeout)


#: Seconds a connection resolved on an event loop is reused by the waits on that loop.
SETTINGS_TTL = 60.0
_SETTINGS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, tuple[float, asyncio.Future[Any]]]] = (
    weakref.WeakKeyDictionary()
)


async def _shared_settings(
    conn_id: str, resolve: Callable[[], Awaitable[WanConnectionSettings]]
) -> WanConnectionSettings:
    """Resolve ``conn_id`` once per loop and :data:`SETTINGS_TTL`; concurrent callers await the same lookup."""
    cache = _SETTINGS.setdefault(asyncio.get_running_loop(), {})
    now = time.monotonic()
    entry = cache.get(conn_id)
    failed = entry is not None and entry[1].done() and (entry[1].cancelled() or entry[1].exception() is not None)
    if entry is None or entry[0] < now or failed:  # a failed lookup is retried by the next wait, not cached
        future: asyncio.Future[Any] = asyncio.ensure_future(resolve())
        cache[conn_id] = entry = (now + SETTINGS_TTL, future)
    return await asyncio.shield(entry[1])


def _ambiguous(
    err: WanAmbiguousSubmitError, candidates: list[dict[str, Any]] | None, unchecked: str | None
) -> WanAmbiguousSubmitError:
    """The error to raise after looking (or failing to look) for the task a lost submit answer may have created."""
    if candidates is None:
        found = f"It was not resubmitted, and {unchecked}: look in Model Studio before submitting again."
    elif not candidates:
        found = "The task list showed no task created meanwhile, but the answer was lost again."
    else:
        listed = ", ".join(f"{c['task_id']} ({c['status']})" for c in candidates[:10])
        more = f" and {len(candidates) - 10} more" if len(candidates) > 10 else ""
        found = (
            f"It was not resubmitted. Tasks of this model created while it was in flight, one of which is probably "
            f"it: {listed}{more}. To keep the video without paying again, pass adopt_task_id='<task id>' to the "
            f"operator (or wait on it with WanTaskSensor)."
        )
    return WanAmbiguousSubmitError(f"{err.message}. {found}", candidates=candidates, checked=candidates is not None)


def _validated(request: WanVideoRequest | Mapping[str, Any]) -> WanVideoRequest:
    return request if isinstance(request, WanVideoRequest) else WanVideoRequest.build(**dict(request))


def _prepared(request: WanVideoRequest, settings: WanConnectionSettings) -> WanVideoRequest:
    """Re-validate with the connection's declared models (they may change the row, even the shape) and its region."""
    declared = settings.models
    if declared and get_capability(request.model, declared) is not request.capability:
        request = WanVideoRequest.build(**request.fields(), models=declared).with_input_urls(request.input_urls)
    check_region(request.model, settings.region, declared)
    return request


def _result_or_raise(task: WanTask) -> WanTask:
    error = task_error(task)
    if error is not None:
        raise error
    return task


async def _aget_connection(conn_id: str) -> Any:
    aget = getattr(BaseHook, "aget_connection", None)
    if aget is not None:
        return await aget(conn_id)
    from asgiref.sync import sync_to_async  # Airflow < 3.2 has no async connection lookup

    return await sync_to_async(BaseHook.get_connection)(conn_id)


async def _amask(secret: str) -> None:
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:  # Airflow without the async twin: registering locally never blocks
        _mask_locally(secret)
        return
    await amask_secret(secret)


def _mask_locally(secret: str) -> None:
    try:
        from airflow.sdk._shared.secrets_masker import _secrets_masker  # type: ignore[attr-defined]

        _secrets_masker().add_mask(secret)
    except Exception:  # pragma: no cover - best effort on versions without the shared masker
        mask_secret(secret)


# Kept for readers of the status enum through the hook module.
__all__ = ["TaskStatus", "WanHook", "user_agent"]
