"""The webhook subcommands: ``webhooks register``, ``webhooks list`` and ``webhook-receiver``.

    prefect-scenario webhooks register --url https://hooks.example.com/scenario [--block NAME]
    prefect-scenario webhooks list
    prefect-scenario webhook-receiver [--host H] [--port P] [--block NAME]

``register(subparsers)`` adds them to an ``argparse`` parser; each sets ``handler``, which
``prefect_scenario.cli.main`` runs (an error: one line on stderr, exit 2 for bad input).

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="prefect-scenario")
    >>> register(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["webhook-receiver", "--port", "9000"])
    >>> args.handler.__name__, args.port
    ('receiver_command', 9000)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["receiver_command", "register", "webhooks_command"]


def register(commands: Any) -> None:
    """Add ``webhooks register|list`` and ``webhook-receiver`` to an argparse subparsers object."""
    from prefect_scenario.webhooks.registration import DEFAULT_BLOCK_NAME

    def blocks(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--block", default=DEFAULT_BLOCK_NAME, help="the ScenarioWebhook block (%(default)s)")
        sub.add_argument("--scenario-block", help="a saved ScenarioCredentials block (default: SCENARIO_* variables)")

    webhooks = commands.add_parser("webhooks", help="Scenario webhook endpoints for training events")
    actions = webhooks.add_subparsers(dest="webhooks_command", required=True)
    registering = actions.add_parser("register", help="create the endpoint (once) and save its block")
    registering.add_argument(
        "--url", required=True, help="the receiver's public https URL (a secret token is appended)"
    )
    blocks(registering)
    registering.set_defaults(handler=webhooks_command)
    listing = actions.add_parser("list", help="list the project's webhook endpoints")
    listing.add_argument("--scenario-block", help="a saved ScenarioCredentials block (default: SCENARIO_* variables)")
    listing.set_defaults(handler=webhooks_command)
    receiver = commands.add_parser("webhook-receiver", help="serve the webhook receiver (a fast path for the watcher)")
    receiver.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    receiver.add_argument("--port", type=int, default=8788, help="port to listen on (%(default)s)")
    receiver.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="the level of the receiver's own lines, one per delivery (%(default)s)",
    )
    blocks(receiver)
    receiver.set_defaults(handler=receiver_command)


def webhooks_command(args: argparse.Namespace) -> int:
    """``webhooks register`` (idempotent: saves a ScenarioWebhook block) and ``webhooks list``."""
    return asyncio.run(_webhooks(args))


async def _webhooks(args: argparse.Namespace) -> int:
    from prefect_scenario.api.models import redact_url
    from prefect_scenario.credentials import resolve_credentials
    from prefect_scenario.webhooks.registration import check_public_url, register_webhook

    if args.webhooks_command == "register":
        check_public_url(args.url)  # a bad URL is a usage error before credentials are even read
        credentials = await resolve_credentials(args.scenario_block)
        done = await register_webhook(args.url, credentials=credentials, block_name=args.block)
        verb = "registered" if done.created else "already registered"
        hook = done.webhook
        print(f"{verb}: endpoint {hook.endpoint_id} -> {hook.redacted_url()} (block {done.block_name!r})")
        return 0
    async with (await resolve_credentials(args.scenario_block)).get_client() as client:
        endpoints = await client.list_webhook_endpoints()
    for endpoint in endpoints:
        print(f"{endpoint.id}  {redact_url(endpoint.url)}  {','.join(endpoint.enabled_events)}")
    if not endpoints:
        print("no webhook endpoints")
    return 0


def receiver_command(args: argparse.Namespace, serve: Callable[..., Any] | None = None) -> int:
    """``webhook-receiver``: serve the receiver of the block ``--block`` until interrupted."""
    import logging

    import uvicorn

    from prefect_scenario.credentials import resolve_credentials
    from prefect_scenario.exceptions import ConfigurationError
    from prefect_scenario.webhooks.receiver import build_receiver
    from prefect_scenario.webhooks.registration import load_webhook

    if not 0 <= args.port < 65536:
        raise ConfigurationError(f"--port must be 0 to 65535, got {args.port}")
    credentials = asyncio.run(resolve_credentials(args.scenario_block))
    webhook = asyncio.run(load_webhook(args.block))
    if webhook is None:
        raise ConfigurationError(
            f"no ScenarioWebhook block named {args.block!r}: run `prefect-scenario webhooks register` first"
        )
    # Prefect's logging setup leaves loggers other than its own at WARNING: an operator running
    # the receiver wants to see what each delivery led to (no line carries the path or a secret).
    logging.getLogger("prefect_scenario").setLevel(args.log_level)
    app = build_receiver(webhook, credentials)
    print(f"webhook receiver for {webhook.redacted_url()} on http://{args.host}:{args.port}", file=sys.stderr)
    # No access log: every delivery's path is the secret token.
    (serve or uvicorn.run)(app, host=args.host, port=args.port, access_log=False, log_config=None, lifespan="on")
    return 0
