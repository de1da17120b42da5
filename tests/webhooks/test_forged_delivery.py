"""A forged ``completed`` 3 s before the real end, no watcher: the real delivery still resumes the run at once.

The receiver (in process, Prefect's test server, the emulator) runs the default hint, the
watcher's code kept warm (``HintSettler``). Time moves on the emulator's clock and the gate's, never by sleeping.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType

from prefect_scenario.waiting.hints import HintSettler
from prefect_scenario.waiting.suspension import WaitRecord
from prefect_scenario.waiting.watcher import WatchReport
from prefect_scenario.webhooks.receiver import WebhookReceiver
from scenario_emulator import EmulatorServer
from tests.flow_fixtures import credentials_for
from tests.training.test_watcher import bulk_reads, slow_emulator, start_training, state_of, suspended_run

pytestmark = pytest.mark.usefixtures("prefect_harness")
__all__ = ["slow_emulator"]  # the fixture, re-used

PATH = "/scenario/tok_0123456789abcdef0123"


async def test_a_forged_delivery_costs_one_read_and_never_delays_the_real_one(slow_emulator: EmulatorServer) -> None:
    creds = credentials_for(slow_emulator)
    model_id = await start_training(creds, "forged-then-real")
    now = [0.0]
    released = asyncio.Event()
    deferred: list[float] = []
    reports: asyncio.Queue[WatchReport] = asyncio.Queue()
    settle = HintSettler(creds)

    async def hint(hinted: str) -> object:
        report = await settle(hinted)
        await reports.put(report)  # type: ignore[arg-type]
        return report

    async def sleep(seconds: float) -> None:  # a deferred re-check waits until the test is done
        deferred.append(seconds)
        await released.wait()

    receiver = WebhookReceiver(PATH, hint, clock=lambda: now[0], sleep=sleep)
    completed = {"type": "model.training.completed", "data": {"modelId": model_id}}
    transport = httpx.ASGITransport(app=receiver)
    async with get_client() as prefect, httpx.AsyncClient(transport=transport, base_url="http://r") as client:
        run_id = await suspended_run(prefect, WaitRecord(model_ids=(model_id,), keys=(), deadline=time.time() + 900))
        slow_emulator.advance_clock(597)  # 3 s before the training's end
        slow_emulator.app.clear_requests()
        assert (await client.post(PATH, json=completed)).json()["hinted"] == 1  # forged
        forged = await asyncio.wait_for(reports.get(), 60)
        assert forged.resumed == [] and model_id not in forged.ended and bulk_reads(slow_emulator) == 1
        assert (await state_of(prefect, run_id))[0] is StateType.PAUSED
        assert len(deferred) == 1 and 1.0 <= deferred[0] <= 3.5  # one re-check, just after the predicted end

        slow_emulator.advance_clock(3.5)
        # The real delivery, before the re-check is due: read at once, not skipped by a cooldown.
        now[0] = deferred[0] - 0.2
        started = time.monotonic()
        assert (await client.post(PATH, json=completed)).json()["hinted"] == 1
        real = await asyncio.wait_for(reports.get(), 60)
        lag = time.monotonic() - started
        assert real.resumed == [str(run_id)] and bulk_reads(slow_emulator) == 2
        assert (await state_of(prefect, run_id))[0] is StateType.SCHEDULED
        released.set()  # the superseded re-check reads nothing
        await receiver.drain()
        await settle.aclose()
    assert bulk_reads(slow_emulator) == 2 and reports.empty()
    assert lag <= 5.0, f"the real delivery resumed its run {lag:.2f}s after it came"  # loose: a loaded CI machine
