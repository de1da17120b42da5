"""``prefect-scenario webhooks register``: one Scenario endpoint for training events, saved as a block.

Registering twice changes nothing: the block names its endpoint, and an endpoint that
still exists at the same URL is kept. The decision is :func:`plan_registration`, a
pure function of the block, the project's endpoints and the URL asked for; the I/O
is :func:`register_webhook`.

The create (``POST …/webhook-endpoints``) is sent once: its answer is the only one that
carries the endpoint's secret, so an attempt whose answer was lost is recognised by
listing the endpoints for its exact URL (the path token makes it unique), deleted
(its secret is gone), and the create sent again.

Example:
    >>> plan = plan_registration("https://hooks.example.com/scenario", None, [], project_id="p")
    >>> plan.create, plan.delete
    (True, ())
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pydantic import SecretStr

from prefect_scenario.api.client import ScenarioClient, check_webhook_url
from prefect_scenario.api.models import WebhookEndpoint, redact_url
from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.exceptions import ConfigurationError
from prefect_scenario.webhooks.block import TRAINING_EVENTS, ScenarioWebhook, new_path_token

__all__ = [
    "DEFAULT_BLOCK_NAME",
    "Registration",
    "RegistrationPlan",
    "check_public_url",
    "load_webhook",
    "plan_registration",
    "register_webhook",
]

DEFAULT_BLOCK_NAME = "scenario-webhook"
DESCRIPTION = "prefect-scenario webhook receiver (training events)"

log = logging.getLogger("prefect_scenario.webhooks")


def check_public_url(url: str) -> str:
    """The receiver's public URL, checked: absolute https (plain http only to a loopback host).

    Its path will end in a secret token, which plain http would carry in clear text.

    Raises:
        ConfigurationError: not an absolute http(s) URL, or plain http to a remote host.

    Example:
        >>> check_public_url("https://hooks.example.com/scenario/")
        'https://hooks.example.com/scenario'
    """
    check_webhook_url(url)
    parts = urlsplit(url)
    if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
        raise ConfigurationError(
            "the webhook url must use https (plain http only to 127.0.0.1, ::1 or localhost): "
            "its path carries the receiver's secret token"
        )
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ours(endpoint: WebhookEndpoint, public_url: str) -> bool:
    """An endpoint this command made for ``public_url``: that URL plus one token segment."""
    rest = endpoint.url.removeprefix(public_url + "/")
    return rest != endpoint.url and bool(rest) and "/" not in rest


@dataclass(frozen=True)
class RegistrationPlan:
    """What :func:`register_webhook` will do: keep the block's endpoint, or create one and delete the stale ones."""

    create: bool
    delete: tuple[str, ...] = ()
    keep: str | None = None


def plan_registration(
    public_url: str, block: ScenarioWebhook | None, endpoints: Sequence[WebhookEndpoint], *, project_id: str
) -> RegistrationPlan:
    """Decide a registration. Pure.

    Kept: the block's endpoint, when it still exists at the block's URL, for this URL and project.
    Deleted when creating: the block's previous endpoint, and endpoints at this URL plus one
    path segment that no block knows (a lost or abandoned registration: their token and
    secret are gone, so nothing could ever accept their deliveries).
    """
    by_id = {e.id: e for e in endpoints}
    if block is not None and block.public_url.rstrip("/") == public_url and block.project_id in ("", project_id):
        current = by_id.get(block.endpoint_id)
        if current is not None and current.url == block.endpoint_url():
            return RegistrationPlan(create=False, keep=current.id)
    stale = [e.id for e in endpoints if _ours(e, public_url)]
    if block is not None and block.endpoint_id in by_id:
        stale.append(block.endpoint_id)
    return RegistrationPlan(create=True, delete=tuple(dict.fromkeys(stale)))


@dataclass(frozen=True)
class Registration:
    """The outcome of :func:`register_webhook`."""

    webhook: ScenarioWebhook
    block_name: str
    created: bool
    deleted: tuple[str, ...] = field(default=())


