"""Prefect tasks: one per step of a Scenario training, each safe to retry.

Retries are Prefect task retries (visible in the UI), only for transient
failures (:func:`prefect_scenario.api.retry_policy.is_transient`), with exponential
backoff and jitter, and a rate-limited attempt first waits the ``Retry-After``
the API asked for. A step that creates something (a model, an image, a
training) first looks for what an earlier attempt may already have done, so a
retry after a lost answer never creates it twice:

- :func:`create_model` finds the model by its idempotency tag, or adopts the
  untagged model an interrupted attempt left behind, before creating one;
- :func:`upload_training_images` skips images whose content hash is already on
  the model and removes any duplicate a lost answer produced;
- :func:`trigger_training` does not trigger a model that is already training
  or whose training job changed since the flow looked.

A request that timed out is different from one whose connection dropped: the
server may still be working on it, and its work can land *after* the retry has
looked for it. So when one of those three calls times out, the task first waits
as long again as the client waited (:func:`_settle_after_timeout`), and only then
lets the retry look.

Example:
    >>> from prefect import flow
    >>> from prefect_scenario import ScenarioCredentials
    >>> from prefect_scenario.training.tasks import get_model
    >>> @flow
    ... async def status(model_id: str) -> str:
    ...     model = await get_model(ScenarioCredentials.load("BLOCK_NAME"), model_id)
    ...     return model.status
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.runtime import task_run as current_task_run
from prefect.tasks import exponential_backoff

from prefect_scenario.api.client import MAX_BATCH_ASSET_IDS, ScenarioClient
from prefect_scenario.api.models import DatasetScore, Model, TrainingImage, TrainResult
from prefect_scenario.api.retry_policy import MAX_RETRY_AFTER, is_transient
from prefect_scenario.catalog import TrainingParameters
from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.exceptions import (
    APITimeoutError,
    ConflictError,
    DatasetRejected,
    InvalidImageError,
    RateLimitError,
    TrainingCanceled,
    TrainingFailed,
    TrainingTimeout,
)
from prefect_scenario.training.images import PreparedImage, PreparedPair, hash_from_wire_name
from prefect_scenario.training.monitoring import (
    EVENT_CANCELED,
    EVENT_COMPLETED,
    EVENT_FAILED,
    FleetReporter,
    ProgressReporter,
    artifact_key,
    emit_training_event,
    publish_dataset_score,
)
from prefect_scenario.training.polling import DEFAULT_POLICY, PollPolicy
from prefect_scenario.training.reconcile import IDEMPOTENCY_TAG_PREFIX, idempotency_tag
from prefect_scenario.training.waiting import wait_until_all_terminal, wait_until_terminal

__all__ = [
    "IDEMPOTENCY_TAG_PREFIX",
    "cancel_training",
    "check_dataset_score",
    "create_model",
    "get_model",
    "retry_if_transient",
    "set_training_pairs",
    "trigger_training",
    "upload_training_images",
    "wait_for_training",
    "wait_for_trainings",
]

T = TypeVar("T")

# Task retry delays are fixed when a task is defined; tests shrink them with this
# variable instead of sleeping through real backoffs.
_DELAY_SCALE = float(os.environ.get("PREFECT_SCENARIO_RETRY_DELAY_SCALE", "1"))
_RETRIES = 5
# Upper bound of the wait after a timed-out create, add-image or trigger (see _settle_after_timeout).
MAX_SETTLE_SECONDS = 120.0


def retry_if_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """``retry_condition_fn``: retry 429, 5xx, timeouts and dropped connections only."""
    # `_sync=True`: the hook is sync, but `State.result` dispatches to its async twin in a loop.
    outcome = state.result(raise_on_failure=False, _sync=True)  # type: ignore[call-overload]
    return isinstance(outcome, BaseException) and is_transient(outcome)


RETRY_OPTIONS: dict[str, Any] = {
    "retries": _RETRIES,
    "retry_delay_seconds": exponential_backoff(backoff_factor=1.0 * _DELAY_SCALE)(_RETRIES),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,
    # Idempotency is ours (tags, content hashes), not a cache's: every run talks to the API.
    "cache_policy": NO_CACHE,
    "persist_result": False,
}


async def _honour_retry_after(call: Callable[[], Awaitable[T]]) -> T:
    """Run ``call``; on a 429, wait what the API asked for before the task's retry."""
    try:
        return await call()
    except RateLimitError as exc:
        if exc.retry_after and 0 < exc.retry_after <= MAX_RETRY_AFTER:
            await asyncio.sleep(exc.retry_after)
        raise


