"""Render a suite with a trained LoRA on Scenario: checked bodies, one dry-run quote, polite waits, a cache.

The cache is Scenario-side, in the LoRA's own tags: right after a render is accepted, the
model gets the tag ``psc-eval:<key>:<jobId>``, where ``key`` hashes (model, base, suite
digest, prompt, seed). Why tags: they survive a restart of the worker and are seen by
every worker of the project (a Prefect Variable would need the same Prefect server;
the job list is not filterable by model), ``PUT /models/{id}/tags`` with ``strict: false``
"will behave as if it was idempotent" (SDK ``models.update_tags``), and the tags go with
the model when it is deleted. A re-run, or a later comparison against this model as the
champion, reads the job id back and never pays for that render again. The only window
left is between a render's acceptance and its tag (one request).

A render is sent once (the API has no idempotency key; Scenario's blender plugin submits
with ``max_retries=0``). At most ``max_in_flight`` jobs run at once; a 429 naming the plan's
ceiling lowers it and waits for one of ours to finish, as "an immediate retry repeats the
error" (Scenario's skills, ``skills/scenario/SKILL.md``). Jobs are read every 2 s or more;
outputs are read from ``metadata.assetIds`` and ordered by ``outputIndex``.

Example:
    >>> cache_tag("k1", "job_9"), parse_cache_tags(["psc-eval:k1:job_9", "other"])
    ('psc-eval:k1:job_9', {'k1': 'job_9'})
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prefect_scenario._logging import run_logger
from prefect_scenario.api.models import Job, RenderAsset
from prefect_scenario.evaluation.bases import RenderRequest, check_lora, render_bodies, resolve_base
from prefect_scenario.evaluation.options import EvaluationOptions
from prefect_scenario.evaluation.spending import charge_renders
from prefect_scenario.evaluation.suite import EvaluationSuite
from prefect_scenario.exceptions import PlanLimitError, RenderFailed

__all__ = [
    "CACHE_PREFIX",
    "Render",
    "RenderPlan",
    "RenderSet",
    "cache_key",
    "cache_tag",
    "parse_cache_tags",
    "plan_renders",
    "render_lora",
    "run_renders",
]

CACHE_PREFIX = "psc-eval:"
SUCCESS = frozenset({"success", "succeeded", "completed"})
FAILED = frozenset({"failure", "failed", "canceled", "cancelled", "error"})
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Render:
    """One output: the prompt as sent, its seed, the job and asset, its automatic score if any."""

    key: str
    prompt: str
    seed: int
    job_id: str
    asset_id: str
    url: str | None
    quality_gate: dict[str, Any] | None
    cached: bool


@dataclass
class RenderSet:
    """A model's renders of one suite, in the suite's order, and what they cost now."""

    model_id: str
    base_model_id: str
    suite_digest: str
    renders: list[Render] = field(default_factory=list)
    cost: float = 0.0
    paid: int = 0


def cache_key(model_id: str, base_id: str, suite_digest: str, prompt: str, seed: int) -> str:
    """The cache key of one render."""
    text = "\x1f".join([model_id, base_id, suite_digest, prompt, str(seed)])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_tag(key: str, job_id: str) -> str:
    """The tag that records a render on its model."""
    return f"{CACHE_PREFIX}{key}:{job_id}"


def parse_cache_tags(tags: Sequence[str]) -> dict[str, str]:
    """Render key → job id, from a model's tags (the first tag of a key wins)."""
    found: dict[str, str] = {}
    for tag in tags:
        if tag.startswith(CACHE_PREFIX) and tag.count(":") == 2:
            _, key, job_id = tag.split(":")
            found.setdefault(key, job_id)
    return found


async def _quote(client: Any, base_id: str, requests: Sequence[RenderRequest]) -> float:
    """The dry-run total of ``requests``: each distinct body quoted once (HTTP 269, nothing runs)."""
    total, quotes = 0.0, {}
    for request in requests:
        shape = repr(sorted((k, v) for k, v in request.body.items() if k not in ("prompt", "seed")))
        if shape not in quotes:
            quotes[shape] = (await client.estimate_render(base_id, request.body)).creative_units_cost or 0.0
        total += quotes[shape]
    return round(total, 4)


@dataclass
class _Flight:
    """The render loop's state: requests still to send, jobs in flight and finished ones."""

    pending: list[tuple[str, RenderRequest]]
    in_flight: dict[str, str]  # job id -> key
    finished: dict[str, Job] = field(default_factory=dict)  # key -> job
    limit: int = 2


async def _submit(client: Any, model_id: str, base_id: str, flight: _Flight) -> None:
    """Send renders while there is room; a plan 429 lowers the ceiling instead of retrying."""
    while flight.pending and len(flight.in_flight) < flight.limit:
        key, request = flight.pending[0]
        try:
            result = await client.render(base_id, request.body)
        except PlanLimitError as exc:
            ceiling = exc.action_limit if exc.action_limit is not None else len(flight.in_flight)
            flight.limit = max(1, min(flight.limit, ceiling, len(flight.in_flight) or 1))
            run_logger().info("Render jobs at the plan's ceiling (%s): waiting for one to finish", exc.action_name)
            return
        job = result.job
        if job is None:
            raise RenderFailed(f"the render of {request.prompt[:40]!r} answered no job", reason="no job")
        flight.pending.pop(0)
        flight.in_flight[job.job_id] = key
        await client.update_tags(model_id, add=[cache_tag(key, job.job_id)])


