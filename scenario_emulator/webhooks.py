"""Webhook deliveries: the events of a training, POSTed to the project's endpoints.

A training's status is computed from the clock (:func:`.state_machine.training_view`),
so nothing "happens" when a training ends. A :class:`WebhookDispatcher` thread,
started with the first endpoint, looks at every training every ``webhook_scan_seconds``
and turns what changed since its last look into events (:func:`events_due`, pure):
``model.training.started`` once a training exists, then one of
``model.training.completed``, ``.failed`` or ``.cancelled`` once it ended. Each event
goes to every endpoint of the model's project that subscribes to it (``["*"]`` or the
name), from a small thread pool, with a short timeout and a couple of retries; each
delivery is recorded with its status (created, retrying, success, failed, the SDK's
webhook-event statuses) and attempts. Requests are never slowed: routes only save
records, the dispatcher reads them.

The payload shape and the signature scheme are **not stated** by Scenario
(scenario-sdk 2.4.0 types the webhook event's ``payload`` as ``object``). The emulator's choice,
plausible and nothing more::

    {"id": "evt_…", "type": "model.training.completed", "createdAt": "<ISO>",
     "projectId": "…", "data": {"modelId": "model_…", "jobId": "job_…",
     "status": "trained", "jobStatus": "success"}}

and no signature header: a receiver must treat a delivery as a hint and re-read the
model over the authenticated API (prefect-scenario's receiver does).

Deliveries go only to the hosts in ``webhook_hosts`` (loopback by default): the fuzz
tests create endpoints with made-up URLs, which must never be reached. A delivery to
another host is recorded as ``failed``.

Example:
    >>> events_due("trained", frozenset())
    ['model.training.started', 'model.training.completed']
    >>> events_due("training", frozenset({"model.training.started"}))
    []
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from scenario_emulator.records import WebhookEndpointRecord, iso, new_id
from scenario_emulator.state_machine import TrainingRecord, TrainingView, training_view
from scenario_emulator.store import EmulatorStore

__all__ = [
    "STARTED",
    "TRAINING_EVENTS",
    "DeliveryRecord",
    "WebhookDispatcher",
    "event_payload",
    "events_due",
]

STARTED = "model.training.started"
_ENDED = {
    "trained": "model.training.completed",
    "failed": "model.training.failed",
    "training-canceled": "model.training.cancelled",
}
TRAINING_EVENTS = (STARTED, *_ENDED.values())
_MAX_DELIVERIES_KEPT = 1000  # per endpoint, newest kept

log = logging.getLogger("scenario_emulator.webhooks")


def events_due(model_status: str, announced: frozenset[str]) -> list[str]:
    """The events a training in ``model_status`` owes, given those ``announced`` already. Pure.

    A training that ended between two looks owes both its start and its end, in that order.
    """
    due = [STARTED]
    if model_status in _ENDED:
        due.append(_ENDED[model_status])
    return [e for e in due if e not in announced]


def event_payload(event_id: str, event_type: str, training: TrainingRecord, view: TrainingView) -> dict[str, Any]:
    """The JSON body of one event (the emulator's choice: Scenario's is not stated). Pure."""
    happened = training.created_at if event_type == STARTED else (view.ended_at or view.updated_at)
    return {
        "id": event_id,
        "type": event_type,
        "createdAt": iso(happened),
        "projectId": training.project_id,
        "data": {
            "modelId": training.model_id,
            "jobId": training.job_id,
            "status": view.model_status,
            "jobStatus": view.job_status,
        },
    }


@dataclass
class DeliveryRecord:
    """One event for one endpoint, and how its delivery went."""

    id: str
    endpoint_id: str
    event_type: str
    payload: dict[str, Any]
    created_at: float
    status: str = "created"
    attempts: int = 0
    updated_at: float = 0.0
    response_status: int | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_wire(self) -> dict[str, Any]:
        """The record as the events listing shows it."""
        return {
            "id": self.id,
            "endpointId": self.endpoint_id,
            "eventType": self.event_type,
            "status": self.status,
            "attempts": self.attempts,
            "payload": self.payload,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at or self.created_at),
            "responseStatusCode": self.response_status,
            "error": self.error,
        }


class WebhookDispatcher:
    """Watches the trainings of ``store`` and delivers their events (see the module docstring).

    Args:
        store: The emulator's store.
        clock: The emulator's clock.
        scan_seconds: How often to look at the trainings.
        timeout: Seconds one delivery attempt may take.
        retries: Attempts after the first one fails (a non-2xx answer or no answer).
        retry_seconds: Wait before the first retry; doubled for each next one.
        hosts: The hosts deliveries may go to.
    """

    def __init__(
        self,
        store: EmulatorStore,
        clock: Callable[[], float],
        *,
        scan_seconds: float = 0.05,
        timeout: float = 2.0,
        retries: int = 2,
        retry_seconds: float = 0.2,
        hosts: Sequence[str] = ("127.0.0.1", "localhost", "::1"),
    ) -> None:
        self.store = store
        self.clock = clock
        self.scan_seconds = scan_seconds
        self.timeout = timeout
        self.retries = retries
        self.retry_seconds = retry_seconds
        self.hosts = frozenset(hosts)
        self._lock = threading.Lock()
        self._announced: dict[str, frozenset[str]] = {}
        self._deliveries: dict[str, deque[DeliveryRecord]] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._http: httpx.Client | None = None

    # -- lifecycle -------------------------------------------------------------------

    def ensure_running(self) -> None:
        """Start the watcher thread if it is not running (the first endpoint does this)."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._baseline()
            self._http = httpx.Client(timeout=self.timeout, follow_redirects=False)
            self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="emulator-webhook")
            self._thread = threading.Thread(target=self._run, name="emulator-webhooks", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Look at the trainings now rather than at the next tick (after a clock move, a trigger)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop watching and delivering; deliveries under way are abandoned."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._http is not None:
            self._http.close()

    def reset(self) -> None:
        """Forget the deliveries and what was announced (the store was reset)."""
        with self._lock:
            self._deliveries.clear()
            self._announced.clear()

    # -- reading -----------------------------------------------------------------------

    def deliveries(self, endpoint_id: str) -> list[DeliveryRecord]:
        """The deliveries recorded for one endpoint, oldest first."""
        with self._lock:
            return list(self._deliveries.get(endpoint_id, ()))

    def forget_endpoint(self, endpoint_id: str) -> None:
        """Drop the deliveries of a deleted endpoint."""
        with self._lock:
            self._deliveries.pop(endpoint_id, None)

    # -- the watcher -------------------------------------------------------------------

    def _baseline(self) -> None:
        # What happened before the first endpoint existed is not delivered (nor again after a restart).
        now = self.clock()
        with self.store.lock:
            for training in self.store.trainings.values():
                status = training_view(training, now).model_status
                self._announced[training.job_id] = frozenset(events_due(status, frozenset()))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.scan()
            except Exception:  # the emulator's own bug: keep delivering the next events
                log.exception("webhook scan failed")
            self._wake.wait(self.scan_seconds)
            self._wake.clear()

    def scan(self) -> int:
        """Turn what changed since the last look into deliveries; return how many were queued."""
        now = self.clock()
        queued: list[DeliveryRecord] = []
        with self.store.lock:
            for training in list(self.store.trainings.values()):
                view = training_view(training, now)
                with self._lock:
                    announced = self._announced.get(training.job_id, frozenset())
                    due = events_due(view.model_status, announced)
                    if not due:
                        continue
                    self._announced[training.job_id] = announced | frozenset(due)
                endpoints = self.store.project_webhook_endpoints(training.project_id)
                for event_type in due:
                    payload = event_payload(new_id("evt"), event_type, training, view)
                    for endpoint in endpoints:
                        if endpoint.subscribes_to(event_type):
                            queued.append(self._record(endpoint, event_type, payload, now))
        for delivery in queued:
            target = self.store.webhook_endpoints.get(delivery.endpoint_id)
            if target is not None and self._pool is not None:
                self._pool.submit(self._deliver, target, delivery)
        return len(queued)

    def _record(
        self, endpoint: WebhookEndpointRecord, event_type: str, payload: dict[str, Any], now: float
    ) -> DeliveryRecord:
        delivery = DeliveryRecord(new_id("whevt"), endpoint.id, event_type, payload, created_at=now)
        with self._lock:
            self._deliveries.setdefault(endpoint.id, deque(maxlen=_MAX_DELIVERIES_KEPT)).append(delivery)
        return delivery

    def _deliver(self, endpoint: WebhookEndpointRecord, delivery: DeliveryRecord) -> None:
        try:
            self._attempts(endpoint, delivery)
        finally:
            delivery.updated_at = self.clock()
            delivery.done.set()

    def _attempts(self, endpoint: WebhookEndpointRecord, delivery: DeliveryRecord) -> None:
        host = urlsplit(endpoint.url).hostname or ""
        if host not in self.hosts:
            delivery.status, delivery.error = "failed", "the emulator delivers only to its webhook_hosts"
            return
        assert self._http is not None
        for attempt in range(self.retries + 1):
            if self._stop.is_set():
                return
            delivery.attempts = attempt + 1
            try:
                response = self._http.post(endpoint.url, json=delivery.payload, headers={"user-agent": "emulator"})
                delivery.response_status, delivery.error = response.status_code, None
                if 200 <= response.status_code < 300:
                    delivery.status = "success"
                    return
            except httpx.HTTPError as exc:
                delivery.response_status, delivery.error = None, type(exc).__name__
            if attempt < self.retries:
                delivery.status, delivery.updated_at = "retrying", self.clock()
                self._stop.wait(self.retry_seconds * 2**attempt)
        delivery.status = "failed"
