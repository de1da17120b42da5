"""The S3 sensor and the retraining flows: new curated images retrain the right LoRA, once.

A dataset is an S3 prefix holding its images and an optional sidecar
``scenario.json``/``.yaml`` (type, name, parameters, edit pairs) or ``pairs.jsonl``
(see :mod:`prefect_scenario.retraining.datasets`). A root prefix may hold many datasets, one per
sub-prefix; a change under one retrains that one only.

Exactly once, end to end:

1. :func:`s3_curated_images_sensor` reads its state (a JSON object in the bucket),
   discovers what changed (:mod:`prefect_scenario.retraining.discovery`), and lets the pure
   :func:`prefect_scenario.retraining.decisions.decide` say which datasets are ready;
2. for each, it creates the retrain run with ``run_deployment(...,
   idempotency_key=<dataset + manifest>)`` (Prefect returns the existing run for a
   key it has seen) and/or emits ``scenario.dataset.ready`` (for a deployment trigger);
3. only then it saves the state and acknowledges the queue messages.

A crash at any point re-decides the same dataset with the same key next cycle. And
the retrain itself trains with the same key as its model tag, so even a second run
of the same manifest (an event delivered twice) finds the model and spends nothing.

Example:
    ```python
    from prefect_scenario.retraining.flows import s3_curated_images_sensor

    s3_curated_images_sensor(
        bucket="studio-assets",
        prefix="curated/",
        aws_credentials="BLOCK_NAME",
        retrain_deployment="retrain-from-s3/retrain-from-s3",
    )
    ```
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.asyncio import concurrency
from prefect.deployments import run_deployment
from prefect.events import emit_event

from prefect_scenario.credentials import ScenarioCredentials, resolve_aws_credentials, resolve_credentials
from prefect_scenario.exceptions import ConfigurationError, InvalidDatasetError
from prefect_scenario.retraining.datasets import Manifest, group_datasets, normalize_prefix, parse_dataset_uri
from prefect_scenario.retraining.decisions import (
    Decision,
    DecisionKind,
    SensorState,
    decide,
    mark_reported,
    mark_requested,
    retrain_idempotency_key,
)
from prefect_scenario.retraining.discovery import ChangeSet, Listing, ListingDiscovery, NotificationDiscovery
from prefect_scenario.retraining.sidecar import DatasetSpec, load_dataset_spec
from prefect_scenario.training.flows import TrainingResult, train_edit_lora, train_lora
from prefect_scenario.training.monitoring import artifact_key
from prefect_scenario.training.polling import DEFAULT_POLICY, PollPolicy
from prefect_scenario.training.reconcile import idempotency_tag

__all__ = [
    "EVENT_DATASET_INVALID",
    "EVENT_DATASET_READY",
    "retrain_changed_datasets",
    "retrain_from_s3",
    "s3_curated_images_sensor",
    "sensor_state_key",
]

EVENT_DATASET_READY = "scenario.dataset.ready"
EVENT_DATASET_INVALID = "scenario.dataset.invalid"
STATE_PREFIX = "_prefect-scenario/sensor-state/"
DATASET_TAG_PREFIX = "psc-dataset-"
MANIFEST_TAG_PREFIX = "psc-manifest-"


def sensor_state_key(prefix: str) -> str:
    """Where a sensor watching ``prefix`` keeps its state in the bucket (never an image key)."""
    digest = hashlib.sha256(normalize_prefix(prefix).encode()).hexdigest()[:16]
    return f"{STATE_PREFIX}{digest}.json"


def _read_state(s3: Any, bucket: str, key: str, prefix: str) -> SensorState:
    from botocore.exceptions import ClientError

    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return SensorState(bucket=bucket, prefix=prefix)
        raise
    return SensorState.from_json(body)


def _write_state(s3: Any, bucket: str, key: str, state: SensorState) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=state.to_json().encode(), ContentType="application/json")


def _event_id(decision: Decision) -> uuid.UUID:
    # The same decision re-made after a crash emits the same event id.
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{decision.dataset_uri}#{decision.idempotency_key}")


def _dataset_resource(uri: str) -> dict[str, str]:
    return {"prefect.resource.id": f"s3.dataset.{uri}", "prefect.resource.name": uri}


@task(name="request-retrain", task_run_name="request-retrain-{decision.prefix}", cache_policy=NO_CACHE)
async def request_retrain(
    decision: Decision, retrain_deployment: str | None, emit_ready_event: bool, parameters: dict[str, Any]
) -> str | None:
    """Create the retrain run (idempotent by key) and/or announce the dataset as ready.

    Returns:
        The flow run id, when a run was created.
    """
    run_id: str | None = None
    if retrain_deployment:
        run = await run_deployment(  # type: ignore[misc] # sync_compatible: a coroutine here
            retrain_deployment,
            parameters={"dataset_uri": decision.dataset_uri, "expected_manifest_digest": decision.manifest.digest,
                        **parameters},
            idempotency_key=decision.idempotency_key,
            timeout=0,
            as_subflow=False,
        )  # fmt: skip
        run_id = str(run.id)
    if emit_ready_event:
        emit_event(
            event=EVENT_DATASET_READY,
            resource=_dataset_resource(decision.dataset_uri),
            payload={
                "dataset_uri": decision.dataset_uri,
                "manifest_digest": decision.manifest.digest,
                "images": decision.image_count,
                "idempotency_key": decision.idempotency_key,
                "run_id": run_id,
            },
            id=_event_id(decision),
        )
    return run_id


@flow(name="s3-curated-images-sensor", flow_run_name="s3-sensor-{bucket}")
async def s3_curated_images_sensor(
    bucket: str,
    prefix: str = "",
    aws_credentials: Any = None,
    retrain_deployment: str | None = "retrain-from-s3/retrain-from-s3",
    emit_ready_event: bool = True,
    mode: Literal["list", "notifications"] = "list",
    queue_url: str | None = None,
    quiet_period_seconds: float = 120.0,
    min_images: int = 5,
    training_type: str | None = None,
    ignore_sidecar_edits: bool = False,
    retrain_parameters: dict[str, Any] | None = None,
    state_key: str | None = None,
) -> list[dict[str, Any]]:
    """One sensor cycle: find what changed under ``prefix`` and retrain the datasets that are ready.

    A dataset is ready when it changed (new, changed or deleted images) and then
    stayed unchanged for ``quiet_period_seconds``, holding at least ``min_images``
    images. One holding more than the type allows (e.g. 51) gets a
    ``scenario.dataset.invalid`` event and an error log instead of a failed training.

    Args:
        bucket: the bucket to watch.
        prefix: the root prefix; each sub-prefix holding images is a dataset.
        aws_credentials: a prefect-aws ``AwsCredentials`` block or its saved name.
        retrain_deployment: the deployment to run per ready dataset (``flow/deployment``);
            None to rely on the ``scenario.dataset.ready`` event and a deployment trigger.
        emit_ready_event: also emit ``scenario.dataset.ready`` per ready dataset.
        mode: ``list`` (ListObjectsV2 over the prefix) or ``notifications`` (an SQS queue
            receiving the bucket's event notifications: cost follows the changes).
        queue_url: the SQS queue, for ``notifications``.
        quiet_period_seconds: how long a dataset must stay unchanged before retraining.
        min_images: fewest images to retrain on.
        training_type: the type for datasets without a sidecar (limits the image count).
        ignore_sidecar_edits: do not count sidecar edits as activity.
        retrain_parameters: extra parameters passed to every retrain run.
        state_key: the state object's key in the bucket (default: per prefix).

    Returns:
        One summary per decision: dataset, kind, images, message, run id.

    Example:
        ```python
        s3_curated_images_sensor(bucket="studio-assets", prefix="curated/", aws_credentials="BLOCK_NAME")
        ```
    """
    logger = get_run_logger()
    if mode == "notifications" and not queue_url:
        raise ConfigurationError("mode='notifications' needs the queue_url of the bucket's SQS notifications")
    prefix = normalize_prefix(prefix)
    aws = await resolve_aws_credentials(aws_credentials)
    s3 = aws.get_s3_client()
    key = state_key or sensor_state_key(prefix)
    state = await asyncio.to_thread(_read_state, s3, bucket, key, prefix)
    discovery: ListingDiscovery | NotificationDiscovery
    seen: list[Listing | ChangeSet] = []
    if mode == "notifications":
        assert queue_url is not None
        # Messages stay hidden for a whole cycle (read, decide, create runs, save, ack).
        discovery = NotificationDiscovery(
            aws.get_client("sqs"), queue_url, bucket, prefix, wait_time_seconds=1, visibility_timeout=300
        )
        if state.listed_at is None:
            # Events only cover what happened after the queue was connected: list once first.
            seen.append(await asyncio.to_thread(ListingDiscovery(s3, bucket, prefix).discover))
    else:
        discovery = ListingDiscovery(s3, bucket, prefix)
    observed: Listing | ChangeSet = await asyncio.to_thread(discovery.discover)
    seen.append(observed)
    now = datetime.now(UTC)
    decisions: list[Decision] = []
    for observation in seen:
        # Ready datasets stay pending until marked requested, so the last decide has them all.
        state, decisions = decide(
            state, observation, now, quiet_period=quiet_period_seconds, min_images=min_images,
            training_type=training_type, ignore_sidecar_edits=ignore_sidecar_edits,
        )  # fmt: skip
    summaries: list[dict[str, Any]] = []
    for decision in decisions:
        run_id: str | None = None
        if decision.kind is DecisionKind.READY:
            run_id = await request_retrain(decision, retrain_deployment, emit_ready_event, retrain_parameters or {})
            state = mark_requested(state, decision, now=now, run_id=run_id)
            logger.info("%s is ready (%d images): retrain run %s", decision.dataset_uri, decision.image_count, run_id)
        elif decision.kind is DecisionKind.INVALID:
            emit_event(
                event=EVENT_DATASET_INVALID,
                resource=_dataset_resource(decision.dataset_uri),
                payload={"message": decision.message, "images": decision.image_count},
            )
            logger.error("%s cannot be trained: %s", decision.dataset_uri, decision.message)
            state = mark_reported(state, decision)
        else:
            logger.info("%s: %s", decision.dataset_uri, decision.message)
        summaries.append(
            {
                "dataset": decision.dataset_uri,
                "kind": decision.kind.value,
                "images": decision.image_count,
                "message": decision.message,
                "run_id": run_id,
            }
        )
    # Save only after every run exists; acknowledge the queue only after saving.
    await asyncio.to_thread(_write_state, s3, bucket, key, state)
    await asyncio.to_thread(discovery.ack, observed)
    return summaries


def _list_dataset(s3: Any, uri: str) -> tuple[str, str, Any]:
    bucket, prefix = parse_dataset_uri(uri)
    listing = ListingDiscovery(s3, bucket, prefix).list_dataset(prefix)
    manifest = group_datasets(prefix, listing.objects).get(prefix)
    return bucket, prefix, manifest


@flow(name="retrain-from-s3", flow_run_name="retrain-{dataset_uri}")
async def retrain_from_s3(
    dataset_uri: str,
    aws_credentials: Any = None,
    credentials: ScenarioCredentials | str | None = None,
    training_type: str | None = None,
    model_name: str | None = None,
    expected_manifest_digest: str | None = None,
    wait: bool = True,
    timeout_seconds: float = 4 * 3600,
    upload_concurrency: int = 4,
    force: bool = False,
    poll_policy: PollPolicy = DEFAULT_POLICY,
) -> TrainingResult:
    """Train the LoRA of one S3 dataset on its current content.

    Reads the dataset's manifest and sidecar, streams its images from S3 into the
    training flow (staged on disk, ``upload_concurrency`` in memory at a time), and
    tags the model with the dataset and the manifest it was trained on; a table
    artifact lists the manifest, so a LoRA's history is visible in the UI. The run's
    idempotency key is the dataset and manifest: the same content never trains twice.

    Args:
        dataset_uri: ``s3://bucket/prefix/`` of the dataset.
        aws_credentials: a prefect-aws ``AwsCredentials`` block or its saved name.
        credentials: the Scenario credentials (block, block name, or environment).
        training_type: the type when the dataset has no sidecar.
        model_name: the model name when the sidecar gives none (default: the prefix's last part).
        expected_manifest_digest: the digest the sensor decided on (logged if it moved on).
        wait: wait for the training to end.
        timeout_seconds: how long to wait.
        upload_concurrency: images in flight at once.
        force: train again even if this manifest already trained.
        poll_policy: the wait loop's poll delay bounds.

    Returns:
        The :class:`~prefect_scenario.training.flows.TrainingResult`.

    Example:
        ```python
        retrain_from_s3("s3://studio-assets/curated/hero/", aws_credentials="BLOCK_NAME", credentials="BLOCK_NAME")
        ```
    """
    logger = get_run_logger()
    aws = await resolve_aws_credentials(aws_credentials)
    s3 = aws.get_s3_client()
    bucket, prefix, manifest = await asyncio.to_thread(_list_dataset, s3, dataset_uri)
    if manifest is None or manifest.image_count == 0:
        raise InvalidDatasetError(f"{dataset_uri} holds no training images")
    if expected_manifest_digest and expected_manifest_digest != manifest.digest:
        logger.warning("%s changed since the sensor decided; training on its current content", dataset_uri)
    names = {key[len(prefix) :] for key in manifest.keys}
    spec = await asyncio.to_thread(
        load_dataset_spec, s3, dataset_uri, training_type=training_type, model_name=model_name, present=names
    )
    scenario = await resolve_credentials(credentials)
    key = retrain_idempotency_key(dataset_uri, manifest)
    common: dict[str, Any] = {
        "name": spec.model_name,
        "training_type": spec.training_type,
        "credentials": scenario,
        "parameters": spec.parameters,
        "wait": wait,
        "timeout_seconds": timeout_seconds,
        "idempotency_key": key,
        "force": force,
        "upload_concurrency": upload_concurrency,
        "aws_credentials": aws,
        "poll_policy": poll_policy,
    }
    lock = f"scenario-dataset-{hashlib.sha256(dataset_uri.rstrip('/').encode()).hexdigest()[:16]}"
    await _ensure_limit(lock)
    # Two retrains of one LoRA never overlap; different datasets still train in parallel.
    async with concurrency(lock, occupy=1, strict=True):
        result = await _train_dataset(spec, bucket, prefix, manifest, common)
    dataset_tag = DATASET_TAG_PREFIX + lock.removeprefix("scenario-dataset-")
    async with scenario.get_client() as client:
        await client.update_tags(result.model_id, add=[dataset_tag, MANIFEST_TAG_PREFIX + manifest.digest[:16]])
    try:
        await acreate_table_artifact(
            [{"key": o.key, "etag": o.etag, "bytes": str(o.size)} for o in manifest.entries],
            key=artifact_key("scenario-manifest", spec.model_name),
            description=f"{dataset_uri} manifest {manifest.digest[:16]} → model {result.model_id} ({result.status})",
        )
    except Exception as exc:
        logger.debug("manifest artifact not created: %s", type(exc).__name__)
    return result


async def _ensure_limit(name: str) -> None:
    """Create the per-dataset concurrency limit (1 slot) the first time it is needed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectNotFound

    async with get_client() as prefect:
        try:
            await prefect.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                await prefect.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except Exception as exc:  # a concurrent first run created it: that is the goal
                get_run_logger().debug("concurrency limit %s: %s", name, type(exc).__name__)


async def _train_dataset(
    spec: DatasetSpec, bucket: str, prefix: str, manifest: Manifest, common: dict[str, Any]
) -> TrainingResult:
    root = f"s3://{bucket}/{prefix}"
    if spec.edit:
        pairs: list[Any] = [(root + p.before, root + p.after, p.instruction) for p in spec.pairs]
        edited: TrainingResult = await train_edit_lora(pairs=pairs, **common)
        return edited
    images: list[Any] = [f"s3://{bucket}/{obj.key}" for obj in manifest.images]
    trained: TrainingResult = await train_lora(images=images, **common)
    return trained


@flow(name="retrain-changed-datasets", flow_run_name="retrain-changed-{bucket}")
async def retrain_changed_datasets(
    bucket: str,
    prefix: str = "",
    aws_credentials: Any = None,
    credentials: ScenarioCredentials | str | None = None,
    training_type: str | None = None,
    min_images: int = 5,
    wait: bool = True,
    poll_policy: PollPolicy = DEFAULT_POLICY,
) -> list[TrainingResult]:
    """Retrain every dataset whose content changed since its last trained version (a cron job).

    A dataset whose current manifest already has a model (tagged with its idempotency
    key) is skipped without a request beyond the listing; so is one with fewer than
    ``min_images`` images. Does nothing when nothing changed.

    Example:
        ```python
        retrain_changed_datasets(bucket="studio-assets", prefix="curated/", aws_credentials="BLOCK_NAME")
        ```
    """
    logger = get_run_logger()
    aws = await resolve_aws_credentials(aws_credentials)
    s3 = aws.get_s3_client()
    root = normalize_prefix(prefix)
    listing = await asyncio.to_thread(ListingDiscovery(s3, bucket, root).discover)
    datasets = group_datasets(root, listing.objects)
    scenario = await resolve_credentials(credentials)
    async with scenario.get_client() as client:
        trained_tags = {t for model in [m async for m in client.list_models()] for t in model.tags}
    results = []
    for dataset_prefix, manifest in datasets.items():
        uri = f"s3://{bucket}/{dataset_prefix}"
        key = retrain_idempotency_key(uri, manifest)
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
        )
        results.append(retrained)
    if not results:
        logger.info("no dataset changed since its last trained version")
    return results
