"""Scenario's project webhook endpoints (the SDK's ``projects.webhook_endpoints``), one method each.

:class:`~prefect_scenario.api.client.ScenarioClient` inherits them; the request machinery is
:mod:`prefect_scenario.api.http`.

Example:
    >>> check_webhook_url("http://127.0.0.1:8000/scenario/token")
    'http://127.0.0.1:8000/scenario/token'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from prefect_scenario.api.http import HttpSeam, Reconcile
from prefect_scenario.api.models import WebhookEndpoint
from prefect_scenario.api.paths import endpoint_segment
from prefect_scenario.exceptions import ConfigurationError, NotFoundError

__all__ = ["WebhookEndpoints", "check_webhook_url"]


class WebhookEndpoints(HttpSeam):
    """The webhook-endpoint methods of :class:`~prefect_scenario.api.client.ScenarioClient`."""

    async def create_webhook_endpoint(
        self,
        url: str,
        enabled_events: Sequence[str],
        description: str | None = None,
        *,
        reconcile: Reconcile[WebhookEndpoint] | None = None,
    ) -> WebhookEndpoint:
        """``POST /projects/{projectId}/webhook-endpoints``: a project endpoint. Sent once.

        The answer is the only one that carries the endpoint's ``secret`` (a ``SecretStr``).

        Args:
            url: where Scenario delivers (an absolute http(s) URL, checked before any request).
            enabled_events: the event names, e.g. ``["model.training.completed"]``, or ``["*"]``.
            description: a note shown with the endpoint.
            reconcile: finds the endpoint a failed attempt created (e.g. by listing by url).

        Raises:
            ConfigurationError: a bad url, or no events.
        """
        check_webhook_url(url)
        events = [e for e in enabled_events if isinstance(e, str) and e.strip()]
        if not events or len(events) != len(enabled_events):
            raise ConfigurationError("enabled_events must be one or more event names (or ['*'])")
        body: dict[str, Any] = {"url": url, "enabledEvents": events}
        if description is not None:
            body["description"] = description
        route = "POST /projects/{projectId}/webhook-endpoints"

        async def send() -> WebhookEndpoint:
            data = await self._request("POST", self._endpoints_path(), route=route, json=body, idempotent=False)
            return WebhookEndpoint.model_validate(_endpoint_of(data))

        return await self._send_once(route, send, reconcile)

    async def list_webhook_endpoints(self) -> list[WebhookEndpoint]:
        """``GET /projects/{projectId}/webhook-endpoints``, every page (cursor guarded as in :meth:`list_models`)."""
        endpoints: dict[str, WebhookEndpoint] = {}
        token: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, str | int] = {"paginationToken": token} if token else {}
            data = await self._request(
                "GET",
                self._endpoints_path(),
                route="GET /projects/{projectId}/webhook-endpoints",
                params=params,
                idempotent=True,
            )
            for raw in _endpoints_of(data):
                endpoint = WebhookEndpoint.model_validate(raw)
                endpoints.setdefault(endpoint.id, endpoint)
            token = data.get("nextPaginationToken") if isinstance(data, dict) else None
            if not token or token in seen:
                return list(endpoints.values())
            seen.add(token)

    async def delete_webhook_endpoint(self, endpoint_id: str) -> bool:
        """``DELETE /projects/{projectId}/webhook-endpoints/{endpointId}``.

        Returns:
            True if it was deleted now, False if it was gone already (a 404: a retried
            delete whose first attempt landed sees one too, so it is not an error).
        """
        endpoint = endpoint_segment(endpoint_id)
        try:
            await self._request(
                "DELETE",
                f"{self._endpoints_path()}/{endpoint}",
                route="DELETE /projects/{projectId}/webhook-endpoints/{endpointId}",
                idempotent=True,
            )
        except NotFoundError:
            return False
        return True

    def _endpoints_path(self) -> str:
        return f"/projects/{quote(self.project_id, safe='')}/webhook-endpoints"


def check_webhook_url(url: str) -> str:
    """Return ``url`` if Scenario can deliver webhooks to it: an absolute http(s) URL with a host.

    Scenario's SDK says the ``url`` "must be an absolute http(s) URL". The message never
    repeats the URL: a receiver's URL ends in its secret path token.

    Raises:
        ConfigurationError: not an absolute http(s) URL, or it has a query, fragment or credentials.

    Example:
        >>> check_webhook_url("https://hooks.example.com/scenario/abc")
        'https://hooks.example.com/scenario/abc'
    """
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        parts, port_ok = None, False
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ConfigurationError("the webhook url must be an absolute http(s) URL with a host")
    if parts.username or parts.password or parts.query or parts.fragment or any(c.isspace() for c in url):
        raise ConfigurationError("the webhook url must not carry credentials, a query, a fragment or spaces")
    return url


def _endpoints_of(data: Any) -> list[Any]:
    # The list answer's shape is not stated in Scenario's API reference: a bare list, or the list under a likely key.
    if isinstance(data, list):
        return data
    for key in ("webhookEndpoints", "endpoints", "items", "data", "results"):
        if isinstance(data, dict) and isinstance(data.get(key), list):
            return list(data[key])
    return []


def _endpoint_of(data: Any) -> Any:
    for key in ("webhookEndpoint", "endpoint", "data"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            return data[key]
    return data
