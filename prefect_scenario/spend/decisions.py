"""The spend decision: a pure function of (ledger entries, estimate, limits, today).

:func:`decide_spend` says whether one training may be triggered: ``allow``, ``refuse`` or
``pause`` (ask a person in the Prefect UI), with a reason that names the limit, the spend
so far and the estimate. :func:`sensor_over_budget` says whether the S3 sensor should
skip a dataset. Neither reads a clock or the network: :mod:`prefect_scenario.spend.ledger`
does the I/O around them, so every case is a one-line test.

A training's charge is its actual cost once the trigger answered, its estimate while it is
only reserved (triggered or about to be), and nothing once released (the trigger was
refused, or the ledger settled the reservation of a training that never started:
:mod:`prefect_scenario.spend.settlement`).

Example:
    >>> from datetime import date
    >>> today = date(2026, 12, 2)
    >>> first = LedgerEntry(id="a", day="2026-12-02", dataset="hero", model_id="m1", estimate=104, actual=104,
    ...                     status="spent")
    >>> limits = Limits(per_dataset=200)
    >>> decide_spend([first], estimate=104, limits=limits, today=today, dataset="hero").verdict.value
    'refuse'
    >>> decide_spend([first], estimate=96, limits=limits, today=today, dataset="hero").verdict.value
    'allow'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "PERIODS",
    "LedgerEntry",
    "Limits",
    "SpendDecision",
    "Verdict",
    "daily_summary",
    "decide_spend",
    "in_period",
    "sensor_over_budget",
]

# A period is a UTC calendar day or month: the window a dataset or project limit applies to.
PERIODS = ("day", "month")
EntryStatus = Literal["reserved", "spent", "released", "approved"]


class LedgerEntry(BaseModel):
    """One training in the ledger: what was estimated, reserved and spent."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(description="The entry's id (one per model and training).")
    day: str = Field(description="The UTC day the training was reserved, YYYY-MM-DD.")
    dataset: str = Field(description="The dataset label (the S3 dataset URI, or the model name).")
    model_id: str = Field(description="The Scenario model.")
    estimate: float = Field(description="The dry run's estimate, in creative units.")
    actual: float | None = Field(None, description="The cost the trigger answered, once known.")
    status: EntryStatus = Field(description="reserved, approved (over a limit), spent or released.")
    fleet: str | None = Field(None, description="The fleet flow run this training belongs to, if any.")
    flow_run_id: str | None = Field(None, description="The flow run that reserved it.")
    at: str | None = Field(None, description="When it was last written (ISO 8601, UTC).")
    settle_after: str | None = Field(
        None,
        description="While reserved: when (ISO 8601, UTC) its run can no longer trigger, so the ledger may settle it.",
    )
    job_before: str | None = Field(None, description="The model's job before this training's trigger, if it had one.")
    note: str | None = Field(None, description="How the ledger settled a stale reservation, if it did.")

    @property
    def charged(self) -> float:
        """What this entry counts against a limit."""
        if self.status == "released":
            return 0.0
        return self.actual if self.actual is not None else self.estimate


@dataclass(frozen=True)
class Limits:
    """The limits a budget sets, in creative units (None: no such limit)."""

    per_dataset: float | None = None
    per_project: float | None = None
    per_fleet_run: float | None = None
    period: str = "day"
    on_exceeded: Literal["refuse", "pause"] = "refuse"


class Verdict(StrEnum):
    """What :func:`decide_spend` says."""

    ALLOW = "allow"
    REFUSE = "refuse"
    PAUSE = "pause"


@dataclass(frozen=True)
class SpendDecision:
    """A verdict and why: the limit, what the ledger holds against it, and the estimate."""

    verdict: Verdict
    reason: str
    limit: str | None = None
    limit_units: float | None = None
    spent: float = 0.0
    estimate: float = 0.0


def in_period(entry: LedgerEntry, today: date, period: str) -> bool:
    """Whether ``entry`` falls in the ``period`` (``day`` or ``month``, UTC) that holds ``today``.

    Example:
        >>> e = LedgerEntry(id="a", day="2026-12-01", dataset="d", model_id="m", estimate=1, status="spent")
        >>> in_period(e, date(2026, 12, 2), "day"), in_period(e, date(2026, 12, 2), "month")
        (False, True)
    """
    stamp = today.isoformat()
    return entry.day == stamp if period == "day" else entry.day[:7] == stamp[:7]


def _total(entries: Iterable[LedgerEntry]) -> float:
    return round(sum(e.charged for e in entries), 6)


def _window(period: str) -> str:
    return "today (UTC)" if period == "day" else "this month (UTC)"


