"""The receiver's hint, kept warm: an index of the waiting runs saves a Prefect call, never a decision.

Real suspended flow runs (ephemeral Prefect) and the emulator, as in ``test_watcher.py``;
the index's clock is moved, nothing sleeps.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

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


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def settler(slow_emulator: EmulatorServer) -> AsyncIterator[tuple[HintSettler, Clock]]:
    clock = Clock()
    settler = HintSettler(credentials_for(slow_emulator), index_seconds=10.0, clock=clock)
    yield settler, clock
    await settler.aclose()


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The model id of each per-model query the hint asks Prefect (None: the index's read of all)."""
    asked: list[str | None] = []
    real = find_waiting_runs

    async def counting(client: PrefectClient, **options: Any) -> Any:
        asked.append(options.get("model_id"))
        return await real(client, **options)

    monkeypatch.setattr(hints, "find_waiting_runs", counting)
    return asked


async def test_an_indexed_run_is_resumed_with_no_query_and_one_read(
    prefect: PrefectClient,
    slow_emulator: EmulatorServer,
    settler: tuple[HintSettler, Clock],
    queries: list[str | None],
) -> None:
    hint, _ = settler
    model_id = await start_training(credentials_for(slow_emulator), "indexed")
    run_id = await suspended_run(prefect, WaitRecord(model_ids=(model_id,), keys=(), deadline=time.time() + 600))
    assert await hint.refresh() >= 1 and [r.id for r in hint.indexed(model_id)] == [run_id]
    queries.clear()
    slow_emulator.app.clear_requests()

    assert (await hint(model_id)).resumed == []  # an early or forged delivery: one read, nothing resumed
    assert bulk_reads(slow_emulator) == 1 and queries == []
    slow_emulator.advance_clock(601)
    slow_emulator.app.clear_requests()
    report = await hint(model_id)
    assert report.resumed == [str(run_id)] and report.ended == [model_id]
    assert bulk_reads(slow_emulator) == 1 and queries == []  # the model read, the resume: no query
    assert (await state_of(prefect, run_id))[0] is StateType.SCHEDULED

    # A replay: the resumed run left the index, Prefect says nobody waits, Scenario is not asked.
    slow_emulator.app.clear_requests()
    assert (await hint(model_id)).resumed == [] and hint.indexed(model_id) == []
    assert slow_emulator.requests() == [] and queries == [model_id]


async def test_a_run_suspended_since_the_last_read_is_asked_of_prefect(
    prefect: PrefectClient,
    slow_emulator: EmulatorServer,
    settler: tuple[HintSettler, Clock],
    queries: list[str | None],
) -> None:
    hint, _ = settler
    await hint.refresh()
    model_id = await start_training(credentials_for(slow_emulator), "late-suspender")
    run_id = await suspended_run(prefect, WaitRecord(model_ids=(model_id,), keys=(), deadline=time.time() + 600))
    slow_emulator.advance_clock(601)
    queries.clear()
    assert (await hint(model_id)).resumed == [str(run_id)]
    assert queries == [model_id]


async def test_a_stale_index_is_not_trusted(
    prefect: PrefectClient,
    slow_emulator: EmulatorServer,
    settler: tuple[HintSettler, Clock],
    queries: list[str | None],
) -> None:
    hint, clock = settler
    model_id = await start_training(credentials_for(slow_emulator), "stale")
    await suspended_run(prefect, WaitRecord(model_ids=(model_id,), keys=(), deadline=time.time() + 600))
    await hint.refresh()
    assert hint.indexed(model_id)
    clock.now += 20.1  # two reads missed (Prefect unreachable, say)
    assert hint.indexed(model_id) == []
    queries.clear()
    await hint(model_id)
    assert queries == [model_id]


async def test_a_model_nobody_waits_for_costs_no_scenario_request(
    slow_emulator: EmulatorServer, settler: tuple[HintSettler, Clock]
) -> None:
    hint, _ = settler
    await hint.refresh()
    slow_emulator.app.clear_requests()
    report = await hint("model_nobody_waits_for")
    assert (report.waiting, report.bulk_requests) == (0, 0)
    assert slow_emulator.requests() == []


async def test_an_indexed_run_past_its_deadline_is_left_to_the_watcher(
    prefect: PrefectClient, slow_emulator: EmulatorServer, settler: tuple[HintSettler, Clock]
) -> None:
    hint, _ = settler
    creds = credentials_for(slow_emulator)
    model_id = await start_training(creds, "late")
    run_id = await suspended_run(prefect, WaitRecord(model_ids=(model_id,), keys=(), deadline=time.time() - 1))
    await hint.refresh()
    report = await hint(model_id)
    # A cancel rests on a fresh read of Prefect: the hint, working from its index, cancels nothing.
    assert report.cancelled_trainings == [] and report.timed_out == []
    assert (await state_of(prefect, run_id))[0] is StateType.PAUSED
    assert str(run_id) in (await watch_once(creds)).timed_out


async def test_the_clients_stay_open_between_hints_and_are_renewed_after_a_failure(
    slow_emulator: EmulatorServer, settler: tuple[HintSettler, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    hint, _ = settler
    first = await hint.client(None)
    assert await hint.client(None) is first

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Prefect unreachable")

    monkeypatch.setattr(hints, "find_waiting_runs", broken)
    with pytest.raises(ConnectionError):
        await hint("model_unindexed")
    assert await hint.client(None) is not first
