"""The sensor stopped at its two dangerous points still retrains each batch exactly once.

The sensor keeps nothing in memory between cycles: its state is an object in the bucket and
the runs live on the Prefect server. A process killed at a point leaves exactly what an
exception raised at that point leaves, so the crash is injected as one, at each point:

- between listing and run creation (nothing created, nothing saved);
- between run creation and the state commit (the run exists, the state does not know).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

from prefect_scenario.retraining import flows, tasks
from prefect_scenario.retraining.flows import retrain_from_s3, s3_curated_images_sensor
from tests.retraining.test_flows import aws_for, put_images
from tests.s3_fixtures import make_bucket

pytestmark = pytest.mark.usefixtures("prefect_harness")


class Killed(Exception):
    pass


@pytest.fixture
def retrain_deployment() -> Iterator[str]:
    yield "scenario-retrain-from-s3/crash-test"


async def retrain_runs(name: str) -> list[Any]:
    async with get_client() as prefect:
        return await prefect.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name.split("/")[1]]))
        )


async def cycle(aws: Any, deployment: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await s3_curated_images_sensor(
        bucket="studio-assets", prefix="curated/", aws_credentials=aws, retrain_deployment=deployment,
        emit_ready_event=False, quiet_period_seconds=0, min_images=5,
    )  # fmt: skip
    return result


@pytest.mark.parametrize("crash_point", ["before-run-creation", "before-state-commit"])
async def test_a_killed_sensor_retrains_each_batch_exactly_once(
    crash_point: str, s3_client: Any, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, retrain_deployment: str
) -> None:
    name = f"{retrain_deployment}-{crash_point}"
    await (await retrain_from_s3.to_deployment(name=name.split("/")[1])).apply()
    make_bucket(s3_client)
    aws = aws_for(moto_endpoint)
    # Distinct content per case: Prefect keeps idempotency keys per flow for the whole session.
    seeds = range(6) if crash_point == "before-run-creation" else range(40, 46)
    put_images(s3_client, "studio-assets", "curated/hero/", seeds)

    if crash_point == "before-run-creation":

        async def killed_run_deployment(*args: Any, **kwargs: Any) -> Any:
            raise Killed

        monkeypatch.setattr(tasks, "run_deployment", killed_run_deployment)
    else:

        def killed_write(*args: Any) -> None:
            raise Killed

        monkeypatch.setattr(flows, "write_sensor_state", killed_write)
    with pytest.raises(Killed):
        await cycle(aws, name)
    created_before_restart = len(await retrain_runs(name))
    assert created_before_restart == (0 if crash_point == "before-run-creation" else 1)

    monkeypatch.undo()  # the restarted sensor
    decided = await cycle(aws, name)
    assert [d["kind"] for d in decided] == ["ready"]
    runs = await retrain_runs(name)
    assert len(runs) == 1, "the batch must have exactly one retrain run"
    assert decided[0]["run_id"] == str(runs[0].id)
    assert await cycle(aws, name) == []  # the batch is done: no more decisions
    assert len(await retrain_runs(name)) == 1