def decide_spend(
    entries: Sequence[LedgerEntry],
    *,
    estimate: float,
    limits: Limits | None,
    today: date,
    dataset: str,
    fleet: str | None = None,
    max_creative_units: float | None = None,
    exclude_id: str | None = None,
) -> SpendDecision:
    """May a training estimated at ``estimate`` creative units be triggered now?

    ``max_creative_units`` caps the one training and always refuses (it is the caller's
    own ceiling, not a shared budget). Then the dataset's and the project's spend in the
    period and the fleet run's spend are checked; the first limit that the estimate would
    cross decides, with the budget's ``on_exceeded`` (refuse or pause). A limit is crossed
    when spend + estimate is above it: reaching it exactly is allowed.

    Args:
        entries: The project's ledger entries (any period; the decision picks its window).
        estimate: The dry run's estimate for this training.
        limits: The budget's limits, or None for no budget.
        today: Today's date in UTC.
        dataset: This training's dataset label.
        fleet: This training's fleet run, if it is part of one.
        max_creative_units: The run's own ceiling, if any.
        exclude_id: An entry to leave out (this training's own earlier reservation,
            when a crashed run is run again).

    Returns:
        The :class:`SpendDecision`.

    Example:
        >>> decide_spend([], estimate=120, limits=None, today=date(2026, 12, 2), dataset="d",
        ...              max_creative_units=100).reason
        'the estimate of 120 creative units is above max_creative_units=100'
    """
    if max_creative_units is not None and estimate > max_creative_units:
        reason = f"the estimate of {estimate:g} creative units is above max_creative_units={max_creative_units:g}"
        return SpendDecision(
            Verdict.REFUSE, reason, limit="max_creative_units", limit_units=max_creative_units, estimate=estimate
        )
    if limits is None:
        return SpendDecision(Verdict.ALLOW, f"estimate {estimate:g} creative units; no budget", estimate=estimate)
    counted = [e for e in entries if e.id != exclude_id]
    current = [e for e in counted if in_period(e, today, limits.period)]
    window = _window(limits.period)
    checks: list[tuple[str, float | None, float, str]] = [
        (
            "per_dataset",
            limits.per_dataset,
            _total(e for e in current if e.dataset == dataset),
            f"dataset {dataset!r} {window}",
        ),
        ("per_project", limits.per_project, _total(current), f"the project {window}"),
    ]
    if fleet is not None:
        checks.append(
            ("per_fleet_run", limits.per_fleet_run, _total(e for e in counted if e.fleet == fleet), "this fleet run")
        )
    for name, limit, spent, scope in checks:
        if limit is not None and spent + estimate > limit:
            verdict = Verdict.PAUSE if limits.on_exceeded == "pause" else Verdict.REFUSE
            reason = (
                f"{name}={limit:g} creative units: {scope} has {spent:g} spent or reserved, "
                f"and this training is estimated at {estimate:g} ({spent + estimate:g} > {limit:g})"
            )
            return SpendDecision(verdict, reason, limit=name, limit_units=limit, spent=spent, estimate=estimate)
    return SpendDecision(Verdict.ALLOW, f"estimate {estimate:g} creative units, within the budget", estimate=estimate)


def sensor_over_budget(
    entries: Sequence[LedgerEntry], *, dataset: str, limits: Limits, today: date
) -> SpendDecision | None:
    """Why the sensor should not start a retrain of ``dataset`` now, or None.

    The sensor has no model to dry-run yet, so it predicts the next training's cost by the
    dataset's last estimate in the ledger (none: 0, so only a limit already reached stops it).

    Example:
        >>> e = LedgerEntry(id="a", day="2026-12-02", dataset="s3://b/hero/", model_id="m", estimate=104,
        ...                 actual=104, status="spent")
        >>> sensor_over_budget([e], dataset="s3://b/hero/", limits=Limits(per_dataset=200),
        ...                    today=date(2026, 12, 2)).limit
        'per_dataset'
    """
    mine = [e for e in entries if e.dataset == dataset]
    predicted = max(mine, key=lambda e: (e.at or "", e.day)).estimate if mine else 0.0
    decision = decide_spend(
        entries,
        estimate=predicted,
        limits=Limits(limits.per_dataset, limits.per_project, None, limits.period),
        today=today,
        dataset=dataset,
    )
    if decision.verdict is Verdict.ALLOW and predicted == 0.0:
        # Nothing to predict from: stop only a limit already reached.
        full = [
            (name, limit, spent)
            for name, limit, spent in (
                ("per_dataset", limits.per_dataset, _total(e for e in mine if in_period(e, today, limits.period))),
                ("per_project", limits.per_project, _total(e for e in entries if in_period(e, today, limits.period))),
            )
            if limit is not None and spent >= limit
        ]
        if full:
            name, limit, spent = full[0]
            return SpendDecision(
                Verdict.REFUSE,
                f"{name}={limit:g} creative units is used up ({spent:g} spent)",
                limit=name,
                limit_units=limit,
                spent=spent,
            )
        return None
    return None if decision.verdict is Verdict.ALLOW else decision


def daily_summary(entries: Sequence[LedgerEntry]) -> list[dict[str, str]]:
    """One row per UTC day: trainings, estimated, spent (actual costs) and still reserved.

    Example:
        >>> e = LedgerEntry(id="a", day="2026-12-02", dataset="d", model_id="m", estimate=104, actual=100,
        ...                 status="spent")
        >>> daily_summary([e])
        [{'date': '2026-12-02', 'trainings': '1', 'estimated': '104', 'spent': '100', 'reserved': '0'}]
    """
    rows = []
    for day in sorted({e.day for e in entries}, reverse=True):
        of_day = [e for e in entries if e.day == day and e.status != "released"]
        rows.append(
            {
                "date": day,
                "trainings": str(len(of_day)),
                "estimated": f"{sum(e.estimate for e in of_day):g}",
                "spent": f"{sum(e.actual or 0.0 for e in of_day):g}",
                "reserved": f"{sum(e.estimate for e in of_day if e.actual is None):g}",
            }
        )
    return rows
