"""The emulator's ASGI app: configuration, the gateway every request passes, and routes.

The gateway (outermost, around Starlette's own middleware) gives every answer an
``x-request-id``, logs every request but the admin ones, injects faults into
``/v1`` requests, and checks Basic auth on ``/v1``. Routes live in
``routes_models.py``, ``routes_assets.py``, ``routes_training.py`` and ``admin.py``.

Dropping a connection needs the socket: under uvicorn, :mod:`.server`'s protocol
class puts the transport into the request's ``scope["state"]`` and the gateway
aborts it. Under ``httpx.ASGITransport`` there is no socket, so the gateway raises
``httpx.RemoteProtocolError`` instead, which is what the client would have seen.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import math
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scenario_emulator import admin, routes_assets, routes_models, routes_training
from scenario_emulator.faults import FaultConfig, FaultController
from scenario_emulator.state import EmulatorStore, OffsetClock, new_id, training_view
from scenario_emulator.wire import ApiError, error_response

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "TRANSPORT_STATE_KEY",
    "EmulatorApp",
    "EmulatorConfig",
    "RequestLog",
    "create_app",
    "is_authorized",
]

# The documented default pair of the CLI; never a real credential.
DEFAULT_API_KEY = "emulator-key"
DEFAULT_API_SECRET = "emulator-secret"  # noqa: S105 - a documented placeholder, not a secret
TRANSPORT_STATE_KEY = "scenario_emulator.transport"


@dataclass
class EmulatorConfig:
    """Settings of one emulator.

    Attributes:
        api_key: The API key the emulator accepts.
        api_secret: The API secret it accepts (never printed, logged or in the repr).
        default_project_id: The project used when a request has no ``projectId``.
        queue_seconds: How long a training stays ``queued-for-train``.
        start_seconds: How long it stays ``starting-train``.
        train_seconds: How long it stays ``running-train``.
        queue_position: The queue position a training starts at; it counts down to 0.
        clock: Returns the time in epoch seconds; default: wall time plus an offset
            that ``POST /_emulator/clock`` advances.
        sleep: Awaited for injected latency; tests pass a recorder.
        faults: The fault injection settings at start.
        fail_names: Model names whose trainings fail.
        fail_reason: The failure reason those trainings report.
        db_path: A SQLite file to keep state across restarts; in memory if ``None``.
        max_body_bytes: Larger request bodies are refused with 413.
        max_request_log: How many requests the request log keeps.

    Example:
        >>> config = EmulatorConfig(api_key="k", api_secret="s", train_seconds=0.5)
        >>> "s'" in repr(config)
        False
    """

    api_key: str = DEFAULT_API_KEY
    api_secret: str = field(default=DEFAULT_API_SECRET, repr=False)
    default_project_id: str = "proj_emulator"
    queue_seconds: float = 3.0
    start_seconds: float = 2.0
    train_seconds: float = 15.0
    queue_position: int = 2
    clock: Callable[[], float] | None = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    faults: FaultConfig = field(default_factory=FaultConfig)
    fail_names: Sequence[str] = ()
    fail_reason: str = "Training failed (emulated failure)"
    db_path: str | Path | None = None
    max_body_bytes: int = 32 * 1024 * 1024
    max_request_log: int = 10_000


class RequestLog:
    """The requests that reached the emulator (admin requests excepted), oldest first."""

    def __init__(self, maxlen: int) -> None:
        self._lock = threading.Lock()
        self._entries: deque[dict[str, Any]] = deque(maxlen=maxlen)

    def append(self, entry: dict[str, Any]) -> None:
        """Record one request."""
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        """A copy of the log. An entry's ``status`` is filled in when its answer starts."""
        with self._lock:
            return [dict(e) for e in self._entries]

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()


