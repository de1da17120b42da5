"""One watcher for every suspended training run: resume each once its training ended.

A run with ``wait="suspend"`` holds no process while Scenario trains
(:mod:`prefect_scenario.waiting.suspension`); this module brings it back. Each cycle of
:func:`watch_once` (run in one long-lived process by :mod:`prefect_scenario.waiting.service`,
``prefect-scenario watch``; never a flow run per cycle):

1. asks Prefect for the runs tagged ``scenario-waiting`` (suspended, or ended without
   their process: cancelled, failed, crashed); Prefect is the only record, so a watcher
   killed at any point loses nothing and the next cycle does what is left;
2. reads all their models with ``POST /models/get-bulk``, 50 ids a request (what
   Scenario's blender-plugin sends), one request per cycle for up to 50 waiting models;
3. decides for each run with the pure :func:`decide`, and acts: resume it (Prefect
   accepts one resume of a suspended run and refuses the rest, so a resume raced by the
   webhook receiver or a second watcher changes nothing), cancel the trainings of a run
   past its deadline (then resume it, so it ends ``TrainingTimeout`` as an in-process wait
   does), or cancel the trainings of a run that was cancelled or expired while suspended.

The terminal events (``scenario.training.completed`` / ``failed`` / ``canceled``) go out
when the watcher sees the end, with ids fixed by the model and its job, so the event the
resumed run emits again is the same event: the Prefect server keeps one.

The watcher resumes directly, through the API, rather than through an automation: one
call whose outcome it logs, no event-to-action delay (5–10 s measured on a self-hosted
server with Prefect 3.9; docs/design.md), and nothing to keep in step with the tags.
:func:`settle_model` is the same work for one model; the webhook receiver runs it kept warm
(:mod:`prefect_scenario.waiting.hints`).

Example:
    >>> from prefect_scenario.api.models import Model
    >>> from prefect_scenario.waiting.suspension import WaitRecord
    >>> run = WaitingRun(id="r1", name="train-hero", state="PAUSED", credentials_block=None,
    ...                  record=WaitRecord(model_ids=("model_1",), keys=("k",), deadline=2000.0))
    >>> decide(run, {"model_1": Model(id="model_1", status="training")}, now=1000.0).action
    <Action.WAIT: 'wait'>
    >>> decide(run, {"model_1": Model(id="model_1", status="trained")}, now=1000.0).action
    <Action.RESUME: 'resume'>
    >>> decide(run, {"model_1": Model(id="model_1", status="training")}, now=2000.0).action
    <Action.TIME_OUT: 'time-out'>
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.responses import SetStateStatus
from prefect.client.schemas.sorting import FlowRunSort
from prefect.states import Cancelled
from pydantic import BaseModel, Field

from prefect_scenario._dispatch import scenario_flow
from prefect_scenario._logging import run_logger
from prefect_scenario.api.client import BULK_CHUNK, ScenarioClient
from prefect_scenario.api.models import Model
from prefect_scenario.credentials import ScenarioCredentials, resolve_credentials
from prefect_scenario.reporting import EVENT_CANCELED, emit_end_event, emit_training_event
from prefect_scenario.tags import MODEL_TAG_PREFIX, WAITING_TAG, credentials_block_of
from prefect_scenario.waiting.suspension import WaitRecord, set_run_tags

__all__ = [
    "DEFAULT_WATCH_INTERVAL",
    "Action",
    "Decision",
    "ScenarioClients",
    "WaitingRun",
    "WatchReport",
    "decide",
    "find_waiting_runs",
    "scenario_training_watcher",
    "settle_model",
    "settle_runs",
    "watch_once",
]

# Seconds between watcher cycles when served: a resume comes at most about this long after
# a training ends (webhooks make it sooner), for one get-bulk request per 50 waiting models.
DEFAULT_WATCH_INTERVAL = 30.0
# A suspended run waits; these ended without their process, so nothing else cancels their trainings.
_ENDED_WITHOUT_PROCESS = (StateType.CANCELLING, StateType.CANCELLED, StateType.FAILED, StateType.CRASHED)
_WATCHED = (StateType.PAUSED, *_ENDED_WITHOUT_PROCESS)
_PAGE = 200


class Action(StrEnum):
    """What the watcher does with one waiting run."""

    WAIT = "wait"
    RESUME = "resume"
    TIME_OUT = "time-out"
    CANCEL_REMOTE = "cancel-remote"
    FORGET = "forget"


@dataclass(frozen=True)
class Decision:
    """An action, why, and the trainings to cancel first."""

    action: Action
    reason: str
    cancel: tuple[str, ...] = ()


@dataclass(frozen=True)
class WaitingRun:
    """A flow run tagged ``scenario-waiting``, as Prefect has it."""

    id: Any
    name: str
    state: str
    record: WaitRecord
    credentials_block: str | None = None

    @classmethod
    def from_flow_run(cls, run: FlowRun) -> WaitingRun | None:
        """The waiting run a flow run is (None if its tags hold no wait record)."""
        record = WaitRecord.from_tags(run.tags)
        if record is None or run.state is None:
            return None
        return cls(run.id, run.name, run.state.type.value, record, credentials_block_of(run.tags))


def decide(run: WaitingRun, models: Mapping[str, Model], now: float) -> Decision:
    """What to do with ``run``, given its models as read now (absent: not found) and the wall clock."""
    under_way = tuple(m for m in run.record.model_ids if m in models and not models[m].is_terminal)
    if run.state == StateType.PAUSED.value:
        if not under_way:
            # Ended (or gone: the resumed run then reports the 404 itself).
            ended = (f"{m} {models[m].status if m in models else 'not found'}" for m in run.record.model_ids)
            return Decision(Action.RESUME, ", ".join(ended))
        if now >= run.record.deadline:
            return Decision(Action.TIME_OUT, f"deadline passed with {len(under_way)} still training", under_way)
        left = run.record.deadline - now
        return Decision(Action.WAIT, f"{len(under_way)} still training, {left:.0f}s to the deadline")
    if under_way:
        return Decision(Action.CANCEL_REMOTE, f"the run is {run.state.lower()} while its training goes on", under_way)
    return Decision(Action.FORGET, f"the run is {run.state.lower()} and nothing trains")


class WatchReport(BaseModel):
    """What one watcher cycle (or one webhook hint) found and did."""

    waiting: int = 0
    resumed: list[str] = Field(default_factory=list, description="Flow runs resumed (their ids).")
    timed_out: list[str] = Field(default_factory=list, description="Flow runs past their deadline.")
    cancelled_trainings: list[str] = Field(default_factory=list, description="Models whose training was cancelled.")
    forgotten: list[str] = Field(default_factory=list, description="Ended runs no longer watched.")
    bulk_requests: int = Field(0, description="POST /models/get-bulk requests sent.")
    ended: list[str] = Field(default_factory=list, description="Waited-for models read in a terminal status.")
    next_check_seconds: float | None = Field(
        None, description="Seconds until the earliest predicted end of a training still waited for (if predicted)."
    )

    def brief(self) -> str:
        """The report's non-empty fields on one line, for a log: ``resumed=['…'], ended=['model_…']``."""
        shown = [f"{name}={value!r}" for name, value in self if value not in (0, None, [])]
        return ", ".join(shown) or "nothing waited"

    def expect_end_in(self, seconds: float) -> None:
        """Remember a predicted end: the report keeps the earliest."""
        if self.next_check_seconds is None or seconds < self.next_check_seconds:
            self.next_check_seconds = max(0.0, seconds)


