"""What a failed trigger and a crashed run leave in the ledger, over a socket with the emulator.

A trigger refused for good releases its reservation; a trigger whose outcome is unknown
keeps counting until the ledger settles it from the model (one get-bulk); a reservation left
by a crashed run is settled the same way once its run can no longer trigger. The gate's
clock is moved (``charge.utc_now``), never waited for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from prefect_scenario.api.client import ScenarioClient
from prefect_scenario.exceptions import APIConnectionError, BudgetExceeded, RateLimitError, TrainingTimeout
from prefect_scenario.spend import charge, gate
from prefect_scenario.spend.block import ScenarioBudget
from prefect_scenario.spend.decisions import LedgerEntry
from prefect_scenario.spend.ledger import read_entries, write_entry
from prefect_scenario.spend.settlement import UNKNOWN_OUTCOME_SETTLE_SECONDS
from prefect_scenario.training.flows import train_lora
from scenario_emulator import EmulatorServer
from scenario_emulator.faults import FaultConfig
from scenario_emulator.limits import PlanLimits
from tests.flow_fixtures import FAST_POLL, credentials_for
from tests.spend.test_flows import ESTIMATE, PARAMS, images, project, puts

pytestmark = pytest.mark.usefixtures("prefect_harness")


@dataclass
class Clock:
    now: datetime

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The gate's clock, fixed at noon UTC today (so moving it never changes the ledger's day)."""
    fixed = Clock(datetime.combine(datetime.now(UTC).date(), time(12), tzinfo=UTC))
    monkeypatch.setattr(charge, "utc_now", lambda: fixed.now)  # the ledger's one clock
    return fixed


async def train(server: EmulatorServer, proj: str, name: str, seed: int, *, retries: int = 8, **options: Any) -> Any:
    return await train_lora(
        name=name, training_type="flux.2-dev-lora", images=images(seed), parameters=PARAMS, poll_policy=FAST_POLL,
        credentials=credentials_for(server, project_id=proj, max_retries=retries), **options,
    )  # fmt: skip


def by_model(entries: list[LedgerEntry]) -> dict[str, LedgerEntry]:
    return {e.model_id: e for e in entries}


REFUSED_FOR_GOOD = [
    pytest.param({"parallel_trainings": 0}, TrainingTimeout, id="plan-limit-429-no-slot-before-the-deadline"),
    pytest.param({"trigger_cooldown": 3600.0}, RateLimitError, id="cooldown-429-after-every-retry"),
]


@pytest.mark.parametrize(("limits", "error"), REFUSED_FOR_GOOD)
async def test_a_trigger_refused_for_good_releases_its_reservation(
    fast_emulator: EmulatorServer, limits: dict[str, Any], error: type[Exception]
) -> None:
    # 250 holds two trainings of 104, not three: the third trains only if the refused one counts nothing.
    proj, budget = project(), ScenarioBudget(per_dataset=250)
    first = await train(fast_emulator, proj, "refused-v1", 90, budget=budget, dataset="refused")
    fast_emulator.set_limits(**limits)
    with pytest.raises(error):
        # The slot wait ends at its deadline at once (a tiny timeout), not after a real wait.
        await train(fast_emulator, proj, "refused-v2", 91, budget=budget, dataset="refused", timeout_seconds=0.001)
    fast_emulator.set_limits(PlanLimits())
    refused = next(e for e in await read_entries(proj, gate.today_utc()) if e.model_id != first.model_id)
    assert (refused.status, refused.actual, refused.charged, refused.settle_after) == ("released", 0.0, 0.0, None)
    third = await train(fast_emulator, proj, "refused-v3", 92, budget=budget, dataset="refused")
    assert third.status == "trained" and puts(fast_emulator, 200) == 2
    entries = by_model(await read_entries(proj, gate.today_utc()))
    assert sum(e.charged for e in entries.values()) == 2 * ESTIMATE


def lose_the_next_trigger(monkeypatch: pytest.MonkeyPatch, server: EmulatorServer, kind: str) -> None:
    """Once the next dry run answered, drop the trigger's connection (``drop_before``: nothing done; ``drop_after``: the
    training started). The client cannot tell which, and (``max_retries=0``) does not look again."""
    original = ScenarioClient.estimate_training_cost

    async def estimate_then_arm(self: ScenarioClient, *args: Any, **kwargs: Any) -> Any:
        answer = await original(self, *args, **kwargs)
        monkeypatch.setattr(ScenarioClient, "estimate_training_cost", original)
        server.set_faults(FaultConfig(**{f"{kind}_rate": 1.0}, methods=("PUT",), paths=("/train",), limit=1))
        return answer

    monkeypatch.setattr(ScenarioClient, "estimate_training_cost", estimate_then_arm)


