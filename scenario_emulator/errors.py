"""Error answers in the real API's shape: ``{"reason": "...", "traceId": "..."}``.

Scenario's blender plugin (``scenario-labs/blender-plugin``, its REST client
``scenario/core/api/client.py`` and the captures under ``tests/fixtures/``) shows the
real API putting the message under ``reason``; its client also reads a trace id from
``traceId``. The emulator's ``traceId`` is the request's ``x-request-id``. Some errors
carry more fields (a plan limit's ``name`` and ``details``, a cooldown's
``remainingSeconds``), passed as ``extra``.

A 409 always carries ``x-should-retry: false``: the SDK would otherwise retry it
twice as a "lock timeout".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse

__all__ = ["REQUEST_ID_KEY", "ApiError", "conflict", "error_response"]

# Where the gateway leaves the request id in ``scope["state"]``, for the error handlers.
REQUEST_ID_KEY = "scenario_emulator.request_id"


class ApiError(Exception):
    """An error answer, raised by a route and rendered by the app's handler.

    Example:
        >>> ApiError(400, "Model is already training").body("req_1")
        {'reason': 'Model is already training', 'traceId': 'req_1'}
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self, trace_id: str) -> dict[str, Any]:
        """The JSON body of this error."""
        return {"reason": self.message, "traceId": trace_id, **self.extra}


def conflict(message: str) -> ApiError:
    """A 409 the SDK will not retry."""
    return ApiError(409, message, headers={"x-should-retry": "false"})


def error_response(
    status: int,
    message: str,
    trace_id: str,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """The JSON error answer."""
    body = ApiError(status, message, extra=extra).body(trace_id)
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))