async def find_waiting_runs(
    prefect: PrefectClient, *, model_id: str | None = None, states: Sequence[StateType] = _WATCHED
) -> list[WaitingRun]:
    """Every flow run tagged ``scenario-waiting`` (and ``scenario-model:<model_id>``) in ``states``."""
    tags = [WAITING_TAG] + ([f"{MODEL_TAG_PREFIX}{model_id}"] if model_id else [])
    flow_filter = FlowRunFilter(
        tags=FlowRunFilterTags(all_=tags), state=FlowRunFilterState(type=FlowRunFilterStateType(any_=list(states)))
    )
    runs: list[WaitingRun] = []
    offset = 0
    while True:
        page = await prefect.read_flow_runs(
            flow_run_filter=flow_filter, sort=FlowRunSort.START_TIME_ASC, limit=_PAGE, offset=offset
        )
        runs += [w for r in page if (w := WaitingRun.from_flow_run(r)) is not None]
        if len(page) < _PAGE:
            return runs
        offset += _PAGE


class ScenarioClients(Protocol):
    """Scenario clients kept open by a long-lived process, by saved credentials block (None: the default)."""

    async def client(self, credentials_block: str | None) -> ScenarioClient: ...


@dataclass
class _Cycle:
    """The I/O of one cycle: the Prefect client, the Scenario clients by credentials, the report.

    ``clients``: open clients to use (the webhook receiver's); None opens one per credentials
    for the cycle. ``resume_only``: act on resumes only and keep the other runs in ``skipped``
    (runs known from a cached list, whose tags may have changed since it was read).
    """

    prefect: PrefectClient
    default: ScenarioCredentials
    report: WatchReport = field(default_factory=WatchReport)
    clients: ScenarioClients | None = None
    resume_only: bool = False
    skipped: list[WaitingRun] = field(default_factory=list)

    async def credentials_for(self, run: WaitingRun) -> ScenarioCredentials:
        if run.credentials_block is None:
            return self.default
        loaded = await ScenarioCredentials.aload(run.credentials_block)
        assert isinstance(loaded, ScenarioCredentials)
        return loaded

    @contextlib.asynccontextmanager
    async def client_for(self, run: WaitingRun) -> AsyncIterator[ScenarioClient]:
        if self.clients is not None:
            yield await self.clients.client(run.credentials_block)
            return
        async with (await self.credentials_for(run)).get_client() as client:
            yield client

    async def read(self, client: ScenarioClient, model_ids: Iterable[str]) -> dict[str, Model]:
        ids = list(dict.fromkeys(model_ids))
        if not ids:
            return {}
        self.report.bulk_requests += math.ceil(len(ids) / BULK_CHUNK)
        models = {m.id: m for m in await client.get_models_bulk(ids)}
        for model in models.values():
            progress = model.training_progress
            if model.is_terminal:
                self.report.ended.append(model.id)
            elif progress is not None and progress.remaining_time_ms is not None:
                self.report.expect_end_in(progress.remaining_time_ms / 1000.0)
        return models

    async def act(self, client: ScenarioClient, run: WaitingRun, decision: Decision, models: dict[str, Model]) -> None:
        logger = run_logger()
        logger.info("flow run %s (%s): %s: %s", run.name, run.id, decision.action.value, decision.reason)
        reason = "timeout" if decision.action is Action.TIME_OUT else f"flow run {run.state.lower()}"
        for model_id in decision.cancel:
            await client.cancel_training(model_id)
            self.report.cancelled_trainings.append(model_id)
            # "A cancel acknowledgement does not prove the job stopped: read it again" (blender-plugin).
            models[model_id] = await client.get_model(model_id)
            emit_training_event(EVENT_CANCELED, models[model_id], {"reason": reason})
        if decision.action in (Action.RESUME, Action.TIME_OUT):
            for model_id in run.record.model_ids:
                if model_id in models and model_id not in decision.cancel:
                    emit_end_event(models[model_id])
            await self.resume(run, timed_out=decision.action is Action.TIME_OUT)
        elif decision.action in (Action.CANCEL_REMOTE, Action.FORGET):
            if run.state == StateType.CANCELLING.value:
                # Its process ended when it suspended: no worker will finish the cancellation.
                await self.prefect.set_flow_run_state(
                    run.id,
                    Cancelled(message="cancelled while suspended; its Scenario training was cancelled"),
                    force=True,
                )
            await set_run_tags(run.id, remove=[WAITING_TAG])
            self.report.forgotten.append(str(run.id))

    async def resume(self, run: WaitingRun, *, timed_out: bool) -> None:
        answer = await self.prefect.resume_flow_run(run.id)
        if answer.status == SetStateStatus.ACCEPT:
            (self.report.timed_out if timed_out else self.report.resumed).append(str(run.id))
        else:
            # Already resumed (by a webhook hint or another watcher), or expired: Prefect decided.
            reason = answer.details.reason if hasattr(answer.details, "reason") else None
            run_logger().info("flow run %s not resumed: %s (%s)", run.id, answer.status.value, reason)

    async def settle(self, runs: list[WaitingRun]) -> WatchReport:
        self.report.waiting += len(runs)
        by_credentials: dict[str | None, list[WaitingRun]] = {}
        for run in runs:
            by_credentials.setdefault(run.credentials_block, []).append(run)
        for group in by_credentials.values():
            async with self.client_for(group[0]) as client:
                models = await self.read(client, (m for run in group for m in run.record.model_ids))
                now = time.time()
                for run in group:
                    decision = decide(run, models, now)
                    if self.resume_only and decision.action not in (Action.WAIT, Action.RESUME):
                        self.skipped.append(run)
                    elif decision.action is not Action.WAIT:
                        await self.act(client, run, decision, models)
        return self.report


