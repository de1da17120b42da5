"""Spend control end to end: the emulator over a real socket, Prefect's ephemeral server.

Every test has its own project id, so its ledger (Prefect Variables keyed by project)
starts empty. 5 images at ``nbEpochs=2`` are estimated at 50 + 10 × 5 + 2 × 2 = 104
creative units by the emulator's pricing (``scenario_emulator/pricing.py``).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.flow_runs import resume_flow_run
from prefect.settings import PREFECT_API_URL

from prefect_scenario.exceptions import BudgetExceeded, ConfigurationError
from prefect_scenario.reporting import ProgressReporter
from prefect_scenario.spend.block import ScenarioBudget
from prefect_scenario.spend.gate import today_utc
from prefect_scenario.spend.ledger import LEDGER_ARTIFACT_KEY, read_entries
from prefect_scenario.training.fleet import TrainingJob, train_lora_fleet
from prefect_scenario.training.flows import train_lora
from scenario_emulator import EmulatorServer
from tests.flow_fixtures import FAST_POLL, KEY, SECRET, credentials_for

pytestmark = pytest.mark.usefixtures("prefect_harness")

PARAMS = {"nbEpochs": 2}
ESTIMATE = 104.0


def png(i: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), ((i * 37) % 256, (i * 91) % 256, 77)).save(buffer, "PNG")
    return buffer.getvalue()


def images(seed: int) -> list[bytes]:
    return [png(seed * 10 + i) for i in range(5)]


def puts(server: EmulatorServer, status: int) -> int:
    """Trigger (200) or dry-run (269) requests the emulator answered."""
    return sum(1 for r in server.requests() if r["method"] == "PUT" and r["path"].endswith("/train")
               and r["status"] == status)  # fmt: skip


def project() -> str:
    return f"proj_{uuid.uuid4().hex[:10]}"


async def train(server: EmulatorServer, proj: str, name: str, seed: int, **options: Any) -> Any:
    return await train_lora(
        name=name, training_type="flux.2-dev-lora", images=images(seed), parameters=PARAMS,
        credentials=credentials_for(server, project_id=proj), poll_policy=FAST_POLL, **options,
    )  # fmt: skip


async def test_max_creative_units_below_the_estimate_refuses_before_any_trigger(fast_emulator: EmulatorServer) -> None:
    with pytest.raises(BudgetExceeded) as raised:
        await train(fast_emulator, project(), "capped", 1, max_creative_units=100)
    assert (raised.value.estimate, raised.value.limit_units, raised.value.limit) == (
        ESTIMATE,
        100,
        "max_creative_units",
    )
    assert "104" in str(raised.value) and "max_creative_units=100" in str(raised.value)
    assert (puts(fast_emulator, 269), puts(fast_emulator, 200)) == (1, 0)
    # Quoted with trainingImagesCount on the empty model: refused before any image was sent.
    assert "before any upload" in str(raised.value)
    assert not [r for r in fast_emulator.requests() if "training-images" in r["path"]]


async def test_a_refused_training_ends_its_progress_card_with_the_refusal(fast_emulator: EmulatorServer) -> None:
    with pytest.raises(BudgetExceeded) as raised:
        await train(fast_emulator, project(), "card", 4, max_creative_units=100)
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    key = ProgressReporter.for_training(str(raised.value.model_id), "card").key
    async with get_client() as prefect:
        (card,) = await prefect.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert str(card.description).startswith("card: refused: training refused before any upload")


async def test_max_creative_units_above_the_estimate_trains_after_exactly_one_dry_run(
    fast_emulator: EmulatorServer,
) -> None:
    proj = project()
    result = await train(fast_emulator, proj, "roomy", 2, max_creative_units=150)
    assert result.status == "trained" and result.creative_units_cost == ESTIMATE
    # One dry run: the quote before the upload (trainingImagesCount), which the gate then uses.
    assert (puts(fast_emulator, 269), puts(fast_emulator, 200)) == (1, 1)
    quotes = [r for r in fast_emulator.requests() if r["method"] == "PUT" and r["status"] == 269]
    assert "trainingImagesCount=5" in str(quotes[0]["query"])
    [entry] = await read_entries(proj, today_utc())
    assert (entry.estimate, entry.actual, entry.status, entry.dataset) == (ESTIMATE, ESTIMATE, "spent", "roomy")
    # A model already trained and reused costs nothing: no dry run, no trigger, no entry.
    again = await train(fast_emulator, proj, "roomy", 2, max_creative_units=150)
    assert again.reused and (puts(fast_emulator, 269), puts(fast_emulator, 200)) == (1, 1)
    assert len(await read_entries(proj, today_utc())) == 1


async def test_the_second_training_of_the_day_is_refused_by_a_dataset_budget(fast_emulator: EmulatorServer) -> None:
    proj, budget = project(), ScenarioBudget(per_dataset=200)
    first = await train(fast_emulator, proj, "hero-v1", 3, budget=budget, dataset="hero")
    assert first.status == "trained"
    with pytest.raises(BudgetExceeded) as raised:
        await train(fast_emulator, proj, "hero-v2", 4, budget=budget, dataset="hero")
    assert (raised.value.limit, raised.value.spent, raised.value.estimate) == ("per_dataset", ESTIMATE, ESTIMATE)
    assert raised.value.outcome == "refused"
    assert puts(fast_emulator, 200) == 1 and puts(fast_emulator, 269) == 2
    # Another dataset has its own daily budget.
    assert (await train(fast_emulator, proj, "villain", 5, budget=budget, dataset="villain")).status == "trained"


async def test_past_the_budget_a_paused_run_skips_on_timeout(fast_emulator: EmulatorServer) -> None:
    proj = project()
    budget = ScenarioBudget(per_dataset=200, on_exceeded="pause", pause_timeout_seconds=1, pause_poll_seconds=0.1)
    await train(fast_emulator, proj, "p-v1", 6, budget=budget, dataset="p")
    with pytest.raises(BudgetExceeded) as raised:
        await train(fast_emulator, proj, "p-v2", 7, budget=budget, dataset="p")
    assert raised.value.outcome == "skipped" and puts(fast_emulator, 200) == 1


async def resume_when_paused(run_name: str, run_input: dict[str, Any], pauses: int = 1) -> None:
    """Answer the flow run's next ``pauses`` budget pauses with ``run_input`` (each pause once, by its key)."""
    answered: set[str] = set()
    async with get_client() as prefect:
        for _ in range(1200):  # waiting for the run to pause (at most ~2 minutes), not for time to pass
            runs = await prefect.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    name=FlowRunFilterName(any_=[run_name]),
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])),
                )
            )
            details = runs[0].state.state_details if runs and runs[0].state else None
            if details and details.run_input_keyset and str(details.pause_key) not in answered:
                await resume_flow_run(runs[0].id, run_input=run_input)
                answered.add(str(details.pause_key))
                if len(answered) == pauses:
                    return
            await asyncio.sleep(0.1)
    raise AssertionError(f"{run_name} paused {len(answered)} of {pauses} times")


