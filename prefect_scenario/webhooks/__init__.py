"""Scenario webhooks: the fast path for resuming runs suspended while a model trains.

- :mod:`.block`: :class:`ScenarioWebhook`, the endpoint and its secrets;
- :mod:`.registration`: ``prefect-scenario webhooks register`` (idempotent);
- :mod:`.receiver`: ``prefect-scenario webhook-receiver``, an ASGI app that treats each
  delivery as a hint and re-reads the model before anything is resumed.

The watcher (:mod:`prefect_scenario.waiting.watcher`) stays the fallback for lost deliveries.
"""

from __future__ import annotations

from prefect_scenario.webhooks.block import TRAINING_EVENTS, ScenarioWebhook
from prefect_scenario.webhooks.receiver import WebhookReceiver, build_receiver, extract_model_ids
from prefect_scenario.webhooks.registration import DEFAULT_BLOCK_NAME, Registration, register_webhook

__all__ = [
    "DEFAULT_BLOCK_NAME",
    "TRAINING_EVENTS",
    "Registration",
    "ScenarioWebhook",
    "WebhookReceiver",
    "build_receiver",
    "extract_model_ids",
    "register_webhook",
]
