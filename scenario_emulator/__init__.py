"""A local emulator of Scenario's LoRA training API, for tests and demos.

It speaks the wire format of ``shared/scenario-api.md`` (the official SDK passes
strict response validation against it), refuses what :mod:`prefect_scenario.catalog`
refuses, runs trainings through a pure, clock-driven state machine, and injects
faults on demand (5xx, 429, dropped connections before or after the work, latency).

Example:
    >>> from scenario_emulator import EmulatorConfig, EmulatorServer
    >>> with EmulatorServer(EmulatorConfig(queue_seconds=0, start_seconds=0, train_seconds=1)) as server:
    ...     server.base_url.endswith("/v1")
    True
"""

from __future__ import annotations

from scenario_emulator.app import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    EmulatorApp,
    EmulatorConfig,
    RequestLog,
    create_app,
)
from scenario_emulator.faults import FaultConfig, FaultDecision, decide_fault
from scenario_emulator.scoring import DatasetScore, ScoredAsset, score_dataset
from scenario_emulator.server import EmulatorServer
from scenario_emulator.state import (
    EmulatorStore,
    ManualClock,
    OffsetClock,
    TrainingRecord,
    TrainingView,
    epochs_of,
    training_cost,
    training_view,
)

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "DatasetScore",
    "EmulatorApp",
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorStore",
    "FaultConfig",
    "FaultDecision",
    "ManualClock",
    "OffsetClock",
    "RequestLog",
    "ScoredAsset",
    "TrainingRecord",
    "TrainingView",
    "create_app",
    "decide_fault",
    "epochs_of",
    "score_dataset",
    "training_cost",
    "training_view",
]
