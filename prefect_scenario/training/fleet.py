"""Training many LoRAs at once: every job up to its trigger, then one bulk poller for all.

Each job's steps run as tasks of the one fleet flow run (concurrent subflows cost
Prefect seconds each to start: ``benchmarks/bench_fleet.py``), and a single
``scenario-wait-for-trainings`` task polls ``POST /models/get-bulk`` for all of them:
one request per polling cycle (50 ids a request), not one per model.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prefect.context import FlowRunContext
from prefect_aws import AwsCredentials
from pydantic import BaseModel, ConfigDict, Field

from prefect_scenario._dispatch import scenario_flow
from prefect_scenario.api.models import Model
from prefect_scenario.catalog import TrainingParameters, get_training_type
from prefect_scenario.credentials import ScenarioCredentials, resolve_credentials
from prefect_scenario.dataset.images import ImageSource
from prefect_scenario.evaluation.options import EvaluationOptions
from prefect_scenario.exceptions import TrainingFailed, TrainingTimeout
from prefect_scenario.spend.block import ScenarioBudget, resolve_budget
from prefect_scenario.tags import IDEMPOTENCY_TAG_PREFIX, tag_values
from prefect_scenario.training.cancellation import run_hooks
from prefect_scenario.training.ending import end_training
from prefect_scenario.training.judging import judge_training
from prefect_scenario.training.options import (
    DEFAULT_TIMEOUT_SECONDS,
    JOB_FIELDS,
    TrainingOptions,
    build_options,
    option_field,
)
from prefect_scenario.training.pipeline import TrainingRequest, TrainingResult, run_training
from prefect_scenario.waiting.polling import DEFAULT_POLICY, PollPolicy
from prefect_scenario.waiting.slots import fleet_slots
from prefect_scenario.waiting.suspension import (
    WaitMode,
    WaitRecord,
    can_suspend,
    parse_wait,
    resumed_record,
    suspend_for,
)
from prefect_scenario.waiting.wait import cancel_after_timeout, wait_for_scenario_trainings

__all__ = ["TrainingJob", "train_lora_fleet"]


class TrainingJob(BaseModel):
    """One LoRA of a fleet: what :func:`~prefect_scenario.train_lora` takes for one model.

    Example:
        >>> TrainingJob(name="hero", training_type="flux.2-dev-lora", images=["hero/01.png"]).force
        False
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The model name.")
    training_type: str = Field(description="A standard LoRA type, e.g. flux.2-dev-lora.")
    images: list[ImageSource] = Field(description="Local paths, s3:// URIs or asset ids of the training images.")
    # The per-job options: the same fields as TrainingOptions (a test holds them equal).
    parameters: TrainingParameters | dict[str, Any] | None = option_field("parameters")
    captions: dict[str, str] | None = option_field("captions")
    caption_prefix: str | None = option_field("caption_prefix")
    strict_preflight: bool = option_field("strict_preflight")
    min_dataset_score: float | None = option_field("min_dataset_score")
    idempotency_key: str | None = option_field("idempotency_key")
    force: bool = option_field("force")
    max_creative_units: float | None = option_field("max_creative_units")
    dataset: str | None = option_field("dataset")

    def options(self, **run: Any) -> TrainingOptions:
        """This job's options, with the fleet's run-wide ones (``wait``, ``timeout_seconds``, ...)."""
        return build_options(**{name: getattr(self, name) for name in JOB_FIELDS}, **run)