async def _settle_after_timeout(call: Callable[[], Awaitable[T]], settle_seconds: float) -> T:
    """Run a call that is sent once (create, add image, trigger); after a timeout, wait before failing.

    Found by the reliability suite's late-landing test: a create, add-image or trigger
    that the server was still working on when the client gave up landed after the
    task's retry had looked for it, leaving a second model, a duplicate image or a
    second (paid) training. Waiting ``settle_seconds`` (the client timeout: the server
    gets as long again) before the retry reconciles lets that work land first, so the
    retry finds it instead of repeating it. A dropped connection needs no wait: the
    server answered (or failed) already.
    """
    try:
        return await call()
    except APITimeoutError:
        await asyncio.sleep(settle_seconds)
        raise


def _settle_seconds(credentials: ScenarioCredentials) -> float:
    return min(float(credentials.timeout), MAX_SETTLE_SECONDS)


# -- create ------------------------------------------------------------------------


@task(name="create-model", task_run_name="create-model-{name}", **RETRY_OPTIONS)
async def create_model(
    credentials: ScenarioCredentials, name: str, training_type: str, idempotency_key: str
) -> tuple[Model, bool]:
    """Find the model of this run, or create it; returns ``(model, created)``.

    Looks first for a model tagged with the idempotency key, then for the model an
    interrupted attempt created but did not tag (same name and type, status ``new``,
    no images, no idempotency tag), and only then creates one.

    Args:
        credentials: the Scenario credentials block.
        name: the model name.
        training_type: a LoRA training type (see :mod:`prefect_scenario.catalog`).
        idempotency_key: the run's key, recorded as the tag ``psc-<key>``.

    Returns:
        The model and whether this call created it.
    """
    tag = idempotency_tag(idempotency_key)
    async with credentials.get_client() as client:

        async def run() -> tuple[Model, bool]:
            found = await find_run_model(client, tag=tag, name=name, training_type=training_type)
            if found is not None:
                if tag not in found.tags:
                    await client.update_tags(found.id, add=[tag])
                    found = found.model_copy(update={"tags": [*found.tags, tag]})
                return found, False
            model = await _settle_after_timeout(
                lambda: client.create_model(name=name, training_type=training_type), _settle_seconds(credentials)
            )
            await client.update_tags(model.id, add=[tag])
            return model.model_copy(update={"tags": [*model.tags, tag]}), True

        return await _honour_retry_after(run)


async def find_run_model(client: ScenarioClient, *, tag: str, name: str, training_type: str) -> Model | None:
    """The model tagged ``tag``, else an untagged orphan of an interrupted create."""
    tagged: list[Model] = []
    orphans: list[Model] = []
    # The API filters by tag only for public models (reference §3): read the project's
    # models in the largest pages it allows and match here.
    async for model in client.list_models(page_size=500):
        if tag in model.tags:
            tagged.append(model)
        elif (
            model.name == name
            and model.type == training_type
            and model.status == "new"
            and model.training_images_number == 0
            and not any(t.startswith(IDEMPOTENCY_TAG_PREFIX) for t in model.tags)
        ):
            orphans.append(model)
    # Oldest first: if two ever exist, keep using the one the first attempt made.
    for group in (tagged, orphans):
        if group:
            return sorted(group, key=lambda m: m.created_at or "")[0]
    return None


# -- images --------------------------------------------------------------------------


async def _current_images(client: ScenarioClient, model_id: str) -> list[TrainingImage]:
    models = await client.get_models_bulk([model_id], all_training_images=True)
    return models[0].training_images if models else (await client.get_model(model_id)).training_images


