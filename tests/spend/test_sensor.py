"""The S3 sensor under a budget: an over-budget dataset is skipped with an event, not failed, and not looped on."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL

from prefect_scenario.exceptions import ConfigurationError
from prefect_scenario.retraining.flows import retrain_from_s3
from prefect_scenario.spend.block import ScenarioBudget
from prefect_scenario.spend.sensor import EVENT_BUDGET_EXCEEDED
from scenario_emulator import EmulatorServer
from tests.flow_fixtures import FAST_POLL, credentials_for
from tests.prefect_api import arequest
from tests.retraining.test_flows import aws_for, cycle, put_images
from tests.s3_fixtures import make_bucket

pytestmark = pytest.mark.usefixtures("prefect_harness")

HERO = "s3://studio-assets/curated/hero/"


async def budget_events(dataset: str) -> list[dict[str, Any]]:
    response = await arequest(
        "POST", f"{PREFECT_API_URL.value()}/events/filter",
        json={"filter": {"event": {"name": [EVENT_BUDGET_EXCEEDED]}, "resource": {"id": [f"s3.dataset.{dataset}"]}},
              "limit": 50},
    )  # fmt: skip
    events: list[dict[str, Any]] = response.json()["events"]
    return events


async def test_an_over_budget_dataset_is_skipped_with_one_event_and_stays_pending(
    s3_client: Any, moto_endpoint: str, fast_emulator: EmulatorServer
) -> None:
    make_bucket(s3_client)
    aws = aws_for(moto_endpoint)
    proj = f"proj_{uuid.uuid4().hex[:10]}"
    budget = ScenarioBudget(per_dataset=200, project_id=proj)
    put_images(s3_client, "studio-assets", "curated/hero/", range(5))
    sidecar = {"type": "flux.2-dev-lora", "parameters": {"nbEpochs": 2}}  # 5 images, 2 epochs: 104 units
    s3_client.put_object(Bucket="studio-assets", Key="curated/hero/scenario.json", Body=json.dumps(sidecar))
    [first] = await cycle(aws, budget=budget)
    assert first["kind"] == "ready"
    creds = credentials_for(fast_emulator, project_id=proj)
    trained = await retrain_from_s3(HERO, aws_credentials=aws, credentials=creds, poll_policy=FAST_POLL, budget=budget)
    assert trained.status == "trained" and trained.creative_units_cost == 104

    put_images(s3_client, "studio-assets", "curated/hero/", range(5, 7))
    for _ in range(2):  # a second cycle sees it again, still over budget: no run, no second event
        [skipped] = await cycle(aws, budget=budget)
        assert skipped["kind"] == "over-budget" and skipped["run_id"] is None
        assert "per_dataset=200" in skipped["message"] and "104 spent" in skipped["message"]
    events: list[dict[str, Any]] = []
    for _ in range(40):  # events are written asynchronously by the server
        events = await budget_events(HERO)
        if events:
            break
        await asyncio.sleep(0.25)
    assert len(events) == 1 and events[0]["payload"]["limit"] == "per_dataset"
    assert events[0]["payload"]["spent"] == 104

    # Once the budget allows it (here: raised), the pending dataset is ready again.
    [ready] = await cycle(aws, budget=ScenarioBudget(per_dataset=400, project_id=proj))
    assert ready["kind"] == "ready"


async def test_a_bad_budget_fails_the_sensor_before_any_request(s3_client: Any, moto_endpoint: str) -> None:
    make_bucket(s3_client)
    with pytest.raises(ConfigurationError, match="no ScenarioBudget block named"):
        await cycle(aws_for(moto_endpoint), budget="no-such-budget")
