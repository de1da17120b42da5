"""Prefect tasks, one per step of a Scenario training: compose your own flow with them.

Each task stands alone (credentials, ids and values in; a pydantic model out), runs
from sync and async code, and is safe to run again: it first looks for what an
earlier attempt did (:mod:`prefect_scenario.training.reconcile`), so a retry never
creates a second model, uploads an image twice or starts (and pays for) a second
training. The tasks have no Prefect retries of their own: the client is the one
retry layer (:mod:`prefect_scenario.api.retry_policy`), and each of its retries is
logged in the run's logs, so it shows in the UI.

Example:
    Composed by hand in a sync flow (``credentials`` and ``sample_images`` come from the
    doctest set-up: an emulator and generated PNGs):

    >>> from prefect import flow
    >>> from prefect_scenario import wait_for_scenario_training
    >>> @flow
    ... def my_training(images: list[bytes]) -> str:
    ...     model = create_scenario_model(credentials, "hero", "flux.2-dev-lora")
    ...     add_scenario_training_images(credentials, model.id, images)
    ...     trigger_scenario_training(credentials, model.id)
    ...     return wait_for_scenario_training(credentials, model.id).status
    >>> my_training(sample_images(5))
    'trained'
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence

from prefect.context import FlowRunContext

from prefect_scenario._dispatch import TASK_OPTIONS, scenario_task
from prefect_scenario._logging import run_logger
from prefect_scenario.api.client import ScenarioClient
from prefect_scenario.api.models import DatasetScore, Model, TrainResult
from prefect_scenario.catalog import TrainingParameters, get_training_type
from prefect_scenario.credentials import ScenarioCredentials, resolve_credentials
from prefect_scenario.dataset.images import (
    ImageSource,
    PreparedImage,
    PreparedPair,
    prepare_images,
)
from prefect_scenario.exceptions import (
    AlreadyTrainingError,
    APIError,
    DatasetRejected,
    PlanLimitError,
    TrainingTimeout,
)
from prefect_scenario.reporting import (
    EVENT_CREATED,
    EVENT_STARTED,
    ProgressReporter,
    artifact_key,
    emit_training_event,
    publish_dataset_score,
)
from prefect_scenario.tags import idempotency_tag
from prefect_scenario.training.cancellation import remember_run
from prefect_scenario.training.reconcile import find_run_model, image_identity
from prefect_scenario.training.uploads import upload_images
from prefect_scenario.waiting.polling import DEFAULT_POLICY, PollPolicy
from prefect_scenario.waiting.slots import note_started, wait_for_a_slot

__all__ = [
    "add_scenario_training_images",
    "cancel_scenario_training",
    "check_scenario_dataset_score",
    "create_scenario_model",
    "get_scenario_model",
    "set_scenario_training_pairs",
    "trigger_scenario_training",
]


def default_run_key(name: str, training_type: str) -> str:
    """The key of a standalone create: the model name and type within this flow run.

    A retry or a resumed run (same flow run id) finds the model it made; another flow run
    creates its own. Pass ``idempotency_key`` to share one model across flow runs.

    Example:
        >>> len(default_run_key("hero", "flux.2-dev-lora"))
        24
    """
    context = FlowRunContext.get()
    run_id = str(context.flow_run.id) if context and context.flow_run else ""
    return hashlib.sha256(f"{run_id}\0{name}\0{training_type}".encode()).hexdigest()[:24]


# -- create ------------------------------------------------------------------------


@scenario_task(name="scenario-create-model", task_run_name="scenario-create-model-{name}", **TASK_OPTIONS)
async def create_scenario_model(
    credentials: ScenarioCredentials | None, name: str, training_type: str, idempotency_key: str | None = None
) -> Model:
    """Find the model of this run, or create it, tagged ``psc-<idempotency key>``.

    Args:
        credentials: the Scenario credentials block (None: the ``SCENARIO_*`` environment).
        name: the model name.
        training_type: a LoRA training type (see :mod:`prefect_scenario.catalog`).
        idempotency_key: the run's key; by default :func:`default_run_key`.

    Returns:
        The model (``status`` tells a new one from one an earlier attempt made).
    """
    get_training_type(training_type)  # an unknown type fails here, before any request
    resolved = await resolve_credentials(credentials)
    key = idempotency_key or default_run_key(name, training_type)
    tag = idempotency_tag(key)
    await remember_run(resolved, credentials, keys=[key])
    async with resolved.get_client() as client:
        model = await find_run_model(client, key=key, name=name, training_type=training_type)
        if model is None:
            model = await client.create_model(
                name=name,
                training_type=training_type,
                reconcile=lambda: find_run_model(
                    client, key=key, name=name, training_type=training_type, prefect_first=False
                ),
            )
            emit_training_event(EVENT_CREATED, model, {"idempotencyKey": key})
            run_logger().info("created model %s (%s) for run key %s", model.id, training_type, key)
        else:
            run_logger().info("continuing model %s (status %s) for run key %s", model.id, model.status, key)
        if tag not in model.tags:
            await client.update_tags(model.id, add=[tag])
            model = model.model_copy(update={"tags": [*model.tags, tag]})
    await remember_run(resolved, credentials, model_ids=[model.id])
    return model


# -- images --------------------------------------------------------------------------


@scenario_task(
    name="scenario-add-training-images", task_run_name="scenario-add-training-images-{model_id}", **TASK_OPTIONS
)
async def add_scenario_training_images(
    credentials: ScenarioCredentials | None,
    model_id: str,
    images: Sequence[ImageSource | PreparedImage],
    concurrency: int = 4,
) -> list[str]:
    """Add the images to the model, each exactly once, ``concurrency`` at a time.

    Images already on the model (recognised by the content hash in their name) are
    skipped; existing asset ids are added in batches of up to 10. Sources that are not
    checked yet (paths, bytes, ``s3://`` URIs, asset ids) are checked first.

    Returns:
        The training image ids, in the order of ``images``.
    """
    resolved = await resolve_credentials(credentials)
    prepared = [i for i in images if isinstance(i, PreparedImage)]
    if len(prepared) != len(images):
        prepared = await prepare_images([i for i in images if not isinstance(i, PreparedImage)])
    started = time.monotonic()
    found = await upload_images(resolved, model_id, prepared, concurrency)
    run_logger().info("%d training images on %s (%.1fs)", len(prepared), model_id, time.monotonic() - started)
    return [found[image_identity(i)] for i in prepared]


@scenario_task(
    name="scenario-set-training-pairs", task_run_name="scenario-set-training-pairs-{model_id}", **TASK_OPTIONS
)
async def set_scenario_training_pairs(
    credentials: ScenarioCredentials | None, model_id: str, pairs: list[PreparedPair], concurrency: int = 4
) -> int:
    """Upload the before/after images as training images, then set the model's pairs.

    Setting pairs replaces them all, so running it again is harmless.

    Returns:
        The number of pairs on the model.
    """
    resolved = await resolve_credentials(credentials)
    images: dict[str, PreparedImage] = {}
    for pair in pairs:
        for image in (pair.before, pair.after):
            images.setdefault(image_identity(image), image)
    found = await upload_images(resolved, model_id, list(images.values()), concurrency)
    body = [
        {
            "sourceId": found[image_identity(p.before)],
            "targetId": found[image_identity(p.after)],
            "instruction": p.instruction,
        }
        for p in pairs
    ]
    async with resolved.get_client() as client:
        return (await client.set_training_pairs(model_id, body)).count


# -- quality gate ----------------------------------------------------------------------


@scenario_task(
    name="scenario-check-dataset-score", task_run_name="scenario-check-dataset-score-{model_id}", **TASK_OPTIONS
)
async def check_scenario_dataset_score(
    credentials: ScenarioCredentials | None, model_id: str, min_score: float | None = None
) -> DatasetScore | None:
    """Read the training-dataset score and show its warnings; refuse to train below ``min_score``.

    The score is advisory unless ``min_score`` is set: when it cannot be read (the
    endpoint answers 404 for some accounts and types), that is a warning and None.

    Raises:
        DatasetRejected: the score is below ``min_score``, or unavailable while a
            minimum was asked for (nothing was spent).
    """
    resolved = await resolve_credentials(credentials)
    logger = run_logger()
    try:
        async with resolved.get_client() as client:
            score = await client.get_dataset_score(model_id)
    except APIError as exc:
        if min_score is not None:
            raise DatasetRejected(
                f"the dataset score is unavailable ({exc}) and min_dataset_score={min_score} was asked for",
                model_id=model_id,
                min_score=min_score,
            ) from None
        logger.warning("dataset score unavailable (%s); training without it (it is advisory)", exc)
        return None
    await publish_dataset_score(score, key=artifact_key("scenario-dataset-score", "", model_id=model_id))
    warnings = len(score.assets_warnings) + len(score.asset_couples_warnings)
    logger.info("dataset score %.2f (%s), %d warning(s)", score.score, score.status, warnings)
    if min_score is not None and score.score < min_score:
        raise DatasetRejected(
            f"dataset score {score.score:.2f} is below the required {min_score:.2f}; see the dataset-score artifact",
            model_id=model_id,
            score=score.score,
            min_score=min_score,
        )
    return score


# -- train ---------------------------------------------------------------------------------


# "parallel-training" (also seen as "parallel-custom-jobs"): Scenario's scenario-model-training skill.
SLOT_LIMITS = frozenset({"parallel-training", "parallel-custom-jobs"})


async def _train_when_a_slot_frees(
    client: ScenarioClient,
    model_id: str,
    parameters: TrainingParameters | None,
    reconcile: Callable[[], Awaitable[TrainResult | None]],
    slot_timeout_seconds: float,
    poll_policy: PollPolicy,
) -> TrainResult:
    """Trigger; while the plan's concurrent-training ceiling refuses it, look again politely until the deadline."""
    deadline = time.monotonic() + slot_timeout_seconds
    reporter = ProgressReporter.for_training(model_id)
    while True:
        try:
            answer = await client.train(model_id, parameters, reconcile=reconcile)
            note_started(model_id)  # a fleet's slot watch then sees it end
            return answer
        except PlanLimitError as exc:
            if exc.action_name not in SLOT_LIMITS:
                raise
            limit = exc.action_limit
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TrainingTimeout(
                    f"no training slot freed within {slot_timeout_seconds:g}s: the plan allows {limit} concurrent "
                    "training(s); raise the plan's limit or the flow's timeout_seconds",
                    model_id=model_id,
                    waited_seconds=slot_timeout_seconds,
                ) from None
            message = f"waiting for a training slot: {limit} of {limit} in use"
            run_logger().info(
                "%s (plan limit %s); checking again in %.0fs, or once a training of this fleet ends",
                message,
                exc.action_name,
                min(poll_policy.slot_check, remaining),
            )
            if reporter.model is None:  # its name keys the training's one card (a read, on this path only)
                reporter.model = await client.get_model(model_id)
            await reporter.note(message)
            # At once when the fleet sees one of its own trainings end; else on the timer (others' slots).
            await wait_for_a_slot(min(poll_policy.slot_check, remaining))


@scenario_task(name="scenario-trigger-training", task_run_name="scenario-trigger-training-{model_id}", **TASK_OPTIONS)
async def trigger_scenario_training(
    credentials: ScenarioCredentials | None,
    model_id: str,
    parameters: TrainingParameters | None = None,
    slot_timeout_seconds: float = 0.0,
    poll_policy: PollPolicy = DEFAULT_POLICY,
) -> TrainResult:
    """Start the training, unless it already started (paid: never twice).

    A model already ``training`` is not triggered again; a trigger whose answer was
    lost is recognised by the model's new job id. A trigger refused because the plan's
    concurrent trainings are all in use (``parallel-training``) waits for a slot, looking
    again every ``poll_policy.slot_check`` seconds, for up to ``slot_timeout_seconds``.

    Returns:
        The trigger's answer (for a training already under way: the model, no job, no cost).

    Raises:
        TrainingTimeout: no slot freed in ``slot_timeout_seconds``.
        PlanLimitError: another plan ceiling refused the training.
    """
    resolved = await resolve_credentials(credentials)
    logger = run_logger()
    async with resolved.get_client() as client:
        before = await client.get_model(model_id)
        if before.status == "training":
            logger.info("training of %s already started (job %s): not triggering again", model_id, before.job_id)
            return TrainResult(model=before)

        async def started() -> TrainResult | None:
            now = await client.get_model(model_id)
            changed = now.status == "training" or (now.job_id and now.job_id != before.job_id)
            return TrainResult(model=now) if changed else None

        try:
            answer = await _train_when_a_slot_frees(
                client, model_id, parameters, started, slot_timeout_seconds, poll_policy
            )
        except AlreadyTrainingError:
            # A concurrent or lost trigger got there first: the training we wanted is running.
            return TrainResult(model=await client.get_model(model_id))
    if answer.job is not None and answer.model is not None:
        payload = {"jobId": answer.job_id, "creativeUnitsCost": answer.creative_units_cost}
        emit_training_event(EVENT_STARTED, answer.model, payload)
        logger.info("training started: job %s, %s creative units", answer.job_id, answer.creative_units_cost)
    return answer


@scenario_task(name="scenario-get-model", task_run_name="scenario-get-model-{model_id}", **TASK_OPTIONS)
async def get_scenario_model(credentials: ScenarioCredentials | None, model_id: str) -> Model:
    """The model as the API has it now."""
    resolved = await resolve_credentials(credentials)
    async with resolved.get_client() as client:
        return await client.get_model(model_id)


@scenario_task(name="scenario-cancel-training", task_run_name="scenario-cancel-training-{model_id}", **TASK_OPTIONS)
async def cancel_scenario_training(credentials: ScenarioCredentials | None, model_id: str) -> Model:
    """Cancel the model's training (cancelling twice changes nothing); returns the model as it is after."""
    resolved = await resolve_credentials(credentials)
    async with resolved.get_client() as client:
        model = await client.get_model(model_id)
        if model.status != "training":
            return model
        await client.cancel_training(model_id)
        # "A cancel acknowledgement does not prove the job stopped: read it again" (blender-plugin).
        return await client.get_model(model_id)
