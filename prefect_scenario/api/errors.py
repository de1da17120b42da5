"""Turning an HTTP error answer into the right :mod:`prefect_scenario.exceptions` error: one function.

What the real API sends (Scenario's blender-plugin captures and its scenario-model-training
skill, both public on GitHub under scenario-labs):

- the message under ``reason`` (Blender's client reads ``reason``, then ``message``,
  ``error``, ``detail``) and a trace id under ``trace_id`` / ``traceId``;
- plan ceilings: 429 with a ``PlanLimitReachedError`` body whose ``details.actionName``
  names the ceiling and ``details.actionLimit`` its value;
- a cooldown between launches: 429 whose body names ``remainingSeconds``;
- a second trigger: 400 ``Model is already training``;
- a re-added asset: 400 ``The provided assetId is already a training image of this model``.

Example:
    >>> error = status_error(
    ...     429, {"reason": "Plan limit reached", "name": "PlanLimitReachedError",
    ...           "details": {"actionName": "parallel-training", "actionLimit": 2}}, {},
    ...     method="PUT", path="/models/{id}/train")
    >>> type(error).__name__, error.action_name, error.action_limit
    ('PlanLimitError', 'parallel-training', 2)
    >>> str(error)
    'PUT /models/{id}/train: HTTP 429: Plan limit reached'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect_scenario.api.retry_policy import parse_retry_after, parse_should_retry
from prefect_scenario.exceptions import (
    AlreadyTrainingError,
    APIStatusError,
    DuplicateTrainingImageError,
    PlanLimitError,
    RateLimitError,
    error_for_status,
)

__all__ = ["error_text", "status_error"]

_EXCERPT = 300
_ALREADY_TRAINING = "already training"
_ALREADY_ATTACHED = "already a training image"


def error_text(body: Any) -> str | None:
    """The API's explanation in an error body: ``reason``, then ``message``, ``error``, ``detail``."""
    if isinstance(body, Mapping):
        for key in ("reason", "message", "error", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value[:_EXCERPT]
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def status_error(
    status_code: int,
    body: Any,
    headers: Mapping[str, str],
    *,
    method: str,
    path: str,
    raw_text: str = "",
    request_id: str | None = None,
) -> APIStatusError:
    """The error for one HTTP error answer (``body`` is the parsed JSON, or None).

    ``raw_text`` (already scrubbed of secrets) is the excerpt kept when the body has no
    ``reason``.
    """
    text = error_text(body)
    mapping: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    fields: dict[str, Any] = {
        "method": method,
        "path": path,
        "status_code": status_code,
        "request_id": request_id or headers.get("x-request-id"),
        "trace_id": mapping.get("trace_id") or mapping.get("traceId"),
        "should_retry": parse_should_retry(headers),
        "body": raw_text[:_EXCERPT] or None,
    }
    message = f"HTTP {status_code}: {text or raw_text[:_EXCERPT] or 'no reason given'}"
    raw_details = mapping.get("details")
    details: Mapping[str, Any] = raw_details if isinstance(raw_details, Mapping) else {}
    lowered = (text or "").lower()
    if status_code == 429 and (mapping.get("name") == "PlanLimitReachedError" or "actionName" in details):
        limit = _number(details.get("actionLimit"))
        return PlanLimitError(
            message,
            action_name=details.get("actionName"),
            action_limit=None if limit is None else int(limit),
            **fields,
        )
    if status_code == 429:
        remaining = _number(mapping.get("remainingSeconds"))
        retry_after = remaining if remaining is not None else parse_retry_after(headers)
        return RateLimitError(message, retry_after=retry_after, **fields)
    if status_code in (400, 409) and _ALREADY_TRAINING in lowered:
        return AlreadyTrainingError(message, **fields)
    if status_code == 400 and _ALREADY_ATTACHED in lowered:
        return DuplicateTrainingImageError(message, **fields)
    return error_for_status(status_code)(message, **fields)
