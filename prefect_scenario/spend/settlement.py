"""Settling reservations: what a failed trigger leaves in the ledger, and what a stale reservation becomes.

The gate writes a reservation (the estimate) before the trigger and replaces it with the
trigger's answer. Three things can happen instead:

- **the trigger failed and the failure proves nothing started** (a 4xx other than 408/409:
  bad input, auth, not found, a plan limit or a cooldown 429 after its retries; no slot
  freed before the deadline): the reservation is released at once
  (:func:`trigger_spent_nothing`);
- **the trigger's outcome is unknown** (the connection dropped or timed out after the
  request was sent, a 5xx, a cancelled or killed run): the training may have started, so
  the reservation keeps counting its estimate; it becomes settleable
  :data:`UNKNOWN_OUTCOME_SETTLE_SECONDS` later, once any request in flight has landed;
- **the run crashed between the reservation and the trigger's answer**: the reservation
  stays as written, settleable once its run can no longer trigger (``settle_after``: the
  slot wait's deadline plus the trigger's retry loop, :func:`trigger_window_seconds`).

A reservation past its ``settle_after`` is *stale* (:func:`stale_reservations`). The gate
settles the stale ones before it decides: one ``POST /models/get-bulk`` for all of them,
a ``GET /jobs/{id}`` (its ``billing.cuCost``) for each whose training started, then the
pure :func:`settle_reservation`: a model that never started (or whose training is an
earlier one, or that failed: Scenario reimburses failed jobs) is released; a model that
started is charged its job's cost (the estimate when the cost cannot be read); a model
Scenario no longer returns, or in a status that says nothing, is charged its estimate.
Settling never lowers what the ledger counts for a training that may have been paid.

Example:
    >>> from datetime import UTC, datetime
    >>> now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    >>> held = LedgerEntry(id="a", day="2026-12-02", dataset="hero", model_id="m1", estimate=104,
    ...                    status="reserved", settle_after="2026-12-02T11:00:00+00:00")
    >>> [e.id for e in stale_reservations([held], now=now)]
    ['a']
    >>> settle_reservation(held, ModelOutcome(status="new"), now=now).status
    'released'
    >>> settle_reservation(held, ModelOutcome(status="trained", job_id="job_1", cost=104), now=now).actual
    104.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prefect_scenario._logging import run_logger
from prefect_scenario.api.retry_policy import MAX_RETRY_AFTER, MAX_SETTLE_SECONDS
from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.exceptions import (
    AlreadyTrainingError,
    APIError,
    APIStatusError,
    InvalidInputError,
    TrainingTimeout,
)
from prefect_scenario.spend.decisions import LedgerEntry
from prefect_scenario.spend.ledger import write_entry

__all__ = [
    "LEGACY_SETTLE_SECONDS",
    "TRIGGER_MARGIN_SECONDS",
    "UNKNOWN_OUTCOME_SETTLE_SECONDS",
    "ModelOutcome",
    "apply_settlements",
    "is_reservation",
    "read_outcomes",
    "settle_reservation",
    "stale_reservations",
    "started_training",
    "trigger_spent_nothing",
    "trigger_window_seconds",
]

# At least this long for the trigger's retry loop after the slot wait (with the default
# client settings the loop ends within ~20 minutes: 9 attempts, 60 s timeouts, 60 s settle waits).
TRIGGER_MARGIN_SECONDS = 3600.0
# A request whose answer was lost lands within a client timeout; ten minutes is far past it.
UNKNOWN_OUTCOME_SETTLE_SECONDS = 600.0
# A reservation written before ``settle_after`` existed: the flows' default timeout (4 h) plus the margin.
LEGACY_SETTLE_SECONDS = 4 * 3600.0 + TRIGGER_MARGIN_SECONDS
# A training started by the trigger shows one of these (with a new job) on the model.
STARTED_STATUSES = frozenset({"training", "trained", "training-canceled"})

# -- pure decisions -------------------------------------------------------------------------


def trigger_spent_nothing(error: BaseException) -> bool:
    """Whether a failed trigger proves that no training started (so its reservation is released).

    Example:
        >>> from prefect_scenario.exceptions import APIConnectionError, PlanLimitError, ServerError
        >>> trigger_spent_nothing(PlanLimitError("cap", status_code=429))
        True
        >>> trigger_spent_nothing(APIConnectionError("lost")), trigger_spent_nothing(ServerError("x", status_code=503))
        (False, False)
    """
    if isinstance(error, AlreadyTrainingError):
        return False  # the model is training: someone's trigger started it
    if isinstance(error, InvalidInputError | TrainingTimeout):
        # Refused before sending, or no slot freed: every attempt was answered by a plan limit.
        return True
    if isinstance(error, APIStatusError):
        # A 4xx refused the call; a 408 or 409 may have been answered after the work began.
        code = error.status_code or 0
        return 400 <= code < 500 and code not in (408, 409)
    return False  # no answer, a 5xx, a cancelled or killed run: the request may have landed


def trigger_window_seconds(*, slot_timeout: float, timeout: float, max_retries: int) -> float:
    """How long after its reservation a live run may still send its trigger.

    The slot wait (a ``parallel-training`` 429 is retried until ``slot_timeout``), then the
    trigger's retry loop: up to ``max_retries + 1`` attempts, each at most a client timeout
    for the answer, a settle wait and the reconcile's read.

    Example:
        >>> trigger_window_seconds(slot_timeout=14400, timeout=60, max_retries=8)
        18000.0
    """
    loop = (max_retries + 1) * (3 * timeout + MAX_SETTLE_SECONDS + MAX_RETRY_AFTER)
    return float(slot_timeout + max(TRIGGER_MARGIN_SECONDS, loop))


def is_reservation(entry: LedgerEntry) -> bool:
    """Whether ``entry`` still waits for its trigger's answer (neither charged its answer nor released)."""
    if entry.actual is not None or entry.status not in ("reserved", "approved"):
        return False
    # An approved entry without settle_after was recorded (an answer without a cost).
    return entry.status == "reserved" or entry.settle_after is not None


