"""A local emulator of Scenario's LoRA training API, for tests and demos.

It speaks the wire format of the official ``scenario-sdk`` (which passes strict
response validation against it, but for the answers Scenario's own clients saw
break that schema: a dry run's cost-only body, empty ``trainingProgress`` in list
rows), answers errors and plan limits as Scenario's ``skills`` and blender plugin
show the real API doing, refuses what :mod:`prefect_scenario.catalog` refuses, runs
trainings through a pure, clock-driven state machine, and injects faults on demand
(5xx, 429, dropped connections before or after the work, latency).

Modules, from the wire inward: :mod:`.server` (uvicorn, the CLI) → :mod:`.app` (routes,
error handlers, controls) → :mod:`.gateway` (request id, log, faults, auth) →
:mod:`.routes` (``models``, ``assets``, ``training``, ``webhooks``, ``admin``) → :mod:`.wire`
(reading requests), :mod:`.errors`, :mod:`.views` (records as JSON), :mod:`.limits` (plan limits),
:mod:`.pricing`, :mod:`.scoring`, :mod:`.webhooks` (deliveries, from a background thread) →
:mod:`.store` (SQLite), :mod:`.records`,
:mod:`.state_machine` (pure), :mod:`.clock`, :mod:`.faults`. Settings and the interface
routes see are in :mod:`.config`.

Example:
    >>> from scenario_emulator import EmulatorConfig, EmulatorServer
    >>> with EmulatorServer(EmulatorConfig(queue_seconds=0, start_seconds=0, train_seconds=1)) as server:
    ...     server.base_url.endswith("/v1")
    True
"""

from __future__ import annotations

from scenario_emulator.app import EmulatorApp, create_app
from scenario_emulator.clock import ManualClock, OffsetClock
from scenario_emulator.config import DEFAULT_API_KEY, DEFAULT_API_SECRET, EmulatorConfig
from scenario_emulator.faults import FaultConfig, FaultDecision, decide_fault
from scenario_emulator.gateway import RequestLog
from scenario_emulator.limits import PlanLimits
from scenario_emulator.pricing import training_cost
from scenario_emulator.scoring import DatasetScore, ScoredAsset, score_dataset
from scenario_emulator.server import EmulatorServer
from scenario_emulator.state_machine import TrainingRecord, TrainingView, epochs_of, training_view
from scenario_emulator.store import EmulatorStore

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
    "PlanLimits",
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
