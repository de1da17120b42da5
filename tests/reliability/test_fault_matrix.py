"""The fault matrix: seeded ``train_lora`` runs through every kind of fault the emulator injects.

Per scenario, N runs (``PSC_FAULT_RUNS``, default 5 in ``make test``; the issue's
20 with ``PSC_FAULT_RUNS=20``) must each end ``trained`` with exactly one model,
exactly the given images (compared by the sha256 of the bytes the emulator
serves back) and exactly one training (the emulator's own training records, and
no second successful ``PUT .../train`` in its request log; the cost estimate's dry run
before it is expected).

Each run re-seeds the injector (``seed = scenario seed + run``), so a failure is
replayed by running the same scenario again. A table of runs, faults, retries
and outcomes is printed (``pytest -s`` shows it).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from prefect_scenario.training.flows import train_lora
from scenario_emulator import EmulatorServer
from scenario_emulator.faults import FaultConfig
from tests.flow_fixtures import FAST_POLL, credentials_for
from tests.reliability._support import faulted, holdings_of, seeded_pngs, sha, train_triggers

pytestmark = pytest.mark.usefixtures("prefect_harness")

RUNS = int(os.environ.get("PSC_FAULT_RUNS", "5"))
IMAGES_PER_RUN = 4
CLIENT_TIMEOUT = 0.5


@dataclass(frozen=True)
class Scenario:
    id: str
    faults: dict[str, Any]
    seed: int
    credentials: dict[str, Any] = field(default_factory=dict)


SCENARIOS = [
    Scenario("5xx-10pct", {"error_rate": 0.10}, 1000),
    Scenario("5xx-30pct", {"error_rate": 0.30}, 2000),
    Scenario("429-retry-after", {"rate_limit_rate": 0.25, "retry_after_seconds": 0.01}, 3000),
    Scenario("drop-before-work", {"drop_before_rate": 0.20}, 4000),
    Scenario("drop-after-work", {"drop_after_rate": 0.20}, 5000),
    Scenario(
        "latency-past-timeout",
        {"slow_rate": 0.12, "slow_seconds": CLIENT_TIMEOUT + 0.15},
        6000,
        {"timeout": CLIENT_TIMEOUT},
    ),
]

ROWS: list[str] = []


async def _task_retries(flow_run_id: Any) -> int:
    async with get_client() as prefect:
        runs = await prefect.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return sum(max(0, (r.run_count or 1) - 1) for r in runs)


@pytest.mark.e2e  # 6 scenarios × PSC_FAULT_RUNS full trainings: about 2.5 minutes (`make check` skips it)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
async def test_every_run_trains_once_with_exactly_its_images(fast_emulator: EmulatorServer, scenario: Scenario) -> None:
    creds = credentials_for(fast_emulator, **scenario.credentials)
    started = time.monotonic()
    outcomes: list[str] = []
    faults = retries = requests = 0
    for run in range(RUNS):
        name = f"{scenario.id}-{run}"
        images = seeded_pngs(scenario.seed + run, IMAGES_PER_RUN)
        before = len(fast_emulator.requests())
        fast_emulator.set_faults(FaultConfig.from_wire({**scenario.faults, "seed": scenario.seed + run}))
        try:
            state = await train_lora(
                name=name, training_type="flux.2-klein-4b-lora", images=images, credentials=creds,
                poll_policy=FAST_POLL, return_state=True,
            )  # fmt: skip
        finally:
            fast_emulator.set_faults(FaultConfig())
        log = fast_emulator.requests()[before:]
        faults += faulted(log)
        requests += len(log)
        retries += await _task_retries(state.state_details.flow_run_id)
        assert state.is_completed(), f"{name}: {state.type.value}: {state.message}"
        result = await state.result()
        held = await holdings_of(fast_emulator, name)
        assert held.model_ids == [result.model_id], f"{name}: models on the server {held.model_ids}"
        assert held.status == "trained" and result.status == "trained"
        assert held.image_hashes == sorted(sha(i) for i in images), f"{name}: images differ from the given ones"
        assert held.trainings == 1, f"{name}: {held.trainings} trainings started"
        triggers = train_triggers(fast_emulator, result.model_id)
        # Spend control asks for the estimate (a dry run, retried like any idempotent call) before the trigger.
        assert triggers.get("dry_run", 0) >= 1 and triggers.get("ok", 0) <= 1, f"{name}: {triggers}"
        assert triggers.get("ok", 0) + triggers.get("dropped_after_work", 0) >= 1, f"{name}: {triggers}"
        outcomes.append(result.status)
    seconds = time.monotonic() - started
    ROWS.append(
        f"| {scenario.id} | {RUNS} | {requests} | {faults} | {retries} | "
        f"{outcomes.count('trained')}/{RUNS} trained, 1 model, 1 training each | {seconds:.1f}s |"
    )


# -- late landings: the work of a timed-out request arrives after the retry looked ---------------------

LATE = [
    pytest.param("POST", "/v1/models", id="create"),
    pytest.param("POST", "/training-images", id="add-image"),
    pytest.param("PUT", "/train", id="trigger"),
]


def _matching(server: EmulatorServer, method: str, suffix: str) -> list[dict[str, Any]]:
    # The cost estimate's dry run shares the trigger's path: it is not the request under test.
    return [r for r in server.requests() if r["method"] == method and r["path"].endswith(suffix)
            and "dryRun" not in (r.get("query") or "")]  # fmt: skip


async def _spike_only_the_first(server: EmulatorServer, method: str, suffix: str, faults: FaultConfig) -> None:
    """Slow the first matching request, then turn the faults off once it has been decided (and so delayed).

    For the trigger, the faults go on only once the dry run before it was answered, so that
    the slowed request is the trigger itself.
    """
    for _ in range(6000):  # 30 s at most; the test cancels it sooner
        dry_runs = [r for r in server.requests() if r["method"] == method and r["path"].endswith(suffix)
                    and "dryRun" in (r.get("query") or "") and r["status"] is not None]  # fmt: skip
        if suffix != "/train" or dry_runs:
            break
        await asyncio.sleep(0.005)
    server.set_faults(faults)
    for _ in range(6000):
        if _matching(server, method, suffix):
            server.set_faults(FaultConfig())
            return
        await asyncio.sleep(0.005)


@pytest.mark.parametrize(("method", "suffix"), LATE)
async def test_work_that_lands_after_the_timeout_is_found_not_repeated(
    fast_emulator: EmulatorServer, method: str, suffix: str
) -> None:
    """A create, add-image or trigger the server finishes 0.6 s after the client gave up.

    Without the settle wait in ``tasks._settle_after_timeout`` the task's retry
    (milliseconds after the timeout) looked before that work landed and repeated it:
    a second model, duplicate images, or a second training. With it, the retry looks
    one client timeout later and finds the work.
    """
    timeout, spike = 1.0, 1.6
    name = f"late-{suffix.strip('/').replace('/', '-')}"
    images = seeded_pngs(7000 + len(name), IMAGES_PER_RUN)
    faults = FaultConfig(slow_rate=1.0, slow_seconds=spike, methods=(method,), paths=(suffix,))
    watcher = asyncio.create_task(_spike_only_the_first(fast_emulator, method, suffix, faults))
    await asyncio.sleep(0)  # the faults are on (or, for the trigger, armed) before the run starts
    try:
        result = await train_lora(
            name=name, training_type="flux.2-klein-4b-lora", images=images,
            credentials=credentials_for(fast_emulator, timeout=timeout), poll_policy=FAST_POLL,
        )  # fmt: skip
    finally:
        watcher.cancel()
        fast_emulator.set_faults(FaultConfig())
    await asyncio.sleep(spike)  # anything still in flight lands before we count
    late = _matching(fast_emulator, method, suffix)
    assert late and late[0]["status"] is not None, "the slow request was served after the client gave up"
    held = await holdings_of(fast_emulator, name)
    assert held.model_ids == [result.model_id], f"models on the server: {held.model_ids}"
    assert held.image_hashes == sorted(sha(i) for i in images)
    assert held.trainings == 1 and held.status == "trained"


def test_print_the_fault_table() -> None:
    """Runs last in this module (pytest keeps file order): the summary of the scenarios."""
    if not ROWS:
        pytest.skip("no fault scenario ran")
    header = [
        "| scenario | runs | requests | faults met | task retries | outcome | time |",
        "|---|---|---|---|---|---|---|",
    ]
    print("\n" + "\n".join(header + ROWS))
