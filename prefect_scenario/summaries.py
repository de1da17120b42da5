"""The training's summary and dataset-score artifacts, and their (pure) contents.

:mod:`prefect_scenario.reporting` re-exports these names; a failure to write an artifact
is logged at WARNING and never fails a paid training.

Example:
    >>> from prefect_scenario.api.models import Model
    >>> m = Model.model_validate({"id": "model_1", "name": "Hero", "status": "trained"})
    >>> summary_markdown(m, parameters={}, cost=120, dataset_score=0.82).splitlines()[0]
    '# Hero'
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

from prefect_scenario.api.models import DatasetScore, Epoch, Model
from prefect_scenario.catalog import get_training_type

__all__ = ["dataset_score_rows", "publish_dataset_score", "publish_summary", "samples_grid", "summary_markdown"]

_log = logging.getLogger(__name__)


def _named(asset_id: str | None, names: Mapping[str, str]) -> str:
    if not asset_id:
        return ""
    name = names.get(asset_id)
    return f"{name} ({asset_id})" if name else asset_id


def dataset_score_rows(score: DatasetScore, *, names: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """Rows of the dataset-score table artifact: one per warning.

    Args:
        score: the dataset score.
        names: file names by asset id, so a row names the file (``hero-03.png (asset_…)``).
    """
    known = names or {}
    rows = [
        {"file": _named(warning.asset_id, known), "other file": "", "warning": "; ".join(warning.message)}
        for warning in score.assets_warnings
    ]
    rows += [
        {
            "file": _named(warning.couple[0] if warning.couple else None, known),
            "other file": _named(warning.couple[1] if len(warning.couple) > 1 else None, known),
            "warning": "; ".join(warning.message),
        }
        for warning in score.asset_couples_warnings
    ]
    return rows or [{"file": "", "other file": "", "warning": "no warnings"}]


async def publish_dataset_score(score: DatasetScore, *, key: str, names: Mapping[str, str] | None = None) -> None:
    """The dataset score and its warnings as a table artifact."""
    try:
        await acreate_table_artifact(
            dataset_score_rows(score, names=names),
            key=key,
            description=f"Training-dataset score {score.score:.2f} ({score.status or 'unknown'})",
        )
    except Exception as exc:
        _log.warning("dataset score artifact not created: %s", type(exc).__name__)


def samples_grid(epochs: Sequence[Epoch], prompts: Sequence[str] = ()) -> list[str]:
    """The sample images as a grid: the prompt above each row, one column per epoch.

    The ``i``-th sample of an epoch is the ``i``-th sample prompt's (the order the API keeps).

    Example:
        >>> e = [Epoch.model_validate({"epoch": "1", "assets": [{"url": "https://x/1.png"}]})]
        >>> samples_grid(e, ["a hero"])[:3]
        ['## Samples', '', '**a hero**']
    """
    shown = [e for e in epochs if any(a.url for a in e.assets)]
    if not shown:
        return []
    rows = max(len(e.assets) for e in shown)
    lines = ["## Samples", ""]
    for row in range(rows):
        prompt = prompts[row] if row < len(prompts) else f"sample {row + 1}"
        cells = [
            f"![{prompt}, epoch {e.epoch}]({e.assets[row].url})" if row < len(e.assets) and e.assets[row].url else ""
            for e in shown
        ]
        lines += [f"**{prompt}**", "", "| " + " | ".join(f"epoch {e.epoch}" for e in shown) + " |"]
        lines += ["|" + "---|" * len(shown), "| " + " | ".join(cells) + " |", ""]
    return lines


def _type_rows(training_type: str) -> list[str]:
    try:
        ttype = get_training_type(training_type)
    except ValueError:
        return [f"| Training type | `{training_type}` |"]
    rows = [
        f"| Training type | `{ttype.id}` ({ttype.label}) |",
        f"| Family | {ttype.family} |",
        f"| Works with | {', '.join(ttype.compatible_inference_models)} |",
    ]
    if ttype.default_inference_steps:
        rows.append(f"| Default inference steps | {ttype.default_inference_steps} |")
    return rows


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def summary_markdown(
    model: Model,
    *,
    parameters: Mapping[str, Any],
    cost: float | None,
    dataset_score: float | None = None,
    phases: Mapping[str, float] | None = None,
) -> str:
    """The trained model's summary: type, dataset score, cost, duration per phase, parameters, samples.

    Args:
        model: the trained model.
        parameters: the training parameters (a W&B key is never shown).
        cost: the creative units charged.
        dataset_score: the training-dataset score (0 to 1), when it was read.
        phases: seconds per phase, in order (e.g. ``{"upload": 4.2, "queue": 30, "training": 610}``).
    """
    lines = [f"# {model.name or model.id}", "", "| | |", "|---|---|"]
    lines += [f"| Model | `{model.id}` |", f"| Status | {model.status} |"]
    if model.type:
        lines += _type_rows(model.type)
    lines.append(f"| Training images | {model.training_images_number} |")
    if dataset_score is not None:
        lines.append(f"| Dataset score | {dataset_score:.2f} |")
    if cost is not None:
        lines.append(f"| Cost | {cost:g} creative units |")
    if phases:
        # One row: Prefect's markdown artifacts show HTML entities (an indent) literally.
        each = ", ".join(f"{name} {_seconds(seconds)}" for name, seconds in phases.items())
        lines.append(f"| Duration | {_seconds(sum(phases.values()))} ({each}) |")
    safe = {k: v for k, v in parameters.items() if k != "wandbKey"}
    if safe:
        lines += ["", "## Parameters", "", "| parameter | value |", "|---|---|"]
        lines += [f"| `{k}` | {v} |" for k, v in sorted(safe.items())]
    prompts = [str(p) for p in parameters.get("samplePrompts") or []]
    grid = samples_grid(model.epochs, prompts)
    if grid:
        lines += ["", *grid]
    elif model.epochs:
        lines += ["", "## Epochs", "", ", ".join(f"epoch {e.epoch}" for e in model.epochs)]
    return "\n".join(lines).rstrip() + "\n"


async def publish_summary(
    model: Model, *, key: str, parameters: Mapping[str, Any], cost: float | None, **more: Any
) -> None:
    """The summary as a markdown artifact (``more``: :func:`summary_markdown`'s keyword arguments)."""
    try:
        await acreate_markdown_artifact(
            summary_markdown(model, parameters=parameters, cost=cost, **more),
            key=key,
            description=f"Scenario model {model.id}",
        )
    except Exception as exc:
        _log.warning("summary artifact not created: %s", type(exc).__name__)
