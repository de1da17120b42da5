"""What the retraining flows do outside the pure decision: state I/O, runs, events, limits, records.

The sensor keeps its state as a JSON object in the watched bucket (:func:`read_sensor_state`,
:func:`write_sensor_state`), creates retrain runs with :func:`request_retrain` (idempotent
by key: Prefect returns the run it already created for a key it has seen) and announces
datasets with ``scenario.dataset.ready`` / ``scenario.dataset.invalid`` events. The retrain
flow holds a per-dataset global concurrency limit (:func:`ensure_concurrency_limit`) and
records what it trained on (:func:`record_training`).

Example:
    >>> sensor_state_key("curated/") == sensor_state_key("curated")
    True
    >>> RETRAIN_DEPLOYMENT
    'scenario-retrain-from-s3/retrain-from-s3'
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from prefect import get_run_logger
from prefect.artifacts import acreate_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.deployments import run_deployment
from prefect.events import emit_event
from prefect_aws import AwsCredentials

from prefect_scenario._dispatch import scenario_task
from prefect_scenario._locks import ensure_concurrency_limit
from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.dataset.layout import Manifest, group_datasets, normalize_prefix, parse_dataset_uri
from prefect_scenario.dataset.listing import Listing
from prefect_scenario.exceptions import InvalidDatasetError
from prefect_scenario.reporting import artifact_key
from prefect_scenario.retraining.decisions import Decision, DecisionKind, decide, mark_reported, mark_requested
from prefect_scenario.retraining.discovery import ListingDiscovery
from prefect_scenario.retraining.notifications import ChangeSet, NotificationDiscovery
from prefect_scenario.retraining.sensor_state import SensorState
from prefect_scenario.retraining.sidecar import DatasetSpec, load_dataset_spec
from prefect_scenario.training.flows import TrainingResult

__all__ = [
    "EVENT_DATASET_INVALID",
    "EVENT_DATASET_READY",
    "RETRAIN_DEPLOYMENT",
    "RETRAIN_FLOW",
    "act_on_decision",
    "dataset_lock",
    "decision_summary",
    "ensure_concurrency_limit",
    "list_dataset",
    "make_discovery",
    "observe_and_decide",
    "read_dataset",
    "read_sensor_state",
    "record_training",
    "report_invalid",
    "request_retrain",
    "sensor_state_key",
    "write_sensor_state",
]

EVENT_DATASET_READY = "scenario.dataset.ready"
EVENT_DATASET_INVALID = "scenario.dataset.invalid"
RETRAIN_FLOW = "scenario-retrain-from-s3"
RETRAIN_DEPLOYMENT = f"{RETRAIN_FLOW}/retrain-from-s3"
STATE_PREFIX = "_prefect-scenario/sensor-state/"
DATASET_TAG_PREFIX = "psc-dataset-"
MANIFEST_TAG_PREFIX = "psc-manifest-"
_LOCK_PREFIX = "scenario-dataset-"
_MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


# -- the sensor's state in the bucket -------------------------------------------------------


def sensor_state_key(prefix: str) -> str:
    """Where a sensor watching ``prefix`` keeps its state in the bucket (never an image key)."""
    digest = hashlib.sha256(normalize_prefix(prefix).encode()).hexdigest()[:16]
    return f"{STATE_PREFIX}{digest}.json"


def read_sensor_state(s3: Any, bucket: str, key: str, prefix: str) -> SensorState:
    """The saved state, or a fresh one when the object does not exist yet."""
    from botocore.exceptions import ClientError

    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _MISSING_KEY_CODES:
            return SensorState(bucket=bucket, prefix=prefix)
        raise
    return SensorState.from_json(body)


def write_sensor_state(s3: Any, bucket: str, key: str, state: SensorState) -> None:
    """Save the state: the commit point of a sensor cycle."""
    s3.put_object(Bucket=bucket, Key=key, Body=state.to_json().encode(), ContentType="application/json")


# -- runs and events --------------------------------------------------------------------------


def _event_id(decision: Decision) -> uuid.UUID:
    # The same decision re-made after a crash emits the same event id.
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{decision.dataset_uri}#{decision.idempotency_key}")


def _dataset_resource(uri: str) -> dict[str, str]:
    return {"prefect.resource.id": f"s3.dataset.{uri}", "prefect.resource.name": uri}


@scenario_task(
    name="scenario-request-retrain", task_run_name="scenario-request-retrain-{decision.prefix}", cache_policy=NO_CACHE
)
async def request_retrain(
    decision: Decision, retrain_deployment: str | None, emit_ready_event: bool, parameters: dict[str, Any]
) -> str | None:
    """Create the retrain run (idempotent by key) and/or announce the dataset as ready.

    Args:
        decision: A ``ready`` decision of :func:`~prefect_scenario.retraining.decisions.decide`.
        retrain_deployment: ``flow name/deployment name`` to run, or None (event only).
        emit_ready_event: Also emit ``scenario.dataset.ready`` (a deployment trigger can
            create the run from it).
        parameters: Parameters for the retrain run, besides the dataset and its digest.

    Returns:
        The flow run id, when a run was created.

    Example:
        ```python
        run_id = request_retrain(decision, RETRAIN_DEPLOYMENT, True, {})  # in a sync flow
        run_id = await request_retrain(decision, RETRAIN_DEPLOYMENT, True, {})  # in an async one
        ```
    """
    run_id: str | None = None
    if retrain_deployment:
        run = await run_deployment(  # type: ignore[misc] # sync_compatible: a coroutine here
            retrain_deployment,
            parameters={
                "dataset_uri": decision.dataset_uri,
                "expected_manifest_digest": decision.manifest.digest,
                **parameters,
            },
            idempotency_key=decision.idempotency_key,
            timeout=0,
            as_subflow=False,
        )
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


def report_invalid(decision: Decision) -> None:
    """Emit ``scenario.dataset.invalid`` for a dataset that cannot be trained as it is."""
    emit_event(
        event=EVENT_DATASET_INVALID,
        resource=_dataset_resource(decision.dataset_uri),
        payload={"message": decision.message, "images": decision.image_count},
    )


# -- one sensor cycle ---------------------------------------------------------------------------


async def observe_and_decide(
    discovery: ListingDiscovery | NotificationDiscovery,
    root_listing: ListingDiscovery,
    state: SensorState,
    options: dict[str, Any],
) -> tuple[Listing | ChangeSet, SensorState, list[Decision], datetime]:
    """Read what changed and decide: the observation to acknowledge, the state, the decisions, and when."""
    seen: list[Listing | ChangeSet] = []
    if isinstance(discovery, NotificationDiscovery) and state.listed_at is None:
        # Events only cover what happened after the queue was connected: list once first.
        seen.append(await asyncio.to_thread(root_listing.discover))
    observed: Listing | ChangeSet = await asyncio.to_thread(discovery.discover)
    seen.append(observed)
    now = datetime.now(UTC)
    decisions: list[Decision] = []
    for observation in seen:
        # Ready datasets stay pending until marked requested, so the last decide has them all.
        state, decisions = decide(state, observation, now, **options)
    return observed, state, decisions, now


def make_discovery(
    aws: AwsCredentials, s3: Any, bucket: str, prefix: str, queue_url: str | None
) -> ListingDiscovery | NotificationDiscovery:
    """The discovery mode: a listing of the root, or the SQS queue at ``queue_url``."""
    if queue_url is None:
        return ListingDiscovery(s3, bucket, prefix)
    # Messages stay hidden for a whole cycle (read, decide, create runs, save, ack); skipped
    # ones are logged to the run's log, so they show in the Prefect UI.
    return NotificationDiscovery(
        aws.get_client("sqs"),
        queue_url,
        bucket,
        prefix,
        wait_time_seconds=1,
        visibility_timeout=300,
        logger=get_run_logger(),
    )


async def act_on_decision(
    decision: Decision,
    state: SensorState,
    now: datetime,
    retrain_deployment: str | None,
    emit_ready_event: bool,
    parameters: dict[str, Any],
) -> tuple[SensorState, str | None]:
    """Do what the decision says; return the state that records it and the run id, if any."""
    logger = get_run_logger()
    if decision.kind is DecisionKind.READY:
        run_id = await request_retrain(decision, retrain_deployment, emit_ready_event, parameters)
        logger.info("%s is ready (%d images): retrain run %s", decision.dataset_uri, decision.image_count, run_id)
        return mark_requested(state, decision, now=now, run_id=run_id), run_id
    if decision.kind is DecisionKind.INVALID:
        report_invalid(decision)
        logger.error("%s cannot be trained: %s", decision.dataset_uri, decision.message)
        return mark_reported(state, decision), None
    logger.info("%s: %s", decision.dataset_uri, decision.message)
    return state, None


def decision_summary(decision: Decision, run_id: str | None) -> dict[str, Any]:
    """What the sensor flow returns about one decision (JSON-friendly, shown in the UI)."""
    return {
        "dataset": decision.dataset_uri,
        "kind": decision.kind.value,
        "images": decision.image_count,
        "message": decision.message,
        "idempotency_key": decision.idempotency_key,
        "run_id": run_id,
    }


# -- one dataset's retrain ----------------------------------------------------------------------


def list_dataset(s3: Any, uri: str) -> tuple[str, str, Manifest | None]:
    """``(bucket, prefix, manifest)`` of the dataset at ``uri``, sidecar files included."""
    bucket, prefix = parse_dataset_uri(uri)
    listing = ListingDiscovery(s3, bucket, prefix).list_dataset(prefix)
    return bucket, prefix, group_datasets(prefix, listing.objects).get(prefix)


def dataset_lock(uri: str) -> str:
    """The name of the dataset's global concurrency limit: two retrains of one LoRA never overlap."""
    return f"{_LOCK_PREFIX}{hashlib.sha256(uri.rstrip('/').encode()).hexdigest()[:16]}"


