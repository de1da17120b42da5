"""The gateway every request passes, outermost, around Starlette's own middleware.

It gives every answer an ``x-request-id`` (also the ``traceId`` of error bodies),
logs every request but the admin ones, injects faults into ``/v1`` requests, and
checks Basic auth on ``/v1``.

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
from collections.abc import Mapping
from typing import Any

import httpx
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scenario_emulator.config import TRANSPORT_STATE_KEY, Emulator
from scenario_emulator.errors import REQUEST_ID_KEY, error_response
from scenario_emulator.records import new_id

__all__ = ["Gateway", "RequestLog", "is_authorized"]


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


class Gateway:
    """Request id, request log, faults and auth, around the whole Starlette app."""

    def __init__(self, app: ASGIApp, emulator: Emulator, log: RequestLog) -> None:
        self.app = app
        self.emulator = emulator
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_id("req")
        scope["state"] = {**scope.get("state", {}), REQUEST_ID_KEY: request_id}
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
        decision = self.emulator.faults.decide(method, path)
        headers = Headers(scope=scope)
        entry.update(
            {
                "method": method,
                "path": path,
                "query": scope.get("query_string", b"").decode("latin-1"),
                "status": None,  # stays None for a dropped connection
                "time": self.emulator.now(),
                "requestId": request_id,
                "fault": None if decision.kind == "none" else decision.kind,
                "retryCount": headers.get("x-stainless-retry-count"),
            }
        )
        if decision.delay_seconds > 0:
            entry["delaySeconds"] = decision.delay_seconds  # only when delayed, so old entries keep their shape
        self.log.append(entry)
        if decision.delay_seconds > 0:
            # The server has the whole request before it is slow, as a busy real one would:
            # a client that gives up during the spike does not undo the work that follows.
            receive = await _read_ahead(receive, self.emulator.config.max_body_bytes)
            await self.emulator.config.sleep(decision.delay_seconds)
        await self._serve(scope, receive, send_with_id, decision.kind, request_id)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, fault: str, request_id: str) -> None:
        faults, config = self.emulator.faults.config, self.emulator.config
        is_v1 = scope["path"] == "/v1" or scope["path"].startswith("/v1/")
        if fault == "drop_before":
            # Read the request whole first: closing a socket with unread bytes makes the kernel answer
            # with a reset instead of a clean close, and whether the body had arrived yet is a race
            # on a busy machine. A client must handle both; the emulator makes the drop a clean one.
            receive = await _read_ahead(receive, config.max_body_bytes)
            await _drop(scope, receive)
        elif fault == "error":
            response = error_response(faults.error_status, "emulated server error (fault injection)", request_id)
            await response(scope, receive, send)
        elif fault == "rate_limit":
            wait = faults.retry_after_seconds
            # Retry-After in whole seconds (HTTP), the exact wait in retry-after-ms (read first by the SDK).
            retry_headers = {"Retry-After": str(max(1, math.ceil(wait))), "retry-after-ms": str(round(wait * 1000))}
            await error_response(429, "rate limited (fault injection)", request_id, retry_headers)(scope, receive, send)
        elif is_v1 and not is_authorized(Headers(scope=scope), config.api_key, config.api_secret):
            await error_response(401, "missing or invalid credentials", request_id)(scope, receive, send)
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
