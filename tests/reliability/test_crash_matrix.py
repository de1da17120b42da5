"""The crash matrix: SIGKILL the flow's process at four points, then run the same flow again.

The flow runs in a child process (``crash_child.py``) against an emulator served
from this test process, so the emulator (and its request log) outlives the kill.
The child talks to this session's Prefect server (the ``prefect_harness`` one,
through ``PREFECT_API_URL``): no second Prefect server to start, ~3 s per child.
The moment to kill is read from the emulator's request log; fault injection holds
the window open where the flow would otherwise race past it.

After the kill the same flow (same name, type, images and parameters, so the same
derived idempotency key) runs again to completion in this process. It must end
with the one model the child created, trained, holding exactly the given images,
after exactly one training.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import get_current_settings

from prefect_scenario.tags import idempotency_tag
from prefect_scenario.training.flows import train_lora
from scenario_emulator import EmulatorConfig, EmulatorServer
from scenario_emulator.faults import FaultConfig
from tests.flow_fixtures import FAST_POLL, KEY, SECRET, credentials_for
from tests.reliability._support import PROJECT, Holdings, holdings_of, seeded_pngs, sha, train_triggers

# e2e: each case starts a flow in a child process and SIGKILLs it (slow; `make check` skips it).
pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
TRAINING_TYPE = "flux.2-klein-4b-lora"
IMAGES = 8
CHILD_DEADLINE = 60.0
CHILD_CONCURRENCY = 2  # uploads in flight at once in the child (the re-run uses the default)

Log = list[dict[str, Any]]


def _ok(entry: dict[str, Any], method: str, pattern: Callable[[str], bool]) -> bool:
    return entry["method"] == method and pattern(entry["path"]) and entry["status"] == 200


def after_create(log: Log) -> bool:
    return any(_ok(e, "POST", lambda p: p == "/v1/models") for e in log)


def mid_uploads(log: Log) -> bool:
    return sum(_ok(e, "POST", lambda p: p.endswith("/training-images")) for e in log) >= 3


def after_trigger(log: Log) -> bool:
    return any(_ok(e, "PUT", lambda p: p.endswith("/train")) for e in log)


def during_wait(log: Log) -> bool:
    trigger = next((i for i, e in enumerate(log) if _ok(e, "PUT", lambda p: p.endswith("/train"))), None)
    if trigger is None:
        return False
    return sum(_ok(e, "GET", lambda p: p.startswith("/v1/models/")) for e in log[trigger + 1 :]) >= 2


@dataclass(frozen=True)
class CrashPoint:
    id: str
    reached: Callable[[Log], bool]
    # Holds the window open: the child cannot get past the crash point before the kill.
    faults: FaultConfig
    # What the emulator holds after the kill proves where the child died.
    left_behind: Callable[[Holdings], bool]


CRASH_POINTS = [
    # The tag never lands: the re-run must adopt the untagged model the child created.
    CrashPoint(
        "after-create",
        after_create,
        FaultConfig(drop_before_rate=1.0, methods=("PUT",), paths=("/tags",)),
        lambda held: not held.tags and not held.image_hashes and held.trainings == 0,
    ),
    # Uploads take 0.3 s each, 2 at a time: 3 done, 1 or 2 in flight, the rest not sent.
    CrashPoint(
        "mid-uploads",
        mid_uploads,
        FaultConfig(latency_seconds=0.3, methods=("POST",), paths=("/training-images",)),
        lambda held: 3 <= len(held.image_hashes) < IMAGES and held.trainings == 0,
    ),
    CrashPoint(
        "after-trigger",
        after_trigger,
        FaultConfig(),
        lambda held: len(held.image_hashes) == IMAGES and held.trainings == 1,
    ),
    CrashPoint(
        "during-wait",
        during_wait,
        FaultConfig(),
        lambda held: len(held.image_hashes) == IMAGES and held.trainings == 1,
    ),
]

RESUMED: list[str] = []


@pytest.fixture
def crash_emulator() -> Iterator[EmulatorServer]:
    """Like ``fast_emulator``, but a training lasts ~2 s: long enough to die during it."""
    config = EmulatorConfig(
        api_key=KEY, api_secret=SECRET, queue_seconds=0.3, start_seconds=0.2, train_seconds=1.5, queue_position=1
    )
    with EmulatorServer(config) as server:
        yield server


def _child_env(server: EmulatorServer) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "SCENARIO_API_KEY": KEY,
            "SCENARIO_API_SECRET": SECRET,
            "SCENARIO_PROJECT_ID": PROJECT,
            "SCENARIO_BASE_URL": server.base_url,
            "PREFECT_API_URL": str(get_current_settings().api.url),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


async def _kill_when(child: asyncio.subprocess.Process, server: EmulatorServer, reached: Callable[[Log], bool]) -> None:
    started = time.monotonic()
    while time.monotonic() - started < CHILD_DEADLINE:
        if reached(server.requests()):
            child.send_signal(signal.SIGKILL)
            await child.wait()
            return
        if child.returncode is not None:
            pytest.fail(f"the child ended (code {child.returncode}) before the crash point")
        await asyncio.sleep(0.005)
    pytest.fail("the crash point was never reached")


async def _settled(server: EmulatorServer) -> None:
    """Wait until every request the dead child sent has been served (a real restart takes longer)."""
    for _ in range(400):
        if all(e["status"] is not None or e["fault"] for e in server.requests()):
            return
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("point", CRASH_POINTS, ids=[p.id for p in CRASH_POINTS])
async def test_a_killed_run_resumes_without_duplicates(
    crash_emulator: EmulatorServer, tmp_path: Path, point: CrashPoint
) -> None:
    name = f"crash-{point.id}"
    images = seeded_pngs(9000 + len(RESUMED) + len(point.id), IMAGES)
    paths = []
    for i, data in enumerate(images):
        path = tmp_path / f"img-{i:02d}.png"
        path.write_bytes(data)
        paths.append(str(path))
    crash_emulator.set_faults(point.faults)
    with (tmp_path / "child.log").open("wb") as output:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.reliability.crash_child", name, TRAINING_TYPE, str(CHILD_CONCURRENCY), *paths,
            cwd=ROOT, env=_child_env(crash_emulator), stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            await _kill_when(child, crash_emulator, point.reached)
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
    assert child.returncode == -signal.SIGKILL
    crash_emulator.set_faults(FaultConfig())
    await _settled(crash_emulator)
    before = await holdings_of(crash_emulator, name)
    assert len(before.model_ids) == 1, f"the child should have created one model, found {before.model_ids}"
    assert point.left_behind(before), f"the child died elsewhere than {point.id}: {before}"

    result = await train_lora(
        name=name, training_type=TRAINING_TYPE, images=paths, credentials=credentials_for(crash_emulator),
        poll_policy=FAST_POLL,
    )  # fmt: skip

    held = await holdings_of(crash_emulator, name)
    assert held.model_ids == before.model_ids == [result.model_id], "the re-run continued the child's model"
    assert idempotency_tag(result.idempotency_key) in held.tags
    assert held.status == result.status == "trained"
    assert held.image_hashes == sorted(sha(i) for i in images), "exactly the given images, none twice"
    assert held.trainings == 1
    triggers = train_triggers(crash_emulator, result.model_id)
    # Exactly one cost estimate (dry run) per training across the crash: the child's or the re-run's.
    assert triggers.get("ok", 0) == 1 and triggers.get("dry_run", 0) == 1, triggers
    RESUMED.append(point.id)
