"""Renders are charged through the same budget ledger as trainings, before the first render."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from prefect_scenario.evaluation import EvaluationOptions
from prefect_scenario.evaluation.render import render_lora
from prefect_scenario.evaluation.suite import default_suite
from prefect_scenario.exceptions import BudgetExceeded
from prefect_scenario.spend.block import ScenarioBudget
from prefect_scenario.spend.ledger import read_entries
from scenario_emulator import EmulatorApp, ManualClock
from tests.evaluation.helpers import PROJECT, client_for, clock_sleep, train

pytestmark = pytest.mark.usefixtures("prefect_harness")
SUITE = default_suite(["a red fox", "a blue bird", "a green frog", "a grey wolf"])


async def test_a_budget_refuses_renders_before_any_and_records_the_ones_it_allows(
    emulator_app: EmulatorApp, emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    lora = await train(emulator_client, emulator_clock)
    dataset = f"renders-{lora[-8:]}"
    async with client_for(emulator_app) as client:
        with pytest.raises(BudgetExceeded, match="per_dataset"):
            await render_lora(client, lora, SUITE, EvaluationOptions(budget=ScenarioBudget(per_dataset=10)),
                              dataset=dataset)  # fmt: skip
        assert not [r for r in emulator_app.requests() if r["path"].startswith("/v1/generate/custom")
                    and "dryRun" not in (r["query"] or "")]  # fmt: skip
        done = await render_lora(client, lora, SUITE, EvaluationOptions(budget=ScenarioBudget(per_dataset=100)),
                                 dataset=dataset, sleep=clock_sleep(emulator_clock), clock=emulator_clock)  # fmt: skip
    entries = [e for e in await read_entries(PROJECT, datetime.now(UTC).date()) if e.dataset == dataset]
    assert [(e.status, e.actual, e.model_id) for e in entries] == [("spent", done.cost, lora)]
