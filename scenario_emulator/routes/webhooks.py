"""Project webhook endpoints: ``/v1/projects/{projectId}/webhook-endpoints`` (SDK ``projects.webhook_endpoints``).

=====================================================  ======================================
``POST   …/webhook-endpoints``                         ``{url, enabledEvents, description?}``
                                                       → ``{"webhookEndpoint": {…, "secret"}}``
``GET    …/webhook-endpoints``                         ``{"webhookEndpoints": [...]}``
``GET    …/webhook-endpoints/{endpointId}``            ``{"webhookEndpoint": {...}}``
``DELETE …/webhook-endpoints/{endpointId}``            ``{}``
``GET    …/webhook-endpoints/{endpointId}/events``     ``{"webhookEvents": [...]}``, oldest first
=====================================================  ======================================

What Scenario states (scenario-sdk 2.4.0's webhook-endpoint resources): ``url`` must be an absolute http(s) URL,
``enabledEvents`` takes ``["*"]`` for all, the creation answer carries the ``secret``
once only, deliveries are listed per endpoint with ``status`` and ``attempts``. The
answer envelopes (``webhookEndpoint``, ``webhookEndpoints``, ``webhookEvents``) are the
emulator's choice, in the style of ``{"model": …}``; the project is the one in the
path. Deliveries themselves are :mod:`scenario_emulator.webhooks`.
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scenario_emulator.errors import ApiError
from scenario_emulator.records import WebhookEndpointRecord, iso, new_id
from scenario_emulator.wire import emulator_of, get_str, get_str_list, ok, read_object

__all__ = ["routes"]

_EVENT_NAME = re.compile(r"^(\*|[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+)$")
_MAX_URL = 2048
_MAX_EVENTS = 50


def _project(request: Request) -> str:
    project = str(request.path_params["projectId"])
    if not project.strip():
        raise ApiError(400, "projectId must not be empty")
    return project


def _endpoint_json(endpoint: WebhookEndpointRecord, *, with_secret: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "enabledEvents": list(endpoint.enabled_events),
        "description": endpoint.description,
        "createdAt": iso(endpoint.created_at),
        "updatedAt": iso(endpoint.updated_at),
    }
    if with_secret:
        body["secret"] = endpoint.secret
    return body


def _valid_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
        parts = None
    if (
        parts is None
        or len(value) > _MAX_URL
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or not port_ok
        or any(c.isspace() for c in value)
    ):
        raise ApiError(400, "url must be an absolute http(s) URL")
    return value


def _valid_events(events: list[str] | None) -> list[str]:
    if not events:
        raise ApiError(400, "enabledEvents must list at least one event (or '*')")
    if len(events) > _MAX_EVENTS or not all(_EVENT_NAME.match(e) for e in events):
        raise ApiError(400, "enabledEvents must be event names such as 'model.training.completed', or '*'")
    return list(dict.fromkeys(events))


def _require(request: Request) -> WebhookEndpointRecord:
    endpoint_id = request.path_params["endpointId"]
    endpoint = emulator_of(request).store.webhook_endpoints.get(endpoint_id)
    if endpoint is None or endpoint.project_id != _project(request):
        raise ApiError(404, f"Webhook endpoint {endpoint_id} not found")
    return endpoint


async def create(request: Request) -> Response:
    """``POST /projects/{projectId}/webhook-endpoints``."""
    emulator = emulator_of(request)
    project = _project(request)
    body = await read_object(request, emulator.config.max_body_bytes)
    url = _valid_url(get_str(body, "url", required=True) or "")
    events = _valid_events(get_str_list(body, "enabledEvents"))
    description = get_str(body, "description", nullable=True)
    now = emulator.now()
    endpoint = WebhookEndpointRecord(
        id=new_id("whep"), project_id=project, url=url, enabled_events=events, created_at=now, updated_at=now,
        secret="whsec_" + secrets.token_urlsafe(24), description=description,
    )  # fmt: skip
    emulator.store.put_webhook_endpoint(endpoint)
    emulator.webhooks.ensure_running()
    return ok({"webhookEndpoint": _endpoint_json(endpoint, with_secret=True)})


async def list_endpoints(request: Request) -> Response:
    """``GET /projects/{projectId}/webhook-endpoints``."""
    endpoints = emulator_of(request).store.project_webhook_endpoints(_project(request))
    return ok({"webhookEndpoints": [_endpoint_json(e) for e in endpoints]})


async def retrieve(request: Request) -> Response:
    """``GET /projects/{projectId}/webhook-endpoints/{endpointId}``."""
    return ok({"webhookEndpoint": _endpoint_json(_require(request))})


async def delete(request: Request) -> Response:
    """``DELETE /projects/{projectId}/webhook-endpoints/{endpointId}``."""
    emulator = emulator_of(request)
    with emulator.store.transaction() as store:
        endpoint = _require(request)
        store.delete_webhook_endpoint(endpoint.id)
    emulator.webhooks.forget_endpoint(endpoint.id)
    return ok({})


async def events(request: Request) -> Response:
    """``GET /projects/{projectId}/webhook-endpoints/{endpointId}/events``."""
    endpoint = _require(request)
    deliveries = emulator_of(request).webhooks.deliveries(endpoint.id)
    return ok({"webhookEvents": [d.to_wire() for d in deliveries]})


def routes() -> list[Route]:
    """The webhook routes, relative to ``/v1``."""
    base = "/projects/{projectId}/webhook-endpoints"
    return [
        Route(base, create, methods=["POST"]),
        Route(base, list_endpoints, methods=["GET"]),
        Route(base + "/{endpointId}", retrieve, methods=["GET"]),
        Route(base + "/{endpointId}", delete, methods=["DELETE"]),
        Route(base + "/{endpointId}/events", events, methods=["GET"]),
    ]
