"""The real engine itself (``tests/e2e/engine.py``): today's polling trainings end trained on it.

PostgreSQL, ``prefect server``, a process work pool with two ``prefect worker`` processes and
the emulator; a few ``train_lora`` runs with ``wait=True`` (the run's process polls until the
training ends). This proves the engine the suspend tests rely on: the workers pick the runs
up, each is a live child process of a worker while it trains (that is what a suspended run
must not be), and each ends trained.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import TRAINING_SECONDS
from tests.e2e.engine import Engine, wait_until

# Polls at least every 2 s, so the end is seen soon after the clock moves.
QUICK_POLLS = {"maximum": 2.0, "queued": 1.0, "starting": 1.0, "unknown": 1.0}


def trained_models(engine: Engine) -> set[str]:
    return {
        r["path"].split("/")[3]
        for r in engine.emulator_requests()
        if r["method"] == "PUT" and r["path"].endswith("/train")
    }


@pytest.mark.timeout(400)
def test_polling_trainings_end_trained_on_the_engine(engine: Engine) -> None:
    before = trained_models(engine)
    runs = [engine.start_training(f"poll-{i}", wait=True, poll_policy=QUICK_POLLS) for i in range(3)]
    seen: set[str] = set()

    def polling() -> bool:
        seen.update(engine.flow_run_processes().values())
        return set(runs) <= seen and len(trained_models(engine) - before) == 3

    wait_until(polling, timeout=240, what="each run polling in a process of its own, its training triggered")
    # The trainings last an hour: end them now.
    engine.emulator.advance_clock(TRAINING_SECONDS + 60)
    final = engine.wait_final(runs, timeout=120)
    assert {r["state_type"] for r in final} == {"COMPLETED"}, engine.log_tail()
    assert {str(r["work_pool_name"]) for r in final} == {engine.pool}
    wait_until(lambda: not engine.flow_run_processes(), timeout=60, what="the flow-run processes to exit")
