"""Flows: create → upload → train → wait, for standard and edit LoRA types.

Both flows check everything they can before the first request (training type,
parameters, dataset size, every image), then run one task per API step. Every
run has an idempotency key, recorded as a tag on the model, so running the same
flow again after a crash continues the same model: no second model, no image
uploaded twice, no second training; and an identical dataset that already
trained returns the existing model without spending credits (unless ``force``).

Cancelling the flow run cancels the remote training too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from prefect import Flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, State
from prefect.context import FlowRunContext
from pydantic import BaseModel, Field

from prefect_scenario.api.models import Model
from prefect_scenario.catalog import (
    TrainingParameters,
    TrainingType,
    check_dataset_size,
    get_training_type,
    validate_parameters,
)
from prefect_scenario.credentials import ScenarioCredentials, resolve_aws_credentials, resolve_credentials
from prefect_scenario.exceptions import ConfigurationError, InvalidTrainingTypeError, TrainingFailed
from prefect_scenario.training.images import (
    ImageSource,
    PairSource,
    PreparedImage,
    PreparedPair,
    prepare_images,
    prepare_pairs,
)
from prefect_scenario.training.monitoring import (
    EVENT_CREATED,
    EVENT_STARTED,
    artifact_key,
    emit_training_event,
    publish_summary,
)
from prefect_scenario.training.polling import DEFAULT_POLICY, PollPolicy
from prefect_scenario.training.tasks import (
    check_dataset_score,
    create_model,
    set_training_pairs,
    trigger_training,
    upload_training_images,
    wait_for_training,
    wait_for_trainings,
)

__all__ = [
    "EpochResult",
    "TrainingResult",
    "derive_idempotency_key",
    "train_edit_lora",
    "train_lora",
    "train_lora_fleet",
]

MODEL_TAG_PREFIX = "scenario-model:"
CREDENTIALS_TAG_PREFIX = "scenario-credentials:"
# Flow runs in this process and the models each one trains, for the cancellation hook.
_ACTIVE: dict[str, tuple[ScenarioCredentials, set[str]]] = {}
_SECRET_PARAMETERS = frozenset({"wandbKey", "wandb_key"})
P = ParamSpec("P")
R = TypeVar("R")


def _mask_secrets(value: Any) -> Any:
    """``value`` with every W&B key, at any depth, replaced by ``**********``."""
    if isinstance(value, dict):
        return {
            k: "**********" if k in _SECRET_PARAMETERS and v is not None else _mask_secrets(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask_secrets(v) for v in value]
    return value


class _SecretSafeFlow(Flow[P, R]):
    """A flow whose recorded parameters never hold a W&B key.

    Prefect stores a run's parameters as the caller gave them: a ``SecretStr`` is
    masked, but ``parameters={"wandbKey": ...}`` (the CLI's form, a sidecar's, a
    fleet job's) was stored in plain text in the flow run (found by the reliability
    suite's secrets test). The flow itself still receives the real value.
    """

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        return dict(_mask_secrets(super().serialize_parameters(parameters)))

    def with_options(self, *args: Any, **kwargs: Any) -> Flow[P, R]:
        copy = super().with_options(*args, **kwargs)
        copy.__class__ = _SecretSafeFlow
        return copy


def _secret_safe_flow(**options: Any) -> Callable[[Callable[P, R]], Flow[P, R]]:
    """``@flow(**options)``, making a :class:`_SecretSafeFlow`."""

    def decorate(fn: Callable[P, R]) -> Flow[P, R]:
        return _SecretSafeFlow(fn, **options)

    return decorate


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


def derive_idempotency_key(
    *, name: str, training_type: str, items: Sequence[Any], parameters: TrainingParameters
) -> str:
    """A key from what defines a training: name, type, dataset content and parameters.

    Example:
        >>> derive_idempotency_key(name="a", training_type="flux.2-dev-lora", items=["h1"],
        ...     parameters=TrainingParameters())
        'a1a3a5cbb5ba0ad8cc8c2ae1'
    """
    wire = parameters.to_wire()
    if "wandbKey" in wire:
        # The key appears in tags: hash the secret rather than embedding it.
        wire["wandbKey"] = hashlib.sha256(str(wire["wandbKey"]).encode()).hexdigest()
    document = json.dumps(
        {"name": name, "type": training_type, "items": list(items), "parameters": wire}, sort_keys=True, default=str
    )
    return hashlib.sha256(document.encode()).hexdigest()[:24]


def _image_identity(image: PreparedImage) -> str:
    return image.sha256 or f"asset:{image.asset_id}"


async def _remember_model(credentials: ScenarioCredentials, credentials_arg: Any, model_id: str) -> None:
    """Record the model on the flow run, for the cancellation hook (in this or another process).

    A fleet run trains many models: each call writes the tags of all of them.
    """
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    run_id = str(context.flow_run.id)
    _, models = _ACTIVE.setdefault(run_id, (credentials, set()))
    models.add(model_id)
    tags = {t for t in context.flow_run.tags if not t.startswith(MODEL_TAG_PREFIX)}
    tags |= {f"{MODEL_TAG_PREFIX}{m}" for m in models}
    if isinstance(credentials_arg, str):
        tags.add(f"{CREDENTIALS_TAG_PREFIX}{credentials_arg}")
    try:
        async with get_client() as prefect:
            await prefect.update_flow_run(context.flow_run.id, tags=sorted(tags))
    except Exception as exc:
        get_run_logger().debug("could not tag the flow run: %s", type(exc).__name__)


async def _cancel_remote_training(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """``on_cancellation`` hook: cancel the Scenario trainings this flow run started."""
    active = _ACTIVE.pop(str(flow_run.id), None)
    if active is not None:
        credentials, model_ids = active
    else:
        # Another process (a runner) runs the hook: read what the flow run recorded.
        async with get_client() as prefect:
            tags = (await prefect.read_flow_run(flow_run.id)).tags
        model_ids = {t[len(MODEL_TAG_PREFIX) :] for t in tags if t.startswith(MODEL_TAG_PREFIX)}
        blocks = [t[len(CREDENTIALS_TAG_PREFIX) :] for t in tags if t.startswith(CREDENTIALS_TAG_PREFIX)]
        if not model_ids:
            return
        credentials = await resolve_credentials(blocks[0] if blocks else None)
    async with credentials.get_client() as client:
        for model_id in sorted(model_ids):
            model = await client.get_model(model_id)
            if model.status == "training":
                model = await client.cancel_training(model_id)
            emit_training_event("scenario.training.canceled", model, {"reason": "flow run cancelled"})


def _result(
    model: Model,
    *,
    ttype: TrainingType,
    key: str,
    reused: bool,
    job_id: str | None,
    cost: float | None,
    images: int,
    pairs: int,
    score: float | None,
    durations: dict[str, float],
) -> TrainingResult:
    epochs = [EpochResult(epoch=e.epoch, sample_urls=[a.url for a in e.assets if a.url]) for e in model.epochs]
    return TrainingResult(
        model_id=model.id,
        name=model.name or "",
        training_type=ttype.id,
        family=ttype.family,
        status=model.status,
        idempotency_key=key,
        reused=reused,
        job_id=job_id or model.job_id,
        creative_units_cost=cost,
        images=images,
        pairs=pairs,
        epochs=epochs,
        sample_image_urls=next((e.sample_urls for e in reversed(epochs) if e.sample_urls), []),
        dataset_score=score,
        durations={k: round(v, 3) for k, v in durations.items()},
    )


async def _run(
    *,
    credentials_arg: ScenarioCredentials | str | None,
    name: str,
    ttype: TrainingType,
    params: TrainingParameters,
    images: list[PreparedImage] | None,
    pairs: list[PreparedPair] | None,
    key: str,
    wait: bool,
    timeout_seconds: float,
    force: bool,
    min_dataset_score: float | None,
    upload_concurrency: int,
    poll_policy: PollPolicy,
    durations: dict[str, float],
) -> TrainingResult:
    logger = get_run_logger()
    credentials = await resolve_credentials(credentials_arg)
    clock = time.monotonic
    n_images, n_pairs = len(images or []), len(pairs or [])

    started = clock()
    model, created = await create_model(credentials, name, ttype.id, key)
    if created:
        emit_training_event(EVENT_CREATED, model, {"idempotencyKey": key})
        logger.info("created model %s (%s) for run key %s", model.id, ttype.id, key)
    else:
        logger.info("continuing model %s (status %s) for run key %s", model.id, model.status, key)
    await _remember_model(credentials, credentials_arg, model.id)
    durations["create"] = clock() - started

    def result(final: Model, **kw: Any) -> TrainingResult:
        durations["total"] = sum(v for k, v in durations.items() if k != "total")
        options: dict[str, Any] = {
            "ttype": ttype,
            "key": key,
            "images": n_images,
            "pairs": n_pairs,
            "durations": durations,
            "reused": False,
            "job_id": None,
            "cost": None,
            "score": None,
        }
        return _result(final, **{**options, **kw})

    if model.status == "trained" and not force:
        logger.info("model %s already trained on this dataset: returning it without training", model.id)
        return result(model, reused=True)

    job_id: str | None = None
    cost: float | None = None
    score: float | None = None
    if model.status != "training":
        started = clock()
        if pairs is not None:
            await set_training_pairs(credentials, model.id, pairs, upload_concurrency)
        else:
            await upload_training_images(credentials, model.id, images or [], upload_concurrency, created)
        durations["upload"] = clock() - started

        started = clock()
        score = (await check_dataset_score(credentials, model.id, min_dataset_score)).score
        durations["score"] = clock() - started

        started = clock()
        previous_job = None if created else model.job_id
        answer = await trigger_training(credentials, model.id, params, previous_job)
        durations["trigger"] = clock() - started
        job_id = answer.job.job_id if answer.job else answer.model.job_id
        cost = answer.creative_units_cost
        if answer.job is not None:
            emit_training_event(EVENT_STARTED, answer.model, {"jobId": job_id, "creativeUnitsCost": cost})
            logger.info("training started: job %s, %s creative units", job_id, cost)

    if not wait:
        return result(model, job_id=job_id, cost=cost, score=score)
    started = clock()
    try:
        final = await wait_for_training(credentials, model.id, timeout_seconds, True, poll_policy)
    finally:
        durations["wait"] = clock() - started
    await publish_summary(final, key=artifact_key("scenario-model", name), parameters=params.to_wire(), cost=cost)
    logger.info("model %s is %s", final.id, final.status)
    return result(final, job_id=job_id, cost=cost, score=score)


def _check_common(
    training_type: str, parameters: TrainingParameters | dict[str, Any] | None, timeout_seconds: float, concurrency: int
) -> tuple[TrainingType, TrainingParameters]:
    ttype = get_training_type(training_type)
    params = validate_parameters(ttype, parameters)
    if timeout_seconds <= 0:
        raise ConfigurationError(f"timeout_seconds must be positive, got {timeout_seconds}")
    if concurrency < 1:
        raise ConfigurationError(f"upload_concurrency must be at least 1, got {concurrency}")
    return ttype, params


@_secret_safe_flow(name="train-lora", flow_run_name="train-lora-{name}", on_cancellation=[_cancel_remote_training])
async def train_lora(
    name: str,
    training_type: str,
    images: list[ImageSource],
    credentials: ScenarioCredentials | str | None = None,
    parameters: TrainingParameters | dict[str, Any] | None = None,
    wait: bool = True,
    timeout_seconds: float = 4 * 3600,
    idempotency_key: str | None = None,
    force: bool = False,
    min_dataset_score: float | None = None,
    upload_concurrency: int = 4,
    aws_credentials: Any = None,
    poll_policy: PollPolicy = DEFAULT_POLICY,
) -> TrainingResult:
    """Train a standard LoRA: create the model, upload the images, train, wait.

    Everything is checked before the first request: the type, the parameters, the
    number of images, and every image (readable PNG/JPEG/WebP, extension matching
    the content, not empty or oversized, no exact duplicates).

    Args:
        name: the model name (also the flow run name, ``train-lora-{name}``).
        training_type: a standard LoRA type, e.g. ``flux.2-dev-lora``.
        images: local paths, bytes, ``s3://bucket/key`` URIs or existing ``asset_…`` ids.
        credentials: a ``ScenarioCredentials`` block, a block name, or None for the
            ``SCENARIO_*`` environment variables.
        parameters: training parameters (wire or snake_case names).
        wait: wait for the training to end (else return once it started).
        timeout_seconds: how long to wait; on timeout the remote training is cancelled.
        idempotency_key: the run's key; derived from name, type, image hashes and
            parameters when not given.
        force: train again even if an identical dataset already trained.
        min_dataset_score: refuse to train below this training-dataset score.
        upload_concurrency: uploads in flight at once.
        aws_credentials: a prefect-aws ``AwsCredentials`` block for ``s3://`` images.
        poll_policy: the wait loop's poll delay bounds.

    Returns:
        The :class:`TrainingResult`.

    Raises:
        InvalidInputError: bad input, before any request.
        TrainingFailed: the training failed (with the server's reason).
        TrainingTimeout: it did not end in time (it was cancelled).
        DatasetRejected: the dataset score was below ``min_dataset_score``.

    Example:
        ```python
        from prefect_scenario import ScenarioCredentials, train_lora

        result = train_lora(
            name="hero-character",
            training_type="flux.2-dev-lora",
            images=["images/hero-01.png", "images/hero-02.png", "s3://studio/curated/hero/03.png"],
            credentials=ScenarioCredentials.load("BLOCK_NAME"),
        )
        print(result.model_id, result.status)
        ```
    """
    return await _train_dataset(
        name=name,
        training_type=training_type,
        images=images,
        credentials=credentials,
        parameters=parameters,
        wait=wait,
        timeout_seconds=timeout_seconds,
        idempotency_key=idempotency_key,
        force=force,
        min_dataset_score=min_dataset_score,
        upload_concurrency=upload_concurrency,
        aws_credentials=aws_credentials,
        poll_policy=poll_policy,
    )


async def _train_dataset(
    *,
    name: str,
    training_type: str,
    credentials: ScenarioCredentials | str | None,
    images: list[ImageSource] | None = None,
    pairs: list[PairSource | dict[str, Any]] | None = None,
    parameters: TrainingParameters | dict[str, Any] | None = None,
    wait: bool = True,
    timeout_seconds: float = 4 * 3600,
    idempotency_key: str | None = None,
    force: bool = False,
    min_dataset_score: float | None = None,
    upload_concurrency: int = 4,
    aws_credentials: Any = None,
    poll_policy: PollPolicy = DEFAULT_POLICY,
) -> TrainingResult:
    """The body of both training flows (images or pairs), callable inside any flow run (the fleet's).

    Everything is checked before the first request; then :func:`_run` does the API steps.
    """
    durations: dict[str, float] = {}
    started = time.monotonic()
    ttype, params = _check_common(training_type, parameters, timeout_seconds, upload_concurrency)
    if ttype.edit and pairs is None:
        raise _wrong_kind(ttype, "train_edit_lora with before/after pairs")
    if not ttype.edit and images is None:
        raise _wrong_kind(ttype, "train_lora with images")
    for warning in check_dataset_size(ttype, images=len(images or []), pairs=len(pairs or [])):
        get_run_logger().warning(warning)
    with tempfile.TemporaryDirectory(prefix="prefect-scenario-") as workdir:
        aws = await resolve_aws_credentials(aws_credentials) if aws_credentials is not None else None
        options: dict[str, Any] = {"aws_credentials": aws, "workdir": Path(workdir), "concurrency": upload_concurrency}
        prepared_images: list[PreparedImage] | None = None
        prepared_pairs: list[PreparedPair] | None = None
        items: list[Any]
        if pairs is not None:
            prepared_pairs = await prepare_pairs(pairs, **options)
            items = [[_image_identity(p.before), _image_identity(p.after), p.instruction] for p in prepared_pairs]
        else:
            prepared_images = await prepare_images(images or [], **options)
            items = sorted(_image_identity(i) for i in prepared_images)
        durations["prepare"] = time.monotonic() - started
        key = idempotency_key or derive_idempotency_key(
            name=name, training_type=ttype.id, items=items, parameters=params
        )
        return await _run(
            credentials_arg=credentials,
            name=name,
            ttype=ttype,
            params=params,
            images=prepared_images,
            pairs=prepared_pairs,
            key=key,
            wait=wait,
            timeout_seconds=timeout_seconds,
            force=force,
            min_dataset_score=min_dataset_score,
            upload_concurrency=upload_concurrency,
            poll_policy=poll_policy,
            durations=durations,
        )


def _wrong_kind(ttype: TrainingType, use: str) -> InvalidTrainingTypeError:
    kind = "an edit" if ttype.edit else "a standard"
    return InvalidTrainingTypeError(f"{ttype.id!r} is {kind} training type: use {use}")


@_secret_safe_flow(
    name="train-edit-lora", flow_run_name="train-edit-lora-{name}", on_cancellation=[_cancel_remote_training]
)
async def train_edit_lora(
    name: str,
    training_type: str,
    pairs: list[PairSource | dict[str, Any]],
    credentials: ScenarioCredentials | str | None = None,
    parameters: TrainingParameters | dict[str, Any] | None = None,
    wait: bool = True,
    timeout_seconds: float = 4 * 3600,
    idempotency_key: str | None = None,
    force: bool = False,
    min_dataset_score: float | None = None,
    upload_concurrency: int = 4,
    aws_credentials: Any = None,
    poll_policy: PollPolicy = DEFAULT_POLICY,
) -> TrainingResult:
    """Train an edit LoRA from before/after pairs, each with an instruction.

    Args:
        name: the model name (flow run ``train-edit-lora-{name}``).
        training_type: an edit type, e.g. ``qwen-image-edit-2511-lora``.
        pairs: ``(before, after, instruction)`` triples or mappings with those keys;
            images as for :func:`train_lora`. At least 2.
        credentials: as for :func:`train_lora`.
        parameters: training parameters; ``sampleSourceImages`` must match ``samplePrompts``.
        wait: wait for the training to end.
        timeout_seconds: how long to wait; on timeout the remote training is cancelled.
        idempotency_key: the run's key (derived from the pairs when not given).
        force: train again even if identical pairs already trained.
        min_dataset_score: refuse to train below this training-dataset score.
        upload_concurrency: uploads in flight at once.
        aws_credentials: a prefect-aws ``AwsCredentials`` block for ``s3://`` images.
        poll_policy: the wait loop's poll delay bounds.

    Returns:
        The :class:`TrainingResult`.

    Raises:
        InvalidInputError: bad input, before any request.
        TrainingFailed: the training failed.
        TrainingTimeout: it did not end in time (it was cancelled).

    Example:
        ```python
        from prefect_scenario import ScenarioCredentials, train_edit_lora

        result = train_edit_lora(
            name="snowy-backgrounds",
            training_type="qwen-image-edit-2511-lora",
            pairs=[
                ("before/01.png", "after/01.png", "make the background a snowy forest"),
                ("before/02.png", "after/02.png", "make the background a snowy forest"),
            ],
            credentials=ScenarioCredentials.load("BLOCK_NAME"),
        )
        ```
    """
    return await _train_dataset(
        name=name,
        training_type=training_type,
        pairs=pairs,
        credentials=credentials,
        parameters=parameters,
        wait=wait,
        timeout_seconds=timeout_seconds,
        idempotency_key=idempotency_key,
        force=force,
        min_dataset_score=min_dataset_score,
        upload_concurrency=upload_concurrency,
        aws_credentials=aws_credentials,
        poll_policy=poll_policy,
    )


@_secret_safe_flow(
    name="train-lora-fleet", flow_run_name="train-lora-fleet-{name}", on_cancellation=[_cancel_remote_training]
)
async def train_lora_fleet(
    jobs: list[dict[str, Any]],
    credentials: ScenarioCredentials | str | None = None,
    name: str = "fleet",
    timeout_seconds: float = 4 * 3600,
    upload_concurrency: int = 4,
    aws_credentials: Any = None,
    poll_policy: PollPolicy = DEFAULT_POLICY,
    raise_on_failure: bool = True,
) -> list[TrainingResult]:
    """Train many standard LoRAs at once and wait for all of them with one bulk poller.

    Every job is checked before the first request (type, parameters, dataset size);
    then each runs as a ``train_lora`` subflow up to the trigger, and a single
    ``wait-for-trainings`` task polls ``POST /models/get-bulk`` for all of them:
    one request per polling cycle, not one per model.

    Args:
        jobs: ``train_lora`` arguments per model: ``name``, ``training_type``,
            ``images`` and optionally ``parameters``, ``idempotency_key``, ``force``,
            ``min_dataset_score``.
        credentials: as for :func:`train_lora`.
        name: the fleet's name (flow run ``train-lora-fleet-{name}``).
        timeout_seconds: how long to wait for the whole fleet (then cancel the rest).
        upload_concurrency: uploads in flight per model.
        aws_credentials: a prefect-aws ``AwsCredentials`` block for ``s3://`` images.
        poll_policy: the wait loop's poll delay bounds.
        raise_on_failure: raise ``TrainingFailed`` once all ended if any failed.

    Returns:
        One :class:`TrainingResult` per job, in order.

    Example:
        ```python
        from prefect_scenario import ScenarioCredentials
        from prefect_scenario.training.flows import train_lora_fleet

        train_lora_fleet(
            jobs=[
                {"name": "hero", "training_type": "flux.2-dev-lora", "images": ["hero/01.png", "hero/02.png"]},
                {"name": "villain", "training_type": "zimage-lora", "images": ["villain/01.png"]},
            ],
            credentials=ScenarioCredentials.load("BLOCK_NAME"),
        )
        ```
    """
    allowed = {"name", "training_type", "images", "parameters", "idempotency_key", "force", "min_dataset_score"}
    for number, job in enumerate(jobs, start=1):
        unknown = sorted(set(job) - allowed)
        if unknown or not {"name", "training_type", "images"} <= set(job):
            raise ConfigurationError(
                f"job #{number} needs name, training_type and images (and takes only {sorted(allowed)}); "
                f"unknown: {unknown}"
            )
        ttype, _ = _check_common(job["training_type"], job.get("parameters"), timeout_seconds, upload_concurrency)
        if ttype.edit:
            raise _wrong_kind(ttype, "train_edit_lora with before/after pairs")
        check_dataset_size(ttype, images=len(job["images"]))
    resolved = await resolve_credentials(credentials)
    # Every job's steps run as tasks of this one flow run: concurrent subflows cost Prefect
    # seconds each to start (measured by benchmarks/bench_fleet.py), tasks do not.
    started = await asyncio.gather(
        *(
            _train_dataset(
                **job,
                credentials=resolved,
                wait=False,
                upload_concurrency=upload_concurrency,
                aws_credentials=aws_credentials,
            )
            for job in jobs
        )
    )
    pending = [r.model_id for r in started if r.status != "trained"]
    final = await wait_for_trainings(resolved, pending, timeout_seconds, True, poll_policy, len(pending))
    results = []
    for result in started:
        model = final.get(result.model_id)
        if model is None:
            results.append(result)
            continue
        epochs = [EpochResult(epoch=e.epoch, sample_urls=[a.url for a in e.assets if a.url]) for e in model.epochs]
        results.append(
            result.model_copy(
                update={
                    "status": model.status,
                    "epochs": epochs,
                    "sample_image_urls": next((e.sample_urls for e in reversed(epochs) if e.sample_urls), []),
                }
            )
        )
    failed = [r for r in results if r.status != "trained"]
    if failed and raise_on_failure:
        raise TrainingFailed(
            f"{len(failed)} of {len(results)} trainings did not end trained: "
            + ", ".join(f"{r.name} ({r.model_id}: {r.status})" for r in failed),
            model_id=failed[0].model_id,
        )
    return results
