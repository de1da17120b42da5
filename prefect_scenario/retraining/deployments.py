"""The deployments ``prefect-scenario serve`` serves in one process for local use.

The same as ``deployments/prefect.yaml`` describes for a work pool:

- no watcher deployment: the training watcher, which resumes the runs suspended by
  ``wait="suspend"`` once their trainings end, is a loop in the serving process
  (:mod:`prefect_scenario.waiting.service`, a thread beside the served flows, every
  ``watch_interval_seconds``), not a flow run per cycle; without a bucket it is all that runs;

- ``scenario-s3-curated-images-sensor/s3-curated-images-sensor``: the sensor on an
  interval schedule;
- ``scenario-retrain-from-s3/retrain-from-s3``: one dataset's retrain, created by the
  sensor with an idempotency key (or, with ``event_driven``, by a trigger on
  ``scenario.dataset.ready``);
- ``scenario-retrain-changed-datasets/retrain-changed-datasets``: a cron job that retrains
  every dataset whose content changed since its last trained version.

Saved blocks are passed by reference, ``{"$ref": {"block_document_slug": "<type>/<name>"}}``:
Prefect validates a block-typed flow parameter as the block itself, so a bare block name
cannot pass, while a reference is resolved by the flow's ``validate_parameters`` when the
run starts (the same form the UI stores when a block is picked) and keeps the secrets out
of the deployment's parameters. The server's parameter-schema check is turned off for
these deployments: it validates a block parameter against ``oneOf`` [the block's schema,
a ``$ref`` object], and ``AwsCredentials`` (every field optional, extra fields allowed)
matches both, so Prefect refuses a valid reference. The flow still validates every
parameter when the run starts.

Example:
    ```python
    from prefect_scenario.retraining.deployments import ServeConfig, build_deployments
    from prefect import serve

    serve(*build_deployments(ServeConfig(bucket="studio-assets", prefix="curated/",
                                         aws_block="BLOCK_NAME", scenario_block="BLOCK_NAME")))
    ```
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from prefect import serve as prefect_serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger

from prefect_scenario.credentials import resolve_credentials
from prefect_scenario.exceptions import ConfigurationError
from prefect_scenario.retraining.flows import (
    EVENT_DATASET_READY,
    RETRAIN_DEPLOYMENT,
    retrain_changed_datasets,
    retrain_from_s3,
    s3_curated_images_sensor,
)
from prefect_scenario.validation import finite, positive_int, positive_seconds
from prefect_scenario.waiting.service import start_watch_thread
from prefect_scenario.waiting.suspension import WaitMode
from prefect_scenario.waiting.watcher import DEFAULT_WATCH_INTERVAL

__all__ = [
    "ONE_CYCLE_AT_A_TIME",
    "RETRAIN_CONCURRENCY",
    "RETRAIN_DEPLOYMENT",
    "ServeConfig",
    "block_reference",
    "build_deployments",
    "serve_all",
]

_CHECK_PARAMETER_SCHEMA = False  # see the module docstring: AwsCredentials references
# One cycle at a time: a schedule's next run that finds the slot taken is cancelled, not queued,
# so a slow cycle (a busy host, a stalled S3) never piles runs up (Prefect's deployment
# concurrency, docs "Deployments > concurrency_limit", collision_strategy CANCEL_NEW).
ONE_CYCLE_AT_A_TIME = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)
# As deployments/prefect.yaml: retrains queue (none is dropped), four at a time.
RETRAIN_CONCURRENCY = 4


def block_reference(block_type_slug: str, name: str | None) -> dict[str, Any] | None:
    """A deployment parameter that names a saved block; None (the environment) for no name.

    Example:
        >>> block_reference("aws-credentials", "curated-s3")
        {'$ref': {'block_document_slug': 'aws-credentials/curated-s3'}}
    """
    return {"$ref": {"block_document_slug": f"{block_type_slug}/{name}"}} if name else None


@dataclass(frozen=True)
class ServeConfig:
    """What the served deployments watch and use."""

    bucket: str | None = None
    prefix: str = ""
    aws_block: str | None = None
    scenario_block: str | None = None
    interval_seconds: float = 60.0
    quiet_period_seconds: float = 120.0
    min_images: int = 5
    training_type: str | None = None
    cron: str | None = "0 3 * * *"
    event_driven: bool = False
    mode: str = "list"
    queue_url: str | None = None
    wait: WaitMode = "poll"
    ignore_sidecar_edits: bool = False
    # Seconds between the in-process watcher's cycles (0 or None: no watcher in this process).
    watch_interval_seconds: float | None = DEFAULT_WATCH_INTERVAL

    def __post_init__(self) -> None:
        """Every number finite and in range (``--interval nan`` would schedule nothing sane).

        Raises:
            InvalidInputError: a bad interval, quiet period, image count or watch interval.
        """
        positive_seconds("--interval", self.interval_seconds)
        finite("--quiet-period", self.quiet_period_seconds, minimum=0)
        positive_int("--min-images", self.min_images)
        if self.watch_interval_seconds is not None:
            finite("--watch-interval", self.watch_interval_seconds, minimum=0)


def serve_all(config: ServeConfig, serve: Callable[..., object] = prefect_serve) -> None:
    """Serve :func:`build_deployments` and run the training watcher's loop beside them, in this process.

    The watcher is a daemon thread (no flow run, no schedule): it ends with the process and,
    Prefect being its only state, loses nothing when killed. Without a bucket it is all that runs.

    Raises:
        ConfigurationError: nothing to serve (no bucket and a watch interval of 0).
    """
    deployments = build_deployments(config)
    interval = config.watch_interval_seconds
    if not deployments and not interval:
        raise ConfigurationError("nothing to serve: give --bucket, or a --watch-interval above 0")
    watcher = None
    if interval:
        # Resolved here, so missing credentials stop the command instead of only the thread.
        credentials = asyncio.run(resolve_credentials(config.scenario_block))
        watcher = start_watch_thread(credentials, interval=interval)
    if deployments:
        serve(*deployments)
    elif watcher is not None:
        watcher.join()


def build_deployments(config: ServeConfig) -> list[RunnerDeployment]:
    """With a bucket, the sensor, retrain and cron deployments for ``config`` (the watcher is no deployment)."""
    if config.bucket is None:
        return []
    aws = {"aws_credentials": block_reference("aws-credentials", config.aws_block)}
    both = {**aws, "credentials": block_reference("scenario-credentials", config.scenario_block)}
    watched = {"bucket": config.bucket, "prefix": config.prefix, "ignore_sidecar_edits": config.ignore_sidecar_edits}
    sensor = s3_curated_images_sensor.to_deployment(
        name="s3-curated-images-sensor",
        interval=config.interval_seconds,
        # One cycle at a time. Overlapping cycles were safe (the same decision gives the same
        # idempotency key, hence the same run) but not cheap: on a busy host each late cycle
        # started another process. A cycle killed mid-way holds the slot until its lease
        # expires; sensing resumes then.
        concurrency_limit=ONE_CYCLE_AT_A_TIME,
        parameters={
            **aws,
            **watched,
            "mode": config.mode,
            "queue_url": config.queue_url,
            # Event-driven: the trigger below creates the run; otherwise the sensor does,
            # with an idempotency key, and the event is only a notice.
            "retrain_deployment": None if config.event_driven else RETRAIN_DEPLOYMENT,
            "quiet_period_seconds": config.quiet_period_seconds,
            "min_images": config.min_images,
            "training_type": config.training_type,
            "interval_seconds": config.interval_seconds,
        },
        description="Retrain a LoRA when new curated images land in S3.",
        enforce_parameter_schema=_CHECK_PARAMETER_SCHEMA,
    )
    retrain = retrain_from_s3.to_deployment(
        name=RETRAIN_DEPLOYMENT.split("/")[1],
        parameters={
            **both,
            "training_type": config.training_type,
            "wait": config.wait,
            "ignore_sidecar_edits": config.ignore_sidecar_edits,
        },
        triggers=_ready_trigger() if config.event_driven else None,  # type: ignore[arg-type]
        concurrency_limit=RETRAIN_CONCURRENCY,
        description="Train one S3 dataset's LoRA on its current content.",
        enforce_parameter_schema=_CHECK_PARAMETER_SCHEMA,
    )
    # `to_deployment` is sync-compatible: called from sync code it returns the deployment.
    deployments: list[Any] = [sensor, retrain]
    if config.cron:
        deployments.append(
            retrain_changed_datasets.to_deployment(
                name="retrain-changed-datasets",
                cron=config.cron,
                concurrency_limit=ONE_CYCLE_AT_A_TIME,
                parameters={**both, **watched, "training_type": config.training_type, "min_images": config.min_images},
                description="Retrain every dataset whose content changed since its last trained version.",
                enforce_parameter_schema=_CHECK_PARAMETER_SCHEMA,
            )
        )
    return cast(list[RunnerDeployment], deployments)


def _ready_trigger() -> list[DeploymentEventTrigger]:
    """A retrain run per ``scenario.dataset.ready`` event, for the dataset and digest it names."""
    return [
        DeploymentEventTrigger(
            expect={EVENT_DATASET_READY},
            parameters={
                "dataset_uri": "{{ event.payload.dataset_uri }}",
                "expected_manifest_digest": "{{ event.payload.manifest_digest }}",
            },
        )
    ]
