"""The HTTP seam: auth, timeouts, error mapping and the retry loop for every request to Scenario.

:class:`HttpSeam` is the base of :class:`prefect_scenario.api.client.ScenarioClient`
(which adds one method per endpoint), as Stainless SDKs keep ``_base_client.py`` apart
from their resources. Every request goes through :meth:`HttpSeam._request`, which adds
Basic auth and ``projectId``, maps failures onto :mod:`prefect_scenario.exceptions`
(:func:`prefect_scenario.api.errors.status_error`), and retries transient failures of
requests that are safe to repeat, as :mod:`prefect_scenario.api.retry_policy` decides.
A call that creates something or spends credits goes through :meth:`HttpSeam._send_once`:
sent again only after a ``reconcile`` callback looked for what the failed attempt did
and found nothing.

Example:
    >>> check_base_url("http://127.0.0.1:8787/v1/")
    'http://127.0.0.1:8787/v1'
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from prefect_scenario.api.errors import status_error
from prefect_scenario.api.retry_policy import DEFAULT_MAX_RETRIES, RetryDecision, decide, log_decision
from prefect_scenario.api.uploads import StreamedBody
from prefect_scenario.exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ConfigurationError,
    error_for_status,
)

__all__ = ["DEFAULT_BASE_URL", "HttpSeam", "Reconcile", "check_base_url", "check_settings"]

DEFAULT_BASE_URL = "https://api.cloud.scenario.com/v1"

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Reconcile = Callable[[], Awaitable[T | None]]


def check_base_url(base_url: str) -> str:
    """Return ``base_url`` without a trailing slash if it is safe to send credentials to.

    Plain ``http`` is allowed only to a loopback host (the emulator): anywhere else
    it would send the API secret in clear text.

    Raises:
        ConfigurationError: the URL is not http(s), has no host, or is plain http to a remote host.

    Example:
        >>> check_base_url("http://127.0.0.1:8787/v1/")
        'http://127.0.0.1:8787/v1'
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"base_url must be an http(s) URL with a host, got {base_url!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigurationError(
            f"base_url {base_url!r} uses plain http to a non-loopback host; use https "
            "(plain http is allowed only for 127.0.0.1, ::1 or localhost)"
        )
    return base_url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unwrap_credentials(api_key: SecretStr, api_secret: SecretStr) -> tuple[str, tuple[str, ...]]:
    """The Basic ``Authorization`` value, and the strings to redact from error text.

    The single place the key and secret are unwrapped. httpx masks ``Authorization``
    in its reprs, and the client's own repr shows neither.
    """
    key, secret = api_key.get_secret_value(), api_secret.get_secret_value()
    if not key.strip() or not secret.strip():
        raise ConfigurationError("Scenario API key and secret must both be set and non-empty")
    token = base64.b64encode(f"{key}:{secret}".encode()).decode("ascii")
    return f"Basic {token}", (token, secret, key)


def check_settings(*, api_key: SecretStr, api_secret: SecretStr, project_id: str, base_url: str) -> str:
    """Refuse settings no request could succeed with; the checked base URL.

    Raises:
        ConfigurationError: an empty key, secret or project, or an unsafe base URL.
    """
    if not project_id or not project_id.strip():
        raise ConfigurationError("project_id must be set: Scenario scopes every model to a project")
    _unwrap_credentials(api_key, api_secret)
    return check_base_url(base_url)