@scenario_flow(name="scenario-train-lora-fleet", flow_run_name="scenario-train-lora-fleet-{name}", **run_hooks())
async def train_lora_fleet(
    jobs: list[TrainingJob],
    credentials: ScenarioCredentials | None = None,
    name: str = "fleet",
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    upload_concurrency: int = 4,
    aws_credentials: AwsCredentials | None = None,
    poll_policy: PollPolicy = DEFAULT_POLICY,
    raise_on_failure: bool = True,
    wait: WaitMode = "poll",
    budget: ScenarioBudget | str | None = None,
    promote: bool | EvaluationOptions = False,
) -> list[TrainingResult]:
    """Train many standard LoRAs at once and wait for all of them with one bulk poller.

    Every job is checked before the first request (type, parameters, dataset size).

    Args:
        jobs: one :class:`TrainingJob` per model.
        credentials: as for :func:`~prefect_scenario.train_lora`.
        name: the fleet's name (flow run ``scenario-train-lora-fleet-{name}``).
        timeout_seconds: how long to wait for the whole fleet (then cancel the rest).
        upload_concurrency: uploads in flight per model.
        aws_credentials: a prefect-aws ``AwsCredentials`` block for ``s3://`` images.
        poll_policy: the wait loop's poll delay bounds.
        raise_on_failure: raise ``TrainingFailed`` once all ended if any failed.
        wait: ``"poll"`` (one bulk poller in this process), ``"suspend"`` (suspend the run once
            all are triggered, until the watcher resumes it when all ended; deployment runs
            only, elsewhere it polls) or False (return once all are triggered).
        budget: a ``ScenarioBudget`` block (or its saved name); its ``per_fleet_run`` limit
            applies to this run's jobs together, its other limits to each job as usual. A
            job the budget (or its ``max_creative_units``) refuses is not triggered; the
            jobs already started are waited for, then its ``BudgetExceeded`` is raised.
        promote: judge each trained LoRA against its dataset's production LoRA (the job's
            ``dataset``, else its name) and promote it only if better (see ``train_lora``).

    Returns:
        One :class:`TrainingResult` per job, in order.

    Example:
        >>> results = train_lora_fleet(
        ...     jobs=[TrainingJob(name="hero", training_type="flux.2-dev-lora", images=hero_images),
        ...           TrainingJob(name="villain", training_type="zimage-lora", images=villain_images)],
        ...     credentials=credentials,
        ... )
        >>> [r.status for r in results]
        ['trained', 'trained']
    """
    context = FlowRunContext.get()
    fleet = str(context.flow_run.id) if context and context.flow_run else None
    resolved_budget = await resolve_budget(budget)
    mode = parse_wait(wait)
    build_options(wait=wait, promote=promote)  # promote needs a wait: refused before any request
    run = {
        "wait": False,
        "timeout_seconds": timeout_seconds,
        "upload_concurrency": upload_concurrency,
        "poll_policy": poll_policy,
        "budget": resolved_budget,
    }
    # Every job's options are checked (and its type, parameters and size) before any request.
    options = [job.options(**run) for job in jobs]
    resolved = await resolve_credentials(credentials)
    requests = [
        TrainingRequest(
            job.name,
            job.training_type,
            opts,
            credentials=resolved,
            images=job.images,
            aws_credentials=aws_credentials,
            fleet=fleet,
        )
        for job, opts in zip(jobs, options, strict=True)
    ]
    for request in requests:
        request.check()
    if mode == "suspend" and (record := resumed_record()) is not None:
        resumed = await _resumed(resolved, jobs, record, poll_policy)
        return _outcome(await _judged(resolved, jobs, resumed, promote, resolved_budget), raise_on_failure)
    async with fleet_slots(resolved, poll_policy):  # a trigger waiting for a slot goes when a fleet training ends
        outcomes = await asyncio.gather(*(run_training(r) for r in requests), return_exceptions=True)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    started = [o for o in outcomes if isinstance(o, TrainingResult)]
    pending = [r.model_id for r in started if r.status != "trained"]
    if mode == "none" and not errors:
        return started
    # A refused job: the others are waited for in this process, then its error is raised.
    if mode == "suspend" and can_suspend() and pending and not errors:
        keys = tuple(r.idempotency_key for r in started)
        await suspend_for(WaitRecord(model_ids=tuple(pending), keys=keys, deadline=time.time() + timeout_seconds))
    final = await wait_for_scenario_trainings(resolved, pending, timeout_seconds, True, poll_policy, len(pending))
    results = [await end_training(r, final[r.model_id]) if r.model_id in final else r for r in started]
    if errors:
        # The jobs that started were waited for above: a refused job never orphans a paid one.
        raise errors[0]
    return _outcome(await _judged(resolved, jobs, results, promote, resolved_budget), raise_on_failure)


async def _judged(
    credentials: ScenarioCredentials,
    jobs: list[TrainingJob],
    results: list[TrainingResult],
    promote: bool | EvaluationOptions,
    budget: ScenarioBudget | None,
) -> list[TrainingResult]:
    """Each trained job's result with its evaluation, when ``promote`` asks for one (one job at a time)."""
    judged = []
    for job, result in zip(jobs, results, strict=True):
        dataset = job.dataset or job.name
        judged.append(
            await judge_training(
                credentials, result, promote=promote, dataset=dataset, caption_prefix=job.caption_prefix, budget=budget
            )
        )
    return judged


async def _resumed(
    credentials: ScenarioCredentials, jobs: list[TrainingJob], record: WaitRecord, poll_policy: PollPolicy
) -> list[TrainingResult]:
    """The fleet's results from its models as they are now (a resumed run: nothing is sent but reads)."""
    async with credentials.get_client() as client:
        models = await client.get_models_bulk(record.model_ids)
        under_way = [m.id for m in models if not m.is_terminal]
        if under_way and record.remaining() > 0:
            if can_suspend():
                await suspend_for(record)  # resumed before the end: free the process again
            final = await wait_for_scenario_trainings(
                credentials, under_way, record.remaining(), True, poll_policy, len(under_way)
            )
            models, under_way = [final.get(m.id, m) for m in models], []
        if under_way:
            await cancel_after_timeout(client, under_way)
            raise TrainingTimeout(
                f"{len(under_way)} trainings did not end within the fleet's timeout: cancelled", model_id=under_way[0]
            )
    by_job: dict[tuple[str, str], list[Model]] = {}
    for model in models:
        by_job.setdefault((model.name or "", model.type or ""), []).append(model)
    results = []
    for job in jobs:
        ttype = get_training_type(job.training_type)
        candidates = by_job.get((job.name, ttype.id))
        if not candidates:
            raise TrainingFailed(f"the resumed fleet found no model for job {job.name!r} (deleted?)")
        model = candidates.pop(0)
        key = next(iter(tag_values(model.tags, IDEMPOTENCY_TAG_PREFIX)), "")
        result = TrainingResult.of_model(model, ttype, key, name=job.name, images=len(job.images))
        results.append(await end_training(result, model))
    return results


def _outcome(results: list[TrainingResult], raise_on_failure: bool) -> list[TrainingResult]:
    failed = [r for r in results if r.status != "trained"]
    if failed and raise_on_failure:
        raise TrainingFailed(
            f"{len(failed)} of {len(results)} trainings did not end trained: "
            + ", ".join(f"{r.name} ({r.model_id}: {r.status})" for r in failed),
            model_id=failed[0].model_id,
        )
    return results