async def _upload_missing(
    client: ScenarioClient,
    model_id: str,
    images: Sequence[PreparedImage],
    concurrency: int,
    settle_seconds: float,
    known_empty: bool = False,
) -> dict[str, str]:
    """Upload what is not on the model yet; return content/asset identity → training image id."""
    existing = [] if known_empty else await _current_images(client, model_id)
    on_model: dict[str, str] = {}
    for image in existing:
        identity = hash_from_wire_name(image.name) or image.id
        on_model.setdefault(identity, image.id)
    missing_files = [i for i in images if i.sha256 and i.sha256[:16] not in on_model]
    missing_assets = [i.asset_id for i in images if i.asset_id and i.asset_id not in on_model]
    limit = asyncio.Semaphore(max(1, concurrency))

    async def add(image: PreparedImage) -> None:
        async with limit:
            # Bytes given by the caller, or the staged file, streamed by the client.
            data = image.data if image.data is not None else image.path
            if data is None:
                raise InvalidImageError(f"{image.source} has no bytes to upload", source=image.source)
            send = functools.partial(
                client.add_training_image,
                model_id,
                name=image.wire_name,
                data=data,
                mime_type=image.mime_type or "image/png",
            )
            del data
            added = await _settle_after_timeout(send, settle_seconds)
            del send
            assert image.sha256 is not None
            on_model[image.sha256[:16]] = added.id

    async def add_batch(asset_ids: list[str]) -> None:
        async with limit:
            added = await _settle_after_timeout(
                lambda: client.add_training_image_assets(model_id, asset_ids), settle_seconds
            )
            for asset_id, image in zip(asset_ids, added, strict=False):
                on_model[asset_id] = image.id

    batches = [missing_assets[i : i + MAX_BATCH_ASSET_IDS] for i in range(0, len(missing_assets), MAX_BATCH_ASSET_IDS)]
    results = await asyncio.gather(
        *(add(i) for i in missing_files), *(add_batch(b) for b in batches), return_exceptions=True
    )
    # Let every upload in flight settle before failing, so a retry re-reads a stable model.
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    return on_model


async def _remove_duplicates(client: ScenarioClient, model_id: str) -> int:
    """Delete the second copy of any image (a lost answer to an add that did happen)."""
    seen: set[str] = set()
    removed = 0
    for image in await _current_images(client, model_id):
        identity = hash_from_wire_name(image.name)
        if identity is None:
            continue
        if identity in seen:
            await client.delete_training_image(model_id, image.id)
            removed += 1
        seen.add(identity)
    return removed


@task(name="upload-training-images", task_run_name="upload-training-images-{model_id}", **RETRY_OPTIONS)
async def upload_training_images(
    credentials: ScenarioCredentials,
    model_id: str,
    images: list[PreparedImage],
    concurrency: int = 4,
    fresh: bool = False,
) -> list[str]:
    """Add the images to the model, each exactly once, ``concurrency`` at a time.

    Images already on the model (recognised by the content hash in their name) are
    skipped; existing asset ids are added in batches of up to 10.

    Args:
        credentials: the Scenario credentials block.
        model_id: the model.
        images: the checked images.
        concurrency: uploads in flight at once.
        fresh: this run just created the model. The first attempt then skips reading
            the (empty) model before uploading and, when every upload was answered,
            the duplicate check after it: a duplicate needs a lost answer, and a lost
            answer fails the attempt, whose retry checks everything.

    Returns:
        The training image ids, in the order of ``images``.
    """
    logger = get_run_logger()
    first_attempt = fresh and current_task_run.run_count <= 1
    async with credentials.get_client() as client:
        started = time.monotonic()
        on_model = await _honour_retry_after(
            lambda: _upload_missing(
                client, model_id, images, concurrency, _settle_seconds(credentials), known_empty=first_attempt
            )
        )
        removed = 0 if first_attempt else await _remove_duplicates(client, model_id)
        if removed:
            logger.warning("removed %d duplicate training image(s) left by a lost answer", removed)
        logger.info("%d training images on %s (%.1fs)", len(images), model_id, time.monotonic() - started)
        return [on_model[i.sha256[:16] if i.sha256 else str(i.asset_id)] for i in images]


