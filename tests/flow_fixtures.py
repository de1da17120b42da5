"""Fixtures for flow tests: one Prefect test harness per session, a fast emulator per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.waiting.polling import PollPolicy
from scenario_emulator import EmulatorConfig, EmulatorServer

__all__ = ["FAST_POLL", "credentials_for", "end_training_once_polled", "fast_emulator", "prefect_harness"]

FAST_POLL = PollPolicy(minimum=0.02, near_end=0.05, near_end_window=0.2, queued=0.05, starting=0.05, unknown=0.05)
KEY = "flow-key-7d1c"
SECRET = "flow-secret-93f2a8b1"


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """Prefect's ephemeral test server (costs ~15 s once per session)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=240):
        yield


@pytest.fixture
def fast_emulator() -> Iterator[EmulatorServer]:
    """An emulator on a real socket whose trainings take about half a second."""
    config = EmulatorConfig(
        api_key=KEY,
        api_secret=SECRET,
        queue_seconds=0.1,
        start_seconds=0.05,
        train_seconds=0.3,
        queue_position=1,
        fail_names=("doomed",),
        fail_reason="out of memory at epoch 3",
    )
    with EmulatorServer(config) as server:
        yield server


def credentials_for(server: EmulatorServer, **overrides: object) -> ScenarioCredentials:
    values: dict[str, object] = {
        "api_key": KEY,
        "api_secret": SECRET,
        "project_id": "proj_flows",
        "base_url": server.base_url,
        "timeout": 5.0,
        **overrides,
    }
    return ScenarioCredentials(**values)  # type: ignore[arg-type]


async def end_training_once_polled(server: EmulatorServer, train_seconds: float = 600) -> None:
    """Let a training be seen under way by one poll, then end it by moving the emulator's clock.

    For an emulator whose trainings take ``train_seconds``: a busy machine cannot make a
    wait loop miss the training stage (a fixed sub-second training could end unseen).
    """
    import asyncio

    def polled() -> bool:
        log = server.requests()
        trains = [i for i, r in enumerate(log) if r["method"] == "PUT" and r["path"].endswith("/train")]
        return bool(trains) and any(r["method"] == "GET" and "/models/" in r["path"] for r in log[trains[-1] + 1 :])

    for _ in range(12_000):  # waiting for the flow's request (at most 4 minutes), not for time to pass
        if polled():
            break
        await asyncio.sleep(0.02)
    server.advance_clock(train_seconds + 1)
