"""The emulator's settings, and the interface its routes see.

Routes never import the app: they reach it through :func:`.wire.emulator_of`, typed as
the :class:`Emulator` protocol below, which :class:`~.app.EmulatorApp` implements.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from scenario_emulator.faults import FaultConfig, FaultController
from scenario_emulator.limits import PlanLimits
from scenario_emulator.store import EmulatorStore
from scenario_emulator.webhooks import WebhookDispatcher

__all__ = ["DEFAULT_API_KEY", "DEFAULT_API_SECRET", "TRANSPORT_STATE_KEY", "Emulator", "EmulatorConfig"]

# The documented default pair of the CLI; never a real credential.
DEFAULT_API_KEY = "emulator-key"
DEFAULT_API_SECRET = "emulator-secret"  # noqa: S105 - a documented placeholder, not a secret
# Where the server's protocol leaves the connection's transport in ``scope["state"]``.
TRANSPORT_STATE_KEY = "scenario_emulator.transport"


@dataclass
class EmulatorConfig:
    """Settings of one emulator.

    Attributes:
        api_key: The API key the emulator accepts.
        api_secret: The API secret it accepts (never printed, logged or in the repr).
        default_project_id: The project used when a request has no ``projectId``.
        queue_seconds: How long a training stays ``queued-for-train``.
        start_seconds: How long it stays ``starting-train``.
        train_seconds: How long it stays ``running-train``.
        queue_position: The queue position a training starts at; it counts down to 0.
        clock: Returns the time in epoch seconds; default: wall time plus an offset
            that ``POST /_emulator/clock`` advances.
        sleep: Awaited for injected latency; tests pass a recorder.
        faults: The fault injection settings at start.
        fail_names: Model names whose trainings fail.
        fail_reason: The failure reason those trainings report.
        db_path: A SQLite file to keep state across restarts; in memory if ``None``.
        max_body_bytes: Larger request bodies are refused with 413.
        max_request_log: How many requests the request log keeps.
        parallel_trainings: Plan limit: how many models may train at once in the team
            (``None``: unlimited; 0 refuses every trigger). See :mod:`.limits`.
        team_image_cap: Plan limit: how many training images the team's models may hold.
        trigger_cooldown: Seconds a trigger must wait after the team's previous launch.
        dataset_score_available: False answers 404 to the dataset score, as the real API
            does for accounts or types it does not offer it to.
        webhook_scan_seconds: How often the webhook dispatcher looks for training events.
        webhook_timeout: Seconds one webhook delivery attempt may take.
        webhook_retries: Delivery attempts after a failed first one.
        webhook_retry_seconds: Wait before the first retry of a delivery (doubled after).
        webhook_hosts: The only hosts webhooks are delivered to (loopback by default).

    Example:
        >>> config = EmulatorConfig(api_key="k", api_secret="s", train_seconds=0.5)
        >>> "s'" in repr(config)
        False
    """

    api_key: str = DEFAULT_API_KEY
    api_secret: str = field(default=DEFAULT_API_SECRET, repr=False)
    default_project_id: str = "proj_emulator"
    queue_seconds: float = 3.0
    start_seconds: float = 2.0
    train_seconds: float = 15.0
    queue_position: int = 2
    clock: Callable[[], float] | None = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    faults: FaultConfig = field(default_factory=FaultConfig)
    fail_names: Sequence[str] = ()
    fail_reason: str = "Training failed (emulated failure)"
    db_path: str | Path | None = None
    max_body_bytes: int = 32 * 1024 * 1024
    max_request_log: int = 10_000
    parallel_trainings: int | None = None
    team_image_cap: int | None = None
    trigger_cooldown: float = 0.0
    dataset_score_available: bool = True
    webhook_scan_seconds: float = 0.05
    webhook_timeout: float = 2.0
    webhook_retries: int = 2
    webhook_retry_seconds: float = 0.2
    webhook_hosts: Sequence[str] = ("127.0.0.1", "localhost", "::1")

    def plan_limits(self) -> PlanLimits:
        """The plan limits these settings ask for (validated).

        Raises:
            ValueError: a negative or non-integer limit.
        """
        return PlanLimits(self.parallel_trainings, self.team_image_cap, self.trigger_cooldown)


class Emulator(Protocol):
    """What a route may use of the emulator serving it."""

    config: EmulatorConfig
    store: EmulatorStore
    faults: FaultController
    limits: PlanLimits
    webhooks: WebhookDispatcher

    def now(self) -> float:
        """The emulator's current time, epoch seconds."""

    def requests(self) -> list[dict[str, Any]]:
        """The request log."""

    def clear_requests(self) -> None:
        """Forget the logged requests."""

    def reset(self) -> None:
        """Forget all state and logged requests; restore the configured faults and limits."""

    def set_faults(self, config: FaultConfig | None = None, **changes: Any) -> FaultConfig:
        """Replace the fault settings."""

    def set_limits(self, limits: PlanLimits | None = None, **changes: Any) -> PlanLimits:
        """Replace the plan limits."""

    def advance_clock(self, seconds: float) -> float:
        """Move the clock forward; return the new time."""

    def fail_training(
        self, *, model_id: str | None = None, name: str | None = None, reason: str | None = None
    ) -> dict[str, Any]:
        """Make a training fail: the running one now, or else the next one."""