def _settle_time(entry: LedgerEntry) -> datetime | None:
    if entry.settle_after is not None:
        return _parse(entry.settle_after)
    stamp = _parse(entry.at) if entry.at else None
    return stamp + timedelta(seconds=LEGACY_SETTLE_SECONDS) if stamp else None


def _parse(stamp: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def stale_reservations(
    entries: Iterable[LedgerEntry], *, now: datetime, exclude_id: str | None = None
) -> list[LedgerEntry]:
    """The reservations whose runs can no longer trigger: past ``settle_after``, oldest first.

    ``exclude_id`` is the training being decided (its own earlier reservation is replaced,
    not settled). An entry whose time cannot be read is never stale: it keeps counting.
    """
    stale = []
    for entry in entries:
        if entry.id == exclude_id or not is_reservation(entry):
            continue
        due = _settle_time(entry)
        if due is not None and due <= now:
            stale.append(entry)
    return stale


@dataclass(frozen=True)
class ModelOutcome:
    """What Scenario says of a reservation's model: its status, its job, and that job's cost if read."""

    status: str
    job_id: str | None = None
    cost: float | None = None


def started_training(entry: LedgerEntry, outcome: ModelOutcome) -> bool:
    """Whether the model shows a training started after ``entry`` was reserved.

    A model whose job is the one it had before the reservation shows an earlier training
    (a retrain whose trigger never landed); a started status without a job id counts as
    started (erring towards charging).
    """
    if outcome.status not in STARTED_STATUSES:
        return False
    return not (entry.job_before is not None and outcome.job_id == entry.job_before)


def settle_reservation(entry: LedgerEntry, outcome: ModelOutcome | None, *, now: datetime) -> LedgerEntry:
    """What a stale reservation becomes, from what Scenario says of its model (None: not returned).

    Example:
        >>> from datetime import UTC, datetime
        >>> e = LedgerEntry(id="a", day="2026-12-02", dataset="d", model_id="m", estimate=104, status="reserved")
        >>> settle_reservation(e, None, now=datetime(2026, 12, 2, tzinfo=UTC)).charged
        104.0
    """
    charged = "approved" if entry.status == "approved" else "spent"

    def settled(status: str, actual: float | None, note: str) -> LedgerEntry:
        return entry.model_copy(
            update={"status": status, "actual": actual, "settle_after": None, "note": note, "at": now.isoformat()}
        )

    if outcome is None:
        return settled(charged, None, "settled: Scenario did not return the model; the estimate stands")
    if started_training(entry, outcome):
        job = outcome.job_id or "unknown"
        if outcome.cost is None or not math.isfinite(outcome.cost) or outcome.cost < 0:
            return settled(
                charged, None, f"settled: the training started (job {job}); cost unread, the estimate stands"
            )
        return settled(charged, float(outcome.cost), f"settled: the training started (job {job}); its cost recorded")
    if outcome.status == "new":
        return settled("released", 0.0, "settled: the model never started training; released")
    if outcome.status == "failed":
        return settled("released", 0.0, "settled: the training failed (Scenario reimburses failed jobs); released")
    if outcome.status in STARTED_STATUSES:
        return settled(
            "released", 0.0, f"settled: the model shows an earlier training (job {outcome.job_id}); released"
        )
    return settled(charged, None, f"settled: the model is {outcome.status!r}; the estimate stands")


# -- I/O around them --------------------------------------------------------------------------


async def read_outcomes(credentials: ScenarioCredentials, stale: Sequence[LedgerEntry]) -> dict[str, ModelOutcome]:
    """The stale reservations' models as Scenario has them: one get-bulk, then a job read per started one.

    Raises:
        APIError: the get-bulk failed (nothing is settled: the reservations keep counting).
    """
    async with credentials.get_client() as client:
        models = await client.get_models_bulk(e.model_id for e in stale)
        outcomes: dict[str, ModelOutcome] = {}
        for model in models:
            outcome = ModelOutcome(status=model.status, job_id=model.job_id)
            if model.job_id and any(started_training(e, outcome) for e in stale if e.model_id == model.id):
                try:
                    cost = (await client.get_job(model.job_id)).creative_units_cost
                except APIError as exc:
                    run_logger().warning("ledger: cost of job %s unread (%s): the estimate stands", model.job_id, exc)
                    cost = None
                outcome = ModelOutcome(status=model.status, job_id=model.job_id, cost=cost)
            outcomes[model.id] = outcome
    return outcomes


async def apply_settlements(
    project: str, current: Sequence[LedgerEntry], settled: Mapping[str, tuple[LedgerEntry, LedgerEntry]]
) -> list[LedgerEntry]:
    """Write each settlement whose reservation is unchanged since it was read; the entries after.

    Call it under the project's lock. ``settled`` maps an entry id to (the stale entry as
    read, what it becomes). A reservation rewritten meanwhile (its training run again, or
    settled by another run) is left as it now is.
    """
    entries = list(current)
    for index, entry in enumerate(entries):
        pair = settled.get(entry.id)
        if pair is None or pair[0] != entry:
            continue
        await write_entry(project, pair[1], exists=True)
        entries[index] = pair[1]
        run_logger().info(
            "ledger: reservation of %s (%g creative units, %s) %s",
            entry.model_id,
            entry.estimate,
            entry.day,
            pair[1].note,
        )
    return entries
