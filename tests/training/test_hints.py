"""The receiver's hint, kept warm: an index of the waiting runs saves a Prefect call, never a decision.

Real suspended flow runs (ephemeral Prefect) and the emulator, as in ``test_watcher.py``;
the index's clock is moved, nothing sleeps.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import StateType

from prefect_scenario.waiting import hints
from prefect_scenario.waiting.hints import HintSettler
from prefect_scenario.waiting.suspension import WaitRecord
from prefect_scenario.waiting.watcher import find_waiting_runs, watch_once
from scenario_emulator import EmulatorServer
from tests.flow_fixtures import credentials_for
from tests.training.test_watcher import bulk_reads, prefect, slow_emulator, start_training, state_of, suspended_run

pytestmark = pytest.mark.usefixtures("prefect_harness")
__all__ = ["prefect", "slow_emulator"]  # fixtures shared with test_watcher.py


@dataclass
class Setting:
    """The hint under test, its clock, the emulator, and the per-model queries it asked Prefect."""

    prefect: PrefectClient
    emulator: EmulatorServer
    hint: HintSettler
    now: list[float] = field(default_factory=lambda: [100.0])
    queries: list[str | None] = field(default_factory=list)

    async def waiting_run(self, name: str, seconds: float = 600) -> tuple[str, UUID]:
        """A training under way and a suspended run waiting for it (deadline ``seconds`` away)."""
        model_id = await start_training(credentials_for(self.emulator), name)
        record = WaitRecord(model_ids=(model_id,), keys=(), deadline=time.time() + seconds)
        return model_id, await suspended_run(self.prefect, record)


@pytest.fixture
async def setting(
    prefect: PrefectClient, slow_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Setting]:
    now = [100.0]
    hint = HintSettler(credentials_for(slow_emulator), index_seconds=10.0, clock=lambda: now[0])
    world = Setting(prefect, slow_emulator, hint, now)

    async def counting(client: PrefectClient, **options: Any) -> Any:
        world.queries.append(options.get("model_id"))
        return await find_waiting_runs(client, **options)

    monkeypatch.setattr(hints, "find_waiting_runs", counting)
    yield world
    await hint.aclose()


async def test_an_indexed_run_is_resumed_with_no_query_and_one_read(setting: Setting) -> None:
    hint, emulator = setting.hint, setting.emulator
    model_id, run_id = await setting.waiting_run("indexed")
    assert await hint.refresh() >= 1 and [r.id for r in hint.indexed(model_id)] == [run_id]
    setting.queries.clear()
    emulator.app.clear_requests()

    assert (await hint(model_id)).resumed == []  # an early or forged delivery: one read, nothing resumed
    assert bulk_reads(emulator) == 1 and setting.queries == []
    emulator.advance_clock(601)
    emulator.app.clear_requests()
    report = await hint(model_id)
    assert report.resumed == [str(run_id)] and report.ended == [model_id]
    assert bulk_reads(emulator) == 1 and setting.queries == []  # the model read, the resume: no query
    assert (await state_of(setting.prefect, run_id))[0] is StateType.SCHEDULED

    # A replay: the resumed run left the index, Prefect says nobody waits, Scenario is not asked.
    emulator.app.clear_requests()
    assert (await hint(model_id)).resumed == [] and hint.indexed(model_id) == []
    assert emulator.requests() == [] and setting.queries == [model_id]


async def test_a_run_suspended_since_the_last_read_is_asked_of_prefect(setting: Setting) -> None:
    await setting.hint.refresh()
    model_id, run_id = await setting.waiting_run("late-suspender")
    setting.emulator.advance_clock(601)
    setting.queries.clear()
    assert (await setting.hint(model_id)).resumed == [str(run_id)]
    assert setting.queries == [model_id]


async def test_a_stale_index_is_not_trusted(setting: Setting) -> None:
    model_id, _ = await setting.waiting_run("stale")
    await setting.hint.refresh()
    assert setting.hint.indexed(model_id)
    setting.now[0] += 20.1  # two reads missed (Prefect unreachable, say)
    assert setting.hint.indexed(model_id) == []
    setting.queries.clear()
    await setting.hint(model_id)
    assert setting.queries == [model_id]


async def test_a_model_nobody_waits_for_costs_no_scenario_request(setting: Setting) -> None:
    await setting.hint.refresh()
    setting.emulator.app.clear_requests()
    report = await setting.hint("model_nobody_waits_for")
    assert (report.waiting, report.bulk_requests) == (0, 0)
    assert setting.emulator.requests() == []


async def test_an_indexed_run_past_its_deadline_is_left_to_the_watcher(setting: Setting) -> None:
    model_id, run_id = await setting.waiting_run("late", seconds=-1)
    await setting.hint.refresh()
    report = await setting.hint(model_id)
    # A cancel rests on a fresh read of Prefect: the hint, working from its index, cancels nothing.
    assert report.cancelled_trainings == [] and report.timed_out == []
    assert (await state_of(setting.prefect, run_id))[0] is StateType.PAUSED
    assert str(run_id) in (await watch_once(credentials_for(setting.emulator))).timed_out


async def test_the_clients_stay_open_between_hints_and_are_renewed_after_a_failure(
    setting: Setting, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await setting.hint.client(None)
    assert await setting.hint.client(None) is first

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Prefect unreachable")

    monkeypatch.setattr(hints, "find_waiting_runs", broken)
    with pytest.raises(ConnectionError):
        await setting.hint("model_unindexed")
    assert await setting.hint.client(None) is not first
