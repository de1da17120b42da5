"""The body of every training flow: check, prepare, create → upload → score → trigger → wait.

Everything that can be checked is checked before the first request (training type,
parameters, dataset size, every image). Every run has an idempotency key derived from
what defines the training (name, type, image hashes and captions, parameters) and recorded on its
model, so running the same flow again after a crash continues the same model, and an
identical dataset that already trained returns the existing model without spending
credits (unless ``force``).

Example:
    >>> from prefect_scenario.catalog import TrainingParameters
    >>> def key(*items: str) -> str:
    ...     return derive_idempotency_key(name="a", training_type="flux.2-dev-lora", items=list(items),
    ...                                   parameters=TrainingParameters())
    >>> key("h1") == key("h1"), key("h1") == key("h1", "h2"), len(key("h1"))
    (True, False, 24)
"""

from __future__ import annotations

import functools
import hashlib
import json
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.context import FlowRunContext

from prefect_scenario._logging import run_logger
from prefect_scenario.api.models import Model
from prefect_scenario.catalog import (
    TrainingParameters,
    TrainingType,
    check_dataset_size,
    get_training_type,
    validate_parameters,
)
from prefect_scenario.credentials import ScenarioCredentials, resolve_aws_credentials, resolve_credentials
from prefect_scenario.dataset.images import (
    ImageSource,
    PairSource,
    PreparedImage,
    PreparedPair,
    prepare_images,
    prepare_pairs,
)
from prefect_scenario.dataset.preflight import run_flow_preflight
from prefect_scenario.exceptions import (
    BudgetExceeded,
    ConfigurationError,
    DatasetRejected,
    InvalidTrainingTypeError,
    TrainingTimeout,
)
from prefect_scenario.reporting import EVENT_CANCELED, ProgressReporter, artifact_key, emit_training_event
from prefect_scenario.spend.gate import SpendCharge, SpendPlan, check_spend, prepare_spend, publish_spend
from prefect_scenario.spend.quote import quote_before_upload
from prefect_scenario.tags import WAITING_TAG
from prefect_scenario.training.ending import EpochResult, Phases, TrainingResult, end_training
from prefect_scenario.training.judging import judge_training
from prefect_scenario.training.options import TrainingOptions
from prefect_scenario.training.tasks import (
    add_scenario_training_images,
    check_scenario_dataset_score,
    create_scenario_model,
    set_scenario_training_pairs,
    trigger_scenario_training,
)
from prefect_scenario.validation import clean_name
from prefect_scenario.waiting.suspension import WaitRecord, can_suspend, resumed_record, set_run_tags, suspend_for
from prefect_scenario.waiting.wait import cancel_after_timeout, finish, wait_for_scenario_training

__all__ = ["EpochResult", "TrainingRequest", "TrainingResult", "derive_idempotency_key", "run_training"]


