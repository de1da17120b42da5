"""The watcher as a long-lived service: its cadence on a moved clock, and its cycles against Prefect and the emulator.

No flow run is created by the service, whatever it finds; two services at once resume a run once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.client.schemas.objects import StateType

from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.exceptions import ConfigurationError
from prefect_scenario.waiting.service import next_cycle_delay, watch_forever
from prefect_scenario.waiting.suspension import WaitRecord
from prefect_scenario.waiting.watcher import WatchReport, watch_once
from scenario_emulator import EmulatorServer
from tests.flow_fixtures import credentials_for
from tests.training.test_watcher import slow_emulator, start_training, state_of, suspended_run

pytestmark = pytest.mark.usefixtures("prefect_harness")
__all__ = ["slow_emulator"]  # the fixture, re-used


@pytest.mark.parametrize(
    ("elapsed", "next_check", "delay"),
    [
        pytest.param(0.5, None, 29.5, id="interval-from-the-cycle-start"),
        pytest.param(31.0, None, 0.0, id="a-cycle-longer-than-the-interval-starts-the-next-at-once"),
        pytest.param(0.5, 10.0, 9.75, id="aimed-just-after-a-predicted-end"),
        pytest.param(0.5, 0.0, 1.5, id="never-sooner-than-the-floor"),
        pytest.param(0.5, 300.0, 29.5, id="a-far-end-waits-one-interval"),
    ],
)
def test_next_cycle_delay(elapsed: float, next_check: float | None, delay: float) -> None:
    assert next_cycle_delay(30.0, elapsed=elapsed, next_check=next_check) == delay


class Clock:
    """A clock the fake cycles and sleeps move; records when each cycle started."""

    def __init__(self) -> None:
        self.now = 0.0
        self.starts: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_cycles_start_one_interval_apart_whatever_a_cycle_costs_and_an_outage_is_survived() -> None:
    clock = Clock()
    costs = iter([0.7, 3.0, 0.2, 0.1, 0.1])

    async def cycle(credentials: ScenarioCredentials) -> WatchReport:
        clock.starts.append(clock.now)
        clock.now += next(costs)
        if len(clock.starts) == 2:
            raise ConnectionError("Prefect unreachable")  # logged, the next cycle runs on time
        return WatchReport(next_check_seconds=4.0 if len(clock.starts) == 4 else None)

    reports: list[WatchReport] = []
    ran = await watch_forever(
        ScenarioCredentials(api_key="k", api_secret="s", project_id="p"), interval=10.0, cycles=5, cycle=cycle,
        clock=clock, sleep=clock.sleep, on_report=reports.append,
    )  # fmt: skip
    assert ran == 5 and len(reports) == 4
    # Every start is one interval after the previous one (the lag bound), except after a
    # cycle that predicted an end in 4 s: the next one starts just after it.
    assert clock.starts == [0.0, 10.0, 20.0, 30.0, 34.25]


async def test_a_bad_interval_or_no_credentials_stops_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="above 0"):
        await watch_forever(None, interval=0)
    for name in ("SCENARIO_API_KEY", "SCENARIO_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError):
        await watch_forever(None, interval=1, cycles=1)


@pytest.fixture
async def prefect() -> AsyncIterator[PrefectClient]:
    async with get_client() as client:
        yield client


async def flow_run_count(prefect: PrefectClient, name: str | None = None) -> int:
    named = FlowRunFilter(name=FlowRunFilterName(any_=[name])) if name else None
    return len(await prefect.read_flow_runs(flow_run_filter=named, limit=200))


async def test_the_service_resumes_a_run_and_creates_no_flow_run(
    prefect: PrefectClient, slow_emulator: EmulatorServer
) -> None:
    creds = credentials_for(slow_emulator)
    model_id = await start_training(creds, "served")
    run_id = await suspended_run(prefect, WaitRecord(model_ids=(model_id,), keys=(), deadline=time.time() + 600))
    before = await flow_run_count(prefect)
    clock = Clock()

    async def sleep(seconds: float) -> None:
        await clock.sleep(seconds)
        slow_emulator.advance_clock(601)  # the training ends between the first and the second cycle

    reports: list[WatchReport] = []
    await watch_forever(creds, interval=5.0, cycles=3, clock=clock, sleep=sleep, on_report=reports.append)
    assert str(run_id) not in reports[0].resumed and model_id not in reports[0].ended
    assert reports[1].resumed.count(str(run_id)) == 1 and model_id in reports[1].ended
    assert all(str(run_id) not in r.resumed for r in reports[2:])
    assert (await state_of(prefect, run_id))[0] is StateType.SCHEDULED
    # Three cycles, one resume, and no flow run of the watcher's (nor any other) created.
    assert await flow_run_count(prefect) == before
    assert await flow_run_count(prefect, "scenario-training-watcher") == 0


async def test_two_watchers_at_once_resume_a_run_once(prefect: PrefectClient, slow_emulator: EmulatorServer) -> None:
    creds = credentials_for(slow_emulator)
    model_ids = [await start_training(creds, f"twice{i}") for i in range(3)]
    runs = [
        await suspended_run(prefect, WaitRecord(model_ids=(m,), keys=(), deadline=time.time() + 600)) for m in model_ids
    ]
    slow_emulator.advance_clock(601)
    first, second = await asyncio.gather(watch_once(creds), watch_once(creds))
    resumed = first.resumed + second.resumed
    assert sorted(r for r in resumed if r in {str(i) for i in runs}) == sorted(str(i) for i in runs)


def test_the_watch_command_runs_the_service_until_interrupted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from prefect_scenario import cli
    from prefect_scenario.waiting import service

    calls: list[tuple[object, float]] = []

    async def forever(credentials: object, *, interval: float) -> int:
        calls.append((credentials, interval))
        raise KeyboardInterrupt  # Ctrl-C between two cycles: a clean exit, Prefect holds every wait

    monkeypatch.setattr(service, "watch_forever", forever)
    assert cli.main(["watch", "--interval", "5", "--scenario-block", "emu"]) == 0
    assert calls == [("emu", 5.0)]
    assert "no flow runs" in capsys.readouterr().err


def test_a_report_reads_on_one_line_with_every_id_it_resumed() -> None:
    run_ids = [f"{i:08d}-0000-0000-0000-000000000000" for i in range(3)]
    report = WatchReport(waiting=3, resumed=run_ids, ended=["model_a" * 10], bulk_requests=1)
    line = report.brief()
    assert "\n" not in line and all(run in line for run in run_ids)
    assert "timed_out" not in line and "next_check_seconds" not in line
    assert WatchReport().brief() == "nothing waited"
