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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect.context import FlowRunContext
from pydantic import BaseModel, Field

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
from prefect_scenario.exceptions import ConfigurationError, InvalidTrainingTypeError, TrainingTimeout
from prefect_scenario.reporting import (
    EVENT_CANCELED,
    ProgressReporter,
    artifact_key,
    emit_training_event,
    publish_summary,
)
from prefect_scenario.spend.block import ScenarioBudget
from prefect_scenario.spend.gate import SpendPlan, check_spend, prepare_spend, publish_spend
from prefect_scenario.tags import WAITING_TAG
from prefect_scenario.training.tasks import (
    add_scenario_training_images,
    check_scenario_dataset_score,
    create_scenario_model,
    set_scenario_training_pairs,
    trigger_scenario_training,
)
from prefect_scenario.waiting.polling import DEFAULT_POLICY, PollPolicy
from prefect_scenario.waiting.suspension import (
    WaitMode,
    WaitRecord,
    can_suspend,
    parse_wait,
    resumed_record,
    set_run_tags,
    suspend_for,
)
from prefect_scenario.waiting.wait import cancel_after_timeout, finish, wait_for_scenario_training

__all__ = ["EpochResult", "TrainingRequest", "TrainingResult", "derive_idempotency_key", "run_training"]


class EpochResult(BaseModel):
    """One epoch of the trained model and its sample images."""

    epoch: str
    sample_urls: list[str] = Field(default_factory=list)


class TrainingResult(BaseModel):
    """What a training flow returns."""

    model_id: str
    name: str
    training_type: str
    family: str
    status: str
    idempotency_key: str
    reused: bool = Field(description="True when an identical, already-trained model was returned without training.")
    job_id: str | None = None
    creative_units_cost: float | None = None
    images: int = 0
    pairs: int = 0
    epochs: list[EpochResult] = Field(default_factory=list)
    sample_image_urls: list[str] = Field(default_factory=list)
    dataset_score: float | None = None
    durations: dict[str, float] = Field(default_factory=dict, description="Seconds spent per phase.")

    def with_model(self, model: Model) -> TrainingResult:
        """This result updated with the model's status, epochs and sample images."""
        epochs = [EpochResult(epoch=e.epoch, sample_urls=[a.url for a in e.assets if a.url]) for e in model.epochs]
        samples = next((e.sample_urls for e in reversed(epochs) if e.sample_urls), [])
        return self.model_copy(
            update={"status": model.status, "epochs": epochs, "sample_image_urls": samples, "name": model.name or ""}
        )


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


