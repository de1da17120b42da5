"""The S3 sensor and the retraining flows: new curated images retrain the right LoRA, once.

A dataset is an S3 prefix holding its images and an optional sidecar
``scenario.json``/``.yaml`` (type, name, parameters, edit pairs) or ``pairs.jsonl``
(see :mod:`prefect_scenario.dataset.layout` and :mod:`~prefect_scenario.retraining.sidecar`).
A root prefix may hold many datasets, one per sub-prefix; a change under one retrains
that one only.

Exactly once, end to end:

1. :func:`s3_curated_images_sensor` reads its state (a JSON object in the bucket),
   discovers what changed (:mod:`prefect_scenario.retraining.discovery`), and lets the pure
   :func:`prefect_scenario.retraining.decisions.decide` say which datasets are ready;
2. for each, it creates the retrain run with ``run_deployment(...,
   idempotency_key=<dataset + manifest>)`` (Prefect returns the existing run for a
   key it has seen) and/or emits ``scenario.dataset.ready`` (for a deployment trigger);
3. only then it saves the state and acknowledges the queue messages.

A crash at any point re-decides the same dataset with the same key next cycle. And
the retrain itself trains with the same key
(:func:`~prefect_scenario.retraining.decisions.retrain_idempotency_key`) as its model tag,
so even a second run of the same manifest (an event delivered twice) finds the model and
spends nothing.

Every flow runs from sync code (a plain call returns its result) and from async code
(``await`` it). Example:
    ```python
    from prefect_aws import AwsCredentials

    from prefect_scenario.retraining.flows import s3_curated_images_sensor

    decisions = s3_curated_images_sensor(
        bucket="studio-assets",
        prefix="curated/",
        aws_credentials=AwsCredentials.load("BLOCK_NAME"),
        retrain_deployment="scenario-retrain-from-s3/retrain-from-s3",
    )
    # or, in async code:
    decisions = await s3_curated_images_sensor(bucket="studio-assets", prefix="curated/")
    ```
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any, Literal

from prefect import get_run_logger
from prefect.concurrency.asyncio import concurrency
from prefect_aws import AwsCredentials

from prefect_scenario._dispatch import scenario_flow
from prefect_scenario.credentials import ScenarioCredentials, resolve_aws_credentials, resolve_credentials
from prefect_scenario.dataset.layout import Manifest, check_dataset_name, group_datasets, normalize_prefix
from prefect_scenario.evaluation.options import EvaluationOptions
from prefect_scenario.exceptions import ConfigurationError
from prefect_scenario.retraining.decisions import (
    DecisionKind,
    retrain_idempotency_key,
)
from prefect_scenario.retraining.discovery import ListingDiscovery
from prefect_scenario.retraining.sidecar import DatasetSpec
from prefect_scenario.retraining.tasks import (
    EVENT_DATASET_INVALID,
    EVENT_DATASET_READY,
    RETRAIN_DEPLOYMENT,
    act_on_decision,
    dataset_lock,
    decision_summary,
    ensure_concurrency_limit,
    make_discovery,
    observe_and_decide,
    read_dataset,
    read_sensor_state,
    record_training,
    sensor_state_key,
    write_sensor_state,
)
from prefect_scenario.spend.block import ScenarioBudget
from prefect_scenario.spend.sensor import EVENT_BUDGET_EXCEEDED, SensorBudget
from prefect_scenario.tags import idempotency_tag
from prefect_scenario.training.flows import TrainingResult, train_edit_lora, train_lora
from prefect_scenario.training.judging import judge_training
from prefect_scenario.training.options import build_options
from prefect_scenario.waiting.polling import DEFAULT_POLICY, DEFAULT_TIMEOUT_SECONDS, PollPolicy
from prefect_scenario.waiting.suspension import WaitMode

__all__ = [
    "EVENT_BUDGET_EXCEEDED",
    "EVENT_DATASET_INVALID",
    "EVENT_DATASET_READY",
    "RETRAIN_DEPLOYMENT",
    "retrain_changed_datasets",
    "retrain_from_s3",
    "s3_curated_images_sensor",
    "sensor_state_key",
]


@scenario_flow(name="scenario-s3-curated-images-sensor", flow_run_name="scenario-s3-sensor-{bucket}")
async def s3_curated_images_sensor(
    bucket: str,
    prefix: str = "",
    aws_credentials: AwsCredentials | None = None,
    retrain_deployment: str | None = RETRAIN_DEPLOYMENT,
    emit_ready_event: bool = True,
    mode: Literal["list", "notifications"] = "list",
    queue_url: str | None = None,
    quiet_period_seconds: float = 120.0,
    min_images: int = 5,
    training_type: str | None = None,
    ignore_sidecar_edits: bool = False,
    retrain_parameters: dict[str, Any] | None = None,
    state_key: str | None = None,
    budget: ScenarioBudget | str | None = None,
    credentials: ScenarioCredentials | str | None = None,
    interval_seconds: float | None = None,
) -> list[dict[str, Any]]:
    """One sensor cycle: find what changed under ``prefix`` and retrain the datasets that are ready.

    A dataset is ready when it changed (new, changed or deleted images) and then
    stayed unchanged for ``quiet_period_seconds``, holding at least ``min_images``
    images. One holding more than the type allows (e.g. 51) gets a
    ``scenario.dataset.invalid`` event and an error log instead of a failed training.

    Args:
        bucket: The bucket to watch.
        prefix: The root prefix; each sub-prefix holding images is a dataset.
        aws_credentials: A prefect-aws ``AwsCredentials`` block; None uses the AWS environment.
        retrain_deployment: The deployment to run per ready dataset (``flow/deployment``);
            None to rely on the ``scenario.dataset.ready`` event and a deployment trigger.
        emit_ready_event: Also emit ``scenario.dataset.ready`` per ready dataset.
        mode: ``list`` (ListObjectsV2 over the prefix) or ``notifications`` (an SQS queue
            receiving the bucket's event notifications: cost follows the changes).
        queue_url: The SQS queue, for ``notifications``.
        quiet_period_seconds: How long a dataset must stay unchanged before retraining.
        min_images: Fewest images to retrain on.
        training_type: The type for datasets without a sidecar (limits the image count).
        ignore_sidecar_edits: Do not count sidecar edits as activity (passed on to the retrain).
        retrain_parameters: Extra parameters passed to every retrain run.
        state_key: The state object's key in the bucket (default: per prefix).
        budget: A ``ScenarioBudget`` block or its saved name: a ready dataset over budget
            is skipped with a ``scenario.budget.exceeded`` event (once per content per day)
            and stays pending, so it retrains once the budget allows; a saved budget's
            name is passed on to the retrain runs.
        credentials: Only to know the project whose ledger the budget reads, when the
            budget block has no ``project_id`` (no request is sent to Scenario).
        interval_seconds: The schedule's interval: a cycle that takes longer says so once
            (the deployment runs one cycle at a time and cancels the ones that collide).

    Returns:
        One summary per decision: dataset, kind, images, message, idempotency key, run id.

    Raises:
        ConfigurationError: ``mode="notifications"`` without a ``queue_url``; a bad or
            missing budget block.

    Example:
        ```python
        s3_curated_images_sensor(bucket="studio-assets", prefix="curated/", aws_credentials=aws)
        ```
    """
    if mode == "notifications" and not queue_url:
        raise ConfigurationError("mode='notifications' needs the queue_url of the bucket's SQS notifications")
    prefix = normalize_prefix(prefix)
    started = time.monotonic()
    guard = await SensorBudget.load(budget, credentials, datetime.now(UTC).date())
    aws = await resolve_aws_credentials(aws_credentials)
    s3 = aws.get_s3_client()
    key = state_key or sensor_state_key(prefix)
    state = await asyncio.to_thread(read_sensor_state, s3, bucket, key, prefix)
    discovery = make_discovery(aws, s3, bucket, prefix, queue_url if mode == "notifications" else None)
    options = {
        "quiet_period": quiet_period_seconds,
        "min_images": min_images,
        "training_type": training_type,
        "ignore_sidecar_edits": ignore_sidecar_edits,
    }
    root_listing = ListingDiscovery(s3, bucket, prefix)
    observed, state, decisions, now = await observe_and_decide(discovery, root_listing, state, options)
    parameters = {**(retrain_parameters or {}), "ignore_sidecar_edits": ignore_sidecar_edits}
    if guard is not None and guard.forwarded(budget):
        parameters.setdefault("budget", guard.forwarded(budget))
    summaries: list[dict[str, Any]] = []
    for decision in decisions:
        over = await guard.over_budget(decision.dataset_uri) if guard and decision.kind is DecisionKind.READY else None
        if guard is not None and over is not None:
            # Left pending (not marked requested): looked at again next cycle, retrained once the budget allows.
            guard.report(decision.dataset_uri, decision.idempotency_key, over)
            summaries.append({**decision_summary(decision, None), "kind": "over-budget", "message": over.reason})
            continue
        state, run_id = await act_on_decision(decision, state, now, retrain_deployment, emit_ready_event, parameters)
        summaries.append(decision_summary(decision, run_id))
    # Save only after every run exists; acknowledge the queue only after saving.
    await asyncio.to_thread(write_sensor_state, s3, bucket, key, state)
    await asyncio.to_thread(discovery.ack, observed)
    _report_overrun(time.monotonic() - started, interval_seconds)
    return summaries


def _report_overrun(elapsed: float, interval_seconds: float | None) -> None:
    """One warning when a cycle outlasts its interval: the colliding cycles were cancelled, not stacked."""
    if interval_seconds is not None and elapsed > interval_seconds:
        get_run_logger().warning(
            "this sensor cycle took %.1f s, longer than its %g s interval: the cycles due meanwhile were "
            "skipped (one cycle runs at a time); a longer interval avoids it",
            elapsed,
            interval_seconds,
        )


@scenario_flow(name="scenario-retrain-from-s3", flow_run_name="scenario-retrain-{dataset_uri}")
async def retrain_from_s3(
    dataset_uri: str,
    aws_credentials: AwsCredentials | None = None,
    credentials: ScenarioCredentials | None = None,
    training_type: str | None = None,
    model_name: str | None = None,
    expected_manifest_digest: str | None = None,
    wait: WaitMode = "poll",
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    upload_concurrency: int = 4,
    force: bool = False,
    poll_policy: PollPolicy = DEFAULT_POLICY,
    ignore_sidecar_edits: bool = False,
    budget: ScenarioBudget | str | None = None,
    max_creative_units: float | None = None,
    promote: bool | EvaluationOptions = False,
) -> TrainingResult:
    """Train the LoRA of one S3 dataset on its current content.

    Reads the dataset's manifest and sidecar, streams its images from S3 into the
    training flow (staged on disk, ``upload_concurrency`` in memory at a time), and
    tags the model with the dataset and the manifest it was trained on; a table
    artifact lists the manifest, so a LoRA's history is visible in the UI. The run's
    idempotency key is the dataset and manifest: the same content never trains twice.

    Args:
        dataset_uri: ``s3://bucket/prefix/`` of the dataset.
        aws_credentials: A prefect-aws ``AwsCredentials`` block; None uses the AWS environment.
        credentials: A ``ScenarioCredentials`` block; None reads ``SCENARIO_*`` variables.
        training_type: The type when the dataset has no sidecar.
        model_name: The model name when the sidecar gives none (default: the prefix's last part).
        expected_manifest_digest: The digest the sensor decided on (logged if it moved on).
        wait: ``"poll"`` waits in this process, ``"suspend"`` frees it until the watcher resumes the run
            (deployment runs), False returns once the training started.
        timeout_seconds: How long to wait.
        upload_concurrency: Images in flight at once.
        force: Train again even if this manifest already trained.
        poll_policy: The wait loop's poll delay bounds.
        ignore_sidecar_edits: Leave sidecar files out of the content that keys the run, as
            the sensor did (the sensor passes its own setting).
        budget: A ``ScenarioBudget`` block or its saved name; the dataset URI is the
            dataset its per-dataset limit counts.
        max_creative_units: Refuse the training if its dry run estimates more.
        promote: Judge the new LoRA against the dataset's production LoRA (the dataset URI is
            the dataset) and make it production only if it scores better; the lineage names
            the manifest it was trained on.

    Returns:
        The :class:`~prefect_scenario.training.flows.TrainingResult`.

    Raises:
        InvalidDatasetError: the dataset holds no training images, or its sidecar is invalid.

    Example:
        ```python
        result = retrain_from_s3("s3://studio-assets/curated/hero/", aws_credentials=aws, credentials=scenario)
        result = await retrain_from_s3("s3://studio-assets/curated/hero/")  # in async code
        ```
    """
    check_dataset_name(dataset_uri)  # a name, never a path: nothing is read for ../ or //
    build_options(wait=wait, promote=promote)  # promote needs a wait: refused before any read
    aws = await resolve_aws_credentials(aws_credentials)
    bucket, manifest, spec = await read_dataset(
        aws, dataset_uri, training_type, model_name, expected_manifest_digest, ignore_sidecar_edits
    )
    scenario = await resolve_credentials(credentials)
    options: dict[str, Any] = {
        "name": spec.model_name,
        "training_type": spec.training_type,
        "credentials": scenario,
        "parameters": spec.parameters,
        "wait": wait,
        "timeout_seconds": timeout_seconds,
        "idempotency_key": retrain_idempotency_key(dataset_uri, manifest, ignore_sidecar_edits=ignore_sidecar_edits),
        "force": force,
        "upload_concurrency": upload_concurrency,
        "aws_credentials": aws,
        "poll_policy": poll_policy,
        "budget": budget,
        "max_creative_units": max_creative_units,
        "dataset": dataset_uri,
    }
    lock = dataset_lock(dataset_uri)
    await ensure_concurrency_limit(lock)
    # Two retrains of one LoRA never overlap; different datasets still train in parallel.
    async with concurrency(lock, occupy=1, strict=True):
        result = await _train_spec_on_manifest(spec, bucket, manifest, options)
    await record_training(scenario, result, dataset_uri, manifest, spec.model_name)
    # Judged after the dataset's tags are on the model, outside the lock: a render waits for
    # no other retrain. The training's budget pays for the renders too.
    return await judge_training(
        scenario, result, promote=promote, dataset=dataset_uri, budget=budget, manifest_digest=manifest.digest
    )


async def _train_spec_on_manifest(
    spec: DatasetSpec, bucket: str, manifest: Manifest, options: dict[str, Any]
) -> TrainingResult:
    """Start the training the spec describes: its pairs for an edit type, else the manifest's images."""
    if spec.edit:
        root = spec.dataset_uri
        pairs: list[Any] = [(root + p.before, root + p.after, p.instruction) for p in spec.pairs]
        edited: TrainingResult = await train_edit_lora(pairs=pairs, **options)
        return edited
    images: list[Any] = [f"s3://{bucket}/{obj.key}" for obj in manifest.images]
    # The sidecar's captions win over the .txt beside an image, which train_lora reads itself.
    captions = {spec.dataset_uri + name: text for name, text in spec.captions.items()} or None
    trained: TrainingResult = await train_lora(images=images, captions=captions, **options)
    return trained


@scenario_flow(name="scenario-retrain-changed-datasets", flow_run_name="scenario-retrain-changed-{bucket}")
async def retrain_changed_datasets(
    bucket: str,
    prefix: str = "",
    aws_credentials: AwsCredentials | None = None,
    credentials: ScenarioCredentials | None = None,
    training_type: str | None = None,
    min_images: int = 5,
    wait: WaitMode = "poll",
    poll_policy: PollPolicy = DEFAULT_POLICY,
    ignore_sidecar_edits: bool = False,
) -> list[TrainingResult]:
    """Retrain every dataset whose content changed since its last trained version (a cron job).

    A dataset whose current manifest already has a model (tagged with its idempotency
    key) is skipped without a request beyond the listing; so is one with fewer than
    ``min_images`` images. Does nothing when nothing changed.

    Args:
        bucket: The bucket holding the datasets.
        prefix: The root prefix; each sub-prefix holding images is a dataset.
        aws_credentials: A prefect-aws ``AwsCredentials`` block; None uses the AWS environment.
        credentials: A ``ScenarioCredentials`` block; None reads ``SCENARIO_*`` variables.
        training_type: The type for datasets without a sidecar.
        min_images: Fewest images to retrain on.
        wait: Wait for each training to end.
        poll_policy: The wait loop's poll delay bounds.
        ignore_sidecar_edits: Sidecar edits alone do not make a dataset changed (as the sensor).

    Returns:
        The result of each retrain, in dataset order.

    Example:
        ```python
        results = retrain_changed_datasets(bucket="studio-assets", prefix="curated/", aws_credentials=aws)
        results = await retrain_changed_datasets(bucket="studio-assets", prefix="curated/")  # in async code
        ```
    """
    logger = get_run_logger()
    aws = await resolve_aws_credentials(aws_credentials)
    root = normalize_prefix(prefix)
    listing = await asyncio.to_thread(ListingDiscovery(aws.get_s3_client(), bucket, root).discover)
    scenario = await resolve_credentials(credentials)
    async with scenario.get_client() as client:
        trained_tags = {t for model in [m async for m in client.list_models()] for t in model.tags}
    results = []
    for dataset_prefix, manifest in group_datasets(root, listing.objects).items():
        uri = f"s3://{bucket}/{dataset_prefix}"
        key = retrain_idempotency_key(uri, manifest, ignore_sidecar_edits=ignore_sidecar_edits)
        if idempotency_tag(key) in trained_tags:
            continue
        if manifest.image_count < min_images:
            logger.info("%s: %d images, fewer than %d: skipped", uri, manifest.image_count, min_images)
            continue
        logger.info("%s changed since its last trained version: retraining", uri)
        retrained = await retrain_from_s3(
            uri,
            aws_credentials=aws,
            credentials=scenario,
            training_type=training_type,
            wait=wait,
            poll_policy=poll_policy,
            ignore_sidecar_edits=ignore_sidecar_edits,
        )
        results.append(retrained)
    if not results:
        logger.info("no dataset changed since its last trained version")
    return results
