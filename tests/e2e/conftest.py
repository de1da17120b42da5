"""The end-to-end engine, started once for the tests that share it (``tests/e2e/engine.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scenario_emulator import EmulatorConfig
from tests.e2e.engine import KEY, SECRET, Engine, running_engine

# An hour of training each: the tests end trainings by moving the emulator's clock
# (`advance_clock`), never by waiting for them.
TRAINING_SECONDS = 3600.0

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The ``tests/e2e/test_*_e2e.py`` tests start real servers: marked ``e2e``, ``make check`` skips them.

    (``test_prefect_api.py`` here tests a helper against fake transports and stays in the fast loop.)
    """
    for item in items:
        path = item.path.resolve()
        if path.parent == HERE and path.name.endswith("_e2e.py"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    config = EmulatorConfig(
        api_key=KEY, api_secret=SECRET, queue_seconds=0.2, start_seconds=0.2, train_seconds=TRAINING_SECONDS
    )
    with running_engine(tmp_path_factory.mktemp("engine"), config=config) as running:
        yield running