@dataclass
class TrainingRequest:
    """One training as a flow was asked for it (images for a standard type, pairs for an edit type)."""

    name: str
    training_type: str
    credentials: ScenarioCredentials | None = None
    images: list[ImageSource] | None = None
    captions: dict[str, str] | None = None
    caption_prefix: str | None = None
    strict_preflight: bool = False
    pairs: list[PairSource | dict[str, Any]] | None = None
    parameters: TrainingParameters | dict[str, Any] | None = None
    wait: WaitMode = "poll"
    timeout_seconds: float = 4 * 3600
    idempotency_key: str | None = None
    force: bool = False
    min_dataset_score: float | None = None
    upload_concurrency: int = 4
    aws_credentials: Any = None
    poll_policy: PollPolicy = DEFAULT_POLICY
    durations: dict[str, float] = field(default_factory=dict)
    max_creative_units: float | None = None
    budget: ScenarioBudget | str | None = None
    dataset: str | None = None
    fleet: str | None = None

    def check(self) -> tuple[TrainingType, TrainingParameters, list[str]]:
        """Every check that needs no request; the type, the validated parameters, and size warnings.

        Raises:
            InvalidInputError: bad input (type, parameters, dataset size, options).
        """
        ttype = get_training_type(self.training_type)
        params = validate_parameters(ttype, self.parameters)
        parse_wait(self.wait)
        if self.timeout_seconds <= 0:
            raise ConfigurationError(f"timeout_seconds must be positive, got {self.timeout_seconds}")
        if self.upload_concurrency < 1:
            raise ConfigurationError(f"upload_concurrency must be at least 1, got {self.upload_concurrency}")
        if ttype.edit and (self.captions is not None or self.caption_prefix is not None):
            raise ConfigurationError("captions are for standard types: an edit pair's instruction is its caption")
        if ttype.edit and self.pairs is None:
            raise wrong_kind(ttype, "train_edit_lora with before/after pairs")
        if not ttype.edit and self.pairs is not None:
            raise wrong_kind(ttype, "train_lora with images")
        if not ttype.edit and self.images is None:
            raise wrong_kind(ttype, "train_lora with images")
        warnings = check_dataset_size(ttype, images=len(self.images or []), pairs=len(self.pairs or []))
        return ttype, params, warnings


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
    started = time.monotonic()
    ttype, params, warnings = request.check()
    for warning in warnings:
        run_logger().warning(warning)
    # Limits and the budget block are checked before any request.
    spend_plan = await prepare_spend(
        dataset=request.dataset or request.name,
        max_creative_units=request.max_creative_units,
        budget=request.budget,
        fleet=request.fleet,
        slot_timeout=request.timeout_seconds,
    )
    credentials = await resolve_credentials(request.credentials)
    if parse_wait(request.wait) == "suspend" and (record := resumed_record()) is not None:
        # A resumed run (Prefect starts it from the top): finish from the model, touch nothing else.
        return await _finish_resumed(request, credentials, ttype, params, record, spend_plan)
    with tempfile.TemporaryDirectory(prefix="prefect-scenario-") as workdir:
        aws = await resolve_aws_credentials(request.aws_credentials) if request.aws_credentials is not None else None
        options: dict[str, Any] = {
            "aws_credentials": aws, "workdir": Path(workdir), "concurrency": request.upload_concurrency,
        }  # fmt: skip
        images: list[PreparedImage] | None = None
        pairs: list[PreparedPair] | None = None
        items: list[Any]
        if request.pairs is not None:
            pairs = await prepare_pairs(request.pairs, **options)
            items = [[_identity(p.before), _identity(p.after), p.instruction] for p in pairs]
        else:
            images = await prepare_images(
                request.images or [], captions=request.captions, caption_prefix=request.caption_prefix, **options
            )
            items = sorted(_content(i) for i in images)
        # The preflight runs on what was just read: it refuses before any request is sent.
        await run_flow_preflight(
            request.name, ttype.id, images=images, pairs=pairs, caption_prefix=request.caption_prefix,
            strict=request.strict_preflight,
        )  # fmt: skip
        request.durations["prepare"] = time.monotonic() - started
        key = request.idempotency_key or derive_idempotency_key(
            name=request.name, training_type=ttype.id, items=items, parameters=params
        )
        return await _steps(request, credentials, ttype, params, key, images, pairs, spend_plan)


async def _steps(
    request: TrainingRequest,
    credentials: ScenarioCredentials,
    ttype: TrainingType,
    params: TrainingParameters,
    key: str,
    images: list[PreparedImage] | None,
    pairs: list[PreparedPair] | None,
    spend_plan: SpendPlan,
) -> TrainingResult:
    durations, clock = request.durations, time.monotonic
    started = clock()
    model = await create_scenario_model(credentials, request.name, ttype.id, key)
    durations["create"] = clock() - started
    result = TrainingResult(
        model_id=model.id, name=model.name or request.name, training_type=ttype.id, family=ttype.family,
        status=model.status, idempotency_key=key, reused=False, images=len(images or []), pairs=len(pairs or []),
        job_id=model.job_id, durations=durations,
    )  # fmt: skip
    if model.status == "trained" and not request.force:
        run_logger().info("model %s already trained on this dataset: returning it without training", model.id)
        return _done(result.with_model(model).model_copy(update={"reused": True}), durations)
    ledger_write: Callable[[], Awaitable[None]] | None = None
    if model.status != "training":
        started = clock()
        if pairs is not None:
            await set_scenario_training_pairs(credentials, model.id, pairs, request.upload_concurrency)
        else:
            await add_scenario_training_images(credentials, model.id, images or [], request.upload_concurrency)
        durations["upload"] = clock() - started
        started = clock()
        score = await check_scenario_dataset_score(credentials, model.id, request.min_dataset_score)
        durations["score"] = clock() - started
        spend = await check_spend(spend_plan, credentials, model, params)  # one dry run; limits; reservation
        started = clock()
        async with spend.settling_on_error():  # released, or kept until settled
            answer = await trigger_scenario_training(
                credentials, model.id, params, request.timeout_seconds, request.poll_policy
            )
        durations["trigger"] = clock() - started
        # The actual cost replaces the reservation in the ledger. A run about to suspend writes
        # it alongside its wait record and publishes the ledger artifacts once resumed: its
        # process is held while Scenario trains only for those two writes.
        if parse_wait(request.wait) == "suspend" and can_suspend():
            ledger_write = functools.partial(spend.record, answer, publish=False)
        else:
            await spend.record(answer)
        result = result.model_copy(
            update={"job_id": answer.job_id or result.job_id, "creative_units_cost": answer.creative_units_cost,
                    "dataset_score": score.score if score else None, "status": "training"}
        )  # fmt: skip
    mode = parse_wait(request.wait)
    if mode == "none":
        return _done(result, durations)
    if mode == "suspend":
        if can_suspend():
            await suspend_for(
                WaitRecord(
                    model_ids=(model.id,), keys=(key,), deadline=time.time() + request.timeout_seconds,
                    cost=result.creative_units_cost, dataset_score=result.dataset_score,
                ),
                alongside=ledger_write,
            )  # fmt: skip
        run_logger().warning(
            'wait="suspend" needs a deployment run (Prefect can only suspend those): waiting in this process'
        )
    started = clock()
    try:
        final = await wait_for_scenario_training(
            credentials, model.id, request.timeout_seconds, True, request.poll_policy
        )
    finally:
        durations["wait"] = clock() - started
    await publish_summary(
        final, key=artifact_key("scenario-model", request.name), parameters=params.to_wire(),
        cost=result.creative_units_cost,
    )  # fmt: skip
    run_logger().info("model %s is %s", final.id, final.status)
    return _done(result.with_model(final), durations)


