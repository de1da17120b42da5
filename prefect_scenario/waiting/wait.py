"""Waiting for trainings to end: one loop for one model or a fleet.

The loop is I/O around pure decisions (:mod:`prefect_scenario.waiting.polling`): it
fetches the models still pending, hands each update to ``on_update``, and sleeps
for the shortest delay any pending model asks for, until all are terminal or the
deadline (on a monotonic clock) passes. One model is read with
``GET /models/{id}`` (the documented polling); many with one
``POST /models/get-bulk`` per cycle (50 ids a request, as Scenario's blender-plugin
sends). The two tasks, :func:`wait_for_scenario_training` and
:func:`wait_for_scenario_trainings`, add the progress artifact, the events and the
cancel-on-timeout around it.

Example:
    >>> import asyncio
    >>> from prefect_scenario.api.models import Model
    >>> async def fetch(ids: list[str]) -> list[Model]:
    ...     return [Model(id=i, status="trained") for i in ids]
    >>> done = asyncio.run(wait_for_models(fetch, ["model_a"], timeout_seconds=1))
    >>> done["model_a"].status
    'trained'
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypedDict, Unpack

from prefect.cache_policies import NO_CACHE

from prefect_scenario._dispatch import scenario_task
from prefect_scenario._logging import run_logger
from prefect_scenario.api.client import ScenarioClient
from prefect_scenario.api.models import Model
from prefect_scenario.api.retry_policy import is_transient
from prefect_scenario.credentials import ScenarioCredentials, resolve_credentials
from prefect_scenario.exceptions import APIError, NotFoundError, TrainingCanceled, TrainingFailed, TrainingTimeout
from prefect_scenario.reporting import (
    EVENT_CANCELED,
    EVENT_COMPLETED,
    EVENT_FAILED,
    FleetReporter,
    ProgressReporter,
    artifact_key,
    describe_progress,
    emit_training_event,
)
from prefect_scenario.waiting.polling import DEFAULT_POLICY, DEFAULT_TIMEOUT_SECONDS, PollPolicy, next_poll_delay

__all__ = [
    "cancel_after_timeout",
    "finish",
    "wait_for_models",
    "wait_for_scenario_training",
    "wait_for_scenario_trainings",
    "wait_until_all_terminal",
    "wait_until_terminal",
]

_WAIT_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False, "retries": 0}

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Fetch = Callable[[list[str]], Awaitable[list[Model]]]
OnUpdate = Callable[[Model], Awaitable[None]]


async def wait_for_models(
    fetch: Fetch,
    model_ids: Sequence[str],
    *,
    timeout_seconds: float,
    policy: PollPolicy = DEFAULT_POLICY,
    on_update: OnUpdate | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    log: Callable[[str], None] | None = None,
) -> dict[str, Model]:
    """Poll with ``fetch`` until every model is trained, failed or canceled.

    Transient API failures do not end the wait: an outage shorter than the
    deadline costs only a late answer.

    Raises:
        TrainingTimeout: the deadline passed (the caller decides whether to cancel).
        NotFoundError: a model disappeared.
    """
    pending = list(dict.fromkeys(model_ids))
    done: dict[str, Model] = {}
    lines: dict[str, str] = {}
    deadline = clock() + timeout_seconds
    failures = 0
    while pending:
        try:
            models = await fetch(pending)
            failures = 0
        except APIError as exc:
            if not is_transient(exc):
                raise
            failures += 1
            models = []
        by_id = {m.id: m for m in models}
        if not failures:
            missing = [i for i in pending if i not in by_id]
            if missing:
                raise NotFoundError(f"model(s) {', '.join(missing)} no longer exist", status_code=404)
        delays = []
        for model in by_id.values():
            if on_update is not None:
                await on_update(model)
            line = describe_progress(model.status, model.training_progress)
            if log is not None and lines.get(model.id) != line:
                log(f"{model.id}: {line}")
                lines[model.id] = line
            if model.is_terminal:
                done[model.id] = model
            else:
                delays.append(next_poll_delay(model.status, model.training_progress, policy))
        pending = [i for i in pending if i not in done]
        if not pending:
            break
        remaining = deadline - clock()
        if remaining <= 0:
            raise TrainingTimeout(
                f"{', '.join(pending)} did not finish within {timeout_seconds:g}s",
                model_id=pending[0],
                waited_seconds=timeout_seconds,
            )
        delay = min(delays) if delays else policy.unknown * min(failures, 6)
        await sleep(max(0.0, min(delay, remaining)))
    return done


class WaitKnobs(TypedDict, total=False):
    """How :func:`wait_for_models` waits, for the helpers that wait through a client."""

    policy: PollPolicy
    on_update: OnUpdate | None
    clock: Clock
    sleep: Sleep
    log: Callable[[str], None] | None


async def wait_until_terminal(
    client: ScenarioClient, model_id: str, *, timeout_seconds: float, **knobs: Unpack[WaitKnobs]
) -> Model:
    """Wait for one model, polling ``GET /models/{id}`` (``knobs``: as :func:`wait_for_models`).

    Raises:
        TrainingTimeout: the deadline passed.
    """

    async def fetch(ids: list[str]) -> list[Model]:
        return [await client.get_model(ids[0])]

    done = await wait_for_models(fetch, [model_id], timeout_seconds=timeout_seconds, **knobs)
    return done[model_id]


async def wait_until_all_terminal(
    client: ScenarioClient, model_ids: Sequence[str], *, timeout_seconds: float, **knobs: Unpack[WaitKnobs]
) -> dict[str, Model]:
    """Wait for many models with one ``POST /models/get-bulk`` per cycle (``knobs``: as :func:`wait_for_models`).

    Raises:
        TrainingTimeout: the deadline passed with models still training.
    """
    chunk = knobs.get("policy", DEFAULT_POLICY).max_ids_per_request

    async def fetch(ids: list[str]) -> list[Model]:
        return await client.get_models_bulk(ids, chunk=chunk)

    return await wait_for_models(fetch, model_ids, timeout_seconds=timeout_seconds, **knobs)


async def _failure_reason(client: ScenarioClient, model: Model) -> str | None:
    if model.failure_reason is not None or not model.job_id:
        return model.failure_reason
    try:
        return (await client.get_job(model.job_id)).error
    except APIError as exc:
        run_logger().warning("could not read why job %s failed (%s)", model.job_id, exc)
        return None


async def finish(client: ScenarioClient, model: Model) -> Model:
    """Emit the model's terminal event; return it if trained, else raise the training's outcome.

    Raises:
        TrainingFailed: it ended ``failed`` (with the server's reason).
        TrainingCanceled: it ended ``training-canceled``.
    """
    if model.status == "trained":
        emit_training_event(EVENT_COMPLETED, model, {"epochs": len(model.epochs)})
        return model
    if model.status == "failed":
        reason = await _failure_reason(client, model)
        emit_training_event(EVENT_FAILED, model, {"reason": reason})
        raise TrainingFailed(
            f"training of {model.id} failed: {reason or 'no reason given'}", model_id=model.id, reason=reason
        )
    emit_training_event(EVENT_CANCELED, model)
    raise TrainingCanceled(f"training of {model.id} was canceled", model_id=model.id)


async def cancel_after_timeout(client: ScenarioClient, model_ids: Sequence[str]) -> None:
    """Cancel trainings still under way at a deadline, each with a warning and its canceled event."""
    for model_id in model_ids:
        run_logger().warning("timed out: cancelling the training of %s", model_id)
        await client.cancel_training(model_id)
        emit_training_event(EVENT_CANCELED, await client.get_model(model_id), {"reason": "timeout"})


@asynccontextmanager
async def _cancelled_on_timeout(
    client: ScenarioClient, pending: Callable[[], Sequence[str]], cancel: bool
) -> AsyncIterator[None]:
    """Let a :class:`TrainingTimeout` through, first cancelling what is still pending if ``cancel``."""
    try:
        yield
    except TrainingTimeout:
        if cancel:
            await cancel_after_timeout(client, pending())
        raise


@scenario_task(
    name="scenario-wait-for-training", task_run_name="scenario-wait-for-training-{model_id}", **_WAIT_OPTIONS
)
async def wait_for_scenario_training(
    credentials: ScenarioCredentials | None,
    model_id: str,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    cancel_on_timeout: bool = True,
    poll_policy: PollPolicy = DEFAULT_POLICY,
) -> Model:
    """Wait for the training to end, with a progress artifact and events on the way.

    Raises:
        TrainingFailed: the training ended ``failed`` (with the server's reason).
        TrainingCanceled: it ended ``training-canceled``.
        TrainingTimeout: not finished in ``timeout_seconds``; the remote training is cancelled.
    """
    resolved = await resolve_credentials(credentials)
    async with resolved.get_client() as client:
        reporter = ProgressReporter.for_training(model_id)
        knobs = WaitKnobs(policy=poll_policy, on_update=reporter.update, log=run_logger().info)
        async with _cancelled_on_timeout(client, lambda: [model_id], cancel_on_timeout):
            model = await wait_until_terminal(client, model_id, timeout_seconds=timeout_seconds, **knobs)
        return await finish(client, model)


@scenario_task(name="scenario-wait-for-trainings", task_run_name="scenario-wait-for-{n}-trainings", **_WAIT_OPTIONS)
async def wait_for_scenario_trainings(
    credentials: ScenarioCredentials | None,
    model_ids: list[str],
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    cancel_on_timeout: bool = True,
    poll_policy: PollPolicy = DEFAULT_POLICY,
    n: int = 0,
) -> dict[str, Model]:
    """Wait for many trainings with one ``POST /models/get-bulk`` per polling cycle.

    Emits the completed/failed/canceled event of each model as it ends and keeps one
    progress artifact for the whole fleet (the mean progress).

    Returns:
        Every model in its terminal state, by id (failed ones included: the caller decides).

    Raises:
        TrainingTimeout: some did not finish in ``timeout_seconds``; those are cancelled.
    """
    resolved = await resolve_credentials(credentials)
    reporter = FleetReporter(model_ids, key=artifact_key("scenario-fleet", f"{len(model_ids)}-models"))
    async with resolved.get_client() as client:
        knobs = WaitKnobs(policy=poll_policy, on_update=reporter.update, log=run_logger().info)
        async with _cancelled_on_timeout(client, reporter.pending, cancel_on_timeout):
            return await wait_until_all_terminal(client, model_ids, timeout_seconds=timeout_seconds, **knobs)
