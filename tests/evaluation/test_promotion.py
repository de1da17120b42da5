"""Promotion on both sides: add then remove, a crash matrix, double claims, a two-request rollback."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from prefect_scenario.evaluation.block import ScenarioLoRA
from prefect_scenario.evaluation.promotion import MemoryStore, promote_model, read_production, rollback
from prefect_scenario.exceptions import ProductionClaimError
from scenario_emulator import EmulatorApp, ManualClock
from tests.evaluation.helpers import client_for, train

DATASET = "s3://bucket/hero/"


class Killed(Exception):
    """The process died here."""


class CrashingStore(MemoryStore):
    """A handle store whose process dies after its ``crash_at``-th write (counted with the client's)."""

    def __init__(self, steps: list[str], crash_at: int) -> None:
        super().__init__()
        self.steps, self.crash_at = steps, crash_at

    async def save(self, handle: ScenarioLoRA) -> None:
        await super().save(handle)
        self.steps.append("save")
        if len(self.steps) == self.crash_at:
            raise Killed


class CrashingClient:
    """Passes calls to a client; the process dies after the ``crash_at``-th mutating request."""

    MUTATING = ("create_collection", "add_to_collection", "remove_from_collection")

    def __init__(self, client: Any, steps: list[str], crash_at: int) -> None:
        self.client, self.steps, self.crash_at = client, steps, crash_at

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if name not in self.MUTATING:
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = await attr(*args, **kwargs)
            self.steps.append(name)
            if len(self.steps) == self.crash_at:
                raise Killed
            return result

        return call


async def _members(app: EmulatorApp) -> list[str]:
    return sorted(m.id for m in app.store.models.values() if m.collection_ids)


@pytest.mark.parametrize("crash_at", range(1, 7), ids=lambda n: f"killed-after-write-{n}")
async def test_a_promotion_killed_at_any_step_then_rerun_leaves_exactly_one_production(
    emulator_app: EmulatorApp, emulator_client: httpx.AsyncClient, emulator_clock: ManualClock, crash_at: int
) -> None:
    old = await train(emulator_client, emulator_clock)
    new = await train(emulator_client, emulator_clock, first=5)
    store = MemoryStore()
    async with client_for(emulator_app) as client:
        await promote_model(client, DATASET, old, store=store)
        steps: list[str] = []
        crashing = CrashingStore(steps, crash_at)
        crashing.handles = store.handles
        try:
            await promote_model(CrashingClient(client, steps, crash_at), DATASET, new, store=crashing)
        except Killed:
            pass
        assert len(await _members(emulator_app)) in (1, 2)
        handle = await promote_model(client, DATASET, new, store=store)
        assert await _members(emulator_app) == [new]
        assert handle.model_id == new and handle.previous_model_ids == [old] and handle.pending is None
        assert await read_production(client, DATASET, store) == new


async def test_rollback_restores_the_previous_model_in_two_requests(
    emulator_app: EmulatorApp, emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    old = await train(emulator_client, emulator_clock)
    new = await train(emulator_client, emulator_clock, first=5)
    store = MemoryStore()
    async with client_for(emulator_app) as client:
        await promote_model(client, DATASET, old, store=store)
        await promote_model(client, DATASET, new, store=store)
        emulator_app.clear_requests()
        handle = await rollback(client, DATASET, store=store)
    assert len(emulator_app.requests()) <= 2
    assert handle.model_id == old and await _members(emulator_app) == [old]
    assert [h["action"] for h in handle.history] == ["promoted", "promoted", "rolled-back"]


async def test_a_dataset_with_two_production_claims_is_refused_before_any_change(
    emulator_app: EmulatorApp, emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    a, b, c = [await train(emulator_client, emulator_clock, first=n) for n in (0, 5, 10)]
    store = MemoryStore()
    async with client_for(emulator_app) as client:
        handle = await promote_model(client, DATASET, a, store=store)
        assert handle.collection_id is not None
        await client.add_to_collection(handle.collection_id, [b])  # someone else's claim
        with pytest.raises(ProductionClaimError, match="2 production claims") as caught:
            await promote_model(client, DATASET, c, store=store)
        assert set(caught.value.model_ids) == {a, b}
        assert await read_production(client, DATASET, store) == a  # the block's claim wins on read
    assert await _members(emulator_app) == sorted([a, b])


async def test_a_collection_deleted_on_scenario_s_side_is_found_or_created_again(
    emulator_app: EmulatorApp, emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    old = await train(emulator_client, emulator_clock)
    new = await train(emulator_client, emulator_clock, first=5)
    store = MemoryStore()
    async with client_for(emulator_app) as client:
        first = await promote_model(client, DATASET, old, store=store)
        gone = first.collection_id
        assert gone is not None
        await client._request("DELETE", f"/collections/{gone}", route="DELETE /collections/{id}", idempotent=True)
        handle = await promote_model(client, DATASET, new, store=store)
    assert handle.model_id == new and handle.collection_id not in (None, gone)
    assert await _members(emulator_app) == [new]
    assert (await store.load(DATASET)).collection_id == handle.collection_id