@task(name="set-training-pairs", task_run_name="set-training-pairs-{model_id}", **RETRY_OPTIONS)
async def set_training_pairs(
    credentials: ScenarioCredentials, model_id: str, pairs: list[PreparedPair], concurrency: int = 4
) -> int:
    """Upload the before/after images as training assets, then set the model's pairs.

    Setting pairs replaces them all, so a retry is harmless.

    Returns:
        The number of pairs on the model.
    """
    images: dict[str, PreparedImage] = {}
    for pair in pairs:
        for image in (pair.before, pair.after):
            images.setdefault(image.sha256 or str(image.asset_id), image)
    async with credentials.get_client() as client:
        on_model = await _honour_retry_after(
            lambda: _upload_missing(client, model_id, list(images.values()), concurrency, _settle_seconds(credentials))
        )
        await _remove_duplicates(client, model_id)

        def asset(image: PreparedImage) -> str:
            return on_model[image.sha256[:16] if image.sha256 else str(image.asset_id)]

        body = [{"sourceId": asset(p.before), "targetId": asset(p.after), "instruction": p.instruction} for p in pairs]
        result = await _honour_retry_after(lambda: client.set_training_pairs(model_id, body))
        return result.count


# -- quality gate ----------------------------------------------------------------------


@task(name="check-dataset-score", task_run_name="check-dataset-score-{model_id}", **RETRY_OPTIONS)
async def check_dataset_score(
    credentials: ScenarioCredentials, model_id: str, min_score: float | None = None
) -> DatasetScore:
    """Read the training-dataset score, show its warnings, refuse to train below ``min_score``.

    Raises:
        DatasetRejected: the score is below ``min_score`` (nothing was spent).
    """
    async with credentials.get_client() as client:
        score = await _honour_retry_after(lambda: client.get_dataset_score(model_id))
    await publish_dataset_score(score, key=artifact_key("scenario-dataset-score", model_id))
    warnings = len(score.assets_warnings) + len(score.asset_couples_warnings)
    get_run_logger().info("dataset score %.2f (%s), %d warning(s)", score.score, score.status, warnings)
    if min_score is not None and score.score < min_score:
        raise DatasetRejected(
            f"dataset score {score.score:.2f} is below the required {min_score:.2f}; see the dataset-score artifact",
            model_id=model_id,
            score=score.score,
            min_score=min_score,
        )
    return score


# -- train ---------------------------------------------------------------------------------


@task(name="trigger-training", task_run_name="trigger-training-{model_id}", **RETRY_OPTIONS)
async def trigger_training(
    credentials: ScenarioCredentials,
    model_id: str,
    parameters: TrainingParameters | None = None,
    previous_job_id: str | None = None,
) -> TrainResult:
    """Start the training, unless an earlier attempt already did (paid: never twice).

    Args:
        credentials: the Scenario credentials block.
        model_id: the model to train.
        parameters: the training parameters.
        previous_job_id: the model's ``jobId`` before this run; a different one means
            a lost answer did start our training.

    Returns:
        The train answer (for an already-started training: the model, no job, no cost).
    """
    logger = get_run_logger()
    async with credentials.get_client() as client:

        async def run() -> TrainResult:
            model = await client.get_model(model_id)
            if model.status == "training" or (model.job_id and model.job_id != previous_job_id):
                logger.info("training of %s already started (job %s): not triggering again", model_id, model.job_id)
                return TrainResult(model=model)
            try:
                return await _settle_after_timeout(
                    lambda: client.train(model_id, parameters), _settle_seconds(credentials)
                )
            except ConflictError:
                # 409: the model is training already (a concurrent or lost trigger).
                model = await client.get_model(model_id)
                if model.status == "training":
                    return TrainResult(model=model)
                raise

        return await _honour_retry_after(run)


@task(name="get-model", task_run_name="get-model-{model_id}", **RETRY_OPTIONS)
async def get_model(credentials: ScenarioCredentials, model_id: str) -> Model:
    """The model as the API has it now."""
    async with credentials.get_client() as client:
        return await _honour_retry_after(lambda: client.get_model(model_id))