async def _finish_resumed(
    request: TrainingRequest,
    credentials: ScenarioCredentials,
    ttype: TrainingType,
    params: TrainingParameters,
    record: WaitRecord,
    spend_plan: SpendPlan,
) -> TrainingResult:
    """Finish a resumed run as the in-process wait would: events, summary, result or error."""
    context_run = FlowRunContext.get()
    assert context_run is not None and context_run.flow_run is not None
    context_run.flow_run.tags = await set_run_tags(context_run.flow_run.id, remove=[WAITING_TAG])
    model_id = record.model_ids[0]
    logger = run_logger()
    # The ledger artifacts the run left unpublished before it suspended (its entry is written).
    await publish_spend(credentials.project_id, spend_plan.budget)
    async with credentials.get_client() as client:
        model = await client.get_model(model_id)
        logger.info("resumed: model %s is %s", model_id, model.status)
        timed_out = record.remaining() <= 0 and model.status in ("training", "training-canceled")
        if not model.is_terminal and not timed_out:
            if can_suspend():
                # Resumed before the end (from the UI, say): free the process again.
                await suspend_for(record)
            model = await wait_for_scenario_training(
                credentials, model_id, record.remaining(), True, request.poll_policy
            )
        elif timed_out:
            if model.status == "training":
                await cancel_after_timeout(client, [model_id])
            else:  # the watcher cancelled it at the deadline
                emit_training_event(EVENT_CANCELED, model, {"reason": "timeout"})
            raise TrainingTimeout(
                f"training of {model_id} did not end within timeout_seconds={request.timeout_seconds:g}: "
                "it was cancelled",
                model_id=model_id,
                waited_seconds=request.timeout_seconds,
            )
        else:
            await ProgressReporter(key=artifact_key("scenario-training", model_id)).update(model)
            model = await finish(client, model)
    result = TrainingResult(
        model_id=model.id, name=model.name or request.name, training_type=ttype.id, family=ttype.family,
        status=model.status, idempotency_key=record.keys[0] if record.keys else (request.idempotency_key or ""),
        reused=False, images=len(request.images or []), pairs=len(request.pairs or []), job_id=model.job_id,
        creative_units_cost=record.cost, dataset_score=record.dataset_score, durations=request.durations,
    )  # fmt: skip
    await publish_summary(
        model, key=artifact_key("scenario-model", request.name), parameters=params.to_wire(), cost=record.cost
    )
    logger.info("model %s is %s", model.id, model.status)
    return _done(result.with_model(model), request.durations)


def _done(result: TrainingResult, durations: dict[str, float]) -> TrainingResult:
    durations["total"] = sum(v for k, v in durations.items() if k != "total")
    return result.model_copy(update={"durations": {k: round(v, 3) for k, v in durations.items()}})
