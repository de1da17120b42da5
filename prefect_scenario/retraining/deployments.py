"""The retraining deployments, served in one process for local use (``prefect-scenario serve``).

Three deployments, the same as ``deployments/prefect.yaml`` describes for a work pool:

- ``s3-curated-images-sensor``: the sensor on an interval schedule;
- ``retrain-from-s3``: one dataset's retrain, created by the sensor with an
  idempotency key (or, with ``event_driven``, by a trigger on ``scenario.dataset.ready``);
- ``retrain-changed-datasets``: a cron job that retrains every dataset whose content
  changed since its last trained version.

Example:
    ```python
    from prefect_scenario.retraining.deployments import ServeConfig, build_deployments
    from prefect import serve

    serve(*build_deployments(ServeConfig(bucket="studio-assets", prefix="curated/",
                                         aws_block="BLOCK_NAME", scenario_block="BLOCK_NAME")))
    ```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger

from prefect_scenario.retraining.flows import (
    EVENT_DATASET_READY,
    retrain_changed_datasets,
    retrain_from_s3,
    s3_curated_images_sensor,
)

__all__ = ["RETRAIN_DEPLOYMENT", "ServeConfig", "build_deployments"]

RETRAIN_DEPLOYMENT = "retrain-from-s3/retrain-from-s3"


@dataclass(frozen=True)
class ServeConfig:
    """What the served deployments watch and use."""

    bucket: str
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
    wait: bool = True


def build_deployments(config: ServeConfig) -> list[RunnerDeployment]:
    """The sensor, retrain and cron deployments for ``config``."""
    common: dict[str, Any] = {"aws_credentials": config.aws_block}
    sensor = s3_curated_images_sensor.to_deployment(
        name="s3-curated-images-sensor",
        interval=config.interval_seconds,
        # No deployment concurrency limit on purpose: a sensor killed mid-cycle would hold
        # the slot until its lease expires and block sensing. Overlapping cycles are safe:
        # the same decision gives the same idempotency key, hence the same run.
        parameters={
            **common,
            "bucket": config.bucket,
            "prefix": config.prefix,
            # Event-driven: the trigger below creates the run; otherwise the sensor does,
            # with an idempotency key, and the event is only a notice.
            "retrain_deployment": None if config.event_driven else RETRAIN_DEPLOYMENT,
            "mode": config.mode,
            "queue_url": config.queue_url,
            "quiet_period_seconds": config.quiet_period_seconds,
            "min_images": config.min_images,
            "training_type": config.training_type,
        },
        description="Retrain a LoRA when new curated images land in S3.",
    )
    triggers = (
        [
            DeploymentEventTrigger(
                expect={EVENT_DATASET_READY},
                parameters={
                    "dataset_uri": "{{ event.payload.dataset_uri }}",
                    "expected_manifest_digest": "{{ event.payload.manifest_digest }}",
                },
            )
        ]
        if config.event_driven
        else None
    )
    retrain = retrain_from_s3.to_deployment(
        name="retrain-from-s3",
        parameters={
            **common,
            "credentials": config.scenario_block,
            "training_type": config.training_type,
            "wait": config.wait,
        },
        triggers=triggers,  # type: ignore[arg-type]
        description="Train one S3 dataset's LoRA on its current content.",
    )
    # `to_deployment` is sync-compatible: called from sync code it returns the deployment.
    deployments: list[Any] = [sensor, retrain]
    if config.cron:
        deployments.append(
            retrain_changed_datasets.to_deployment(
                name="retrain-changed-datasets",
                cron=config.cron,
                parameters={
                    **common,
                    "bucket": config.bucket,
                    "prefix": config.prefix,
                    "credentials": config.scenario_block,
                    "training_type": config.training_type,
                    "min_images": config.min_images,
                },
                description="Retrain every dataset whose content changed since its last trained version.",
            )
        )
    return cast(list[RunnerDeployment], deployments)