LOST = [
    pytest.param("drop_before", "released", 0.0, "never started", id="lost-before-the-work-released-once-settled"),
    pytest.param("drop_after", "spent", ESTIMATE, "training started", id="lost-after-the-work-charged-its-job-cost"),
]


@pytest.mark.parametrize(("kind", "settled_status", "settled_actual", "note"), LOST)
async def test_a_trigger_whose_outcome_is_unknown_stays_counted_until_the_ledger_settles_it(
    fast_emulator: EmulatorServer,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    settled_status: str,
    settled_actual: float,
    note: str,
) -> None:
    proj, budget = project(), ScenarioBudget(per_dataset=200)
    lose_the_next_trigger(monkeypatch, fast_emulator, kind)
    with pytest.raises(APIConnectionError):
        await train(fast_emulator, proj, "lost-v1", 100, retries=0, budget=budget, dataset="lost")
    fast_emulator.set_faults(FaultConfig())
    [lost] = await read_entries(proj, gate.today_utc())
    due = (clock.now + timedelta(seconds=UNKNOWN_OUTCOME_SETTLE_SECONDS)).isoformat()
    assert (lost.status, lost.charged, lost.settle_after) == ("reserved", ESTIMATE, due)

    # Before it may be settled, it counts: a second training of the dataset (104 + 104 > 200) is refused.
    clock.advance(UNKNOWN_OUTCOME_SETTLE_SECONDS - 1)
    with pytest.raises(BudgetExceeded) as refused:
        await train(fast_emulator, proj, "lost-v2", 101, budget=budget, dataset="lost")
    assert (refused.value.limit, refused.value.spent) == ("per_dataset", ESTIMATE)

    # Once it may be, the next decision settles it from the model.
    clock.advance(2)
    if settled_status == "released":
        assert (await train(fast_emulator, proj, "lost-v3", 102, budget=budget, dataset="lost")).status == "trained"
    else:
        with pytest.raises(BudgetExceeded):
            await train(fast_emulator, proj, "lost-v3", 102, budget=budget, dataset="lost")
    settled = by_model(await read_entries(proj, gate.today_utc()))[lost.model_id]
    assert (settled.status, settled.actual, settled.settle_after) == (settled_status, settled_actual, None)
    assert settled.note is not None and note in settled.note
    # Between its dry run and its trigger (or refusal): one get-bulk, and a job read only for a started training.
    reads = [r["path"] for r in between_dry_run_and_trigger(fast_emulator) if r["method"] != "PUT"]
    assert [p for p in reads if "get-bulk" in p] == ["/v1/models/get-bulk"]
    assert len([p for p in reads if p.startswith("/v1/jobs/")]) == (1 if settled_status == "spent" else 0)


def between_dry_run_and_trigger(server: EmulatorServer) -> list[dict[str, Any]]:
    """The requests after the last dry run, up to its trigger (or the end of the log: a refused training)."""
    log = server.requests()
    dry_run = max(i for i, r in enumerate(log) if r["status"] == 269)
    trigger = next((i for i, r in enumerate(log) if i > dry_run and r["method"] == "PUT" and r["status"] == 200), None)
    return log[dry_run + 1 : trigger]


async def test_reservations_left_by_crashed_runs_are_settled_with_one_get_bulk(
    fast_emulator: EmulatorServer, clock: Clock
) -> None:
    proj, budget = project(), ScenarioBudget(per_dataset=200)
    async with credentials_for(fast_emulator, project_id=proj).get_client() as client:
        crashed = [await client.create_model(name=f"crashed-{i}", training_type="flux.2-dev-lora") for i in range(2)]
    # What a run that crashed after its reservation leaves: `reserved`, its trigger window over.
    for model, dataset in zip(crashed, ("crashed", "elsewhere"), strict=True):
        await write_entry(proj, LedgerEntry(
            id=gate.entry_id(model.id, None), day=gate.today_utc().isoformat(), dataset=dataset, model_id=model.id,
            estimate=ESTIMATE, status="reserved", at=(clock.now - timedelta(hours=6)).isoformat(),
            settle_after=(clock.now - timedelta(seconds=1)).isoformat(),
        ))  # fmt: skip
    # Counted, 104 + 104 would cross 200: it trains only because the crashed reservation is released.
    result = await train(fast_emulator, proj, "crashed-v2", 110, budget=budget, dataset="crashed")
    assert result.status == "trained"
    entries = by_model(await read_entries(proj, gate.today_utc()))
    assert [(entries[m.id].status, entries[m.id].actual) for m in crashed] == [("released", 0.0)] * 2
    reads = [r["path"] for r in between_dry_run_and_trigger(fast_emulator)]
    assert [p for p in reads if "get-bulk" in p] == ["/v1/models/get-bulk"]  # one for both
    assert not [p for p in reads if p.startswith("/v1/jobs/")]  # neither started: no cost to read
