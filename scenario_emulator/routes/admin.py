"""Admin routes under ``/_emulator``: no auth, not logged, never faulted.

=========================  ==================================================================
``GET /health``            ``{"status": "ok", "now": <emulator time>, "models": <count>}``
``GET /requests``          ``{"requests": [{method, path, query, status, time, requestId,
                           fault, retryCount, delaySeconds?}]}``: every non-admin request,
                           oldest first (``delaySeconds`` only on a delayed one)
``DELETE /requests``       clear the request log
``POST /reset``            forget all state and requests, restore the configured faults
``GET /faults``            ``{"faults": {...}}``, the live fault settings
``PUT /faults``            replace them (JSON, :class:`~.faults.FaultConfig` field names)
``GET /limits``            ``{"limits": {"parallel_trainings", "team_image_cap",
                           "trigger_cooldown"}}``, the live plan limits
``PUT /limits``            change some of them (JSON, :class:`~.limits.PlanLimits` field
                           names; ``null`` lifts a limit); ``{"limits": {...}}``
``POST /fail``             ``{"modelId"|"name", "reason"?}``: fail the running training now,
                           or else the next one; ``{"failed": [...], "pending": ...}``
``POST /clock``            ``{"advance": seconds}`` when the clock is the emulator's own
                           (409 otherwise); ``{"now": ...}``
``GET /files/{assetId}``   an asset's bytes (the stand-in for the API's signed URLs);
                           epoch sample assets are served as a placeholder PNG
``GET /openapi.json``      the OpenAPI 3.0 description of the ``/v1`` routes
                           (``openapi.json``, shipped with the package)
=========================  ==================================================================
"""

from __future__ import annotations

import hashlib
import io
from functools import lru_cache
from typing import Any

from PIL import Image
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scenario_emulator.errors import ApiError, conflict
from scenario_emulator.faults import FaultConfig
from scenario_emulator.limits import PlanLimits
from scenario_emulator.openapi import openapi_schema
from scenario_emulator.wire import emulator_of, get_str, ok, read_object

__all__ = ["routes"]

_ADMIN_BODY_LIMIT = 1024 * 1024
_LATEST = 221_845_392_000.0  # 9000-01-01T00:00:00Z, far from datetime's year-9999 limit


async def health(request: Request) -> Response:
    """``GET /_emulator/health``."""
    emulator = emulator_of(request)
    return ok({"status": "ok", "now": emulator.now(), "models": len(emulator.store.models)})


async def requests(request: Request) -> Response:
    """``GET /_emulator/requests``."""
    return ok({"requests": emulator_of(request).requests()})


async def clear_requests(request: Request) -> Response:
    """``DELETE /_emulator/requests``."""
    emulator_of(request).clear_requests()
    return ok({})


async def reset(request: Request) -> Response:
    """``POST /_emulator/reset``."""
    emulator_of(request).reset()
    return ok({})


async def get_faults(request: Request) -> Response:
    """``GET /_emulator/faults``."""
    return ok({"faults": emulator_of(request).faults.config.to_wire()})


async def put_faults(request: Request) -> Response:
    """``PUT /_emulator/faults``."""
    body = await read_object(request, _ADMIN_BODY_LIMIT)
    try:
        config = FaultConfig.from_wire(body)
    except (ValueError, TypeError) as exc:
        raise ApiError(400, f"invalid fault settings: {exc}") from None
    return ok({"faults": emulator_of(request).set_faults(config).to_wire()})


async def get_limits(request: Request) -> Response:
    """``GET /_emulator/limits``."""
    return ok({"limits": emulator_of(request).limits.to_wire()})


async def put_limits(request: Request) -> Response:
    """``PUT /_emulator/limits``: the fields given change, the others stay."""
    body = await read_object(request, _ADMIN_BODY_LIMIT)
    emulator = emulator_of(request)
    try:
        limits = PlanLimits.from_wire(body, emulator.limits)
    except (ValueError, TypeError) as exc:
        raise ApiError(400, f"invalid limits: {exc}") from None
    return ok({"limits": emulator.set_limits(limits).to_wire()})


async def fail(request: Request) -> Response:
    """``POST /_emulator/fail``."""
    body = await read_object(request, _ADMIN_BODY_LIMIT)
    model_id, name = get_str(body, "modelId"), get_str(body, "name")
    if (model_id is None) == (name is None):
        raise ApiError(400, "give exactly one of modelId or name")
    try:
        result = emulator_of(request).fail_training(model_id=model_id, name=name, reason=get_str(body, "reason"))
    except KeyError:
        raise ApiError(404, f"Model {model_id} not found") from None
    return ok(result)


async def clock(request: Request) -> Response:
    """``POST /_emulator/clock``."""
    body = await read_object(request, _ADMIN_BODY_LIMIT)
    seconds = body.get("advance")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ApiError(400, "advance must be a number of seconds, not negative")
    if emulator_of(request).now() + seconds > _LATEST:
        # Past the year 9999 no timestamp renders: every later answer was a 500 (found by the abuse tests).
        raise ApiError(400, "advance would move the clock past the year 9000")
    try:
        return ok({"now": emulator_of(request).advance_clock(float(seconds))})
    except TypeError:
        raise conflict("the emulator was given its own clock; it cannot be advanced from here") from None


@lru_cache(maxsize=64)
def _placeholder(asset_id: str) -> bytes:
    shade = hashlib.sha256(asset_id.encode()).digest()[:3]
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (shade[0], shade[1], shade[2])).save(buffer, format="PNG")
    return buffer.getvalue()


async def files(request: Request) -> Response:
    """``GET /_emulator/files/{assetId}``."""
    emulator = emulator_of(request)
    asset_id = request.path_params["asset_id"]
    with emulator.store.lock:
        asset, data = emulator.store.assets.get(asset_id), emulator.store.asset_data.get(asset_id)
    if asset is not None and data is not None:
        return Response(data, media_type=asset.mime_type)
    if asset_id.startswith("asset_sample_") or asset_id in emulator.store.generation.asset_jobs:
        return Response(_placeholder(asset_id), media_type="image/png")
    raise ApiError(404, f"file {asset_id!r} not found")


async def openapi(request: Request) -> Response:
    """``GET /_emulator/openapi.json``."""
    return ok(_openapi_document())


@lru_cache(maxsize=1)
def _openapi_document() -> dict[str, Any]:
    return openapi_schema()


def routes() -> list[Route]:
    """The admin routes, relative to ``/_emulator``."""
    return [
        Route("/health", health, methods=["GET"]),
        Route("/requests", requests, methods=["GET"]),
        Route("/requests", clear_requests, methods=["DELETE"]),
        Route("/reset", reset, methods=["POST"]),
        Route("/faults", get_faults, methods=["GET"]),
        Route("/faults", put_faults, methods=["PUT"]),
        Route("/limits", get_limits, methods=["GET"]),
        Route("/limits", put_limits, methods=["PUT"]),
        Route("/fail", fail, methods=["POST"]),
        Route("/clock", clock, methods=["POST"]),
        Route("/files/{asset_id}", files, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
