"""The watcher service's flow runs while nothing waits (a row of ``bench_suspend``)."""

from __future__ import annotations

import asyncio
import uuid

from benchmarks._common import credentials, running_emulator

__all__ = ["IDLE_INTERVAL", "idle_watcher_runs"]

IDLE_INTERVAL = 30.0  # the default watch interval: 120 cycles an hour


def idle_watcher_runs() -> tuple[float, float]:
    """(flow runs the watcher service creates in an idle hour, what a flow run per cycle created).

    An hour of cycles at the default interval, the clock moved instead of waited: each cycle
    is a real Prefect query; the count is every flow run created meanwhile, whatever its flow.
    """
    from prefect.client.orchestration import get_client

    from prefect_scenario.waiting.service import watch_forever

    cycles = int(3600 / IDLE_INTERVAL)
    with running_emulator() as emulator:
        creds = credentials(emulator, f"proj_{uuid.uuid4().hex[:10]}")

        async def count() -> int:
            async with get_client() as prefect:
                return await prefect.count_flow_runs()

        async def hour() -> float:
            clock = [0.0]

            async def sleep(seconds: float) -> None:
                clock[0] += seconds

            before = await count()
            ran = await watch_forever(creds, interval=IDLE_INTERVAL, cycles=cycles, clock=lambda: clock[0], sleep=sleep)
            if ran != cycles:
                raise RuntimeError(f"{ran} watcher cycles ran, not {cycles}")
            return float(await count() - before)

        return asyncio.run(hour()), float(cycles)