async def watch_once(credentials: ScenarioCredentials | str | None = None) -> WatchReport:
    """One watcher cycle over every waiting run (see the module docstring).

    Args:
        credentials: for runs whose flow did not use a saved block (a run that did is read with its block).
    """
    default = await resolve_credentials(credentials)
    async with get_client() as prefect:
        cycle = _Cycle(prefect, default)
        return await cycle.settle(await find_waiting_runs(prefect))


async def settle_model(model_id: str, credentials: ScenarioCredentials | str | None = None) -> WatchReport:
    """The watcher's work for one model, for a webhook hint: nothing at all unless a run waits for it.

    A hint about a model no suspended run waits for costs no Scenario request; otherwise
    one ``get-bulk`` reads the run's models, and the run is resumed once they all ended.
    """
    async with get_client() as prefect:
        runs = await find_waiting_runs(prefect, model_id=model_id, states=(StateType.PAUSED,))
        if not runs:
            return WatchReport()
        report, _ = await settle_runs(prefect, runs, await resolve_credentials(credentials))
        return report


async def settle_runs(
    prefect: PrefectClient,
    runs: list[WaitingRun],
    default: ScenarioCredentials,
    *,
    clients: ScenarioClients | None = None,
    resume_only: bool = False,
) -> tuple[WatchReport, list[WaitingRun]]:
    """Read the models of ``runs`` (one get-bulk per 50 per credentials) and act on each; what was done.

    Args:
        prefect: an open Prefect client.
        runs: the waiting runs to settle.
        default: the credentials of runs that name no saved block.
        clients: open Scenario clients to use (a long-lived process's); None opens them for this call.
        resume_only: take no action but a resume (for runs from a cached list: their tags may
            have changed since it was read, and a cancel must rest on a fresh read of Prefect).

    Returns:
        The report, and the runs left alone because of ``resume_only``.
    """
    cycle = _Cycle(prefect, default, clients=clients, resume_only=resume_only)
    report = await cycle.settle(runs)
    return report, cycle.skipped


@scenario_flow(name="scenario-training-watcher", flow_run_name="scenario-training-watcher")
async def scenario_training_watcher(credentials: ScenarioCredentials | None = None) -> WatchReport:
    """Resume every suspended training run whose training ended; cancel what must be cancelled.

    Kept for deployments created before the watcher became a service: nothing in this package
    schedules it any more (a flow run per cycle floods the runs list), run
    ``prefect-scenario watch`` instead. It keeps no state of its own, so any number of cycles,
    overlapping or killed, is safe.

    Args:
        credentials: a ``ScenarioCredentials`` block for runs that did not use one (None: the
            ``SCENARIO_*`` environment variables).

    Returns:
        The :class:`WatchReport` of the cycle.

    Example:
        With nothing suspended, a cycle sends no request to Scenario:

        >>> scenario_training_watcher(credentials=credentials).bulk_requests
        0
    """
    return await watch_once(credentials)
