"""Twenty suspended trainings on the real engine, resumed by the watcher, one watcher killed mid-way.

Issue 12, item 4, on ``tests/e2e/engine.py`` (PostgreSQL, ``prefect server``, a process pool
with two ``prefect worker`` processes, the emulator): 20 ``train_lora`` runs with
``wait="suspend"``.

- While they train, no flow-run process is alive: every run is ``PAUSED`` (suspended) and the
  workers have no ``prefect.engine`` child left, checked again at each watcher cycle that
  finds them still training.
- The trainings end (the emulator's clock moves an hour), the watcher (``watch_once()`` in a
  loop, ``tests/e2e/watch_loop.py``) resumes them; it is killed with SIGKILL as soon as it has
  resumed the first one, and a second watcher finishes the work.
- All 20 end ``COMPLETED`` and trained, each suspended once and resumed once (its state
  history), the watchers together report each run resumed once, and the emulator's log shows
  one create, one image upload set and one trigger per model: the resumed runs sent none again.

The trainings last an hour of emulator time and end when the clock moves, so nothing waits
for time to pass; what takes time is 40 flow-run processes starting on a busy machine.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import TRAINING_SECONDS
from tests.e2e.engine import Engine, is_create, is_dry_run, is_trigger, is_upload, model_of, resumes, wait_until
from tests.e2e.prefect_server import start_process, stop_process

TRAININGS = 20
WATCH_INTERVAL = 1.0


class Watcher:
    """A ``watch_loop.py`` process; its reports are its output's JSON lines."""

    def __init__(self, engine: Engine, log: Path) -> None:
        self.log = log
        self.process = start_process(
            [sys.executable, "-m", "tests.e2e.watch_loop", "--interval", str(WATCH_INTERVAL)], engine.env(), log
        )

    def reports(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    def resumed(self) -> list[str]:
        return [run for report in self.reports() for run in report["resumed"]]

    def kill(self) -> None:
        stop_process(self.process, kill=True)


@pytest.mark.timeout(2400)
def test_twenty_suspended_trainings_hold_no_process_and_are_resumed_once(engine: Engine, tmp_path: Path) -> None:
    started = time.monotonic()
    logged = len(engine.emulator_requests())
    runs = [engine.start_training(f"suspend-{i:02d}", wait="suspend") for i in range(TRAININGS)]

    # 1. Every run creates, uploads, triggers, then suspends: its process ends.
    engine.wait_suspended(runs)
    suspended_after = time.monotonic() - started
    first_phase = engine.emulator_requests()[logged:]
    triggered = [model_of(e) for e in first_phase if is_trigger(e)]
    assert len(triggered) == len(set(triggered)) == TRAININGS
    # One cost estimate before each trigger (issue 14), one per model.
    assert Counter(model_of(e) for e in first_phase if is_dry_run(e)) == Counter(dict.fromkeys(triggered, 1))

    # 2. A watcher cycle or two while they train: nothing to resume, and still no process.
    first = Watcher(engine, tmp_path / "watcher-1.log")
    try:

        def cycles_while_training() -> bool:
            reports = first.reports()
            assert not engine.alive(runs), "a flow-run process is alive while the trainings run"
            return len(reports) >= 2 and reports[-1]["waiting"] == TRAININGS

        wait_until(cycles_while_training, timeout=300, what=f"two watcher cycles: {first.log.read_text()[-2000:]}")
        assert not first.resumed() and engine.all_suspended(runs)

        # 3. The trainings end; the first watcher is killed (SIGKILL) as soon as Prefect shows
        # one run resumed: in the middle of the cycle that resumes them, before it reports.
        engine.emulator.advance_clock(TRAINING_SECONDS + 60)

        def resumed_so_far() -> set[str]:
            return {r["id"] for r in engine.flow_runs(runs) if r["state_type"] != "PAUSED"}

        wait_until(resumed_so_far, timeout=300, what="the first watcher to resume a run", every=0.1)
    finally:
        first.kill()
    resumed_by_first = resumed_so_far()
    assert 0 < len(resumed_by_first), "the first watcher resumed nothing before it was killed"
    second = Watcher(engine, tmp_path / "watcher-2.log")
    try:
        final = engine.wait_final(runs, timeout=600)
    finally:
        second.kill()
    took = time.monotonic() - started

    # 4. All trained, each suspended once and resumed once.
    assert {r["state_type"] for r in final} == {"COMPLETED"}, engine.log_tail()
    histories = {run: engine.states(run) for run in runs}
    paused = {run: sum(s["type"] == "PAUSED" for s in states) for run, states in histories.items()}
    assert set(paused.values()) == {1}, paused
    assert {run: resumes(states) for run, states in histories.items()} == dict.fromkeys(runs, 1)
    # The second watcher resumed exactly the runs the killed one had not (Prefect refuses a
    # second resume of a run, so a duplicate would not even show up as a second resume).
    by_second = Counter(second.resumed())
    assert by_second == Counter(dict.fromkeys(set(runs) - resumed_by_first, 1)), (resumed_by_first, by_second)
    for run in final:
        assert "scenario-waiting" not in run["tags"], run["tags"]

    # 5. The emulator saw one create, one upload set and one trigger per model, none after the resumes.
    log = engine.emulator_requests()[logged:]
    assert sum(map(is_create, log)) == TRAININGS
    assert Counter(model_of(e) for e in log if is_trigger(e)) == Counter(dict.fromkeys(triggered, 1))
    after = log[len(first_phase) :]
    assert not [e for e in after if is_create(e) or is_upload(e) or is_trigger(e) or is_dry_run(e)], after
    statuses = engine.models(triggered)
    assert set(statuses.values()) == {"trained"}, statuses
    print(
        f"{TRAININGS} suspended trainings: all suspended after {suspended_after:.0f}s, done in {took:.0f}s; "
        f"the first watcher resumed {len(resumed_by_first)} before it was killed mid-cycle"
    )
