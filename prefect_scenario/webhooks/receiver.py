"""``prefect-scenario webhook-receiver``: a small ASGI app that turns Scenario deliveries into hints.

Scenario states neither the payload shape nor the signature scheme of its webhooks
(``projects.webhook_endpoints`` in its SDK: ``payload: object``, a ``secret`` "used to
generate webhook signatures"). So **a delivery is only a hint, never acted on by its
content alone**: the receiver pulls model ids out of it and calls ``on_hint(model_id)``,
which re-reads that model over the authenticated API and resumes the run waiting for it
(:class:`~prefect_scenario.waiting.hints.HintSettler`: the watcher's code, kept warm). A
forged delivery can at worst make the receiver look at a model; a lost one is caught by
the watcher, which stays the fallback.

What a delivery costs, checked in this order (each refusal is logged, never with the
path or a secret):

1. a path other than the secret token path (or ``GET /healthz``): 404, nothing read;
2. a method other than POST: 405;
3. a body over ``max_body_bytes`` (64 KiB), by ``Content-Length`` or as it streams: 413;
4. a body that is not a JSON object: 400;
5. otherwise 202 at once; the first model id found (:func:`extract_model_ids`) is
   hinted in the background, per model and event as :class:`~prefect_scenario.webhooks.gate.HintGate`
   decides (:func:`event_kind`): the ``cooldown_seconds`` start only after a read that found
   the training ended, so a forged or early delivery never delays the real one; reads are at
   most one a second per model, coalesced, never dropped; with at most ``max_in_flight`` hints
   running; more wait their turn, up to ``max_queued`` in all (a fleet's trainings end
   together: 20 deliveries within a second are 20 resumes, not 8), and past that are
   dropped for the watcher. A replay flood of an ended training's delivery costs one GET
   per cooldown; of a forged one, one GET a second at most.
   A delivery that says it is ``model.training.started`` is not hinted: a start never
   resumes anything, and skipping work on the word of an unsigned delivery is safe
   (acting on it is not).
   Nothing on the input answers a 5xx.

Example:
    >>> extract_model_ids({"type": "model.training.completed", "data": {"modelId": "model_abc"}})
    ['model_abc']
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.waiting.hints import HintSettler
from prefect_scenario.waiting.watcher import WatchReport
from prefect_scenario.webhooks.block import TRAINING_EVENTS, ScenarioWebhook
from prefect_scenario.webhooks.gate import DEFAULT_COOLDOWN_SECONDS, HintGate

__all__ = [
    "DEFAULT_COOLDOWN_SECONDS",
    "DEFAULT_MAX_QUEUED",
    "MAX_BODY_BYTES",
    "HintGate",
    "WebhookReceiver",
    "build_receiver",
    "event_kind",
    "extract_model_ids",
]

MAX_BODY_BYTES = 64 * 1024
# Hints running or waiting for a slot: room for a night's fleet of 200 trainings ending at
# once; each waiting hint is a small task, and a flood of made-up ids past it is dropped.
DEFAULT_MAX_QUEUED = 500
HEALTH_PATH = "/healthz"
_MAX_IDS = 3
_MAX_NODES = 2_000
_MAX_DEPTH = 16
# Where a training event is likely to name its model: Scenario's API reference types a
# delivery's payload as a bare object (webhook endpoints, docs.scenario.com), so look in each.
_ID_PATHS = (
    ("modelId",),
    ("model_id",),
    ("data", "modelId"),
    ("data", "model_id"),
    ("data", "model", "id"),
    ("data", "object", "modelId"),
    ("data", "object", "id"),
    ("payload", "modelId"),
    ("payload", "model_id"),
    ("payload", "model", "id"),
    ("model", "id"),
)

Hint = Callable[[str], Awaitable[object]]
log = logging.getLogger("prefect_scenario.webhooks")


def _is_model_id(value: object) -> bool:
    if not isinstance(value, str) or not value.startswith("model_") or not 6 < len(value) <= 100:
        return False
    return all(c.isascii() and (c.isalnum() or c in "_-") for c in value[6:])


def extract_model_ids(payload: object, limit: int = _MAX_IDS) -> list[str]:
    """The model ids a delivery names, most likely first, at most ``limit``. Pure.

    The likely places first (``modelId``, ``model_id``, ``data.modelId``,
    ``data.model.id``, ``payload.…``), then any string value anywhere that looks like a
    model id (``model_`` and letters, digits, ``_`` or ``-``), breadth first, looking at
    no more than 2,000 values and 16 levels.

    Example:
        >>> extract_model_ids({"payload": {"model": {"id": "model_x1"}}, "other": ["model_y2", "job_1"]})
        ['model_x1', 'model_y2']
        >>> extract_model_ids({"modelId": "model_../../etc"}), extract_model_ids([1, 2])
        ([], [])
    """
    found: list[str] = []

    def add(value: object) -> None:
        if _is_model_id(value) and value not in found and len(found) < limit:
            found.append(str(value))

    for path in _ID_PATHS:
        node: object = payload
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        add(node)
    queue: deque[tuple[object, int]] = deque([(payload, 0)])
    seen = 0
    while queue and len(found) < limit and seen < _MAX_NODES:
        node, depth = queue.popleft()
        seen += 1
        if isinstance(node, str):
            add(node)
        elif depth < _MAX_DEPTH and isinstance(node, dict | list):
            children: Iterable[object] = node.values() if isinstance(node, dict) else node
            queue.extend((child, depth + 1) for child in children)
    return found


def event_kind(payload: object) -> str:
    """The training event a delivery says it is (``type``, ``event``, ``eventType``), else ``"other"``. Pure.

    Only names from the known list come back, so a flood of made-up names is one kind.

    Example:
        >>> event_kind({"type": "model.training.completed"}), event_kind({"type": "x" * 99})
        ('model.training.completed', 'other')
    """
    # Where the name is, is not stated either: the likely keys, also one level down under `event`.
    # An unknown spelling reads "other", so a start and the end within one cooldown would be one
    # hint (the end then waits for the watcher); real trainings outlast the cooldown.
    for node in (payload, payload.get("event") if isinstance(payload, dict) else None):
        if isinstance(node, dict):
            for key in ("type", "event", "eventType", "event_type", "name"):
                if node.get(key) in TRAINING_EVENTS:
                    return str(node[key])
    return "other"


Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class _TooLarge(Exception):
    pass


class WebhookReceiver:
    """The receiver's ASGI app (see the module docstring for what each delivery costs).

    Args:
        path: the secret delivery path (``/scenario/<token>``); ``/<token>`` is also accepted,
            for a reverse proxy that strips the prefix.
        on_hint: called with a model id, in the background; it must re-read the model
            (the default, from :func:`build_receiver`, is a :class:`HintSettler`).
        cooldown_seconds: the least time between two hints for one model.
        max_body_bytes: larger bodies are refused with 413.
        max_in_flight: hints running at once; more wait their turn.
        max_queued: hints running or waiting; more are dropped (the watcher catches up).
        hint_timeout: seconds one hint may run.
        clock, sleep: the gate's clock and the wait before a deferred read (tests move time).
    """

    def __init__(
        self,
        path: str,
        on_hint: Hint,
        *,
        cooldown_seconds: float = DEFAULT_COOLDOWN_SECONDS,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_in_flight: int = 8,
        max_queued: int = DEFAULT_MAX_QUEUED,
        hint_timeout: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        token = path.rstrip("/").rpartition("/")[2]
        if len(token) < 16 or not path.startswith("/"):
            raise ValueError("the delivery path must end in the webhook's path token")
        self._paths = tuple(dict.fromkeys([path.rstrip("/"), "/" + token]))
        self.on_hint = on_hint
        self.gate = HintGate(cooldown_seconds, clock=clock)
        self.max_body_bytes = max_body_bytes
        self.max_in_flight = max_in_flight
        self.max_queued = max(max_queued, max_in_flight)
        self._slots = asyncio.Semaphore(max_in_flight)
        self.hint_timeout = hint_timeout
        self.hints_started = 0
        self._sleep = sleep
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cooldown_seconds={self.gate.cooldown_seconds})"

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def drain(self) -> None:
        """Wait for the hints under way (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- one delivery ----------------------------------------------------------------------

    async def _http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        path, method = str(scope.get("path", "")), str(scope.get("method", ""))
        if path == HEALTH_PATH and method in ("GET", "HEAD"):
            return await _answer(send, 200, {"status": "ok"})
        if not self._is_delivery_path(path):
            log.info("webhook refused: unknown path (%d characters)", len(path))
            return await _answer(send, 404, {"reason": "not found"})
        if method != "POST":
            log.info("webhook refused: method %s", method[:10])
            return await _answer(send, 405, {"reason": "POST only"}, [(b"allow", b"POST")])
        try:
            body = await self._read_body(scope, receive)
        except _TooLarge:
            log.info("webhook refused: body over %d bytes", self.max_body_bytes)
            return await _answer(send, 413, {"reason": f"body over {self.max_body_bytes} bytes"})
        try:
            payload = json.loads(body, parse_constant=_no_constants)
        except (ValueError, RecursionError):
            log.info("webhook refused: body is not JSON (%d bytes)", len(body))
            return await _answer(send, 400, {"reason": "the body must be a JSON object"})
        if not isinstance(payload, dict):
            log.info("webhook refused: body is JSON but not an object")
            return await _answer(send, 400, {"reason": "the body must be a JSON object"})
        hinted = self._hint(extract_model_ids(payload), event_kind(payload))
        return await _answer(send, 202, {"accepted": True, "hinted": hinted})

    def _is_delivery_path(self, path: str) -> bool:
        candidate = path.rstrip("/").encode()
        # Compared in constant time: the path is the secret.
        return any(hmac.compare_digest(candidate, p.encode()) for p in self._paths)

    async def _read_body(self, scope: dict[str, Any], receive: Receive) -> bytes:
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_body_bytes):
                raise _TooLarge  # an unreadable length is refused as too large: no body is read
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:  # the length header may lie, or be absent (chunked)
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _hint(self, model_ids: list[str], kind: str) -> int:
        # One id per delivery: a training event is about one model, and a forged delivery
        # listing many must not cost many reads.
        for model_id in model_ids[:1]:
            if kind == TRAINING_EVENTS[0]:
                log.info("webhook delivery for %s says the training started: nothing to resume", model_id)
                return 0
            if len(self._tasks) >= self.max_queued:
                log.warning("webhook hint for %s dropped: %d hints under way or waiting", model_id, len(self._tasks))
                return 0
            # Per model and event kind: a forged "completed" cannot silence a real "failed".
            key = f"{model_id} {kind}"
            delay = self.gate.admit(key)
            if delay is None:
                log.info("webhook hint for %s coalesced: a read of it is under way, due or ended lately", model_id)
                return 0
            log.info("webhook hint for %s: re-reading the model%s", model_id, f" in {delay:.2f}s" if delay else "")
            self.hints_started += 1
            self._spawn(model_id, key, delay)
            return 1
        log.info("webhook delivery names no model id; nothing to do")
        return 0

    def _spawn(self, model_id: str, key: str, delay: float) -> None:
        due = self.gate.due(key)
        assert due is not None
        task = asyncio.create_task(self._run_hint(model_id, key, due, delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_hint(self, model_id: str, key: str, due: float, delay: float) -> None:
        if delay > 0:
            await self._sleep(delay)
        if not self.gate.begin(key, due):
            return
        ended, recheck = False, None
        try:
            async with self._slots:  # the timeout counts from the hint's start, not its wait for a slot
                outcome = await asyncio.wait_for(self.on_hint(model_id), timeout=self.hint_timeout)
        except Exception as exc:  # a hint is best effort: the watcher is the fallback
            log.warning("webhook hint for %s failed: %s", model_id, type(exc).__name__)
        else:
            log.info("webhook hint for %s done: %s", model_id, _short(outcome))
            ended, recheck = _what_the_read_found(outcome, model_id)
        again = self.gate.done(key, ended=ended, recheck_in=recheck)
        if again is not None:
            log.info("webhook hint for %s: the training goes on; one re-check in %.2fs", model_id, again)
            self._spawn(model_id, key, again)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if isinstance(self.on_hint, HintSettler):
                    await self.on_hint.start()  # its index is read before the first delivery
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.drain()
                if isinstance(self.on_hint, HintSettler):
                    await self.on_hint.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


# What a custom ``on_hint`` may answer for a training still under way (its model's status).
_UNDER_WAY = frozenset({"new", "draft", "training", "queued"})


def _what_the_read_found(outcome: object, model_id: str) -> tuple[bool, float | None]:
    """(the training ended, seconds to its predicted end) from a hint's outcome."""
    if isinstance(outcome, WatchReport):
        ended = model_id in outcome.ended or bool(outcome.resumed or outcome.timed_out)
        return ended, None if ended else outcome.next_check_seconds
    return not (isinstance(outcome, str) and outcome in _UNDER_WAY), None


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _short(value: object) -> str:
    if isinstance(value, WatchReport):  # whole: a reader (and our e2e test) wants every id resumed
        return value.brief()
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


async def _answer(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    raw = json.dumps(body).encode()
    base = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": base + (headers or [])})
    await send({"type": "http.response.body", "body": raw})


def build_receiver(
    webhook: ScenarioWebhook,
    credentials: ScenarioCredentials,
    *,
    on_hint: Hint | None = None,
    **options: Any,
) -> WebhookReceiver:
    """The receiver for a saved :class:`ScenarioWebhook`.

    Args:
        webhook: the block :func:`~prefect_scenario.webhooks.registration.register_webhook` saved.
        credentials: the credentials hints re-read models with.
        on_hint: replaces the default :class:`HintSettler` (tests count requests with it).
        options: :class:`WebhookReceiver` keywords (``cooldown_seconds``, ``max_body_bytes``, ...).

    Example:
        >>> hook = ScenarioWebhook(endpoint_id="e", public_url="https://h.example/scenario",
        ...     path_token="0123456789abcdef0123", secret="s")
        >>> build_receiver(hook, credentials)
        WebhookReceiver(cooldown_seconds=30.0)
    """
    path = urlsplit(webhook.endpoint_url()).path
    return WebhookReceiver(path, on_hint or HintSettler(credentials), **options)