class HttpSeam:
    """The request machinery under :class:`~prefect_scenario.api.client.ScenarioClient`.

    Args:
        api_key: the API key (a ``SecretStr`` or a plain string, kept as a ``SecretStr``).
        api_secret: the API secret.
        project_id: sent as ``projectId`` on every call.
        base_url: the API root including ``/v1``; plain http only for loopback hosts.
        timeout: read/write/pool timeout in seconds.
        connect_timeout: connect timeout in seconds.
        max_retries: retries of a transient failure (see :mod:`prefect_scenario.api.retry_policy`).
        transport: an httpx transport (e.g. ``httpx.ASGITransport`` for in-process tests).
        sleep: the coroutine used to wait between retries (tests pass a fake one).
        rng: the jitter source.

    Raises:
        ConfigurationError: missing credentials or project id, or an unsafe base URL.

    Example:
        >>> HttpSeam(api_key="k", api_secret="s", project_id="p").base_url
        'https://api.cloud.scenario.com/v1'
    """

    def __init__(
        self,
        *,
        api_key: SecretStr | str,
        api_secret: SecretStr | str,
        project_id: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        max_retries: int = DEFAULT_MAX_RETRIES,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
    ) -> None:
        key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        secret = SecretStr(api_secret) if isinstance(api_secret, str) else api_secret
        self.base_url = check_settings(api_key=key, api_secret=secret, project_id=project_id, base_url=base_url)
        self.project_id = project_id
        self.max_retries = max_retries
        self.timeout = timeout
        self.request_count = 0
        self.requests_by_route: Counter[str] = Counter()
        self._sleep: Sleep = sleep or asyncio.sleep
        self._rng = rng or random.Random()  # jitter, not security
        authorization, self._redact = _unwrap_credentials(key, secret)
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers={"Authorization": authorization, "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            transport=transport,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, project_id={self.project_id!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the one HTTP seam -------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        route: str,
        json: Any = None,
        body: StreamedBody | None = None,
        params: Mapping[str, str | int] | None = None,
        idempotent: bool,
    ) -> Any:
        """Send one API call and return its parsed JSON body.

        Transient failures are retried, as the retry policy decides, only when
        ``idempotent``; a sent-once call raises its first failure to :meth:`_send_once`.
        """
        retries_made = 0
        while True:
            try:
                return await self._send(method, path, route=route, json=json, body=body, params=params)
            except APIError as error:
                if not idempotent:
                    raise
                decision = decide(
                    error, retries_made=retries_made, send_once=False, max_retries=self.max_retries, rng=self._rng
                )
                if not decision.retry:
                    raise
                retries_made += 1
                log_decision(route, decision, retries_made)
                await self._sleep(decision.wait)

    async def _send_once(self, route: str, send: Callable[[], Awaitable[T]], reconcile: Reconcile[T] | None) -> T:
        """Send a call that creates something or spends credits; resend it only after ``reconcile``.

        ``reconcile`` returns what the failed attempt did (the model, the image, the
        started training) or None when it did nothing. Without one, only a failure that
        proves nothing happened (a 429) is sent again.
        """
        retries_made = 0
        while True:
            try:
                return await send()
            except APIError as error:
                decision = decide(
                    error,
                    retries_made=retries_made,
                    send_once=True,
                    max_retries=self.max_retries,
                    settle_seconds=self.timeout,
                    rng=self._rng,
                )
                if not decision.retry or (decision.reconcile and reconcile is None):
                    raise
                retries_made += 1
                log_decision(route, decision, retries_made)
                await self._sleep(decision.wait)
                if decision.reconcile and reconcile is not None and (found := await reconcile()) is not None:
                    log_decision(route, RetryDecision(False, 0, False, "landed"), retries_made)
                    return found

    async def _send(
        self,
        method: str,
        path: str,
        *,
        route: str,
        json: Any,
        body: StreamedBody | None,
        params: Mapping[str, str | int] | None,
    ) -> Any:
        query: dict[str, str | int] = {"projectId": self.project_id, **(params or {})}
        self.request_count += 1
        self.requests_by_route[route] += 1
        where: dict[str, Any] = {"method": method, "path": _template(route)}
        try:
            if body is not None:
                response = await self._http.request(
                    method, path.lstrip("/"), content=body.stream(), headers=body.headers, params=query
                )
            else:
                response = await self._http.request(method, path.lstrip("/"), json=json, params=query)
        except httpx.TimeoutException as exc:
            raise APITimeoutError(f"no answer within the timeout ({type(exc).__name__})", **where) from None
        except httpx.TransportError as exc:
            raise APIConnectionError(f"connection failed or dropped ({type(exc).__name__})", **where) from None
        if response.status_code >= 400:
            raise self._status_error(response, method, route)
        try:
            return response.json()
        except ValueError:
            raise error_for_status(500)(
                f"the API answered {response.status_code} with a body that is not JSON",
                status_code=response.status_code,
                request_id=response.headers.get("x-request-id"),
                **where,
            ) from None

    def _status_error(self, response: httpx.Response, method: str, route: str) -> APIError:
        try:
            parsed: Any = response.json()
        except ValueError:
            parsed = None
        error = status_error(
            response.status_code,
            parsed,
            response.headers,
            method=method,
            path=_template(route),
            raw_text=self._scrub(response.text[:300]),
        )
        # An error body should never echo credentials, but if one ever did, it stops here.
        error.message = self._scrub(error.message)
        error.args = (error.message,)
        return error

    def _scrub(self, text: str) -> str:
        for value in self._redact:
            text = text.replace(value, "**********")
        return text


def _template(route: str) -> str:
    # Errors carry the method separately: "GET /models/{id}" → "/models/{id}".
    return route.partition(" ")[2] or route