async def test_past_the_budget_a_paused_run_trains_when_approved(fast_emulator: EmulatorServer) -> None:
    proj = project()
    budget = ScenarioBudget(per_dataset=200, on_exceeded="pause", pause_timeout_seconds=60, pause_poll_seconds=0.1)
    await train(fast_emulator, proj, "a-v1", 8, budget=budget, dataset="a")
    name = f"a-v2-{uuid.uuid4().hex[:6]}"
    resumer = asyncio.create_task(resume_when_paused(f"scenario-train-lora-{name}", {"approve": True}))
    result = await train(fast_emulator, proj, name, 9, budget=budget, dataset="a")
    await resumer
    assert result.status == "trained" and puts(fast_emulator, 200) == 2
    statuses = sorted(e.status for e in await read_entries(proj, today_utc()))
    assert statuses == ["approved", "spent"]


async def test_five_runs_at_once_never_spend_past_the_budget(fast_emulator: EmulatorServer) -> None:
    proj, budget = project(), ScenarioBudget(per_project=250)
    outcomes = await asyncio.gather(
        *(train(fast_emulator, proj, f"crowd-{i}", 20 + i, budget=budget, dataset=f"crowd-{i}") for i in range(5)),
        return_exceptions=True,
    )
    trained = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceeded)]
    assert (len(trained), len(refused)) == (2, 3), outcomes
    entries = await read_entries(proj, today_utc())
    assert sum(e.charged for e in entries) == 2 * ESTIMATE <= 250
    assert puts(fast_emulator, 200) == 2


async def test_the_ledger_survives_the_process(fast_emulator: EmulatorServer) -> None:
    proj = project()
    result = await train(fast_emulator, proj, "kept", 30)
    script = (
        "import asyncio, json, sys\n"
        "from datetime import date\n"
        "from prefect_scenario.spend.ledger import read_entries\n"
        "entries = asyncio.run(read_entries(sys.argv[1], date.fromisoformat(sys.argv[2])))\n"
        "print(json.dumps([e.model_dump() for e in entries]))\n"
    )
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script, proj, today_utc().isoformat()], env=env, capture_output=True,
        text=True, timeout=240, check=True,
    )  # fmt: skip
    [entry] = json.loads(done.stdout.strip().splitlines()[-1])
    assert (entry["model_id"], entry["actual"], entry["status"]) == (result.model_id, ESTIMATE, "spent")


