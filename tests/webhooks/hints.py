"""A recording ``on_hint`` that does what the watcher's first Scenario call does: one real GET."""

from __future__ import annotations

import threading

from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.exceptions import NotFoundError
from scenario_emulator import EmulatorServer


class CountingHint:
    """Records each model id it is given, and reads that model once from the emulator."""

    def __init__(self, credentials: ScenarioCredentials | None = None, *, fail: bool = False) -> None:
        self.credentials = credentials
        self.fail = fail
        self.calls: list[str] = []
        self.outcomes: list[object] = []
        self.changed = threading.Condition()

    async def __call__(self, model_id: str) -> object:
        status = None
        if self.credentials is not None:
            async with self.credentials.get_client() as client:
                try:
                    status = (await client.get_model(model_id)).status
                except NotFoundError:
                    status = "not found"
        with self.changed:
            self.calls.append(model_id)
            self.changed.notify_all()
        if self.fail:
            raise RuntimeError("the hint failed")
        return status

    def wait_for(self, model_id: str, timeout: float = 30.0) -> list[str]:
        """The calls so far, once ``model_id`` was hinted."""
        with self.changed:
            assert self.changed.wait_for(lambda: model_id in self.calls, timeout), self.calls
            return list(self.calls)


def model_gets(server: EmulatorServer) -> int:
    """How many ``GET /v1/models/{id}`` the emulator answered."""
    return sum(1 for r in server.requests() if r["method"] == "GET" and r["path"].startswith("/v1/models/"))
