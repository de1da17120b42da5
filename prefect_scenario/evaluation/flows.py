"""Judge a retrained LoRA before it replaces production: the ``evaluate_and_promote`` flow.

The candidate and the dataset's production LoRA render the same suite on the same seeds
(production's renders come from its cache), a :class:`~.scoring.Scorer` scores both, the
pure :func:`~.decision.decide` compares the paired scores with a margin, a human decides
where ``review`` asks for it, and :func:`~.promotion.promote_model` moves production, or
the candidate is marked rejected with the reason. Every refusal for bad input (a model
not trained, no base for its type, a suite over the base's limits, an edit LoRA without
reference images, two production claims) happens before any credit is spent.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from prefect_scenario._dispatch import scenario_flow, scenario_task
from prefect_scenario._logging import run_logger
from prefect_scenario.credentials import ScenarioCredentials, resolve_credentials
from prefect_scenario.evaluation.decision import Decision, decide, final_outcome, needs_review
from prefect_scenario.evaluation.options import EvaluationOptions, Review
from prefect_scenario.evaluation.promotion import (
    BlockStore,
    HandleStore,
    ensure_collection,
    history_record,
    production_claims,
    promote_model,
    resolve_claims,
)
from prefect_scenario.evaluation.render import RenderSet, plan_renders, render_lora, run_renders
from prefect_scenario.evaluation.report import contact_sheet, emit_lora_event, epoch_samples, lineage_markdown
from prefect_scenario.evaluation.review import Reviewer, publish_markdown, review_in_ui
from prefect_scenario.evaluation.scoring import ImageScore, QualityGateScorer, Scorer
from prefect_scenario.evaluation.suite import EvaluationSuite, default_suite
from prefect_scenario.exceptions import ProductionClaimError

__all__ = ["EvaluationResult", "evaluate", "evaluate_and_promote", "render_scenario_lora"]

REJECTED_TAG = "psc-rejected"
Sleep = Callable[[float], Awaitable[None]]


class EvaluationResult(BaseModel):
    """What an evaluation decided, and the evidence."""

    model_config = ConfigDict(frozen=True)

    model_id: str = Field(description="The candidate model.")
    dataset: str = Field(description="The dataset label.")
    production_model_id: str | None = Field(description="Production before this evaluation.")
    outcome: Literal["promoted", "rejected", "evaluated", "already-production"] = Field(description="What happened.")
    decision: str = Field(description="What the scores said: promote, reject or uncertain.")
    review: str | None = Field(None, description="A human's answer (promote, reject, timeout), if one was asked.")
    mean_gain: float | None = Field(None, description="Mean paired score gain over production.")
    margin: float = Field(description="The margin the gain had to beat.")
    reason: str = Field(description="Why, in words.")
    suite_digest: str = Field(description="The suite's version.")
    candidate_scores: list[dict[str, Any]] = Field(default_factory=list, description="Per-image scores.")
    production_scores: list[dict[str, Any]] | None = Field(None, description="Production's per-image scores.")
    cost: float = Field(0.0, description="Creative units quoted for the renders paid now.")
    renders_paid: int = Field(0, description="Renders paid now (the cache paid the others).")

    @property
    def promoted(self) -> bool:
        return self.outcome == "promoted"


def _scores(scores: list[ImageScore]) -> list[dict[str, Any]]:
    return [
        {
            "prompt": s.prompt,
            "seed": s.seed,
            "asset_id": s.asset_id,
            "score": s.score,
            "verdict": s.verdict,
            "reasons": list(s.reasons),
        }
        for s in scores
    ]


async def _champion(client: Any, dataset: str, model_id: str, store: HandleStore) -> str | None:
    """The production model to compare with (reads only); refuses a double claim before any spend."""
    handle = await store.load(dataset)
    collection_id = await ensure_collection(client, dataset, handle)
    others = [c for c in await production_claims(client, collection_id) if c.id != model_id]
    if len(others) > 1 and (handle.pending or {}).get("model_id") not in {c.id for c in others} | {model_id}:
        ids = tuple(c.id for c in others)
        raise ProductionClaimError(
            f"dataset {dataset!r} has {len(ids)} production claims ({', '.join(ids)}): keep one with "
            f"`prefect-scenario rollback` or remove the others from collection {collection_id}",
            model_ids=ids,
        )
    return resolve_claims(others, handle.model_id)


async def _renders(
    client: Any,
    model_id: str,
    champion: str | None,
    suite: EvaluationSuite,
    options: EvaluationOptions,
    dataset: str,
    sleep: Sleep | None,
    clock: Callable[[], float],
) -> tuple[RenderSet, RenderSet | None]:
    """Both models' renders; every check of both runs before the first credit is spent."""
    plans = [await plan_renders(client, m, suite, options) for m in (model_id, champion) if m]
    sets = [await run_renders(client, p, options, dataset=dataset, sleep=sleep, clock=clock) for p in plans]
    return sets[0], (sets[1] if len(sets) > 1 else None)


