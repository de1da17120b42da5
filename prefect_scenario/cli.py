"""The ``prefect-scenario`` command line.

Credentials come from ``--block NAME`` (a saved ``ScenarioCredentials`` block) or
from ``SCENARIO_API_KEY``, ``SCENARIO_API_SECRET``, ``SCENARIO_PROJECT_ID`` and
``SCENARIO_BASE_URL``: pointing the same commands at the real service or at the
emulator is one environment variable.

    prefect-scenario train --type flux.2-dev-lora --name hero images/*.png [--max-creative-units N] [--budget NAME]
    prefect-scenario train-edit --type qwen-image-edit-2511-lora --name snow pairs.jsonl
    prefect-scenario status MODEL_ID [--watch]
    prefect-scenario cancel MODEL_ID
    prefect-scenario preflight DIR|s3://bucket/prefix/ [--strict] [--kind standard|style|edit]
    prefect-scenario emulator [--port 8787]
    prefect-scenario demo [--ui]
    prefect-scenario setup [--no-pool]
    prefect-scenario webhooks register --url https://hooks.example.com/scenario [--block NAME]
    prefect-scenario webhooks list
    prefect-scenario webhook-receiver [--host 0.0.0.0] [--port 8788] [--block NAME] [--log-level INFO]
    prefect-scenario watch [--interval 30] [--scenario-block NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """No prefix abbreviations (``--typ`` is not ``--type``), and a usage error is one line, exit 2.

    Sub-commands are built by the same class (argparse's ``parser_class`` default).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:
        from prefect_scenario.validation import escape_for_terminal

        self.exit(2, f"{self.prog}: error: {escape_for_terminal(message)}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="prefect-scenario", description="Scenario LoRA training with Prefect.")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--block", help="a saved ScenarioCredentials block (default: SCENARIO_* variables)")

    def training(sub: argparse.ArgumentParser) -> None:
        from prefect_scenario.training.commands import add_training_arguments

        common(sub)
        add_training_arguments(sub)

    train = commands.add_parser("train", help="train a standard LoRA from images")
    training(train)
    train.add_argument("images", nargs="+", help="image files, s3:// URIs or asset ids")
    edit = commands.add_parser("train-edit", help="train an edit LoRA from before/after pairs")
    training(edit)
    edit.add_argument("pairs_file", type=Path, help='JSON lines: {"before": ..., "after": ..., "instruction": ...}')
    status = commands.add_parser("status", help="show a model's training status")
    common(status)
    status.add_argument("model_id")
    status.add_argument("--watch", action="store_true", help="follow the training until it ends")
    cancel = commands.add_parser("cancel", help="cancel a model's training")
    common(cancel)
    cancel.add_argument("model_id")
    preflight = commands.add_parser("preflight", help="check a dataset locally, before anything is spent")
    preflight.add_argument("dataset", help="a folder, or s3://bucket/prefix/ (read with the AWS environment)")
    preflight.add_argument("--strict", action="store_true", help="refuse on warnings too")
    preflight.add_argument("--caption-prefix", help='the trigger every caption must hold, e.g. "KAEL_07, "')
    preflight.add_argument("--min-side", type=int, help="refuse images with a side below this, in px (256)")
    preflight.add_argument("--near-duplicate-threshold", type=int, help="dHash bits apart for a near-duplicate (6)")
    preflight.add_argument("--kind", choices=["standard", "style", "edit"], default="standard", help="what it trains")
    commands.add_parser("emulator", help="serve the Scenario API emulator (see --help)", add_help=False)
    demo = commands.add_parser("demo", help="the whole loop on a local emulator and local S3")
    demo.add_argument("--ui", action="store_true", help="start a Prefect server with its UI and keep it up afterwards")
    _serve_command(commands)
    setup = commands.add_parser("setup", help="the work pool and blocks deployments/prefect.yaml names")
    setup.add_argument("--no-pool", action="store_true", help="only save the blocks")
    from prefect_scenario.webhooks.commands import register as webhook_commands

    webhook_commands(commands)  # webhooks register|list, webhook-receiver
    _watch_command(commands)
    from prefect_scenario.evaluation.commands import register as evaluation_commands

    evaluation_commands(commands)  # evaluate, promote, rollback, production
    return parser


def _serve_command(commands: Any) -> None:
    serve = commands.add_parser("serve", help="serve the sensor, retrain and cron deployments in this process")
    serve.add_argument("--bucket", help="the bucket holding the curated datasets (without: only the training watcher)")
    serve.add_argument("--prefix", default="", help="the root prefix; one dataset per sub-prefix")
    serve.add_argument("--aws-block", help="a saved prefect-aws AwsCredentials block (default: the AWS environment)")
    serve.add_argument("--scenario-block", help="a saved ScenarioCredentials block (default: SCENARIO_* variables)")
    serve.add_argument("--interval", type=float, default=60.0, help="seconds between sensor runs")
    serve.add_argument("--quiet-period", type=float, default=120.0, help="seconds a dataset must stay unchanged")
    serve.add_argument("--min-images", type=int, default=5, help="fewest images to retrain on")
    serve.add_argument("--training-type", help="the type for datasets without a sidecar")
    serve.add_argument("--cron", default="0 3 * * *", help="when to retrain changed datasets ('' to disable)")
    serve.add_argument("--event-driven", action="store_true", help="retrain from scenario.dataset.ready events")
    serve.add_argument("--mode", choices=["list", "notifications"], default="list", help="how the sensor discovers")
    serve.add_argument("--queue-url", help="the SQS queue of the bucket's notifications (notifications mode)")
    serve.add_argument(
        "--wait",
        choices=["poll", "suspend"],
        default="poll",
        help="how retrain runs wait for a training (suspend: free the process meanwhile)",
    )
    serve.add_argument(
        "--watch-interval",
        type=float,
        default=30.0,
        help="seconds between training-watcher cycles (0: do not serve the watcher)",
    )


def _watch_command(commands: Any) -> None:
    watch = commands.add_parser("watch", help="resume suspended training runs (a long-lived service, no flow runs)")
    watch.add_argument("--scenario-block", help="a saved ScenarioCredentials block (default: SCENARIO_* variables)")
    watch.add_argument("--interval", type=float, default=30.0, help="most seconds between cycles (%(default)s)")
    watch.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="the level of the watcher's own lines (%(default)s)",
    )


