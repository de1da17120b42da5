"""The training watcher: its pure decision, and its cycles against Prefect (ephemeral) and the emulator.

The suspended runs here are real flow runs of a real deployment, put in Prefect's
``Suspended`` state as ``suspend_flow_run`` leaves them; the end-to-end test with workers
(``tests/e2e/test_suspend_e2e.py``) suspends them for real.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelling, Suspended

from prefect_scenario.api.models import Model
from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.tags import WAITING_TAG
from prefect_scenario.waiting.suspension import WaitRecord
from prefect_scenario.waiting.watcher import Action, WaitingRun, decide, settle_model, watch_once
from scenario_emulator import EmulatorConfig, EmulatorServer
from tests.flow_fixtures import KEY, SECRET, credentials_for

pytestmark = pytest.mark.usefixtures("prefect_harness")

NOW = 1_000_000.0


def run_of(*model_ids: str, state: str = "PAUSED", deadline: float = NOW + 600) -> WaitingRun:
    record = WaitRecord(model_ids=model_ids, keys=(), deadline=deadline)
    return WaitingRun(id="r", name="run", state=state, record=record)


def models(**statuses: str) -> dict[str, Model]:
    return {i: Model(id=i, status=s) for i, s in statuses.items()}


@pytest.mark.parametrize(
    ("run", "seen", "action", "cancel"),
    [
        pytest.param(run_of("a"), models(a="training"), Action.WAIT, (), id="still-training-waits"),
        pytest.param(run_of("a"), models(a="trained"), Action.RESUME, (), id="trained-resumes"),
        pytest.param(run_of("a"), models(a="failed"), Action.RESUME, (), id="failed-resumes"),
        pytest.param(run_of("a"), models(a="training-canceled"), Action.RESUME, (), id="canceled-resumes"),
        pytest.param(run_of("a"), {}, Action.RESUME, (), id="gone-resumes-so-the-run-reports-it"),
        pytest.param(run_of("a", "b"), models(a="trained", b="training"), Action.WAIT, (), id="fleet-waits-for-all"),
        pytest.param(run_of("a", "b"), models(a="trained", b="failed"), Action.RESUME, (), id="fleet-all-ended"),
        pytest.param(run_of("a", deadline=NOW), models(a="training"), Action.TIME_OUT, ("a",), id="deadline-cancels"),
        pytest.param(
            run_of("a", deadline=NOW - 1), models(a="trained"), Action.RESUME, (), id="ended-before-deadline-seen"
        ),
        pytest.param(
            run_of("a", state="CANCELLING"), models(a="training"), Action.CANCEL_REMOTE, ("a",), id="cancelled-run"
        ),
        pytest.param(run_of("a", state="FAILED"), models(a="training"), Action.CANCEL_REMOTE, ("a",), id="expired"),
        pytest.param(run_of("a", state="CANCELLED"), models(a="training-canceled"), Action.FORGET, (), id="settled"),
    ],
)
def test_decide(run: WaitingRun, seen: dict[str, Model], action: Action, cancel: tuple[str, ...]) -> None:
    decision = decide(run, seen, NOW)
    assert (decision.action, decision.cancel) == (action, cancel)
    assert decision.reason


@flow(name="suspend-placeholder")
def placeholder() -> None:
    """Only its deployment is used: Prefect reschedules a suspended run only for a deployment."""


@pytest.fixture
async def prefect() -> AsyncIterator[PrefectClient]:
    async with get_client() as client:
        yield client


async def suspended_run(prefect: PrefectClient, record: WaitRecord, extra_tags: tuple[str, ...] = ()) -> UUID:
    flow_id = await prefect.create_flow_from_name("suspend-placeholder")
    deployment_id = await prefect.create_deployment(flow_id=flow_id, name="placeholder", entrypoint="x.py:placeholder")
    run = await prefect.create_flow_run_from_deployment(deployment_id, tags=[*record.tags(), *extra_tags])
    await prefect.set_flow_run_state(run.id, Suspended(timeout_seconds=3600, pause_key="p"), force=True)
    return run.id


async def state_of(prefect: PrefectClient, run_id: UUID) -> tuple[StateType, list[str]]:
    run = await prefect.read_flow_run(run_id)
    assert run.state is not None
    return run.state.type, list(run.tags)


async def start_training(creds: ScenarioCredentials, name: str = "hero") -> str:
    async with creds.get_client() as client:
        model = await client.create_model(name=name, training_type="flux.2-dev-lora")
        for i in range(3):
            await client.add_training_image(model.id, name=f"{i}.png", data=_png(i), mime_type="image/png")
        await client.train(model.id, None)
        return model.id


def _png(i: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (i * 40, 90, 120)).save(buffer, "PNG")
    return buffer.getvalue()


def bulk_reads(server: EmulatorServer) -> int:
    return len([r for r in server.requests() if r["path"].endswith("/models/get-bulk")])


@pytest.fixture
def slow_emulator() -> Any:
    """Trainings that outlast a watcher cycle, so waiting is seen before the end."""
    config = EmulatorConfig(api_key=KEY, api_secret=SECRET, queue_seconds=0.05, start_seconds=0.05, train_seconds=600)
    with EmulatorServer(config) as server:
        yield server


async def test_a_cycle_waits_then_resumes_once_the_training_ended(
    prefect: PrefectClient, slow_emulator: EmulatorServer
) -> None:
    creds = credentials_for(slow_emulator)
    model_id = await start_training(creds)
    run_id = await suspended_run(prefect, WaitRecord(model_ids=(model_id,), keys=("k1",), deadline=time.time() + 600))
    slow_emulator.app.clear_requests()

    report = await watch_once(creds)
    assert report.waiting >= 1 and str(run_id) not in report.resumed
    assert (await state_of(prefect, run_id))[0] is StateType.PAUSED
    assert bulk_reads(slow_emulator) == 1 == report.bulk_requests

    slow_emulator.advance_clock(601)  # the training ends
    report = await watch_once(creds)
    assert str(run_id) in report.resumed
    state, tags = await state_of(prefect, run_id)
    assert state is StateType.SCHEDULED and WAITING_TAG in tags  # the resumed run drops the tag itself
    # Resumed once: the next cycle no longer sees it as suspended.
    again = await watch_once(creds)
    assert str(run_id) not in again.resumed


async def test_a_run_past_its_deadline_gets_its_training_cancelled_then_resumed(
    prefect: PrefectClient, slow_emulator: EmulatorServer
) -> None:
    creds = credentials_for(slow_emulator)
    model_id = await start_training(creds, "late")
    run_id = await suspended_run(prefect, WaitRecord(model_ids=(model_id,), keys=(), deadline=time.time() - 1))
    report = await watch_once(creds)
    assert model_id in report.cancelled_trainings and str(run_id) in report.timed_out
    async with creds.get_client() as client:
        assert (await client.get_model(model_id)).status == "training-canceled"
    assert (await state_of(prefect, run_id))[0] is StateType.SCHEDULED


async def test_cancelling_a_suspended_run_cancels_its_training(
    prefect: PrefectClient, slow_emulator: EmulatorServer
) -> None:
    creds = credentials_for(slow_emulator)
    model_id = await start_training(creds, "dropped")
    run_id = await suspended_run(prefect, WaitRecord(model_ids=(model_id,), keys=(), deadline=time.time() + 600))
    await prefect.set_flow_run_state(run_id, Cancelling(), force=True)
    report = await watch_once(creds)
    assert model_id in report.cancelled_trainings and str(run_id) in report.forgotten
    state, tags = await state_of(prefect, run_id)
    assert state is StateType.CANCELLED and WAITING_TAG not in tags
    async with creds.get_client() as client:
        assert (await client.get_model(model_id)).status == "training-canceled"
    # Forgotten: the next cycle neither reads it nor cancels again.
    assert str(run_id) not in (await watch_once(creds)).forgotten


async def test_a_hint_about_a_model_nobody_waits_for_costs_no_request(
    prefect: PrefectClient, slow_emulator: EmulatorServer
) -> None:
    creds = credentials_for(slow_emulator)
    slow_emulator.app.clear_requests()
    report = await settle_model("model_nobody_waits_for", creds)
    assert report.waiting == 0 and report.bulk_requests == 0
    assert slow_emulator.requests() == []


async def test_a_hint_resumes_the_run_of_its_model_once(prefect: PrefectClient, slow_emulator: EmulatorServer) -> None:
    creds = credentials_for(slow_emulator)
    model_id = await start_training(creds, "hinted")
    run_id = await suspended_run(prefect, WaitRecord(model_ids=(model_id,), keys=(), deadline=time.time() + 600))
    assert (await settle_model(model_id, creds)).resumed == []  # still training: a forged "completed" changes nothing
    slow_emulator.advance_clock(601)
    slow_emulator.app.clear_requests()
    assert (await settle_model(model_id, creds)).resumed == [str(run_id)]
    assert bulk_reads(slow_emulator) == 1
    # A replayed delivery: the run is no longer suspended, so nothing is read or resumed.
    slow_emulator.app.clear_requests()
    assert (await settle_model(model_id, creds)).resumed == []
    assert slow_emulator.requests() == []


async def test_one_bulk_request_per_fifty_waiting_models(prefect: PrefectClient, slow_emulator: EmulatorServer) -> None:
    creds = credentials_for(slow_emulator)
    model_ids = [await start_training(creds, f"m{i}") for i in range(3)]
    # 60 waiting runs over 3 real models and 57 that no longer exist (404 in bulk: simply absent).
    ids = model_ids + [f"model_gone{i}" for i in range(57)]
    for model_id in ids:
        await suspended_run(prefect, WaitRecord(model_ids=(model_id,), keys=(), deadline=time.time() + 600))
    slow_emulator.app.clear_requests()
    report = await watch_once(creds)
    assert report.waiting >= 60
    assert bulk_reads(slow_emulator) == report.bulk_requests == 2
