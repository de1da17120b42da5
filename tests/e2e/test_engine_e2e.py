"""The real engine itself (``tests/e2e/engine.py``): today's polling trainings end trained on it.

PostgreSQL, ``prefect server``, a process work pool with two ``prefect worker`` processes and
the emulator; a few ``train_lora`` runs with ``wait=True`` (the run's process polls until the
training ends). This proves the engine before the suspend tests rely on it: the runs are
picked up by the workers, each is a child process while it trains, and each ends trained.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.engine import Engine, running_engine, wait_until


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with running_engine(tmp_path_factory.mktemp("engine")) as running:
        yield running


@pytest.mark.timeout(300)
def test_polling_trainings_end_trained_on_the_engine(engine: Engine) -> None:
    runs = [engine.start_training(f"poll-{i}", wait=True) for i in range(3)]
    # While they poll, each is a live child process of a worker.
    seen: set[str] = set()

    def all_seen() -> bool:
        seen.update(engine.flow_run_processes().values())
        return set(runs) <= seen

    wait_until(all_seen, timeout=150, what=f"a flow-run process for each run: {engine.log_tail()}")
    final = engine.wait_final(runs, timeout=150)
    assert {r["state_type"] for r in final} == {"COMPLETED"}, engine.log_tail()
    assert {str(r["work_pool_name"]) for r in final} == {engine.pool}
    wait_until(lambda: not engine.flow_run_processes(), timeout=60, what="the flow-run processes to exit")
    requests = engine.emulator_requests()
    trains = [r for r in requests if r["method"] == "PUT" and r["path"].endswith("/train")]
    assert len(trains) == 3