def _watch(args: argparse.Namespace) -> int:
    import logging

    from prefect_scenario.waiting.service import watch_forever

    # Prefect's logging setup leaves loggers other than its own at WARNING: show each cycle that did something.
    logging.getLogger("prefect_scenario").setLevel(args.log_level)
    print(f"training watcher: a cycle at most every {args.interval:g}s (no flow runs)", file=sys.stderr)
    try:
        asyncio.run(watch_forever(args.scenario_block, interval=args.interval))
    except KeyboardInterrupt:
        pass  # stopping between or inside a cycle loses nothing: Prefect holds every wait
    return 0


async def _status(args: argparse.Namespace) -> int:
    from prefect_scenario.credentials import resolve_credentials
    from prefect_scenario.reporting import describe_progress
    from prefect_scenario.training.commands import Bar
    from prefect_scenario.validation import escape_for_terminal, model_id
    from prefect_scenario.waiting.wait import wait_until_terminal

    model_id(args.model_id)  # before the credentials: a bad id is refused without a server
    async with (await resolve_credentials(args.block)).get_client() as client:
        if args.watch:
            bar = Bar()

            async def show(model: Any) -> None:
                bar.update(model)

            with bar.progress:
                model = await wait_until_terminal(client, args.model_id, timeout_seconds=7 * 24 * 3600, on_update=show)
        else:
            model = await client.get_model(args.model_id)
    line = f"{model.id} {model.name or ''} [{model.type}]: {describe_progress(model.status, model.training_progress)}"
    print(escape_for_terminal(line))
    return 0 if model.status != "failed" else 1


async def _cancel(args: argparse.Namespace) -> int:
    from prefect_scenario.credentials import resolve_credentials
    from prefect_scenario.validation import model_id

    model_id(args.model_id)  # before the credentials: a bad id is refused without a server
    async with (await resolve_credentials(args.block)).get_client() as client:
        model = await client.get_model(args.model_id)
        if model.status == "training":
            model = await client.cancel_training(args.model_id)
    print(f"{model.id}: {model.status}")
    return 0


