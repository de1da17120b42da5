"""The evaluation subcommands: ``evaluate``, ``promote``, ``rollback`` and ``production``.

    prefect-scenario evaluate MODEL --dataset D [--trigger-word W] [--margin N] [--base-model-id ID]
    prefect-scenario promote MODEL --dataset D [--force] [--review never|uncertain|always]
    prefect-scenario rollback DATASET
    prefect-scenario production DATASET

``register(subparsers)`` adds them to an ``argparse`` parser; each sets ``handler`` to the
function that runs it (``args.handler(args)`` returns the exit code). Credentials come
from ``--block`` or the ``SCENARIO_*`` environment, as for the other commands.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="prefect-scenario")
    >>> register(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["production", "hero"])
    >>> args.handler.__name__, args.dataset
    ('production', 'hero')
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["evaluate", "production", "promote", "register", "rollback"]


def _run(body: Callable[[Any], Awaitable[Any]], args: argparse.Namespace) -> int:
    """Run ``body(client)`` with the credentials the arguments name; print its answer as JSON.

    An error goes up to the command line's boundary (``prefect_scenario.cli.main``): one line
    on stderr, exit 2 for bad input, 1 for any other failure.
    """
    from prefect_scenario.credentials import resolve_credentials

    async def main() -> Any:
        async with (await resolve_credentials(getattr(args, "block", None))).get_client() as client:
            return await body(client)

    print(json.dumps(asyncio.run(main()), indent=2, default=str))
    return 0


def _check_names(args: argparse.Namespace) -> None:
    """The model id and the dataset label, checked before anything is read or sent."""
    from prefect_scenario.validation import clean_name, model_id

    if getattr(args, "model_id", None) is not None:
        model_id(args.model_id)
    args.dataset = clean_name("--dataset" if hasattr(args, "model_id") else "dataset", args.dataset)


def _options(args: argparse.Namespace) -> Any:
    from prefect_scenario.evaluation.options import DEFAULT_MARGIN, EvaluationOptions
    from prefect_scenario.validation import finite

    margin = DEFAULT_MARGIN if args.margin is None else finite("--margin", args.margin, minimum=0)
    return EvaluationOptions(margin=margin, base_model_id=args.base_model_id, review=args.review)


def evaluate(args: argparse.Namespace, *, promote_it: bool = False) -> int:
    """``evaluate MODEL --dataset D``: judge against production; change nothing (``promote`` does)."""
    from prefect_scenario.evaluation.flows import evaluate as run

    _check_names(args)
    options = _options(args)  # checked before the credentials are read or anything is sent

    async def body(client: Any) -> Any:
        result = await run(
            client, args.model_id, args.dataset, options=options, promote=promote_it, trigger_word=args.trigger_word
        )
        return result.model_dump(mode="json")

    return _run(body, args)


def promote(args: argparse.Namespace) -> int:
    """``promote MODEL --dataset D``: evaluate, and promote only a better model; ``--force`` skips the judge."""
    if not args.force:
        return evaluate(args, promote_it=True)
    from prefect_scenario.evaluation.promotion import promote_model

    _check_names(args)

    async def body(client: Any) -> Any:
        handle = await promote_model(client, args.dataset, args.model_id, details={"forced": True})
        return {"dataset": args.dataset, "production": handle.model_id, "previous": handle.previous_model_ids[-1:]}

    return _run(body, args)


def rollback(args: argparse.Namespace) -> int:
    """``rollback DATASET``: restore the previous production model (two requests to Scenario)."""
    from prefect_scenario.evaluation.promotion import rollback as run

    _check_names(args)

    async def body(client: Any) -> Any:
        handle = await run(client, args.dataset)
        return {"dataset": args.dataset, "production": handle.model_id}

    return _run(body, args)


def production(args: argparse.Namespace) -> int:
    """``production DATASET``: the production model, read on Scenario's side."""
    from prefect_scenario.evaluation.promotion import read_production

    _check_names(args)

    async def body(client: Any) -> Any:
        return {"dataset": args.dataset, "production": await read_production(client, args.dataset)}

    return _run(body, args)


def register(subparsers: Any) -> None:
    """Add ``evaluate``, ``promote``, ``rollback`` and ``production`` to an argparse subparsers object."""

    def judged(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("model_id", help="the candidate LoRA (trained)")
        sub.add_argument("--dataset", required=True, help="the dataset label (one production LoRA per dataset)")
        sub.add_argument("--trigger-word", help="for the default suite when the captions are empty")
        sub.add_argument("--margin", type=float, help="Quality Gate points the mean paired gain must beat")
        sub.add_argument("--base-model-id", help="the base model to render through (default: from the type)")
        sub.add_argument("--review", choices=["never", "uncertain", "always"], default="never")

    for name, handler, text in (
        ("evaluate", evaluate, "judge a LoRA against production (changes nothing)"),
        ("promote", promote, "evaluate and promote only a better LoRA"),
        ("rollback", rollback, "restore the previous production LoRA"),
        ("production", production, "show a dataset's production LoRA"),
    ):
        sub = subparsers.add_parser(name, help=text)
        sub.add_argument("--block", help="a saved ScenarioCredentials block (default: SCENARIO_* variables)")
        if name in ("evaluate", "promote"):
            judged(sub)
        else:
            sub.add_argument("dataset", help="the dataset label")
        if name == "promote":
            sub.add_argument("--force", action="store_true", help="promote without judging")
        sub.set_defaults(handler=handler)
