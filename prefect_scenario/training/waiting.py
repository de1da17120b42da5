"""Waiting for trainings to end: one loop for one model or a fleet.

The loop is I/O around pure decisions (:mod:`prefect_scenario.training.polling`): it
fetches the models still pending, hands each update to ``on_update``, and sleeps
for the shortest delay any pending model asks for, until all are terminal or the
deadline (on a monotonic clock) passes. One model is read with
``GET /models/{id}`` (the documented polling); many with one
``POST /models/get-bulk`` per cycle, whatever their number (up to
:data:`BULK_CHUNK` per request).

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
from collections.abc import Awaitable, Callable, Sequence

from prefect_scenario.api.client import ScenarioClient
from prefect_scenario.api.models import Model
from prefect_scenario.api.retry_policy import is_transient
from prefect_scenario.exceptions import NotFoundError, TrainingTimeout
from prefect_scenario.training.monitoring import describe_progress
from prefect_scenario.training.polling import DEFAULT_POLICY, PollPolicy, next_poll_delay

__all__ = ["BULK_CHUNK", "wait_for_models", "wait_until_all_terminal", "wait_until_terminal"]

# Not stated by the API; 100 ids keeps one get-bulk body small.
BULK_CHUNK = 100

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
        except Exception as exc:
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


async def wait_until_terminal(
    client: ScenarioClient,
    model_id: str,
    *,
    timeout_seconds: float,
    policy: PollPolicy = DEFAULT_POLICY,
    on_update: OnUpdate | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    log: Callable[[str], None] | None = None,
) -> Model:
    """Wait for one model, polling ``GET /models/{id}``.

    Raises:
        TrainingTimeout: the deadline passed.
    """

    async def fetch(ids: list[str]) -> list[Model]:
        return [await client.get_model(ids[0])]

    done = await wait_for_models(
        fetch, [model_id], timeout_seconds=timeout_seconds, policy=policy, on_update=on_update,
        clock=clock, sleep=sleep, log=log,
    )  # fmt: skip
    return done[model_id]


async def wait_until_all_terminal(
    client: ScenarioClient,
    model_ids: Sequence[str],
    *,
    timeout_seconds: float,
    policy: PollPolicy = DEFAULT_POLICY,
    on_update: OnUpdate | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    log: Callable[[str], None] | None = None,
) -> dict[str, Model]:
    """Wait for many models with one ``POST /models/get-bulk`` per cycle.

    Raises:
        TrainingTimeout: the deadline passed with models still training.
    """

    async def fetch(ids: list[str]) -> list[Model]:
        models: list[Model] = []
        for start in range(0, len(ids), BULK_CHUNK):
            models += await client.get_models_bulk(ids[start : start + BULK_CHUNK])
        return models

    return await wait_for_models(
        fetch, model_ids, timeout_seconds=timeout_seconds, policy=policy, on_update=on_update,
        clock=clock, sleep=sleep, log=log,
    )  # fmt: skip
