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


# Generous bounds: on a busy 2-core machine (two `make test` at once) a flow-run process takes
# tens of seconds to start and to finish; the test measures nothing, it only must not hang.
@pytest.mark.timeout(900)
def test_polling_trainings_end_trained_on_the_engine(engine: Engine) -> None:
    since = len(engine.emulator_requests())
    runs = [engine.start_training(f"poll-{i}", wait=True, poll_policy=QUICK_POLLS) for i in range(3)]
    seen: set[str] = set()

    def polling() -> bool:
        seen.update(engine.flow_run_processes().values())
        return set(runs) <= seen and len(set(engine.triggered(since))) == 3

    wait_until(polling, timeout=400, what="each run polling in a process of its own, its training triggered")
    # The trainings last an hour: end them now (each one's trigger was accepted, so each ends).
    engine.emulator.advance_clock(TRAINING_SECONDS + 60)
    final = engine.wait_final(runs, timeout=300)
    assert {r["state_type"] for r in final} == {"COMPLETED"}, engine.log_tail()
    assert {str(r["work_pool_name"]) for r in final} == {engine.pool}
    wait_until(
        lambda: not engine.alive(runs),
        timeout=180,
        what="the flow-run processes to exit",
    )
