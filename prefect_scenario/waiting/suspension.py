"""Suspending a training flow run while Scenario trains, and finishing it once resumed.

With ``wait="suspend"`` a training flow run, once its training is triggered, writes what
it waits for as tags of its own flow run and calls Prefect's ``suspend_flow_run``: the
run's process ends and its worker slot (in production, its pod) is free for the whole
training. The tags are the only record, readable by anyone with the Prefect API:

- ``scenario-waiting``: the run is suspended for a training (the watcher's filter);
- ``scenario-model:<id>`` (one per model, written at create time) and ``psc-<key>``;
- ``scenario-deadline:<UTC date and time>``: when ``timeout_seconds`` ends; past it the
  training is cancelled and the run ends ``TrainingTimeout``, as the in-process wait does;
- ``scenario-cost:<units>`` and ``scenario-dataset-score:<score>`` when known, so the
  resumed run's result and summary say what the in-process one says.

The watcher (:mod:`prefect_scenario.waiting.watcher`) or the webhook receiver resumes
the run once its models are terminal. Prefect runs a resumed flow from the top: the
flow sees its own ``scenario-deadline:`` tag, skips everything before the wait (no image
is read, uploaded or triggered again) and finishes from the model as it is now.

Prefect can only suspend a deployment's run (Prefect's docs, "Pause or suspend a flow run":
``suspend_flow_run`` needs a run a worker can start again): anywhere else ``suspend`` polls, with a warning.

Example:
    >>> record = WaitRecord(model_ids=("model_1",), keys=("k",), deadline=1700000000.0, cost=104.0)
    >>> tags = record.tags()
    >>> tags[:3]
    ['scenario-waiting', 'scenario-deadline:2023-11-14T22:13:20Z', 'scenario-cost:104']
    >>> tags[3:]
    ['scenario-model:model_1', 'psc-k']
    >>> WaitRecord.from_tags(tags) == record
    True
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.flow_runs import asuspend_flow_run

from prefect_scenario._logging import run_logger
from prefect_scenario.exceptions import ConfigurationError
from prefect_scenario.tags import (
    COST_TAG_PREFIX,
    DEADLINE_TAG_PREFIX,
    IDEMPOTENCY_TAG_PREFIX,
    MODEL_TAG_PREFIX,
    SCORE_TAG_PREFIX,
    WAITING_TAG,
    tag_values,
)

__all__ = [
    "SUSPEND_GRACE_SECONDS",
    "WaitMode",
    "WaitRecord",
    "can_suspend",
    "parse_wait",
    "resumed_record",
    "set_run_tags",
    "suspend_for",
]

# Prefect fails a suspended run whose pause timeout passed (its pause_expirations service).
# The watcher acts on the deadline first (cancel, then resume so the run raises TrainingTimeout);
# the grace leaves it time to, and Prefect's own expiry is the backstop when no watcher runs.
SUSPEND_GRACE_SECONDS = 900

WaitMode = Literal["poll", "suspend"] | bool
"""``"poll"`` (or True): wait in the process; ``"suspend"``: free it; False: return once triggered."""


def parse_wait(wait: object) -> Literal["poll", "suspend", "none"]:
    """The wait mode a flow was given, checked before any request.

    Example:
        >>> parse_wait(True), parse_wait("suspend"), parse_wait(False)
        ('poll', 'suspend', 'none')
        >>> parse_wait("later")
        Traceback (most recent call last):
        ...
        prefect_scenario.exceptions.ConfigurationError: wait must be "poll", "suspend" or False, got 'later'
    """
    if wait is True or wait == "poll":
        return "poll"
    if wait is False:
        return "none"
    if wait == "suspend":
        return "suspend"
    raise ConfigurationError(f'wait must be "poll", "suspend" or False, got {wait!r}')


def _number(value: float) -> str:
    return f"{value:g}" if math.isfinite(value) else "0"


def _float(values: Sequence[str]) -> float | None:
    try:
        return float(values[0]) if values else None
    except ValueError:
        return None


def deadline_text(deadline: float) -> str:
    """A deadline as the tag shows it: a UTC date and time to the second, readable in the UI.

    Example:
        >>> deadline_text(1700000000.0)
        '2023-11-14T22:13:20Z'
    """
    return datetime.fromtimestamp(int(deadline), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _deadline(values: Sequence[str]) -> float | None:
    """The deadline in a tag: a UTC date (this version), or Unix seconds (runs suspended by 0.2.0)."""
    if not values:
        return None
    try:
        return datetime.strptime(values[0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return _float(values)


@dataclass(frozen=True)
class WaitRecord:
    """What a suspended run waits for, as it is written in (and read from) its flow-run tags."""

    model_ids: tuple[str, ...]
    keys: tuple[str, ...]
    deadline: float
    cost: float | None = None
    dataset_score: float | None = None

    def tags(self) -> list[str]:
        """The flow-run tags that hold this record."""
        tags = [WAITING_TAG, f"{DEADLINE_TAG_PREFIX}{deadline_text(self.deadline)}"]
        if self.cost is not None:
            tags.append(f"{COST_TAG_PREFIX}{_number(self.cost)}")
        if self.dataset_score is not None:
            tags.append(f"{SCORE_TAG_PREFIX}{_number(self.dataset_score)}")
        tags += [f"{MODEL_TAG_PREFIX}{m}" for m in self.model_ids]
        return tags + [f"{IDEMPOTENCY_TAG_PREFIX}{k}" for k in self.keys]

    @classmethod
    def from_tags(cls, tags: Iterable[str]) -> WaitRecord | None:
        """The record in a flow run's tags; None when the run never suspended for a training."""
        tags = list(tags)
        deadline = _deadline(tag_values(tags, DEADLINE_TAG_PREFIX))
        models = tuple(dict.fromkeys(tag_values(tags, MODEL_TAG_PREFIX)))
        if deadline is None or not models:
            return None
        return cls(
            model_ids=models,
            keys=tuple(dict.fromkeys(tag_values(tags, IDEMPOTENCY_TAG_PREFIX))),
            deadline=deadline,
            cost=_float(tag_values(tags, COST_TAG_PREFIX)),
            dataset_score=_float(tag_values(tags, SCORE_TAG_PREFIX)),
        )

    def remaining(self, now: float | None = None) -> float:
        """Seconds until the deadline (negative once it passed), on the wall clock."""
        return self.deadline - (time.time() if now is None else now)