def is_authorized(headers: Mapping[str, str], api_key: str, api_secret: str) -> bool:
    """Whether ``headers`` carry ``Authorization: Basic base64(key:secret)`` for this pair."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not token:
        return False
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    key, sep, secret = decoded.partition(":")
    # Both compared, always, so the timing does not tell which one was wrong.
    key_ok = hmac.compare_digest(key.encode(), api_key.encode())
    secret_ok = hmac.compare_digest(secret.encode(), api_secret.encode())
    return bool(sep) and key_ok and secret_ok


class EmulatorApp(Starlette):
    """The emulator: a Starlette app plus the controls tests use in process.

    Example:
        >>> app = EmulatorApp(EmulatorConfig())
        >>> app.set_faults(error_rate=0.5).error_rate
        0.5
        >>> app.reset()
        >>> app.requests()
        []
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock: Callable[[], float] = config.clock or OffsetClock()
        self.store = EmulatorStore(config.db_path)
        self.faults = FaultController(config.faults)
        self.request_log = RequestLog(config.max_request_log)
        super().__init__(
            routes=[
                Mount("/v1", routes=[*routes_models.routes(), *routes_assets.routes(), *routes_training.routes()]),
                Mount("/_emulator", routes=admin.routes()),
            ],
            exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _server_error},
        )

    def build_middleware_stack(self) -> ASGIApp:
        """Starlette's stack, wrapped in the gateway so faults bypass its error handling."""
        return _Gateway(super().build_middleware_stack(), self)

    # -- controls (also exposed as /_emulator endpoints) -----------------------------

    def now(self) -> float:
        """The emulator's current time, epoch seconds."""
        return self.clock()

    def requests(self) -> list[dict[str, Any]]:
        """The request log: method, path, query, status, time, requestId, fault, retryCount (and delaySeconds)."""
        return self.request_log.entries()

    def reset(self) -> None:
        """Forget every model, asset, training and logged request; restore the configured faults."""
        self.store.reset()
        self.request_log.clear()
        self.faults.replace(self.config.faults)

    def set_faults(self, config: FaultConfig | None = None, **changes: Any) -> FaultConfig:
        """Replace the fault settings (keywords change fields of ``config`` or of no faults)."""
        return self.faults.replace(config, **changes)

    def advance_clock(self, seconds: float) -> float:
        """Move the emulator's clock forward, if it can be moved; return the new time.

        Raises:
            TypeError: the configured clock has no ``advance`` method.
            ValueError: ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        advance = getattr(self.clock, "advance", None)
        if not callable(advance):
            raise TypeError("the configured clock cannot be advanced")
        advance(seconds)
        return self.now()

    def fail_training(
        self, *, model_id: str | None = None, name: str | None = None, reason: str | None = None
    ) -> dict[str, Any]:
        """Make a training fail: the running one now, or else the next one.

        Returns:
            ``{"failed": [model ids failed now], "pending": key or None}``.

        Raises:
            KeyError: ``model_id`` is not a known model.
            ValueError: neither ``model_id`` nor ``name`` was given.
        """
        if model_id is None and name is None:
            raise ValueError("give modelId or name")
        reason = reason or self.config.fail_reason
        now = self.now()
        with self.store.transaction() as store:
            if model_id is not None:
                if model_id not in store.models:
                    raise KeyError(model_id)
                targets = [store.models[model_id]]
            else:
                targets = [m for m in store.models.values() if m.name == name and m.deleted_at is None]
            failed = []
            for model in targets:
                training = store.latest_training(model)
                if training is not None and training_view(training, now).model_status == "training":
                    training.fail_reason, training.fail_at = reason, now
                    store.put_training(training)
                    failed.append(model.id)
            pending = None
            if not failed:
                pending = model_id if model_id is not None else name
                assert pending is not None
                store.pending_fails[pending] = reason
        return {"failed": failed, "pending": pending}


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    # A bug in the emulator still answers in its JSON error shape (Starlette logs the traceback).
    return error_response(500, f"emulator error: {type(exc).__name__}")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
        # Starlette's Allow names only the first route on the path; a path served by two
        # routes (GET and POST /v1/models) must name both (found by the schemathesis fuzz).
        return error_response(405, message, {"Allow": ", ".join(_allowed_methods(request))})
    return error_response(exc.status_code, message, exc.headers)


def _allowed_methods(request: Request) -> list[str]:
    """The methods of the resource at the request's path (HEAD comes with GET).

    Where a literal route and a parameterised one both match (``/models/get-bulk`` and
    ``/models/{model_id}``), the resource is the most literal one: the fewest path parameters.
    """
    matched: list[tuple[int, set[str]]] = []
    # The router has already rewritten the scope for the mount it entered: start from the raw path.
    scope: Scope = {"type": "http", "path": request.url.path, "root_path": "", "method": request.method}
    for mount in request.app.routes:
        match, child = mount.matches(scope)
        if match == Match.NONE or not isinstance(mount, Mount):
            continue
        for route in mount.routes:
            if isinstance(route, Route) and route.methods and route.matches({**scope, **child})[0] != Match.NONE:
                matched.append((len(route.param_convertors), route.methods))
    fewest = min((params for params, _ in matched), default=0)
    return sorted({m for params, methods in matched if params == fewest for m in methods})


class _Gateway:
    """Request id, request log, faults and auth, around the whole Starlette app."""

    def __init__(self, app: ASGIApp, emulator: EmulatorApp) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_id("req")
        entry: dict[str, Any] = {}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Logged before the client can see the answer, so a test that reads the
                # log right after a call never races the server.
                entry["status"] = message["status"]
                MutableHeaders(scope=message).append("x-request-id", request_id)
            await send(message)

        path, method = scope["path"], scope["method"]
        if path == "/_emulator" or path.startswith("/_emulator/"):
            await self.app(scope, receive, send_with_id)
            return
        emulator = self.emulator
        decision = emulator.faults.decide(method, path)
        headers = Headers(scope=scope)
        entry.update(
            {
                "method": method,
                "path": path,
                "query": scope.get("query_string", b"").decode("latin-1"),
                "status": None,  # stays None for a dropped connection
                "time": emulator.now(),
                "requestId": request_id,
                "fault": None if decision.kind == "none" else decision.kind,
                "retryCount": headers.get("x-stainless-retry-count"),
            }
        )
        if decision.delay_seconds > 0:
            entry["delaySeconds"] = decision.delay_seconds  # only when delayed, so old entries keep their shape
        emulator.request_log.append(entry)
        if decision.delay_seconds > 0:
            # The server has the whole request before it is slow, as a busy real one would:
            # a client that gives up during the spike does not undo the work that follows.
            receive = await _read_ahead(receive, emulator.config.max_body_bytes)
            await emulator.config.sleep(decision.delay_seconds)
        await self._serve(scope, receive, send_with_id, decision.kind, headers)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, fault: str, headers: Headers) -> None:
        config = self.emulator.faults.config
        is_v1 = scope["path"] == "/v1" or scope["path"].startswith("/v1/")
        if fault == "drop_before":
            await _drop(scope, receive)
        elif fault == "error":
            response = error_response(config.error_status, "emulated server error (fault injection)")
            await response(scope, receive, send)
        elif fault == "rate_limit":
            wait = config.retry_after_seconds
            # Retry-After in whole seconds (HTTP), the exact wait in retry-after-ms (read first by the SDK).
            retry_headers = {"Retry-After": str(max(1, math.ceil(wait))), "retry-after-ms": str(round(wait * 1000))}
            await error_response(429, "rate limited (fault injection)", retry_headers)(scope, receive, send)
        elif is_v1 and not is_authorized(headers, self.emulator.config.api_key, self.emulator.config.api_secret):
            await error_response(401, "missing or invalid credentials")(scope, receive, send)
        elif fault == "drop_after":

            async def swallow(message: Message) -> None:
                return None

            await self.app(scope, receive, swallow)
            await _drop(scope, receive)
        else:
            await self.app(scope, receive, send)


async def _read_ahead(receive: Receive, limit: int) -> Receive:
    """Read the request body now (up to just past ``limit``) and replay it to the app later."""
    buffered: list[Message] = []
    size = 0
    while True:
        message = await receive()
        buffered.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if not message.get("more_body", False) or size > limit:
            break

    async def replay() -> Message:
        return buffered.pop(0) if buffered else await receive()

    return replay


async def _drop(scope: Scope, receive: Receive) -> None:
    """Close the connection without an answer."""
    transport = scope.get("state", {}).get(TRANSPORT_STATE_KEY)
    if transport is None:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
    transport.abort()
    # Wait until the server has seen the disconnect, so it does not answer 500 for us.
    async with asyncio.timeout(5):
        while (await receive())["type"] != "http.disconnect":
            pass


def create_app(config: EmulatorConfig | None = None) -> EmulatorApp:
    """Build the emulator app.

    Args:
        config: Its settings; defaults accept the documented default key pair.

    Returns:
        The app; serve it with uvicorn (see :class:`~.server.EmulatorServer`) or drive
        it in process through ``httpx.ASGITransport``.

    Example:
        >>> import httpx
        >>> app = create_app(EmulatorConfig(api_key="k", api_secret="s"))
        >>> client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emulator/v1",
        ...                            auth=("k", "s"))
    """
    return EmulatorApp(config or EmulatorConfig())