def _preflight(args: argparse.Namespace) -> int:
    """Print the preflight report; 1 when it refuses the dataset, 2 when it cannot be read."""
    from botocore.exceptions import BotoCoreError, ClientError

    from prefect_scenario.dataset.checks import PreflightOptions, render_text
    from prefect_scenario.dataset.measure import preflight_directory, preflight_s3
    from prefect_scenario.exceptions import InvalidInputError

    given = {"min_side": args.min_side, "near_duplicate_threshold": args.near_duplicate_threshold}
    try:
        options = PreflightOptions(
            kind=args.kind,
            caption_prefix=args.caption_prefix,
            strict=args.strict,
            **{name: value for name, value in given.items() if value is not None},
        )
        if args.dataset.startswith("s3://"):
            import boto3

            report = preflight_s3(boto3.client("s3"), args.dataset, options=options)
        else:
            report = preflight_directory(args.dataset, options=options)
    except (InvalidInputError, BotoCoreError, ClientError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render_text(report))
    return 1 if report.refused else 0


def _setup(args: argparse.Namespace) -> int:
    from prefect_scenario.setup import setup

    print("\n".join(asyncio.run(setup(pool=not args.no_pool)).lines()))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from prefect_scenario.retraining.deployments import ServeConfig, serve_all

    config = ServeConfig(
        bucket=args.bucket,
        prefix=args.prefix,
        aws_block=args.aws_block,
        scenario_block=args.scenario_block,
        interval_seconds=args.interval,
        quiet_period_seconds=args.quiet_period,
        min_images=args.min_images,
        training_type=args.training_type,
        cron=args.cron or None,
        event_driven=args.event_driven,
        mode=args.mode,
        queue_url=args.queue_url,
        wait=args.wait,
        watch_interval_seconds=args.watch_interval,
    )
    serve_all(config)
    return 0


# What the `emulator` extra installs beyond the runtime (moto only for the demo's local S3).
_EXTRA_MODULES = {"scenario_emulator.server": ("uvicorn",), "scenario_emulator.demo": ("uvicorn", "moto")}


def _installed(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def _emulator_entry(module: str) -> Callable[..., Any] | None:
    """The ``main`` of an emulator module, or None (with a one-line hint) without the extra."""
    import importlib

    missing = [name for name in _EXTRA_MODULES.get(module, ()) if not _installed(name)]
    try:
        if not missing:
            return importlib.import_module(module).main  # type: ignore[no-any-return]
    except ModuleNotFoundError as exc:
        missing = [exc.name or module]
    hint = 'pip install "prefect-scenario[emulator]"'
    print(f"error: the emulator is not installed ({', '.join(missing)} missing): {hint}", file=sys.stderr)
    return None


def _dispatch(args: argparse.Namespace) -> int:
    if handler := getattr(args, "handler", None):  # the evaluation commands carry their own
        return int(handler(args))
    if args.command in ("train", "train-edit"):
        from prefect_scenario.training.commands import train, train_edit

        return (train if args.command == "train" else train_edit)(args)
    if args.command == "demo":
        demo_main = _emulator_entry("scenario_emulator.demo")
        return 2 if demo_main is None else int(demo_main(ui=args.ui))
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "status": lambda a: asyncio.run(_status(a)),
        "cancel": lambda a: asyncio.run(_cancel(a)),
        "serve": _serve,
        "preflight": _preflight,
        "watch": _watch,
        "setup": _setup,
    }
    return commands[args.command](args)


def _fail(exc: BaseException, code: int) -> int:
    from prefect_scenario.validation import escape_for_terminal

    # One line: a message holding a newline or an escape sequence (a name, a path) is shown escaped.
    print(f"error: {escape_for_terminal(str(exc))}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the ``prefect-scenario`` command line.

    The boundary of every command: bad input is one line on stderr and exit 2 (checked
    before any server starts where it can be); a refusal to spend, and any other failure,
    one line and exit 1. The traceback of a failed flow run stays in its log in the UI.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "emulator":
        emulator_main = _emulator_entry("scenario_emulator.server")
        return 2 if emulator_main is None else int(emulator_main(args_list[1:]))
    args = _parser().parse_args(args_list)
    from prefect_scenario.exceptions import InvalidInputError, ScenarioError

    try:
        return _dispatch(args)
    except InvalidInputError as exc:
        return _fail(exc, 2)
    except ScenarioError as exc:  # BudgetExceeded (a refusal to spend) among them
        return _fail(exc, 1)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return _fail(RuntimeError(f"{type(exc).__name__}: {exc}"), 1)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