async def _close(client: Any, result: EvaluationResult, store: HandleStore, details: dict[str, Any]) -> None:
    """Promote, or mark the candidate rejected; then the events and the lineage summary."""
    if result.outcome == "promoted":
        await promote_model(client, result.dataset, result.model_id, store=store, details=details)
    elif result.outcome == "rejected":
        await client.update_tags(result.model_id, add=[REJECTED_TAG])
        handle = await store.load(result.dataset)
        handle.history.append(history_record("rejected", result.model_id, reason=result.reason, **details))
        await store.save(handle)
    payload = {
        "dataset": result.dataset,
        "decision": result.decision,
        "mean_gain": result.mean_gain,
        "margin": result.margin,
        "suite_digest": result.suite_digest,
        "reason": result.reason,
    }
    emit_lora_event("evaluated", result.model_id, result.dataset, payload)
    if result.outcome in ("promoted", "rejected"):
        emit_lora_event(result.outcome, result.model_id, result.dataset, payload)
    summary = {**payload, "model_id": result.model_id, "decision": result.outcome, **details}
    await publish_markdown(lineage_markdown(summary), key="scenario-lora-evaluation")


async def evaluate(
    client: Any,
    model_id: str,
    dataset: str,
    *,
    suite: EvaluationSuite | None = None,
    options: EvaluationOptions | None = None,
    scorer: Scorer | None = None,
    store: HandleStore | None = None,
    promote: bool = True,
    trigger_word: str | None = None,
    reviewer: Reviewer | None = None,
    manifest_digest: str | None = None,
    sleep: Sleep | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> EvaluationResult:
    """Render, score, decide and (with ``promote``) move production: the body of :func:`evaluate_and_promote`."""
    options, store = options or EvaluationOptions(), store or BlockStore()
    champion = await _champion(client, dataset, model_id, store)
    candidate = await client.get_model(model_id)
    suite = suite or _default_suite(candidate, trigger_word)
    if champion is None and (await store.load(dataset)).model_id == model_id:
        return EvaluationResult(
            model_id=model_id,
            dataset=dataset,
            production_model_id=model_id,
            outcome="already-production",
            decision="promote",
            margin=options.margin,
            reason="the model is production already",
            suite_digest=suite.digest,
        )
    mine, theirs = await _renders(client, model_id, champion, suite, options, dataset, sleep, clock)
    scorer = scorer or _quality_gate(options, sleep, clock)
    my_scores, their_scores, decision = await _scored(client, scorer, mine, theirs, options.margin)
    sheet = contact_sheet(mine, my_scores, theirs, their_scores, epoch_samples(candidate))
    await publish_markdown(sheet, key="scenario-lora-contact-sheet")
    answer = None
    if promote and needs_review(decision, options.review):
        answer = await (reviewer or review_in_ui)(sheet, decision, options.review_timeout_seconds)
    chosen = final_outcome(decision, answer)
    outcome = ("promoted" if chosen == "promote" else "rejected") if promote else "evaluated"
    result = EvaluationResult(
        model_id=model_id,
        dataset=dataset,
        production_model_id=champion,
        outcome=outcome,
        review=answer,
        margin=options.margin,
        suite_digest=suite.digest,
        **_evidence(decision, answer, mine, theirs, my_scores, their_scores),
    )
    details = {"suite_digest": suite.digest, "mean_gain": decision.mean_gain, "manifest_digest": manifest_digest}
    details |= {"candidate_mean": _mean(my_scores), "production_mean": _mean(their_scores)}
    await _close(client, result, store, details)
    run_logger().info("Evaluation of %s for %r: %s (%s)", model_id, dataset, outcome, result.reason)
    return result


def _default_suite(candidate: Any, trigger_word: str | None) -> EvaluationSuite:
    captions = [i.description or "" for i in candidate.training_images]
    if not any(c.strip() for c in captions) and not trigger_word:
        run_logger().warning("%s has no captions and no trigger word: judging it on generic prompts", candidate.id)
    return default_suite(captions, trigger_word=trigger_word)


async def _scored(
    client: Any, scorer: Scorer, mine: RenderSet, theirs: RenderSet | None, margin: float
) -> tuple[list[ImageScore], list[ImageScore] | None, Decision]:
    """Both models' scores, and what the paired comparison decides."""
    my_scores = await scorer.score(client, mine.renders)
    their_scores = await scorer.score(client, theirs.renders) if theirs else None
    decision = decide(
        {(s.prompt, s.seed): s.score for s in my_scores},
        {(s.prompt, s.seed): s.score for s in their_scores} if their_scores else None,
        margin=margin,
    )
    return my_scores, their_scores, decision


def _quality_gate(options: EvaluationOptions, sleep: Sleep | None, clock: Callable[[], float]) -> Scorer:
    return QualityGateScorer(
        wait_seconds=options.score_wait_seconds,
        poll_seconds=options.poll_seconds,
        sensitivity=options.sensitivity,
        sleep=sleep,
        clock=clock,
    )


def _evidence(
    decision: Decision,
    answer: str | None,
    mine: RenderSet,
    theirs: RenderSet | None,
    my_scores: list[ImageScore],
    their_scores: list[ImageScore] | None,
) -> dict[str, Any]:
    """An evaluation result's evidence: the decision, the reviewer's answer, the scores, the cost."""
    return {
        "decision": decision.outcome,
        "mean_gain": decision.mean_gain,
        "reason": decision.reason + (f"; reviewer said {answer}" if answer else ""),
        "candidate_scores": _scores(my_scores),
        "production_scores": _scores(their_scores) if their_scores else None,
        "cost": mine.cost + (theirs.cost if theirs else 0.0),
        "renders_paid": mine.paid + (theirs.paid if theirs else 0),
    }


def _mean(scores: list[ImageScore] | None) -> float | None:
    return round(sum(s.score for s in scores) / len(scores), 4) if scores else None


@scenario_task(name="scenario-render-lora", task_run_name="scenario-render-{model_id}")
async def render_scenario_lora(
    credentials: ScenarioCredentials | str | None,
    model_id: str,
    suite: EvaluationSuite,
    options: EvaluationOptions | None = None,
) -> RenderSet:
    """Render ``suite`` with a trained LoRA through its base model; cached renders are not paid again.

    Args:
        credentials: A ScenarioCredentials block, its name, or None (the environment).
        model_id: The trained LoRA.
        suite: The prompts and seeds.
        options: Base override, waits, concurrency, budget.

    Returns:
        The renders, in the suite's order.

    Raises:
        EvaluationInputError: bad input, before any credit is spent.

    Example:
        >>> from prefect_scenario.evaluation import EvaluationSuite
        >>> render_scenario_lora.name
        'scenario-render-lora'
    """
    creds = await resolve_credentials(credentials)
    async with creds.get_client() as client:
        return await render_lora(client, model_id, suite, options)


@scenario_flow(name="scenario-evaluate-and-promote", validate_parameters=False)
async def evaluate_and_promote(
    credentials: ScenarioCredentials | str | None,
    model_id: str,
    dataset: str,
    suite: EvaluationSuite | None = None,
    options: EvaluationOptions | None = None,
    review: Review | None = None,
    promote: bool = True,
    trigger_word: str | None = None,
    scorer: Scorer | None = None,
    manifest_digest: str | None = None,
) -> EvaluationResult:
    """Judge ``model_id`` against the dataset's production LoRA and promote it only if it is better.

    Args:
        credentials: A ScenarioCredentials block, its name, or None (the environment).
        model_id: The candidate (a trained LoRA).
        dataset: The dataset label; one production LoRA per dataset.
        suite: What to render; by default derived from the candidate's captions or the trigger word.
        options: Margin, waits, concurrency, budget, base override.
        review: ``never``, ``uncertain`` or ``always`` (overrides ``options.review``).
        promote: False only evaluates.
        trigger_word: Used by the default suite.
        scorer: Another scorer than Scenario's Quality Gate.
        manifest_digest: The dataset manifest's digest, for the lineage.

    Returns:
        The :class:`EvaluationResult`; ``result.promoted`` says whether production moved.

    Example:
        >>> evaluate_and_promote.name
        'scenario-evaluate-and-promote'
    """
    options = options or EvaluationOptions()
    if review is not None:
        options = options.model_copy(update={"review": review})
    creds = await resolve_credentials(credentials)
    async with creds.get_client() as client:
        return await evaluate(
            client,
            model_id,
            dataset,
            suite=suite,
            options=options,
            scorer=scorer,
            promote=promote,
            trigger_word=trigger_word,
            manifest_digest=manifest_digest,
        )
