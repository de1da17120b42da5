"""The emulator's ASGI app: the routes, the error handlers, and the controls tests use.

A request passes the gateway (:mod:`.gateway`: request id, log, faults, auth), then
Starlette's router into one of the route modules of :mod:`.routes`. The routes see
the app only as the :class:`~.config.Emulator` protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Mount, Route
from starlette.types import ASGIApp, Scope

from scenario_emulator import briefs, collections
from scenario_emulator.clock import OffsetClock
from scenario_emulator.config import EmulatorConfig
from scenario_emulator.errors import ApiError, error_response
from scenario_emulator.faults import FaultConfig, FaultController
from scenario_emulator.gateway import Gateway, RequestLog
from scenario_emulator.limits import PlanLimits
from scenario_emulator.routes import admin, assets, generate, models, training, webhooks
from scenario_emulator.state_machine import training_view
from scenario_emulator.store import EmulatorStore
from scenario_emulator.webhooks import WebhookDispatcher
from scenario_emulator.wire import trace_id

__all__ = ["EmulatorApp", "create_app"]


class EmulatorApp(Starlette):
    """The emulator: a Starlette app plus the controls tests use in process.

    Example:
        >>> app = EmulatorApp(EmulatorConfig())
        >>> app.set_faults(error_rate=0.5).error_rate
        0.5
        >>> app.set_limits(parallel_trainings=0).parallel_trainings
        0
        >>> app.reset()
        >>> app.requests(), app.limits.parallel_trainings
        ([], None)
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock: Callable[[], float] = config.clock or OffsetClock()
        self.store = EmulatorStore(config.db_path)
        self.faults = FaultController(config.faults)
        self.limits = config.plan_limits()
        self.request_log = RequestLog(config.max_request_log)
        self.webhooks = WebhookDispatcher(
            self.store, self.clock, scan_seconds=config.webhook_scan_seconds, timeout=config.webhook_timeout,
            retries=config.webhook_retries, retry_seconds=config.webhook_retry_seconds, hosts=config.webhook_hosts,
        )  # fmt: skip
        if self.store.webhook_endpoints:  # restarted with endpoints on disk
            self.webhooks.ensure_running()
        super().__init__(
            routes=[
                Mount(
                    "/v1",
                    routes=[
                        *models.routes(),
                        *generate.routes(),
                        *assets.routes(),
                        *training.routes(),
                        *webhooks.routes(),
                        *collections.routes(),
                        *briefs.routes(),
                    ],
                ),
                Mount("/_emulator", routes=[*admin.routes(), *collections.admin_routes()]),
            ],
            exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _server_error},
        )

    def build_middleware_stack(self) -> ASGIApp:
        """Starlette's stack, wrapped in the gateway so faults bypass its error handling."""
        return Gateway(super().build_middleware_stack(), self, self.request_log)

    # -- controls (also exposed as /_emulator endpoints) -----------------------------

    def now(self) -> float:
        """The emulator's current time, epoch seconds."""
        return self.clock()

    def close(self) -> None:
        """Stop delivering webhooks and close the store."""
        self.webhooks.stop()
        self.store.close()

    def requests(self) -> list[dict[str, Any]]:
        """The request log: method, path, query, status, time, requestId, fault, retryCount (and delaySeconds)."""
        return self.request_log.entries()

    def clear_requests(self) -> None:
        """Forget the logged requests."""
        self.request_log.clear()

    def reset(self) -> None:
        """Forget every model, asset, training and logged request; restore the configured faults and limits."""
        self.store.reset()
        self.webhooks.reset()
        self.request_log.clear()
        self.faults.replace(self.config.faults)
        self.limits = self.config.plan_limits()

    def set_faults(self, config: FaultConfig | None = None, **changes: Any) -> FaultConfig:
        """Replace the fault settings (keywords change fields of ``config`` or of no faults)."""
        return self.faults.replace(config, **changes)

    def set_limits(self, limits: PlanLimits | None = None, **changes: Any) -> PlanLimits:
        """Replace the plan limits (keywords change fields of ``limits`` or of the live ones).

        Raises:
            ValueError: an invalid limit.
        """
        self.limits = replace(limits or self.limits, **changes)
        return self.limits

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
        self.webhooks.wake()
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
        self.webhooks.wake()
        return {"failed": failed, "pending": pending}


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, trace_id(request), exc.headers, exc.extra)


async def _server_error(request: Request, exc: Exception) -> Response:
    # A bug in the emulator still answers in its JSON error shape (Starlette logs the traceback).
    return error_response(500, f"emulator error: {type(exc).__name__}", trace_id(request))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
        # Starlette's Allow names only the first route on the path; a path served by two
        # routes (GET and POST /v1/models) must name both (found by the schemathesis fuzz).
        return error_response(405, message, trace_id(request), {"Allow": ", ".join(_allowed_methods(request))})
    return error_response(exc.status_code, message, trace_id(request), exc.headers)


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