def can_suspend() -> bool:
    """True in a flow run that Prefect can suspend and start again: a deployment's run."""
    context = FlowRunContext.get()
    return context is not None and context.flow_run is not None and context.flow_run.deployment_id is not None


def resumed_record() -> WaitRecord | None:
    """The record of the current flow run when it is a resumed (or re-run) suspended run."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    return WaitRecord.from_tags(context.flow_run.tags)


async def set_run_tags(
    flow_run_id: Any, *, add: Iterable[str] = (), remove: Iterable[str] = (), current: Sequence[str] | None = None
) -> list[str]:
    """Add and remove tags of a flow run; the tags it has now.

    ``current`` is the run's tags as the caller knows them (its own run's context); without it
    they are read from the server first, so no tag another process wrote is lost.
    """
    async with get_client() as prefect:
        if current is None:
            current = list((await prefect.read_flow_run(flow_run_id)).tags)
        dropped = set(remove) - set(add)
        tags = [t for t in dict.fromkeys([*current, *add]) if t not in dropped]
        if tags != list(current):
            await prefect.update_flow_run(flow_run_id, tags=tags)
    return tags


async def suspend_for(record: WaitRecord, *, alongside: Callable[[], Awaitable[object]] | None = None) -> None:
    """Record ``record`` on the current flow run and suspend it (this process then ends).

    The seconds between a trigger and the suspension are the seconds the run's process (its
    pod) is held while Scenario trains, and on a busy Prefect server each API call takes
    seconds: only the record is written before the suspension is asked for (a run is never
    ``PAUSED`` without it, or nothing would resume it). ``alongside`` (the trigger's ledger
    write, independent of both) runs while Prefect takes the suspension, and this process
    ends only once it is done.

    Raises:
        prefect.exceptions.Pause: always (Prefect's signal that ends the run's process).
    """
    context = FlowRunContext.get()
    assert context is not None and context.flow_run is not None
    # A stale deadline, cost or score from an earlier suspension is replaced, not kept twice.
    stale = [t for t in context.flow_run.tags if t.startswith((DEADLINE_TAG_PREFIX, COST_TAG_PREFIX, SCORE_TAG_PREFIX))]
    # The run's own tags, as its context holds them (Prefect read them when the run started and
    # every tag write of this process updates them): no read first, one request fewer between
    # the trigger and the suspension, under load the larger part of the seconds held.
    tags = await set_run_tags(context.flow_run.id, add=record.tags(), remove=stale, current=context.flow_run.tags)
    context.flow_run.tags = tags
    timeout = max(1, math.ceil(record.remaining())) + SUSPEND_GRACE_SECONDS
    run_logger().info(
        "training of %s under way: suspending this flow run (its process ends) until the watcher or a "
        "webhook resumes it; deadline in %.0fs",
        ", ".join(record.model_ids),
        record.remaining(),
    )
    _quiet_suspension()
    # A fresh key each time: Prefect refuses a pause key it has seen before (its rule for a
    # flow re-run from the top), and a run resumed early suspends again for the same training.
    beside = asyncio.ensure_future(alongside()) if alongside is not None else None
    try:
        await asuspend_flow_run(timeout=timeout, key=f"scenario-wait-{uuid.uuid4().hex[:12]}")
    finally:
        if beside is not None:
            await beside


class SuspensionIsNotAnError(logging.Filter):
    """Shows Prefect's last line for a suspended run at INFO, as it shows a completed one.

    Prefect 3.9's async flow engine logs ``Finished in state ...`` at INFO for a completed run
    and at ERROR for every other state (``flow_engine.py``, ``run_context``), a ``Suspended``
    one included, so a planned suspension reads as an error in the run's logs. Prefect offers
    no setting for it; this filter on its ``prefect.flow_runs`` logger lowers that one line
    for a ``Suspended`` or ``Paused`` state and leaves every other record as it is.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and str(record.msg).startswith(_SUSPENDED_LINES):
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return True


_SUSPENDED_LINES = ("Finished in state Suspended", "Finished in state Paused")


def _quiet_suspension() -> None:
    logger = logging.getLogger("prefect.flow_runs")
    if not any(isinstance(f, SuspensionIsNotAnError) for f in logger.filters):
        logger.addFilter(SuspensionIsNotAnError())
