"""The doctest set-up: every docstring example in the packages runs against the emulator.

``pytest --doctest-modules prefect_scenario scenario_emulator`` (part of ``make test``) gives
each example these names: ``credentials`` (a ``ScenarioCredentials`` for an emulator on a
real socket, with trainings of a fraction of a second), ``hero_images`` / ``villain_images``
(five generated PNGs each, as bytes), ``hero_image_paths`` (the same as files), ``hero_pairs``
(three before/after pairs of files) and ``sample_images(n)``; and it runs them in
Prefect's ephemeral test mode.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(autouse=True, scope="session")
def _fast_backoff() -> Iterator[None]:
    """The retry policy's own backoff shrinks a thousandfold (0.5-8 s to 0.5-8 ms) for every test.

    Waits the server asks for (``Retry-After``, a cooldown's ``remainingSeconds``) and the wait
    before reconciling a timed-out call stay as they are: only the policy's choice is injected.
    """
    from prefect_scenario.api import retry_policy

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(retry_policy, "INITIAL_DELAY", retry_policy.INITIAL_DELAY / 1000)
        patch.setattr(retry_policy, "MAX_DELAY", retry_policy.MAX_DELAY / 1000)
        yield


def _png(seed: int, size: int = 64) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def _doctest_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from prefect.testing.utilities import prefect_test_harness

    from prefect_scenario.credentials import ScenarioCredentials
    from prefect_scenario.waiting.polling import PollPolicy
    from scenario_emulator import EmulatorConfig, EmulatorServer

    folder = tmp_path_factory.mktemp("doctest-images")
    paths = []
    for i in range(12):
        (folder / f"{i:02d}.png").write_bytes(_png(i))
        paths.append(str(folder / f"{i:02d}.png"))
    config = EmulatorConfig(
        api_key="doctest-key", api_secret="doctest-secret", queue_seconds=0.05, start_seconds=0.05,
        train_seconds=0.2, queue_position=0,
    )  # fmt: skip
    with prefect_test_harness(server_startup_timeout=240), EmulatorServer(config) as server:
        credentials = ScenarioCredentials(
            api_key="doctest-key", api_secret="doctest-secret", project_id="doctest", base_url=server.base_url
        )
        yield {
            "credentials": credentials,
            "hero_images": [_png(100 + i) for i in range(5)],
            "villain_images": [_png(200 + i) for i in range(5)],
            "hero_image_paths": paths[:5],
            "hero_pairs": [(paths[6 + 2 * i], paths[7 + 2 * i]) for i in range(3)],
            "sample_images": lambda n: [_png(300 + i) for i in range(n)],
            "fast_poll": PollPolicy(minimum=0.05, near_end=0.05, queued=0.05, starting=0.05, unknown=0.05),
        }


@pytest.fixture(autouse=True)
def _doctest_names(request: pytest.FixtureRequest) -> None:
    from _pytest.doctest import DoctestItem

    if isinstance(request.node, DoctestItem):
        world = request.getfixturevalue("_doctest_world")
        request.getfixturevalue("doctest_namespace").update(world)