async def record_training(
    scenario: ScenarioCredentials, result: TrainingResult, dataset_uri: str, manifest: Manifest, model_name: str
) -> None:
    """Tag the model with its dataset and manifest; list the manifest in a table artifact.

    The artifact is a convenience for the UI: failing to write it is logged at WARNING
    and does not fail a training that succeeded.
    """
    dataset_tag = DATASET_TAG_PREFIX + dataset_lock(dataset_uri).removeprefix(_LOCK_PREFIX)
    async with scenario.get_client() as client:
        await client.update_tags(result.model_id, add=[dataset_tag, MANIFEST_TAG_PREFIX + manifest.digest[:16]])
    try:
        await acreate_table_artifact(
            [{"key": o.key, "etag": o.etag, "bytes": str(o.size)} for o in manifest.entries],
            key=artifact_key("scenario-manifest", model_name),
            description=f"{dataset_uri} manifest {manifest.digest[:16]} → model {result.model_id} ({result.status})",
        )
    except httpx.HTTPError as exc:
        get_run_logger().warning("manifest artifact for %s not created: %s", dataset_uri, type(exc).__name__)


async def read_dataset(
    aws: AwsCredentials,
    dataset_uri: str,
    training_type: str | None,
    model_name: str | None,
    expected_digest: str | None,
    ignore_sidecar_edits: bool,
) -> tuple[str, Manifest, DatasetSpec]:
    """The dataset's bucket, manifest (sidecar files included) and spec, read from S3."""
    s3 = aws.get_s3_client()
    bucket, prefix, manifest = await asyncio.to_thread(list_dataset, s3, dataset_uri)
    if manifest is None or manifest.image_count == 0:
        raise InvalidDatasetError(f"{dataset_uri} holds no training images")
    content = manifest.without_sidecars(prefix) if ignore_sidecar_edits else manifest
    if expected_digest and expected_digest != content.digest:
        get_run_logger().warning("%s changed since the sensor decided; training on its current content", dataset_uri)
    names = {key[len(prefix) :] for key in manifest.keys}
    spec = await asyncio.to_thread(
        load_dataset_spec, s3, dataset_uri, training_type=training_type, model_name=model_name, present=names
    )
    return bucket, manifest, spec
