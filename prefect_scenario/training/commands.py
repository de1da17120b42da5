"""The ``train`` and ``train-edit`` commands of the ``prefect-scenario`` command line.

Both take the same options (:func:`add_training_arguments`), among them the spend limits:
``--max-creative-units N`` (the run's own ceiling) and ``--budget NAME`` (a saved
``ScenarioBudget`` block). Both are checked before the flow starts, so a bad value exits 2
with one clear line and no request is sent to Scenario.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_training_arguments(parser)
    >>> args = parser.parse_args(["--type", "flux.2-dev-lora", "--name", "hero", "--max-creative-units", "150"])
    >>> args.max_creative_units, args.budget
    (150.0, None)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect_scenario.waiting.polling import DEFAULT_TIMEOUT_SECONDS

__all__ = ["Bar", "add_training_arguments", "spend_options", "train", "train_edit"]


def add_training_arguments(sub: argparse.ArgumentParser) -> None:
    """The options ``train`` and ``train-edit`` share (``--block`` is the caller's)."""
    sub.add_argument("--type", dest="training_type", required=True, help="the LoRA training type")
    sub.add_argument("--name", required=True, help="the model name")
    sub.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a training parameter")
    sub.add_argument("--params-file", type=Path, help="training parameters as a JSON object")
    sub.add_argument("--no-wait", action="store_true", help="return once the training started")
    sub.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, help="seconds to wait (then cancel)")
    sub.add_argument("--force", action="store_true", help="train again even if this dataset already trained")
    sub.add_argument("--min-dataset-score", type=float, help="refuse to train below this dataset score")
    sub.add_argument(
        "--max-creative-units",
        type=float,
        metavar="N",
        help="refuse the training, before its trigger, if its dry run estimates more",
    )
    sub.add_argument("--budget", metavar="BLOCK_NAME", help="a saved ScenarioBudget block the training counts against")
    judge = "judge the trained LoRA against the production LoRA of the same name; promote it only if better"
    sub.add_argument("--promote", action="store_true", help=judge)


def spend_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--max-creative-units`` and ``--budget`` as flow options, checked before any request to Scenario.

    Raises:
        ConfigurationError: a zero, negative or non-finite ``--max-creative-units``; a budget
            block that does not exist or does not validate.
    """
    from prefect_scenario.exceptions import ConfigurationError
    from prefect_scenario.spend.block import check_units, resolve_budget

    units = check_units("--max-creative-units", args.max_creative_units)
    if args.budget is not None:
        if not args.budget.strip():
            raise ConfigurationError("--budget needs the name of a saved ScenarioBudget block")
        try:
            asyncio.run(resolve_budget(args.budget))  # loaded now so a bad block fails here; the run loads it again
        except ConfigurationError as exc:
            raise ConfigurationError(f"--budget: {exc}") from None
    # The name, not the block: the flow run's parameters show which budget it counted against.
    return {"max_creative_units": units, "budget": args.budget}


class Bar:
    """A terminal progress bar fed by the wait loop's model updates (also ``status --watch``)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"), TimeElapsedColumn()
        )
        self.task = self.progress.add_task("waiting", total=100)

    def update(self, model: Any) -> None:
        from rich.markup import escape

        from prefect_scenario.reporting import describe_progress, progress_percent
        from prefect_scenario.validation import escape_for_terminal

        # A name is the user's text: no control character or rich markup reaches the terminal.
        shown = escape(escape_for_terminal(str(model.name or model.id)))
        self.progress.update(
            self.task,
            completed=progress_percent(model.status, model.training_progress),
            description=f"{shown}: {describe_progress(model.status, model.training_progress)}",
        )


def _with_bar(run: Callable[[], Any]) -> Any:
    from prefect_scenario.reporting import add_progress_listener

    bar = Bar()
    remove = add_progress_listener(bar.update)
    try:
        with bar.progress:
            return run()
    finally:
        remove()


def _print_result(result: Any) -> None:
    print(json.dumps(result.model_dump(mode="json"), indent=2))


def _ui_link(state: Any) -> str | None:
    """The flow run's page in the Prefect UI, when a UI is configured (``PREFECT_UI_URL``)."""
    from prefect.settings import PREFECT_UI_URL

    ui = PREFECT_UI_URL.value()
    run_id = getattr(state.state_details, "flow_run_id", None)
    return f"{ui.rstrip('/')}/runs/flow-run/{run_id}" if ui and run_id else None


def _run_training(
    flow_fn: Any, args: argparse.Namespace, spend: dict[str, Any], parameters: Any, **dataset: Any
) -> int:
    """Run a training flow with the options both train commands share, under a progress bar.

    Prefect's console shows no traceback (the run's log in the UI keeps it): the error
    ends the command as one line, printed by ``main()``.
    """
    from prefect_scenario._console import console_without_tracebacks
    from prefect_scenario.credentials import resolve_credentials

    options = {
        "name": args.name,
        "training_type": args.training_type,
        "credentials": asyncio.run(resolve_credentials(args.block)),
        "parameters": parameters,
        "wait": not args.no_wait,
        "timeout_seconds": args.timeout,
        "force": args.force,
        "min_dataset_score": args.min_dataset_score,
        "promote": args.promote,
        **spend,
    }
    with console_without_tracebacks():
        state = _with_bar(lambda: flow_fn(**options, **dataset, return_state=True))
        result = state.result()  # raises the flow's error, which main() prints as one line
    _print_result(result)
    if link := _ui_link(state):
        print(f"Prefect UI: {link}", file=sys.stderr)
    return 0


def train(args: argparse.Namespace) -> int:
    """``prefect-scenario train``: a standard LoRA from images."""
    from prefect_scenario.training.prechecks import check_common, check_images

    parameters = check_common(args)  # first, without a server: one line and exit 2 for bad input
    check_images(args.training_type, list(args.images))
    spend = spend_options(args)  # then the saved blocks; still nothing sent to Scenario
    from prefect_scenario.training.flows import train_lora

    return _run_training(train_lora, args, spend, parameters, images=list(args.images))


def train_edit(args: argparse.Namespace) -> int:
    """``prefect-scenario train-edit``: an edit LoRA from a JSON-lines file of before/after pairs."""
    from prefect_scenario.training.prechecks import check_common, check_pairs, parse_pairs_file

    parameters = check_common(args)  # first, without a server: one line and exit 2 for bad input
    pairs = parse_pairs_file(args.pairs_file)
    check_pairs(args.training_type, pairs)
    spend = spend_options(args)  # then the saved blocks; still nothing sent to Scenario
    from prefect_scenario.training.flows import train_edit_lora

    return _run_training(train_edit_lora, args, spend, parameters, pairs=pairs)
