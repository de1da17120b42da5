"""Reading requests: bodies, fields and query params, on the emulator's side of the wire.

Every answer carries an ``x-request-id`` header (added by the gateway); error
bodies are shaped in :mod:`.errors`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn, cast

from starlette.requests import Request
from starlette.responses import JSONResponse

from scenario_emulator.config import Emulator
from scenario_emulator.errors import REQUEST_ID_KEY, ApiError

__all__ = [
    "emulator_of",
    "get_bool",
    "get_str",
    "get_str_list",
    "ok",
    "project_id",
    "query_bool",
    "query_int",
    "read_json",
    "read_object",
    "root_url",
    "trace_id",
]


def ok(body: Any, status: int = 200) -> JSONResponse:
    """A JSON answer."""
    return JSONResponse(body, status_code=status)


def emulator_of(request: Request) -> Emulator:
    """The emulator serving ``request``."""
    return cast("Emulator", request.app)


def trace_id(request: Request) -> str:
    """The request's id, as the gateway gave it (its ``x-request-id``, an error's ``traceId``)."""
    return str(request.scope.get("state", {}).get(REQUEST_ID_KEY, ""))


def root_url(request: Request) -> str:
    """The emulator's root URL as the client reached it, e.g. ``http://127.0.0.1:8787``."""
    return f"{request.url.scheme}://{request.url.netloc}"


def project_id(request: Request) -> str:
    """The ``projectId`` query param, or the emulator's default project when absent.

    An API key works without ``projectId``, in the key's own scope (Scenario's blender
    plugin, ``docs/SDK_ADOPTION.md``): the emulator reads "absent" as its default
    project, so a model created in project P is only found again with ``projectId=P``.
    """
    value = request.query_params.get("projectId")
    if value is None:
        return emulator_of(request).config.default_project_id
    if not value.strip():
        raise ApiError(400, "projectId must not be empty")
    return value


# -- bodies ------------------------------------------------------------------------


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


async def read_json(request: Request, limit: int) -> Any:
    """The request body as JSON, or ``None`` for an empty body.

    Raises:
        ApiError: 413 over ``limit`` bytes, 415 for a non-JSON content type, 400 for
            malformed JSON.
    """
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ApiError(400, "invalid Content-Length header")
        if int(length) > limit:
            raise ApiError(413, f"request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return None
    mime = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if mime != "application/json" and not mime.endswith("+json"):
        raise ApiError(415, f"Content-Type must be application/json, got {mime or 'none'!r}")
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, f"malformed JSON body: {exc}") from None
    if body is None:
        # Not the same as no body: found by the schemathesis fuzz, where `null` read as `{}`.
        raise ApiError(400, "the request body must not be JSON null")
    return body


async def read_object(request: Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object; an empty body reads as ``{}``."""
    body = await read_json(request, limit)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def get_str(body: Mapping[str, Any], key: str, *, required: bool = False, nullable: bool = False) -> str | None:
    """A string field of a JSON object (400 if it has another type or is missing when required)."""
    value = body.get(key)
    if value is None:
        if required:
            raise ApiError(400, f"{key} is required")
        if key in body and not nullable:
            raise ApiError(400, f"{key} must be a string")
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{key} must be a string")
    return value


def get_bool(body: Mapping[str, Any], key: str, default: bool = False) -> bool:
    """A boolean field of a JSON object."""
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise ApiError(400, f"{key} must be a boolean")
    return value


def get_str_list(body: Mapping[str, Any], key: str) -> list[str] | None:
    """A list-of-strings field of a JSON object, or ``None`` when absent."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, f"{key} must be a list of strings")
    return list(value)


# -- query ---------------------------------------------------------------------------


def query_bool(request: Request, name: str) -> bool:
    """A ``true``/``false`` query param (absent reads as false)."""
    value = request.query_params.get(name)
    if value is None or value == "false":
        return False
    if value == "true":
        return True
    raise ApiError(400, f"{name} must be true or false")


def query_int(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    """An integer query param within [low, high]."""
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None
    if not low <= number <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}")
    return number