@task(name="cancel-training", task_run_name="cancel-training-{model_id}", **RETRY_OPTIONS)
async def cancel_training(credentials: ScenarioCredentials, model_id: str) -> Model:
    """Cancel the model's training (cancelling twice changes nothing)."""
    async with credentials.get_client() as client:
        model = await _honour_retry_after(lambda: client.get_model(model_id))
        if model.status != "training":
            return model
        return await _honour_retry_after(lambda: client.cancel_training(model_id))


@task(
    name="wait-for-training", task_run_name="wait-for-training-{model_id}", cache_policy=NO_CACHE, persist_result=False
)
async def wait_for_training(
    credentials: ScenarioCredentials,
    model_id: str,
    timeout_seconds: float = 4 * 3600,
    cancel_on_timeout: bool = True,
    policy: PollPolicy = DEFAULT_POLICY,
) -> Model:
    """Wait for the training to end, with a progress artifact and events on the way.

    Raises:
        TrainingFailed: the training ended ``failed`` (with the server's reason).
        TrainingCanceled: it ended ``training-canceled``.
        TrainingTimeout: not finished in ``timeout_seconds``; the remote training is cancelled.
    """
    logger = get_run_logger()
    async with credentials.get_client() as client:
        reporter = ProgressReporter(key=artifact_key("scenario-training", model_id))
        try:
            model = await wait_until_terminal(
                client,
                model_id,
                timeout_seconds=timeout_seconds,
                policy=policy,
                on_update=reporter.update,
                log=logger.info,
            )
        except TrainingTimeout:
            if cancel_on_timeout:
                logger.warning("timed out: cancelling the training of %s", model_id)
                canceled = await client.cancel_training(model_id)
                emit_training_event(EVENT_CANCELED, canceled, {"reason": "timeout"})
            raise
        if model.status == "trained":
            emit_training_event(EVENT_COMPLETED, model, {"epochs": len(model.epochs)})
            return model
        if model.status == "failed":
            reason = model.failure_reason
            if reason is None and model.job_id:
                try:
                    reason = (await client.get_job(model.job_id)).error
                except Exception:
                    reason = None
            emit_training_event(EVENT_FAILED, model, {"reason": reason})
            raise TrainingFailed(
                f"training of {model_id} failed: {reason or 'no reason given'}", model_id=model_id, reason=reason
            )
        emit_training_event(EVENT_CANCELED, model)
        raise TrainingCanceled(f"training of {model_id} was canceled", model_id=model_id)


@task(name="wait-for-trainings", task_run_name="wait-for-{n}-trainings", cache_policy=NO_CACHE, persist_result=False)
async def wait_for_trainings(
    credentials: ScenarioCredentials,
    model_ids: list[str],
    timeout_seconds: float = 4 * 3600,
    cancel_on_timeout: bool = True,
    policy: PollPolicy = DEFAULT_POLICY,
    n: int = 0,
) -> dict[str, Model]:
    """Wait for many trainings with one ``POST /models/get-bulk`` per polling cycle.

    Emits the completed/failed/canceled event of each model as it ends and keeps
    one progress artifact for the whole fleet (the mean progress).

    Returns:
        Every model in its terminal state, by id (failed ones included: the caller decides).

    Raises:
        TrainingTimeout: some did not finish in ``timeout_seconds``; those are cancelled.
    """
    logger = get_run_logger()
    reporter = FleetReporter(model_ids, key=artifact_key("scenario-fleet", f"{len(model_ids)}-models"))
    async with credentials.get_client() as client:
        try:
            return await wait_until_all_terminal(
                client, model_ids, timeout_seconds=timeout_seconds, policy=policy, on_update=reporter.update,
                log=logger.info,
            )  # fmt: skip
        except TrainingTimeout:
            if cancel_on_timeout:
                for model_id in reporter.pending():
                    canceled = await client.cancel_training(model_id)
                    emit_training_event(EVENT_CANCELED, canceled, {"reason": "timeout"})
            raise
