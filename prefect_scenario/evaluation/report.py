"""What an evaluation shows in Prefect: the contact sheet, the lineage summary and the events.

Events: ``scenario.lora.evaluated``, ``scenario.lora.promoted``, ``scenario.lora.rejected``
and ``scenario.lora.rolled-back``, with the model as the resource and the dataset as a
related resource (role ``dataset``).

Example:
    >>> cell("https://x/a.png", 71.25, "pass")
    '![render](https://x/a.png)<br>71.2 (pass)'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect_scenario.api.models import Model
from prefect_scenario.evaluation.render import RenderSet
from prefect_scenario.evaluation.scoring import ImageScore

__all__ = ["cell", "contact_sheet", "emit_lora_event", "epoch_samples", "lineage_markdown"]


def cell(url: str | None, score: float | None, verdict: str | None) -> str:
    """One image of the contact sheet with its score underneath."""
    image = f"![render]({url})" if url else "(no image)"
    shown = "–" if score is None else f"{score:.1f}"
    return f"{image}<br>{shown}" + (f" ({verdict})" if verdict else "")


def epoch_samples(model: Model) -> list[tuple[str, str, str | None]]:
    """(epoch, sample prompt, url) of each training-time sample the API returned.

    Scenario does not state that ``epochs[].assets[i]`` belongs to ``samplePrompts[i]``;
    the label is that pairing, or ``sample i`` when the counts differ.
    """
    prompts = list((model.parameters or {}).get("samplePrompts") or [])
    rows = []
    for epoch in model.epochs:
        for i, asset in enumerate(epoch.assets):
            label = prompts[i] if len(prompts) == len(epoch.assets) else f"sample {i + 1}"
            rows.append((epoch.epoch, label, asset.url))
    return rows


def contact_sheet(
    candidate: RenderSet,
    candidate_scores: Sequence[ImageScore],
    production: RenderSet | None,
    production_scores: Sequence[ImageScore] | None,
    samples: Sequence[tuple[str, str, str | None]] = (),
) -> str:
    """Markdown: candidate and production side by side per prompt and seed, scores under each image."""
    title = f"production `{production.model_id}`" if production else "production (none yet)"
    lines = [
        f"## Candidate `{candidate.model_id}` vs {title}",
        "",
        f"Suite `{candidate.suite_digest}`, base `{candidate.base_model_id}`.",
        "",
        "| prompt | seed | candidate | production |",
        "|---|---|---|---|",
    ]
    for i, render in enumerate(candidate.renders):
        mine = cell(render.url, candidate_scores[i].score, candidate_scores[i].verdict)
        theirs = "–"
        if production is not None and production_scores is not None:
            other = production.renders[i]
            theirs = cell(other.url, production_scores[i].score, production_scores[i].verdict)
        lines.append(f"| {render.prompt.replace('|', '/')} | {render.seed} | {mine} | {theirs} |")
    if samples:
        lines += ["", "### Training samples per epoch", "", "| epoch | prompt | sample |", "|---|---|---|"]
        lines += [f"| {e} | {p.replace('|', '/')} | {cell(u, None, None)} |" for e, p, u in samples]
    return "\n".join(lines)


def lineage_markdown(details: dict[str, Any]) -> str:
    """The run summary: dataset manifest digest → model → suite → scores → decision."""
    chain = " → ".join(
        f"**{name}** `{details.get(key) or '–'}`"
        for name, key in (
            ("dataset", "dataset"),
            ("manifest", "manifest_digest"),
            ("model", "model_id"),
            ("suite", "suite_digest"),
            ("gain", "mean_gain"),
            ("decision", "decision"),
        )
    )
    return f"# LoRA evaluation\n\n{chain}\n\n{details.get('reason', '')}\n"


def emit_lora_event(event: str, model_id: str, dataset: str, payload: dict[str, Any]) -> None:
    """Emit ``scenario.lora.<event>`` for the model, related to the dataset (no-op outside Prefect's reach)."""
    from prefect.events import emit_event

    related = {
        "prefect.resource.id": f"scenario.dataset.{dataset}",
        "prefect.resource.role": "dataset",
        "prefect.resource.name": dataset,
    }
    resource = {"prefect.resource.id": f"scenario.model.{model_id}", "prefect.resource.name": model_id}
    emit_event(f"scenario.lora.{event}", resource=resource, related=[related], payload=payload)