async def load_webhook(name: str) -> ScenarioWebhook | None:
    """The saved :class:`ScenarioWebhook` named ``name``, or None if there is none.

    Raises:
        ConfigurationError: the block of that name is of another type.
    """
    try:
        loaded = await ScenarioWebhook.aload(name)
    except ValueError:  # Prefect: "Unable to find block document named …"
        return None
    if not isinstance(loaded, ScenarioWebhook):
        raise ConfigurationError(f"block {name!r} is not a ScenarioWebhook block")
    return loaded


async def register_webhook(
    url: str,
    *,
    credentials: ScenarioCredentials,
    block_name: str = DEFAULT_BLOCK_NAME,
    events: Sequence[str] = TRAINING_EVENTS,
    client: ScenarioClient | None = None,
) -> Registration:
    """Create (or keep) the project's webhook endpoint for training events, and save the block.

    Args:
        url: the receiver's public URL; a random path token is appended to it.
        credentials: the Scenario credentials (the endpoint belongs to their project).
        block_name: the name of the :class:`ScenarioWebhook` block to save (or find).
        events: the events to subscribe to.
        client: a client to use instead of one from ``credentials`` (tests).

    Raises:
        ConfigurationError: a bad URL or block name, before any request.
        APIError: Scenario refused or could not be reached.

    Example:
        >>> import asyncio
        >>> first = asyncio.run(register_webhook("http://127.0.0.1:9/hooks", credentials=credentials,
        ...                                      block_name="doctest-webhook"))
        >>> again = asyncio.run(register_webhook("http://127.0.0.1:9/hooks", credentials=credentials,
        ...                                      block_name="doctest-webhook"))
        >>> first.created, again.created, again.webhook.endpoint_id == first.webhook.endpoint_id
        (True, False, True)
    """
    public_url = check_public_url(url)
    if not block_name or not block_name.strip():
        raise ConfigurationError("the webhook block needs a name")
    block = await load_webhook(block_name)
    owned = client is None
    client = client or credentials.get_client()
    try:
        plan = plan_registration(public_url, block, await client.list_webhook_endpoints(), project_id=client.project_id)
        if not plan.create and block is not None:
            log.info("webhook endpoint %s at %s is registered already", plan.keep, block.redacted_url())
            return Registration(block, block_name, created=False)
        for endpoint_id in plan.delete:
            await client.delete_webhook_endpoint(endpoint_id)
            log.info("deleted stale webhook endpoint %s", endpoint_id)
        webhook = await _create(client, public_url, events)
    finally:
        if owned:
            await client.aclose()
    await webhook.asave(block_name, overwrite=True)
    log.info("registered webhook endpoint %s at %s", webhook.endpoint_id, webhook.redacted_url())
    return Registration(webhook, block_name, created=True, deleted=plan.delete)


async def _create(client: ScenarioClient, public_url: str, events: Sequence[str]) -> ScenarioWebhook:
    token = new_path_token()
    target = f"{public_url}/{token}"

    async def reconcile() -> WebhookEndpoint | None:
        # A create whose answer was lost may have landed: its secret is gone, so delete it and send again.
        for endpoint in await client.list_webhook_endpoints():
            if endpoint.url == target:
                await client.delete_webhook_endpoint(endpoint.id)
                log.info("deleted webhook endpoint %s: its creation answer (and secret) was lost", endpoint.id)
        return None

    endpoint = await client.create_webhook_endpoint(target, list(events), DESCRIPTION, reconcile=reconcile)
    if endpoint.secret is None:
        log.warning("Scenario returned no secret for webhook endpoint %s (%s)", endpoint.id, redact_url(target))
    return ScenarioWebhook(
        endpoint_id=endpoint.id,
        public_url=public_url,
        path_token=SecretStr(token),
        secret=endpoint.secret or SecretStr(""),
        events=list(events),
        project_id=client.project_id,
    )
