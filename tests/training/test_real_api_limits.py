"""What the real API does that a kind emulator would not (reference §14), over a real socket.

Plan ceilings, a cooldown between launches, a dataset score that is not offered, error
bodies under ``reason``: each is on in the emulator here, and the flows must still train,
wait politely, or fail at once with an error that says what to do, before a credit is spent.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from prefect_scenario import TrainingJob, train_lora, train_lora_fleet
from prefect_scenario import exceptions as exc
from prefect_scenario.api.client import ScenarioClient
from scenario_emulator import EmulatorApp, EmulatorConfig, EmulatorServer
from tests.emulator_fixtures import EMULATOR_KEY, EMULATOR_SECRET
from tests.flow_fixtures import FAST_POLL, KEY, SECRET, credentials_for

pytestmark = pytest.mark.usefixtures("prefect_harness")
POLITE_BUT_FAST = replace(FAST_POLL, slot_check=0.1)


def png(i: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), ((i * 61) % 256, (i * 17) % 256, 140)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def limited_emulator() -> Iterator[EmulatorServer]:
    config = EmulatorConfig(
        api_key=KEY, api_secret=SECRET, queue_seconds=0.05, start_seconds=0.05, train_seconds=0.3, queue_position=0
    )
    with EmulatorServer(config) as server:
        yield server


def calls(server: EmulatorServer, method: str, suffix: str, status: int | None = None) -> list[dict[str, object]]:
    return [
        r
        for r in server.requests()
        if r["method"] == method and str(r["path"]).endswith(suffix) and (status is None or r["status"] == status)
    ]


async def test_an_error_carries_the_reason_text_and_the_trace_id(limited_emulator: EmulatorServer) -> None:
    async with ScenarioClient(api_key=KEY, api_secret=SECRET, project_id="p", base_url=limited_emulator.base_url) as c:
        with pytest.raises(exc.NotFoundError) as raised:
            await c.get_model("model_missing")
    assert "Model model_missing not found" in str(raised.value)
    assert raised.value.trace_id and raised.value.trace_id in str(raised.value)
    assert len(limited_emulator.requests()) == 1  # a 404 is final


async def test_a_plan_limit_is_not_retried(limited_emulator: EmulatorServer) -> None:
    limited_emulator.set_limits(parallel_trainings=0)
    async with ScenarioClient(api_key=KEY, api_secret=SECRET, project_id="p", base_url=limited_emulator.base_url) as c:
        model = await c.create_model(name="m", training_type="flux.2-dev-lora")
        await c.add_training_image(model.id, name="a.png", data=png(1), mime_type="image/png")
        with pytest.raises(exc.PlanLimitError) as raised:
            await c.train(model.id)
    assert (raised.value.action_name, raised.value.action_limit) == ("parallel-training", 0)
    assert len(calls(limited_emulator, "PUT", "/train")) == 1


async def test_a_cost_only_dry_run_is_an_estimate(limited_emulator: EmulatorServer) -> None:
    async with ScenarioClient(api_key=KEY, api_secret=SECRET, project_id="p", base_url=limited_emulator.base_url) as c:
        model = await c.create_model(name="m", training_type="flux.2-dev-lora")
        await c.add_training_image(model.id, name="a.png", data=png(2), mime_type="image/png")
        estimate = await c.estimate_training_cost(model.id)
        answer = await c.train(model.id)
    assert estimate.creative_units_cost == answer.creative_units_cost and estimate.creative_units_cost


@pytest.mark.e2e  # 20 trainings through 2 slots: about a minute (`make check` skips it)
def test_a_fleet_of_20_on_a_plan_of_2_trains_all_20(limited_emulator: EmulatorServer) -> None:
    limited_emulator.set_limits(parallel_trainings=2)
    jobs = [
        TrainingJob(name=f"plan-{i:02d}", training_type="flux.2-klein-4b-lora", images=[png(100 + i)])
        for i in range(20)
    ]
    state = train_lora_fleet(
        jobs=jobs, credentials=credentials_for(limited_emulator), poll_policy=POLITE_BUT_FAST, return_state=True
    )
    results = state.result()
    assert [r.status for r in results] == ["trained"] * 20

    async def failed_task_runs() -> int:
        async with get_client() as prefect:
            runs = await prefect.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
            )
        return sum(1 for r in runs if r.state is not None and r.state.is_failed())

    assert asyncio.run(failed_task_runs()) == 0
    started = calls(limited_emulator, "PUT", "/train", status=200)
    refused = calls(limited_emulator, "PUT", "/train", status=429)
    assert len(started) == 20
    # Polite: a refused trigger looks again every slot_check seconds, not in a busy loop.
    assert len(refused) < 20 * 40


async def test_a_cooldown_is_waited_out_before_the_next_trigger(emulator_app: EmulatorApp) -> None:
    # The emulator's clock is moved by the client's sleep: the wait is the body's remainingSeconds, not a guess.
    emulator_app.set_limits(trigger_cooldown=30)
    sleeps: list[float] = []

    async def advance(seconds: float) -> None:
        sleeps.append(seconds)
        emulator_app.advance_clock(seconds)

    client = ScenarioClient(
        api_key=EMULATOR_KEY, api_secret=EMULATOR_SECRET, project_id="p", base_url="http://127.0.0.1/v1",
        transport=httpx.ASGITransport(app=emulator_app), sleep=advance,
    )  # fmt: skip
    async with client:
        models = [await client.create_model(name=f"cool-{i}", training_type="flux.2-dev-lora") for i in range(2)]
        for i, model in enumerate(models):
            await client.add_training_image(model.id, name="a.png", data=png(50 + i), mime_type="image/png")
        await client.train(models[0].id)
        await client.train(models[1].id)
    trains = [r for r in emulator_app.requests() if r["method"] == "PUT" and str(r["path"]).endswith("/train")]
    assert [r["status"] for r in trains] == [200, 429, 200]
    assert sleeps == [pytest.approx(30.0, abs=0.01)]
    assert float(trains[2]["time"]) - float(trains[0]["time"]) >= 30.0


def test_a_dataset_over_the_team_ceiling_fails_at_once_and_triggers_nothing(limited_emulator: EmulatorServer) -> None:
    limited_emulator.set_limits(team_image_cap=3)
    with pytest.raises(exc.PlanLimitError, match=r"dataset ceiling.*limit 3.*trim the dataset or raise the plan"):
        train_lora(name="too-big", training_type="flux.2-dev-lora", images=[png(10 + i) for i in range(6)],
                   credentials=credentials_for(limited_emulator), poll_policy=FAST_POLL)  # fmt: skip
    adds = calls(limited_emulator, "POST", "/training-images")
    assert len(adds) <= 6, "at most one attempt per image"
    assert not calls(limited_emulator, "PUT", "/train")


def test_an_unavailable_dataset_score_is_advisory(tmp_path: object) -> None:
    config = EmulatorConfig(api_key=KEY, api_secret=SECRET, queue_seconds=0.05, start_seconds=0.05,
                            train_seconds=0.2, queue_position=0, dataset_score_available=False)  # fmt: skip
    with EmulatorServer(config) as server:
        result = train_lora(name="no-score", training_type="flux.2-dev-lora", images=[png(i + 30) for i in range(3)],
                            credentials=credentials_for(server), poll_policy=FAST_POLL)  # fmt: skip
        assert result.status == "trained" and result.dataset_score is None
        with pytest.raises(exc.DatasetRejected, match="unavailable"):
            train_lora(name="needs-score", training_type="flux.2-dev-lora", images=[png(i + 40) for i in range(3)],
                       credentials=credentials_for(server), poll_policy=FAST_POLL, min_dataset_score=0.5)  # fmt: skip
        assert len(calls(server, "PUT", "/train", status=200)) == 1  # the second run spent nothing (no trigger)
        assert len(calls(server, "PUT", "/train", status=269)) == 1  # the first run's cost estimate (dry run)
