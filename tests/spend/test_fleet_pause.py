"""A real fleet past its budget with ``on_exceeded="pause"``: approved through RunInput, or skipped on timeout.

Three jobs of 104 creative units each (the emulator's pricing, see ``test_flows``) run at once
in one fleet flow run; the jobs that would cross ``per_fleet_run`` pause the fleet's run one
after another, each with its own pause key and form.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from prefect_scenario.exceptions import BudgetExceeded
from prefect_scenario.spend.block import ScenarioBudget
from prefect_scenario.spend.gate import today_utc
from prefect_scenario.spend.ledger import read_entries
from prefect_scenario.training.fleet import TrainingJob, train_lora_fleet
from scenario_emulator import EmulatorServer
from tests.flow_fixtures import FAST_POLL, credentials_for
from tests.spend.test_flows import PARAMS, images, project, puts, resume_when_paused

pytestmark = pytest.mark.usefixtures("prefect_harness")


def jobs(seed: int) -> list[TrainingJob]:
    return [TrainingJob(name=f"paused-{seed}-{i}", training_type="flux.2-dev-lora", images=images(seed + i),
                        parameters=PARAMS) for i in range(3)]  # fmt: skip


async def test_a_fleet_paused_past_its_budget_trains_each_job_once_approved(fast_emulator: EmulatorServer) -> None:
    # 150 fits one job: the other two cross it, and pause the fleet's run in turn.
    proj, name = project(), f"approved-{uuid.uuid4().hex[:6]}"
    budget = ScenarioBudget(per_fleet_run=150, on_exceeded="pause", pause_timeout_seconds=120, pause_poll_seconds=0.1)
    resumer = asyncio.create_task(resume_when_paused(f"scenario-train-lora-fleet-{name}", {"approve": True}, pauses=2))
    results = await train_lora_fleet(jobs=jobs(200), credentials=credentials_for(fast_emulator, project_id=proj),
                                     name=name, poll_policy=FAST_POLL, budget=budget)  # fmt: skip
    await resumer
    assert [r.status for r in results] == ["trained"] * 3
    assert puts(fast_emulator, 200) == 3 and puts(fast_emulator, 269) == 3
    entries = await read_entries(proj, today_utc())
    assert sorted(e.status for e in entries) == ["approved", "approved", "spent"]


async def test_a_fleet_paused_past_its_budget_skips_the_job_on_timeout(fast_emulator: EmulatorServer) -> None:
    # 250 fits two jobs: the third pauses, nobody answers, it is skipped; the two that started are waited for.
    proj = project()
    budget = ScenarioBudget(per_fleet_run=250, on_exceeded="pause", pause_timeout_seconds=1, pause_poll_seconds=0.1)
    with pytest.raises(BudgetExceeded) as raised:
        await train_lora_fleet(jobs=jobs(210), credentials=credentials_for(fast_emulator, project_id=proj),
                               poll_policy=FAST_POLL, budget=budget)  # fmt: skip
    assert (raised.value.outcome, raised.value.limit) == ("skipped", "per_fleet_run")
    assert puts(fast_emulator, 200) == 2 and puts(fast_emulator, 269) == 3
    entries = await read_entries(proj, today_utc())
    assert sorted((e.status, e.actual) for e in entries) == [("spent", 104.0), ("spent", 104.0)]
    models = {e.model_id for e in entries}
    async with credentials_for(fast_emulator, project_id=proj).get_client() as client:
        assert {m.status for m in await client.get_models_bulk(models)} == {"trained"}
