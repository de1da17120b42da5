"""Reliability fixtures: the client's retry backoff shrunk, as the task backoff already is.

``tests/conftest.py`` shrinks Prefect task retry delays with
``PREFECT_SCENARIO_RETRY_DELAY_SCALE``; the client's own backoff between retries of
a safe request (0.5 s, 1 s, ...) is shrunk here the same way, so a scenario with
hundreds of injected faults does not sleep through real backoffs. ``Retry-After``
is still honoured as given (the 429 scenario asks for 10 ms).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from prefect_scenario.api import client as client_module
from prefect_scenario.api.retry_policy import retry_delay

BACKOFF_SCALE = 0.01


@pytest.fixture(autouse=True)
def fast_client_backoff() -> Iterator[None]:
    def scaled(retries_made: int, *, retry_after: float | None = None, **kw: object) -> float:
        delay = retry_delay(retries_made, retry_after=retry_after, **kw)  # type: ignore[arg-type]
        return delay if retry_after is not None and delay == retry_after else delay * BACKOFF_SCALE

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(client_module, "retry_delay", scaled)
        yield