async def test_a_fleet_run_budget_refuses_the_job_that_would_cross_it(fast_emulator: EmulatorServer) -> None:
    proj = project()
    jobs = [TrainingJob(name=f"fleet-{i}", training_type="flux.2-dev-lora", images=images(40 + i), parameters=PARAMS)
            for i in range(3)]  # fmt: skip
    with pytest.raises(BudgetExceeded) as raised:
        await train_lora_fleet(jobs=jobs, credentials=credentials_for(fast_emulator, project_id=proj),
                               poll_policy=FAST_POLL, budget=ScenarioBudget(per_fleet_run=250))  # fmt: skip
    assert raised.value.limit == "per_fleet_run"
    entries = await read_entries(proj, today_utc())
    assert sorted(e.status for e in entries) == ["spent", "spent"] and puts(fast_emulator, 200) == 2


BAD = [
    pytest.param({"max_creative_units": 0}, "max_creative_units must be a positive", id="zero-max-units"),
    pytest.param({"max_creative_units": -10}, "max_creative_units must be a positive", id="negative-max-units"),
    pytest.param({"budget": "no-such-budget"}, "no ScenarioBudget block named 'no-such-budget'", id="missing-block"),
]  # fmt: skip


@pytest.mark.parametrize(("options", "message"), BAD)
async def test_bad_spend_input_fails_before_any_request(
    fast_emulator: EmulatorServer, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        await train(fast_emulator, project(), "bad", 50, **options)
    assert fast_emulator.requests() == []


async def test_a_saved_budget_loads_by_name_and_a_bad_saved_one_fails_at_load(fast_emulator: EmulatorServer) -> None:
    name = f"budget-{uuid.uuid4().hex[:8]}"
    await ScenarioBudget(per_dataset=500).save(name)
    assert (await train(fast_emulator, project(), "named", 51, budget=name)).status == "trained"
    async with get_client() as prefect:
        document = await prefect.read_block_document_by_name(name, block_type_slug="scenario-budget")
        document.data["per_dataset"] = -1
        from prefect.client.schemas.actions import BlockDocumentUpdate

        await prefect.update_block_document(document.id, BlockDocumentUpdate(data=document.data))
    before = len(fast_emulator.requests())
    with pytest.raises(ConfigurationError, match="per_dataset must be a positive"):
        await train(fast_emulator, project(), "named-bad", 52, budget=name)
    assert len(fast_emulator.requests()) == before


async def test_the_ledger_artifact_lists_the_training_and_holds_no_secret(fast_emulator: EmulatorServer) -> None:
    result = await train(fast_emulator, project(), "shown", 60, budget=ScenarioBudget(per_project=1000))
    async with get_client() as prefect:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        card = ProgressReporter.for_training(result.model_id, "shown").key
        wanted = {LEDGER_ARTIFACT_KEY, "scenario-ledger-summary", card}
        artifacts = await prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=sorted(wanted)))
        )
    text = json.dumps([a.model_dump(mode="json") for a in artifacts])
    assert {a.key for a in artifacts} == wanted
    # A key's every version is returned (other tests' ledgers too): this training's row is in one.
    rows = [r for a in artifacts if a.key == LEDGER_ARTIFACT_KEY for r in json.loads(str(a.data))]
    row = next(r for r in rows if r["model"] == result.model_id)
    assert (row["model"], row["estimate"], row["actual cost"], row["status"]) == (
        result.model_id,
        "104",
        "104",
        "spent",
    )
    (progress,) = [a for a in artifacts if a.key == card]
    assert (progress.data, progress.description) == (100, "shown: trained")  # not left at the estimate's 0 %
    assert KEY not in text and SECRET not in text


async def test_an_unavailable_estimate_refuses_when_a_limit_is_set(fast_emulator: EmulatorServer) -> None:
    from scenario_emulator.faults import FaultConfig

    # Every PUT .../train fails (5xx): the dry run cannot answer, so a limit cannot be verified.
    fast_emulator.set_faults(FaultConfig(error_rate=1.0, methods=("PUT",), paths=("/train",)))
    try:
        with pytest.raises(BudgetExceeded, match="estimate is unavailable"):
            await train(fast_emulator, project(), "blind", 70, max_creative_units=500)
    finally:
        fast_emulator.set_faults(FaultConfig())
    assert puts(fast_emulator, 200) == 0
    trains = [r for r in fast_emulator.requests() if r["method"] == "PUT" and r["path"].endswith("/train")]
    assert trains and all("dryRun" in (r["query"] or "") for r in trains)  # dry runs (retried), never a trigger


async def test_a_fleet_job_with_a_bad_limit_fails_the_fleet_before_any_request(fast_emulator: EmulatorServer) -> None:
    jobs = [
        TrainingJob(name="ok", training_type="flux.2-dev-lora", images=images(80)),
        TrainingJob(name="bad", training_type="flux.2-dev-lora", images=images(81), max_creative_units=-1),
    ]
    with pytest.raises(ConfigurationError, match="max_creative_units must be a positive"):
        await train_lora_fleet(jobs=jobs, credentials=credentials_for(fast_emulator, project_id=project()))
    assert fast_emulator.requests() == []
