"""A fleet on a plan of a few concurrent trainings fills a freed slot at once, not on the slot timer."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator

import pytest

from prefect_scenario.api.models import Model
from prefect_scenario.training.fleet import TrainingJob, train_lora_fleet
from prefect_scenario.waiting.polling import PollPolicy
from prefect_scenario.waiting.slots import SlotWatch
from scenario_emulator import EmulatorConfig, EmulatorServer
from tests.flow_fixtures import FAST_POLL, KEY, SECRET, credentials_for
from tests.spend.test_flows import images, project

pytestmark = pytest.mark.usefixtures("prefect_harness")


class Bulk:
    """A get-bulk that answers the statuses the test sets."""

    def __init__(self) -> None:
        self.status: dict[str, str] = {}
        self.reads = 0

    async def get_models_bulk(self, ids: list[str], chunk: int = 50) -> list[Model]:
        self.reads += 1
        return [Model(id=i, status=self.status[i]) for i in ids]


async def test_one_waiting_trigger_wakes_per_fleet_training_seen_ending() -> None:
    watch, bulk = SlotWatch(), Bulk()
    slept: list[float] = []
    moved = asyncio.Event()

    async def sleep(seconds: float) -> None:  # the poller's clock: moved by the test, one cycle a step
        slept.append(seconds)
        moved.clear()
        await moved.wait()

    for model_id in ("a", "b"):
        watch.note_started(model_id)
        bulk.status[model_id] = "training"
    poller = asyncio.create_task(watch.run(bulk, PollPolicy(), sleep))  # type: ignore[arg-type]
    first, second, third = (asyncio.create_task(watch.wait(3600)) for _ in range(3))
    for _ in range(100):
        await asyncio.sleep(0)  # let the waiters queue and the poller read once
    assert bulk.reads == 1 and not first.done()
    bulk.status["a"] = "trained"
    moved.set()
    assert await first is True  # the oldest waiter, at once
    for _ in range(100):
        await asyncio.sleep(0)
    assert not second.done() and not third.done()  # one slot, one trigger
    bulk.status["b"] = "failed"
    moved.set()
    assert await second is True and not third.done()
    poller.cancel()
    third.cancel()
    assert watch.freed_total == 2 and watch.ended == {"a", "b"}


async def test_without_waiters_the_watch_reads_nothing() -> None:
    watch, bulk = SlotWatch(), Bulk()
    watch.note_started("a")
    bulk.status["a"] = "training"
    poller = asyncio.create_task(watch.run(bulk, PollPolicy()))  # type: ignore[arg-type]
    for _ in range(100):
        await asyncio.sleep(0)
    assert bulk.reads == 0
    poller.cancel()


@pytest.fixture
def two_slot_emulator() -> Iterator[EmulatorServer]:
    """Trainings of about a second on a plan of two at a time."""
    config = EmulatorConfig(api_key=KEY, api_secret=SECRET, queue_seconds=0.05, start_seconds=0.05,
                            train_seconds=1.0, parallel_trainings=2)  # fmt: skip
    with EmulatorServer(config) as server:
        yield server


async def test_a_fleet_of_six_on_a_plan_of_two_does_not_wait_for_the_slot_timer(
    two_slot_emulator: EmulatorServer,
) -> None:
    # The triggers' timed check is an hour: a refused trigger that waited for it, not for the
    # fleet's own training to end, would not finish inside the bound below (no wall-time assertion).
    jobs = [TrainingJob(name=f"slot-{i}", training_type="flux.2-dev-lora", images=images(300 + i)) for i in range(6)]
    fleet = train_lora_fleet(
        jobs=jobs,
        credentials=credentials_for(two_slot_emulator, project_id=project()),
        poll_policy=dataclasses.replace(FAST_POLL, slot_check=3600.0),
    )
    results = await asyncio.wait_for(fleet, timeout=600)
    assert [r.status for r in results] == ["trained"] * 6
