"""``wait="suspend"``: the record in flow-run tags, the fallback outside deployments, the resumed run.

A resumed run is Prefect running the flow again from the top, with the tags it wrote
before suspending; here the flow is run with those tags, which is what a worker does
with a resumed run (the e2e test suspends and resumes for real, through workers).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

import pytest
from prefect import flow, tags
from prefect.exceptions import ParameterTypeError

from prefect_scenario import exceptions as exc
from prefect_scenario.training.flows import train_lora
from prefect_scenario.waiting import suspension
from prefect_scenario.waiting.suspension import WaitRecord, parse_wait
from scenario_emulator import EmulatorConfig, EmulatorServer
from tests.flow_fixtures import FAST_POLL, KEY, SECRET, credentials_for
from tests.training.test_flows import png

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def emulator() -> Any:
    config = EmulatorConfig(
        api_key=KEY, api_secret=SECRET, queue_seconds=0.05, start_seconds=0.05, train_seconds=600,
        fail_names=("doomed",), fail_reason="out of memory at epoch 3",
    )  # fmt: skip
    with EmulatorServer(config) as server:
        yield server


def paid_or_uploading(server: EmulatorServer) -> list[str]:
    """Requests that create, upload or train (what a resumed run must never send)."""
    writes = [r for r in server.requests() if r["method"] in ("POST", "PUT") and not r["path"].endswith("get-bulk")]
    return [f"{r['method']} {r['path']}" for r in writes]


@pytest.mark.parametrize(
    ("given", "mode"), [(True, "poll"), ("poll", "poll"), ("suspend", "suspend"), (False, "none")], ids=str
)
def test_parse_wait(given: object, mode: str) -> None:
    assert parse_wait(given) == mode


@pytest.mark.parametrize("tags_", [[], ["scenario-waiting"], ["scenario-deadline:nan-ish", "scenario-model:m"]])
def test_no_record_without_a_deadline_and_a_model(tags_: list[str]) -> None:
    assert WaitRecord.from_tags(tags_) is None


async def test_a_bad_wait_mode_is_refused_before_any_request(emulator: EmulatorServer) -> None:
    # Prefect's parameter validation refuses it (the flow's own check says the same for a request).
    with pytest.raises(ParameterTypeError, match="wait"):
        await train_lora(
            name="x", training_type="flux.2-dev-lora", images=[png(1)], credentials=credentials_for(emulator),
            wait="later",  # type: ignore[arg-type]
        )  # fmt: skip
    assert emulator.requests() == []


async def test_suspend_outside_a_deployment_polls_with_a_warning(
    emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    creds = credentials_for(emulator)
    emulator.advance_clock(0)

    async def train() -> Any:
        return await train_lora(
            name="local", training_type="flux.2-dev-lora", images=[png(i) for i in range(3)], credentials=creds,
            wait="suspend", poll_policy=FAST_POLL, timeout_seconds=5,
        )  # fmt: skip

    with caplog.at_level(logging.WARNING):
        with pytest.raises(exc.TrainingTimeout):
            await train()  # polled in this process (600 s trainings, 5 s timeout): no suspension
    assert any("needs a deployment run" in r.getMessage() for r in caplog.records)


async def _started(emulator: EmulatorServer, name: str) -> tuple[str, str]:
    """A model triggered by an earlier (suspended) attempt of the run: its id and run key."""
    started = await train_lora(
        name=name, training_type="flux.2-dev-lora", images=[png(i) for i in range(3)],
        credentials=credentials_for(emulator), wait=False,
    )  # fmt: skip
    return started.model_id, started.idempotency_key


async def resumed(emulator: EmulatorServer, name: str, record: WaitRecord) -> Any:
    with tags(*record.tags()):
        return await train_lora(
            name=name, training_type="flux.2-dev-lora", images=[png(i) for i in range(3)],
            credentials=credentials_for(emulator), wait="suspend", poll_policy=FAST_POLL,
        )  # fmt: skip


async def test_a_resumed_run_finishes_from_the_model_and_sends_nothing_else(emulator: EmulatorServer) -> None:
    model_id, key = await _started(emulator, "hero")
    emulator.advance_clock(601)
    emulator.app.clear_requests()
    record = WaitRecord(model_ids=(model_id,), keys=(key,), deadline=time.time() + 600, cost=104.0, dataset_score=0.8)
    result = await resumed(emulator, "hero", record)
    assert (result.status, result.model_id, result.idempotency_key) == ("trained", model_id, key)
    assert (result.creative_units_cost, result.dataset_score, result.images, result.reused) == (104.0, 0.8, 3, False)
    assert result.epochs
    assert paid_or_uploading(emulator) == []
    assert [r["method"] for r in emulator.requests()] == ["GET"]


async def test_a_resumed_run_reports_a_failed_training(emulator: EmulatorServer) -> None:
    model_id, key = await _started(emulator, "doomed")
    emulator.advance_clock(601)
    with pytest.raises(exc.TrainingFailed, match="out of memory"):
        await resumed(emulator, "doomed", WaitRecord(model_ids=(model_id,), keys=(key,), deadline=time.time() + 600))


async def test_a_resumed_run_past_its_deadline_cancels_and_times_out(emulator: EmulatorServer) -> None:
    model_id, key = await _started(emulator, "slow")
    with pytest.raises(exc.TrainingTimeout):
        await resumed(emulator, "slow", WaitRecord(model_ids=(model_id,), keys=(key,), deadline=time.time() - 1))
    async with credentials_for(emulator).get_client() as client:
        assert (await client.get_model(model_id)).status == "training-canceled"
    assert paid_or_uploading(emulator)[-1].endswith("/train/action")


async def test_a_resumed_fleet_reads_its_models_once_and_sends_nothing_else(emulator: EmulatorServer) -> None:
    from prefect_scenario.training.fleet import TrainingJob, train_lora_fleet

    jobs = [TrainingJob(name=n, training_type="flux.2-dev-lora", images=[png(i + 10 * k) for i in range(3)])
            for k, n in enumerate(["a", "b"])]  # fmt: skip
    creds = credentials_for(emulator)
    started = await train_lora_fleet(jobs=jobs, credentials=creds, wait=False)
    emulator.advance_clock(601)
    emulator.app.clear_requests()
    record = WaitRecord(
        model_ids=tuple(r.model_id for r in started), keys=tuple(r.idempotency_key for r in started),
        deadline=time.time() + 600,
    )  # fmt: skip
    with tags(*record.tags()):
        results = await train_lora_fleet(jobs=jobs, credentials=creds, wait="suspend", poll_policy=FAST_POLL)
    assert [(r.name, r.status, r.model_id) for r in results] == [(r.name, "trained", r.model_id) for r in started]
    assert [r.idempotency_key for r in results] == [r.idempotency_key for r in started]
    assert [f"{r['method']} {r['path'].rsplit('/', 1)[-1]}" for r in emulator.requests()] == ["POST get-bulk"]


class _Suspended(Exception):
    """Stands in for Prefect's ``Pause``: the run's process would end here."""


async def _ledger_text() -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from prefect_scenario.spend.ledger import LEDGER_ARTIFACT_KEY

    async with get_client() as prefect:
        found = await prefect.read_latest_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[LEDGER_ARTIFACT_KEY]))
        )
    return json.dumps([a.model_dump(mode="json") for a in found])


async def test_a_suspending_run_writes_its_cost_then_publishes_the_ledger_once_resumed(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect_scenario.spend.gate import today_utc
    from prefect_scenario.spend.ledger import read_entries
    from prefect_scenario.training import pipeline

    captured: list[WaitRecord] = []

    async def suspend(record: WaitRecord, *, alongside: Any = None) -> None:
        captured.append(record)
        if alongside is not None:
            await alongside()  # what the real suspend_for does, alongside its tag write
        raise _Suspended

    # A deployment run would suspend here; the harness cannot, so the suspension is stood in for.
    monkeypatch.setattr(pipeline, "can_suspend", lambda: True)
    monkeypatch.setattr(pipeline, "suspend_for", suspend)
    creds = credentials_for(emulator).model_copy(update={"project_id": f"proj_{uuid.uuid4().hex[:10]}"})
    with pytest.raises(_Suspended):
        await train_lora(
            name="ledgered", training_type="flux.2-dev-lora", images=[png(i) for i in range(3)], credentials=creds,
            wait="suspend",
        )  # fmt: skip
    (record,) = captured
    (entry,) = await read_entries(creds.project_id, today_utc())
    assert (entry.model_id, entry.status, entry.actual) == (record.model_ids[0], "spent", record.cost)
    assert record.model_ids[0] not in await _ledger_text()  # not published before the suspension

    monkeypatch.undo()
    emulator.advance_clock(601)
    with tags(*record.tags()):
        await train_lora(
            name="ledgered", training_type="flux.2-dev-lora", images=[png(i) for i in range(3)], credentials=creds,
            wait="suspend", poll_policy=FAST_POLL,
        )  # fmt: skip
    assert record.model_ids[0] in await _ledger_text()


def test_prefect_s_line_for_a_suspension_reads_info_and_other_errors_stay_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from prefect_scenario.waiting.suspension import _quiet_suspension

    _quiet_suspension()
    _quiet_suspension()  # once per process, however many suspensions
    logger = logging.getLogger("prefect.flow_runs")
    assert sum(type(f).__name__ == "SuspensionIsNotAnError" for f in logger.filters) == 1
    with caplog.at_level(logging.INFO, logger="prefect.flow_runs"):
        # As Prefect's async flow engine ends a run: ERROR for any state but Completed.
        for state in ("Suspended('Run is suspended.')", "Failed('boom')"):
            logger.log(level=logging.ERROR, msg=f"Finished in state {state}")
    suspended, failed = [r for r in caplog.records if r.name == "prefect.flow_runs"][-2:]
    assert suspended.levelname == "INFO" and "Suspended" in suspended.getMessage()
    assert failed.levelname == "ERROR" and "boom" in failed.getMessage()


def test_the_deadline_tag_is_a_date_and_a_run_suspended_by_0_2_0_is_still_read() -> None:
    from prefect_scenario.waiting.suspension import WaitRecord

    record = WaitRecord(model_ids=("model_a",), keys=("k",), deadline=1_800_000_000.0)
    assert "scenario-deadline:2027-01-15T08:00:00Z" in record.tags()
    legacy = ["scenario-waiting", "scenario-deadline:1800000000", "scenario-model:model_a", "psc-k"]
    assert WaitRecord.from_tags(legacy) == record == WaitRecord.from_tags(record.tags())


async def test_the_record_is_written_before_the_suspension_and_the_ledger_write_while_prefect_takes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order: list[str] = []
    asked = asyncio.Event()

    class Suspended(Exception):  # stands in for Prefect's Pause, which only a deployment run gets
        pass

    async def write_tags(run_id: Any, *, add: Any = (), remove: Any = (), current: Any = None) -> list[str]:
        assert current is not None  # the run's own tags: no read before the write
        order.append("record written")
        return [*current, *add]

    async def suspend(**_: Any) -> None:
        order.append("suspension asked")
        asked.set()
        raise Suspended

    async def ledger() -> None:
        # It ends only once the suspension was asked for: written before it, this would never end;
        # and the process must still wait for it after Prefect took the suspension.
        await asked.wait()
        order.append("ledger written")

    monkeypatch.setattr(suspension, "set_run_tags", write_tags)
    monkeypatch.setattr(suspension, "asuspend_flow_run", suspend)

    @flow
    async def suspending() -> list[str]:
        record = WaitRecord(model_ids=("model_1",), keys=("k",), deadline=time.time() + 600)
        with pytest.raises(Suspended):
            await asyncio.wait_for(suspension.suspend_for(record, alongside=ledger), 60)
        return list(order)

    assert await suspending() == ["record written", "suspension asked", "ledger written"]
