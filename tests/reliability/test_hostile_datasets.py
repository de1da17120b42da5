"""No pile-up and no paths: serve's deployments run one cycle at a time; a dataset is a name.

The sensor deployment ``serve`` builds carries a concurrency limit of one with
``CANCEL_NEW``, so a cycle due while one runs is cancelled rather than started; the
retrain deployment queues four at a time, as ``deployments/prefect.yaml`` does. A key
with a ``..``, ``.`` or empty segment is an invalid dataset (an event, no retrain).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from prefect.client.schemas.objects import ConcurrencyLimitStrategy

from prefect_scenario.dataset.layout import S3Object, check_dataset_name
from prefect_scenario.exceptions import InvalidDatasetError, InvalidInputError
from prefect_scenario.retraining.decisions import DecisionKind, decide
from prefect_scenario.retraining.deployments import ServeConfig, build_deployments
from prefect_scenario.retraining.discovery import Listing
from prefect_scenario.retraining.sensor_state import SensorState

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_serve_runs_one_sensor_cycle_at_a_time() -> None:
    sensor, retrain, cron = build_deployments(ServeConfig(bucket="studio", interval_seconds=10))
    for cycle in (sensor, cron):
        options = cycle.concurrency_options
        assert cycle.concurrency_limit == 1 and options is not None, cycle.name
        assert options.collision_strategy == ConcurrencyLimitStrategy.CANCEL_NEW, cycle.name
    assert retrain.concurrency_limit == 4 and retrain.concurrency_options is None  # queued, never dropped
    assert sensor.parameters["interval_seconds"] == 10


@pytest.mark.parametrize(
    "config",
    [
        {"interval_seconds": math.nan},
        {"interval_seconds": 0},
        {"quiet_period_seconds": math.inf},
        {"min_images": 0},
        {"min_images": True},
        {"watch_interval_seconds": -1},
    ],
    ids=repr,
)
def test_serve_refuses_numbers_that_are_not_finite_or_in_range(config: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        ServeConfig(bucket="studio", **config)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "keys",
    [
        ["curated/../hero/01.png"],
        ["curated/hero/../01.png"],
        ["curated//01.png"],
        ["curated/hero/./01.png"],
        ["curated/hero//01.png"],
    ],
    ids=lambda keys: keys[0],
)
def test_a_dataset_key_that_is_a_path_is_invalid_never_ready(keys: list[str]) -> None:
    images = [S3Object(keys[0].replace("01", f"0{i}"), f"e{i}", 100) for i in range(6)]
    listing = Listing("studio", "curated/", tuple(images))
    _, decisions = decide(SensorState(bucket="studio", prefix="curated/"), listing, T0, quiet_period=0)
    assert decisions and all(d.kind is DecisionKind.INVALID for d in decisions)
    assert all(d.idempotency_key is None and "a dataset is a name" in d.message for d in decisions)


@pytest.mark.parametrize("uri", ["s3://studio/curated/../x/", "s3://studio/curated//", "s3://studio/./"])
def test_the_retrain_refuses_a_dataset_uri_that_is_a_path(uri: str) -> None:
    with pytest.raises(InvalidDatasetError, match="a dataset is a name"):
        check_dataset_name(uri)
    assert check_dataset_name("s3://studio/curated/hero/") == "s3://studio/curated/hero/"