def derive_idempotency_key(
    *, name: str, training_type: str, items: Sequence[Any], parameters: TrainingParameters
) -> str:
    """A key from what defines a training: name, type, dataset content and parameters."""
    wire = parameters.to_wire()
    if "wandbKey" in wire:
        # The key appears in tags: hash the secret rather than embedding it.
        wire["wandbKey"] = hashlib.sha256(str(wire["wandbKey"]).encode()).hexdigest()
    document = json.dumps(
        {"name": name, "type": training_type, "items": list(items), "parameters": wire}, sort_keys=True, default=str
    )
    return hashlib.sha256(document.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class TrainingRequest:
    """One training as a flow was asked for it: what to train (images or pairs) and its options."""

    name: str
    training_type: str
    options: TrainingOptions
    credentials: ScenarioCredentials | None = None
    images: list[ImageSource] | None = None
    pairs: list[PairSource | dict[str, Any]] | None = None
    aws_credentials: Any = None
    fleet: str | None = None

    def check(self) -> tuple[TrainingType, TrainingParameters, list[str]]:
        """Every check that needs no request; the type, the validated parameters, and size warnings.

        Raises:
            InvalidInputError: bad input (type, parameters, dataset size, options).
        """
        clean_name("name", self.name)  # before any request: an empty name would still create a model
        ttype = get_training_type(self.training_type)
        params = validate_parameters(ttype, self.options.parameters)
        if ttype.edit and (self.options.captions is not None or self.options.caption_prefix is not None):
            raise ConfigurationError("captions are for standard types: an edit pair's instruction is its caption")
        if ttype.edit and self.pairs is None:
            raise wrong_kind(ttype, "train_edit_lora with before/after pairs")
        if not ttype.edit and (self.pairs is not None or self.images is None):
            raise wrong_kind(ttype, "train_lora with images")
        warnings = check_dataset_size(ttype, images=len(self.images or []), pairs=len(self.pairs or []))
        return ttype, params, warnings


@dataclass(frozen=True)
class _Run:
    """What one run of :func:`run_training` knows once everything is checked."""

    request: TrainingRequest
    credentials: ScenarioCredentials
    ttype: TrainingType
    params: TrainingParameters
    spend: SpendPlan
    phases: Phases

    @property
    def options(self) -> TrainingOptions:
        return self.request.options

    @property
    def summary_key(self) -> str:
        return artifact_key("scenario-model", self.request.name)

    def result(self, model: Model, key: str, **values: Any) -> TrainingResult:
        """The run's result so far, from the model it trains."""
        request = self.request
        images, pairs = len(request.images or []), len(request.pairs or [])
        return TrainingResult.of_model(model, self.ttype, key, name=request.name, images=images, pairs=pairs, **values)


def wrong_kind(ttype: TrainingType, use: str) -> InvalidTrainingTypeError:
    kind = "an edit" if ttype.edit else "a standard"
    return InvalidTrainingTypeError(f"{ttype.id!r} is {kind} training type: use {use}")


def _identity(image: PreparedImage) -> str:
    return image.sha256 or f"asset:{image.asset_id}"


def _content(image: PreparedImage) -> str:
    """An image's part of the run key: its content and, when it has one, its caption.

    A caption is dataset content (it is what the LoRA learns the image as), so changing
    one changes the key and trains again. An uncaptioned image keys as before captions existed.
    """
    if image.caption is None:
        return _identity(image)
    return f"{_identity(image)}:{hashlib.sha256(image.caption.encode()).hexdigest()}"


async def run_training(request: TrainingRequest) -> TrainingResult:
    """Run one training inside the current flow run (a training flow's, or a fleet's)."""
    phases = Phases()
    with phases.phase("prepare"):
        ttype, params, warnings = request.check()
        for warning in warnings:
            run_logger().warning(warning)
        options = request.options
        # Limits and the budget block are checked before any request.
        spend = await prepare_spend(
            dataset=options.dataset or request.name,
            max_creative_units=options.max_creative_units,
            budget=options.budget,
            fleet=request.fleet,
            slot_timeout=options.timeout_seconds,
        )
        credentials = await resolve_credentials(request.credentials)
    run = _Run(request, credentials, ttype, params, spend, phases)
    if options.mode == "suspend" and (record := resumed_record()) is not None:
        # A resumed run (Prefect starts it from the top): finish from the model, touch nothing else.
        result = await _finish_resumed(run, record)
    else:
        with tempfile.TemporaryDirectory(prefix="prefect-scenario-") as workdir:
            with phases.phase("prepare"):
                key, images, pairs = await _prepare(run, Path(workdir))
            result = await _steps(run, key, images, pairs)
    with phases.phase("evaluate"):
        judged = await judge_training(
            credentials,
            result,
            promote=options.promote,
            dataset=options.dataset or request.name,
            caption_prefix=options.caption_prefix,
            budget=spend.budget,
        )
    return judged if judged is result else judged.model_copy(update={"durations": phases.rounded()})


async def _prepare(run: _Run, workdir: Path) -> tuple[str, list[PreparedImage] | None, list[PreparedPair] | None]:
    """Read and check every image (to disk), run the preflight, derive the run key: no request yet."""
    request, options = run.request, run.options
    aws = await resolve_aws_credentials(request.aws_credentials) if request.aws_credentials is not None else None
    reading: dict[str, Any] = {"aws_credentials": aws, "workdir": workdir, "concurrency": options.upload_concurrency}
    images: list[PreparedImage] | None = None
    pairs: list[PreparedPair] | None = None
    items: list[Any]
    if request.pairs is not None:
        pairs = await prepare_pairs(request.pairs, **reading)
        items = [[_identity(p.before), _identity(p.after), p.instruction] for p in pairs]
    else:
        images = await prepare_images(
            request.images or [], captions=options.captions, caption_prefix=options.caption_prefix, **reading
        )
        items = sorted(_content(i) for i in images)
    # The preflight runs on what was just read: it refuses before any request is sent.
    await run_flow_preflight(
        request.name,
        run.ttype.id,
        images=images,
        pairs=pairs,
        caption_prefix=options.caption_prefix,
        strict=options.strict_preflight,
    )
    key = options.idempotency_key or derive_idempotency_key(
        name=request.name, training_type=run.ttype.id, items=items, parameters=run.params
    )
    return key, images, pairs


async def _steps(
    run: _Run, key: str, images: list[PreparedImage] | None, pairs: list[PreparedPair] | None
) -> TrainingResult:
    """Create → upload → score → estimate → trigger → wait, each step safe to run again."""
    credentials, options, phases = run.credentials, run.options, run.phases
    with phases.phase("create"):
        model = await create_scenario_model(credentials, run.request.name, run.ttype.id, key)
    result = run.result(model, key)
    if model.status == "trained" and not options.force:
        run_logger().info("model %s already trained on this dataset: returning it without training", model.id)
        reused = result.with_model(model).model_copy(update={"reused": True, "durations": phases.rounded()})
        return reused
    ledger_write: Callable[[], Awaitable[None]] | None = None
    if model.status != "training":
        try:
            result, ledger_write = await _start(run, model, result, images, pairs)
        except (BudgetExceeded, DatasetRejected) as exc:
            await _refused(model, exc)
            raise
    if options.mode == "none":
        return result.model_copy(update={"durations": phases.rounded()})
    if options.mode == "suspend":
        if can_suspend():
            record = WaitRecord(
                model_ids=(model.id,),
                keys=(key,),
                deadline=time.time() + options.timeout_seconds,
                cost=result.creative_units_cost,
                dataset_score=result.dataset_score,
            )
            await suspend_for(record, alongside=ledger_write)
        run_logger().warning(
            'wait="suspend" needs a deployment run (Prefect can only suspend those): waiting in this process'
        )
    with phases.phase("wait"):
        final = await wait_for_scenario_training(
            credentials, model.id, options.timeout_seconds, True, options.poll_policy
        )
    return await end_training(
        result, final, phases=phases, summary_key=run.summary_key, parameters=run.params.to_wire()
    )


async def _refused(model: Model, exc: Exception) -> None:
    """The progress card's last word on a training refused before its trigger (not a stuck 0 %)."""
    reporter = ProgressReporter.for_training(model.id, model.name)
    reporter.model = model
    await reporter.finish("refused", str(exc))


async def _start(
    run: _Run,
    model: Model,
    result: TrainingResult,
    images: list[PreparedImage] | None,
    pairs: list[PreparedPair] | None,
) -> tuple[TrainingResult, Callable[[], Awaitable[None]] | None]:
    """Upload, score, estimate and trigger; the result as started and the ledger write left to do."""
    credentials, options, phases = run.credentials, run.options, run.phases
    count = len(pairs) if pairs is not None else len(images or [])
    quoted = await quote_before_upload(run.spend, credentials, model, run.params, count)  # a certain refusal: no upload
    with phases.phase("upload"):
        if pairs is not None:
            await set_scenario_training_pairs(credentials, model.id, pairs, options.upload_concurrency)
        else:
            await add_scenario_training_images(credentials, model.id, images or [], options.upload_concurrency)
    with phases.phase("score"):
        score = await check_scenario_dataset_score(credentials, model.id, options.min_dataset_score)
    spend: SpendCharge = await check_spend(run.spend, credentials, model, run.params, quoted)  # limits
    with phases.phase("trigger"):
        async with spend.settling_on_error():  # released, or kept until settled
            answer = await trigger_scenario_training(
                credentials, model.id, run.params, options.timeout_seconds, options.poll_policy
            )
    # The actual cost replaces the reservation in the ledger. A run about to suspend writes
    # it while Prefect takes the suspension and publishes the ledger artifacts once resumed:
    # its process is held while Scenario trains only for the wait record's write.
    ledger_write: Callable[[], Awaitable[None]] | None = None
    if options.mode == "suspend" and can_suspend():
        ledger_write = functools.partial(spend.record, answer, publish=False)
    else:
        await spend.record(answer)
    started = result.model_copy(
        update={
            "job_id": answer.job_id or result.job_id,
            "creative_units_cost": answer.creative_units_cost,
            "dataset_score": score.score if score else None,
            "status": "training",
        }
    )
    return started, ledger_write


async def _finish_resumed(run: _Run, record: WaitRecord) -> TrainingResult:
    """Finish a resumed run as the in-process wait would: events, summary, result or error."""
    context_run = FlowRunContext.get()
    assert context_run is not None and context_run.flow_run is not None
    context_run.flow_run.tags = await set_run_tags(context_run.flow_run.id, remove=[WAITING_TAG])
    model_id = record.model_ids[0]
    credentials, options = run.credentials, run.options
    # The ledger artifacts the run left unpublished before it suspended (its entry is written).
    await publish_spend(credentials.project_id, run.spend.budget)
    async with credentials.get_client() as client:
        model = await client.get_model(model_id)
        run_logger().info("resumed: model %s is %s", model_id, model.status)
        timed_out = record.remaining() <= 0 and model.status in ("training", "training-canceled")
        if timed_out:
            await _timed_out(client, model, options.timeout_seconds)
        if not model.is_terminal:
            if can_suspend():
                await suspend_for(record)  # resumed before the end (from the UI, say): free the process again
            with run.phases.phase("wait"):
                model = await wait_for_scenario_training(
                    credentials, model_id, record.remaining(), True, options.poll_policy
                )
        else:
            await ProgressReporter.for_training(model_id, model.name).update(model)
            model = await finish(client, model)
    key = record.keys[0] if record.keys else (options.idempotency_key or "")
    result = run.result(model, key, creative_units_cost=record.cost, dataset_score=record.dataset_score)
    return await end_training(
        result, model, phases=run.phases, summary_key=run.summary_key, parameters=run.params.to_wire()
    )


async def _timed_out(client: Any, model: Model, timeout_seconds: float) -> None:
    """A resumed run past its deadline: cancel the training (unless the watcher did) and raise."""
    if model.status == "training":
        await cancel_after_timeout(client, [model.id])
    else:  # the watcher cancelled it at the deadline
        emit_training_event(EVENT_CANCELED, model, {"reason": "timeout"})
    raise TrainingTimeout(
        f"training of {model.id} did not end within timeout_seconds={timeout_seconds:g}: it was cancelled",
        model_id=model.id,
        waited_seconds=timeout_seconds,
    )
