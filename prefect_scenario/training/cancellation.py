"""Cancelling a flow run cancels the Scenario trainings it started, in this process or another.

Each training flow run records what it works on as flow-run tags: ``psc-<key>`` (its
idempotency keys), ``scenario-model:<id>`` (its models) and, for a saved credentials
block, ``scenario-credentials:<block name>``. Those tags are what lets a runner or a
worker in another process cancel the remote training, and what the reconcile step reads
to find a run's model without listing the project. The credentials of runs in this
process are kept only while the run is active (dropped by the completion, failure and
crash hooks), so nothing grows with the number of runs.

Example:
    >>> run_hooks()["on_cancellation"][0].__name__
    'cancel_remote_trainings'
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, State
from prefect.context import FlowRunContext
from prefect.exceptions import PrefectException
from prefect.logging import get_logger

from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.reporting import EVENT_CANCELED, emit_training_event
from prefect_scenario.tags import (
    CREDENTIALS_TAG_PREFIX,
    MODEL_TAG_PREFIX,
    credentials_block_of,
    idempotency_tag,
    tag_values,
)

__all__ = [
    "cancel_remote_trainings",
    "forget_run",
    "remember_run",
    "run_hooks",
]

_LOGGER = get_logger("prefect_scenario.cancellation")


class _Run:
    """What one active flow run of this process trains, and the lock that orders its tag writes."""

    def __init__(self, credentials: ScenarioCredentials) -> None:
        self.credentials = credentials
        self.tags: set[str] = set()
        self.lock = asyncio.Lock()


_ACTIVE: dict[str, _Run] = {}


def _block_name(credentials: ScenarioCredentials) -> str | None:
    name = getattr(credentials, "_block_document_name", None)
    return name if isinstance(name, str) and name and not name.startswith("anonymous-") else None


async def remember_run(
    credentials: ScenarioCredentials,
    given: ScenarioCredentials | None = None,
    *,
    keys: Iterable[str] = (),
    model_ids: Iterable[str] = (),
) -> None:
    """Record the run's keys and models as tags of the current flow run (nothing outside a flow run).

    A failure to tag is a WARNING: without the tags another process cannot cancel the
    remote training, and a re-run has to list models to find its own.
    """
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    run_id = str(context.flow_run.id)
    run = _ACTIVE.setdefault(run_id, _Run(credentials))
    new = {idempotency_tag(k) for k in keys} | {f"{MODEL_TAG_PREFIX}{m}" for m in model_ids}
    if (name := _block_name(given or credentials)) is not None:
        new.add(f"{CREDENTIALS_TAG_PREFIX}{name}")
    async with run.lock:
        if new <= run.tags:
            return
        run.tags |= new
        tags = sorted(set(context.flow_run.tags) | run.tags)
        try:
            async with get_client() as prefect:
                await prefect.update_flow_run(context.flow_run.id, tags=tags)
            context.flow_run.tags = tags
        except (PrefectException, OSError) as exc:
            _LOGGER.warning(
                "could not tag flow run %s with its Scenario models (%s): cancelling it from another "
                "process will not cancel the remote training",
                run_id,
                type(exc).__name__,
            )


def forget_run(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """Completion, failure and crash hook: drop what this process kept for the run."""
    _ACTIVE.pop(str(flow_run.id), None)


async def _credentials_of(flow_run: FlowRun, tags: list[str]) -> ScenarioCredentials:
    run = _ACTIVE.pop(str(flow_run.id), None)
    if run is not None:
        return run.credentials
    block = credentials_block_of(tags)
    if block is not None:
        loaded = await ScenarioCredentials.aload(block)
        assert isinstance(loaded, ScenarioCredentials)
        return loaded
    return ScenarioCredentials.from_env()


async def cancel_remote_trainings(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """``on_cancellation`` hook: cancel the Scenario trainings this flow run started."""
    async with get_client() as prefect:
        tags = list((await prefect.read_flow_run(flow_run.id)).tags)
    model_ids = sorted(set(tag_values(tags, MODEL_TAG_PREFIX)))
    if not model_ids:
        _ACTIVE.pop(str(flow_run.id), None)
        return
    credentials = await _credentials_of(flow_run, tags)
    async with credentials.get_client() as client:
        for model_id in model_ids:
            model = await client.get_model(model_id)
            if model.status == "training":
                await client.cancel_training(model_id)
                model = await client.get_model(model_id)
            emit_training_event(EVENT_CANCELED, model, {"reason": "flow run cancelled"})


def run_hooks() -> dict[str, list[Callable[..., Any]]]:
    """The state hooks every training flow carries."""
    return {
        "on_cancellation": [cancel_remote_trainings],
        "on_completion": [forget_run],
        "on_failure": [forget_run],
        "on_crashed": [forget_run],
    }
