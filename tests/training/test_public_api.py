"""The public API as a user meets it: sync and async callers, hand-composed tasks, the job block, ``__all__``."""

from __future__ import annotations

import io
import types

import pytest
from PIL import Image
from prefect import flow
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite

import prefect_scenario
from prefect_scenario import (
    ScenarioTraining,
    TrainingJob,
    add_scenario_training_images,
    cancel_scenario_training,
    create_scenario_model,
    get_scenario_model,
    train_lora,
    train_lora_fleet,
    trigger_scenario_training,
    wait_for_scenario_training,
)
from scenario_emulator import EmulatorConfig, EmulatorServer
from tests.flow_fixtures import FAST_POLL, KEY, SECRET, credentials_for

pytestmark = pytest.mark.usefixtures("prefect_harness")


def png(i: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 48), ((i * 53) % 256, (i * 29) % 256, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def test_all_lists_exactly_the_public_names() -> None:
    # As httpx's tests/test_exported_members.py: nothing public is left out of __all__, nothing extra is in it.
    public = {
        name
        for name, value in vars(prefect_scenario).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    assert set(prefect_scenario.__all__) == public
    assert prefect_scenario.__all__ == sorted(prefect_scenario.__all__, key=lambda n: (not n[0].isupper(), n))
    # Spend control (issue 14): the budget block and its refusal are public.
    assert {"BudgetExceeded", "ScenarioBudget"} <= set(prefect_scenario.__all__)


def test_task_and_flow_names_say_scenario() -> None:
    checked = 0
    for name in prefect_scenario.__all__:
        value = getattr(prefect_scenario, name)
        if hasattr(value, "fn") and hasattr(value, "name"):
            assert value.name.startswith("scenario-"), name
            checked += 1
    assert checked == 17  # 4 training flows and 8 tasks, 3 retraining flows, evaluate_and_promote, render_scenario_lora


def test_a_user_sync_flow_trains_with_train_lora(fast_emulator: EmulatorServer) -> None:
    credentials = credentials_for(fast_emulator)

    @flow
    def nightly() -> str:
        result = train_lora(
            name="sync-hero", training_type="flux.2-dev-lora", images=[png(i) for i in range(5)],
            credentials=credentials, poll_policy=FAST_POLL,
        )  # fmt: skip
        return result.status

    assert nightly() == "trained"


def test_a_plain_script_gets_the_result_not_a_coroutine(fast_emulator: EmulatorServer) -> None:
    result = train_lora(
        name="script-hero", training_type="flux.2-dev-lora", images=[png(i + 10) for i in range(5)],
        credentials=credentials_for(fast_emulator), poll_policy=FAST_POLL,
    )  # fmt: skip
    assert result.status == "trained" and result.model_id.startswith("model_")


async def test_a_user_async_flow_awaits_train_lora(fast_emulator: EmulatorServer) -> None:
    credentials = credentials_for(fast_emulator)

    @flow
    async def nightly() -> str:
        result = await train_lora(
            name="async-hero", training_type="flux.2-dev-lora", images=[png(i + 20) for i in range(5)],
            credentials=credentials, poll_policy=FAST_POLL,
        )  # fmt: skip
        return result.status

    assert await nightly() == "trained"


def test_tasks_composed_by_hand_in_a_sync_flow(fast_emulator: EmulatorServer) -> None:
    credentials = credentials_for(fast_emulator)

    @flow
    def by_hand() -> tuple[str, str, int]:
        model = create_scenario_model(credentials, "hand-sync", "flux.2-dev-lora")
        again = create_scenario_model(credentials, "hand-sync", "flux.2-dev-lora")  # same run: same model
        ids = add_scenario_training_images(credentials, model.id, [png(i + 30) for i in range(5)])
        add_scenario_training_images(credentials, model.id, [png(i + 30) for i in range(5)])  # nothing twice
        trigger_scenario_training(credentials, model.id)
        final = wait_for_scenario_training(credentials, model.id, poll_policy=FAST_POLL)
        assert again.id == model.id and len(ids) == 5
        return final.status, get_scenario_model(credentials, model.id).status, final.training_images_number

    assert by_hand() == ("trained", "trained", 5)
    assert sum(1 for r in fast_emulator.requests() if r["method"] == "POST" and r["path"].endswith("/models")) == 1
    trains = [r for r in fast_emulator.requests() if r["method"] == "PUT" and r["path"].endswith("/train")]
    assert len(trains) == 1


async def test_tasks_composed_by_hand_in_an_async_flow() -> None:
    # Trainings of 600 s: the cancel always finds it training, however busy the machine.
    config = EmulatorConfig(api_key=KEY, api_secret=SECRET, queue_seconds=0.05, start_seconds=0.05, train_seconds=600)
    with EmulatorServer(config) as emulator:
        assert await _cancel_by_hand(credentials_for(emulator, timeout=5.0)) == "training-canceled"


async def _cancel_by_hand(credentials: prefect_scenario.ScenarioCredentials) -> str:

    @flow
    async def by_hand() -> str:
        model = await create_scenario_model(credentials, "hand-async", "flux.2-dev-lora")
        await add_scenario_training_images(credentials, model.id, [png(i + 40) for i in range(5)])
        await trigger_scenario_training(credentials, model.id)
        canceled = await cancel_scenario_training(credentials, model.id)
        return canceled.status

    return await by_hand()


def test_a_fleet_takes_typed_jobs(fast_emulator: EmulatorServer) -> None:
    jobs = [
        TrainingJob(name=f"fleet-{i}", training_type="flux.2-klein-4b-lora", images=[png(50 + i)]) for i in range(3)
    ]
    results = train_lora_fleet(jobs=jobs, credentials=credentials_for(fast_emulator), poll_policy=FAST_POLL)
    assert [r.status for r in results] == ["trained"] * 3


class TestScenarioTrainingStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return ScenarioTraining

    def test_has_a_valid_image(self, block: type[Block]) -> None:
        # No logo URL until the project has a public home (tests/test_blocks.py checks the file).
        assert block._logo_url is None


def test_the_job_block_trains_through_trigger_wait_and_fetch(fast_emulator: EmulatorServer) -> None:
    training = ScenarioTraining(
        credentials=credentials_for(fast_emulator), name="block-hero", training_type="flux.2-dev-lora",
        images=[], timeout_seconds=60,
    )  # fmt: skip
    training.images = _files(5)
    run = training.trigger()
    run.poll_policy = FAST_POLL
    run.wait_for_completion()
    result = run.fetch_result()
    assert result.status == "trained" and result.images == 5


async def test_the_job_block_from_async_code(fast_emulator: EmulatorServer) -> None:
    training = ScenarioTraining(
        credentials=credentials_for(fast_emulator), name="block-async", training_type="flux.2-dev-lora",
        images=_files(5, offset=60),
    )  # fmt: skip
    run = await training.trigger()
    run.poll_policy = FAST_POLL
    await run.wait_for_completion()
    assert (await run.fetch_result()).status == "trained"


def _files(n: int, offset: int = 0) -> list[str]:
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="psc-block-"))
    paths = []
    for i in range(n):
        path = folder / f"{i}.png"
        path.write_bytes(png(offset + i + 70))
        paths.append(str(path))
    return paths
