"""Raw calls to a Prefect server's REST API that hold on a busy server.

A self-hosted server on SQLite answers 503 ("database is locked") now and then, more
so when several test runs share the machine. Prefect's own client retries 429, 502,
503 and dropped connections (``PREFECT_CLIENT_MAX_RETRIES``, exponential waits with
jitter); a test that calls the API with plain httpx must do the same, or it fails on
the server's load instead of on the behaviour it checks. :func:`request` and
:func:`arequest` do: bounded exponential waits, ``Retry-After`` honoured, about 30 s
in all, then the last answer (or error) is the caller's.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

__all__ = ["RETRY_STATUSES", "arequest", "request", "retry_wait"]

RETRY_STATUSES = frozenset({429, 502, 503})
# What Prefect's client retries besides those statuses: the request may not have arrived.
RETRY_ERRORS = (httpx.TransportError,)
BUDGET_SECONDS = 30.0
FIRST_WAIT, MAX_WAIT = 0.25, 8.0


def retry_wait(retries_made: int, retry_after: str | None = None) -> float:
    """Seconds before the next attempt: ``Retry-After`` if given, else 0.25 s doubling, jittered, capped."""
    if retry_after:
        try:
            return min(MAX_WAIT, max(0.0, float(retry_after)))
        except ValueError:
            pass  # an HTTP date: fall back to the backoff
    backoff = min(MAX_WAIT, FIRST_WAIT * 2**retries_made)
    return float(backoff * random.uniform(0.5, 1.0))


def _next_wait(response: httpx.Response | None, error: Exception | None, retries: int, deadline: float) -> float:
    """The wait before retrying; or the answer's own error when it is final or the budget is spent."""
    if response is not None and response.status_code not in RETRY_STATUSES:
        response.raise_for_status()
        return -1.0  # a success: no retry
    wait = retry_wait(retries, response.headers.get("retry-after") if response is not None else None)
    if time.monotonic() + wait > deadline:
        if error is not None:
            raise error
        assert response is not None
        response.raise_for_status()  # a 429/502/503: raises
    return wait


def request(
    method: str,
    url: str,
    *,
    json: Any = None,
    timeout: float = 10.0,
    budget: float = BUDGET_SECONDS,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> httpx.Response:
    """``method url`` with retries on 429/502/503 and connection errors; raises for other errors."""
    deadline = time.monotonic() + budget
    with httpx.Client(timeout=timeout, transport=transport) as client:
        for retries in itertools.count():
            response: httpx.Response | None = None
            error: Exception | None = None
            try:
                response = client.request(method, url, json=json)
            except RETRY_ERRORS as exc:
                error = exc
            wait = _next_wait(response, error, retries, deadline)
            if wait < 0:
                assert response is not None
                return response
            sleep(wait)
    raise AssertionError("unreachable")


async def arequest(
    method: str,
    url: str,
    *,
    json: Any = None,
    request_timeout: float = 10.0,
    budget: float = BUDGET_SECONDS,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> httpx.Response:
    """:func:`request` for async tests (``request_timeout`` is per attempt)."""
    deadline = time.monotonic() + budget
    async with httpx.AsyncClient(timeout=request_timeout, transport=transport) as client:
        for retries in itertools.count():
            response: httpx.Response | None = None
            error: Exception | None = None
            try:
                response = await client.request(method, url, json=json)
            except RETRY_ERRORS as exc:
                error = exc
            wait = _next_wait(response, error, retries, deadline)
            if wait < 0:
                assert response is not None
                return response
            await sleep(wait)
    raise AssertionError("unreachable")