async def _poll(client: Any, flight: _Flight) -> None:
    for job_id, key in list(flight.in_flight.items()):
        job = await client.get_job(job_id)
        status = (job.status or "").lower()
        if status in FAILED:
            hint = job.metadata.get("hint")
            reason = "; ".join(str(x) for x in (job.error, hint) if x) or status
            raise RenderFailed(f"render job {job_id} ended {status}: {reason}", job_id=job_id, reason=reason)
        if status in SUCCESS:
            flight.in_flight.pop(job_id)
            flight.finished[key] = job


async def _run(
    client: Any,
    model_id: str,
    base_id: str,
    flight: _Flight,
    options: EvaluationOptions,
    sleep: Sleep,
    clock: Callable[[], float],
) -> None:
    """Send and wait until every render finished, within ``options.timeout_seconds``."""
    deadline = clock() + options.timeout_seconds
    await _poll(client, flight)  # renders found in the cache may be finished already
    while flight.pending or flight.in_flight:
        await _submit(client, model_id, base_id, flight)
        if clock() >= deadline:
            raise RenderFailed(
                f"renders of {model_id} did not finish in {options.timeout_seconds:g} s", reason="timeout"
            )
        await sleep(options.poll_seconds)
        await _poll(client, flight)


async def _outputs(client: Any, jobs: dict[str, Job]) -> dict[str, RenderAsset]:
    """The first output (lowest ``outputIndex``) of each job, by render key."""
    ids = {a: key for key, job in jobs.items() for a in job.metadata.get("assetIds") or []}
    by_key: dict[str, list[RenderAsset]] = {}
    for asset in await client.get_assets(list(ids)):
        by_key.setdefault(ids[asset.id], []).append(asset)
    return {k: sorted(v, key=lambda a: a.output_index or 0)[0] for k, v in by_key.items()}


@dataclass(frozen=True)
class RenderPlan:
    """What rendering a suite with one LoRA takes, checked before any credit: base, bodies, cache."""

    model_id: str
    base_model_id: str
    suite_digest: str
    keyed: list[tuple[str, RenderRequest]]
    cached: dict[str, str]

    @property
    def to_pay(self) -> list[tuple[str, RenderRequest]]:
        return [(k, r) for k, r in self.keyed if k not in self.cached]


async def plan_renders(client: Any, model_id: str, suite: EvaluationSuite, options: EvaluationOptions) -> RenderPlan:
    """Read the LoRA and its base, check the suite against the base's schema, look up the cache (reads only).

    Raises:
        EvaluationInputError: the model is not trained, no base runs its type, or the suite
            is outside the base's limits.
    """
    lora = await client.get_model(model_id)
    lora_type = check_lora(lora)
    base = await resolve_base(client, lora_type, options.base_model_id)
    requests = render_bodies(base, suite, [model_id], edit=lora_type.endswith("-edit-lora"))
    keyed = [(cache_key(model_id, base.id, suite.digest, r.prompt, r.seed), r) for r in requests]
    return RenderPlan(model_id, base.id, suite.digest, keyed, parse_cache_tags(lora.tags))


async def run_renders(
    client: Any,
    plan: RenderPlan,
    options: EvaluationOptions,
    *,
    dataset: str | None = None,
    sleep: Sleep | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RenderSet:
    """Quote, charge, render what the cache lacks, wait, and read the outputs in the suite's order.

    Raises:
        BudgetExceeded: the budget or ``max_creative_units`` refused the quoted total.
        RenderFailed: a render job failed or the renders timed out.
    """
    import asyncio

    to_pay = plan.to_pay
    result = RenderSet(plan.model_id, plan.base_model_id, plan.suite_digest, paid=len(to_pay))
    if to_pay:
        result.cost = await _quote(client, plan.base_model_id, [r for _, r in to_pay])
        await charge_renders(
            project=client.project_id,
            dataset=dataset or plan.model_id,
            model_id=plan.model_id,
            suite_digest=plan.suite_digest,
            keys=[k for k, _ in to_pay],
            total=result.cost,
            budget=options.budget,
            max_creative_units=options.max_creative_units,
        )
        run_logger().info(
            "Rendering %d of %d with %s on %s (%g creative units)",
            len(to_pay),
            len(plan.keyed),
            plan.model_id,
            plan.base_model_id,
            result.cost,
        )
    in_flight = {plan.cached[k]: k for k, _ in plan.keyed if k in plan.cached}
    flight = _Flight(pending=list(to_pay), in_flight=in_flight, limit=options.max_in_flight)
    await _run(client, plan.model_id, plan.base_model_id, flight, options, sleep or asyncio.sleep, clock)
    outputs = await _outputs(client, flight.finished)
    for key, request in plan.keyed:
        asset = outputs[key]
        result.renders.append(
            Render(
                key,
                request.prompt,
                request.seed,
                flight.finished[key].job_id,
                asset.id,
                asset.url,
                asset.quality_gate,
                key in plan.cached,
            )
        )
    return result


async def render_lora(
    client: Any,
    model_id: str,
    suite: EvaluationSuite,
    options: EvaluationOptions | None = None,
    *,
    dataset: str | None = None,
    sleep: Sleep | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RenderSet:
    """Render ``suite`` with the LoRA ``model_id``, paying only for renders not in its cache.

    Raises:
        EvaluationInputError: the model is not trained, no base runs its type, or the suite
            is outside the base's limits (before any credit is spent).
        BudgetExceeded: the budget or ``max_creative_units`` refused the quoted total.
        RenderFailed: a render job failed.
    """
    options = options or EvaluationOptions()
    plan = await plan_renders(client, model_id, suite, options)
    return await run_renders(client, plan, options, dataset=dataset, sleep=sleep, clock=clock)
