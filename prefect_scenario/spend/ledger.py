"""The ledger's I/O: entries kept as Prefect Variables, a lock, and the ledger artifacts.

Why Prefect, and not Scenario's jobs: the budget must hold across runs that start at the
same moment. Deriving spend from Scenario (jobs and their costs, models tagged by the
project) tells what was spent, but two runs that both read it before either triggers
both pass the check; a reservation written before the trigger, under a lock, is needed
either way. So the ledger lives in the Prefect server's database (it survives restarts
of the flows and of the server) and every decision is made under the project's lock:

1. take the lock: a global concurrency limit of 1 slot (:func:`ledger_lock`);
2. read the project's entries of the month, decide (pure:
   :func:`~prefect_scenario.spend.decisions.decide_spend`), and write this training's
   reservation (its estimate);
3. release the lock, trigger, then replace the reservation by the actual cost (or
   release it if the trigger failed and the failure proves nothing started).

The lock is a lease (Prefect 3.9 ``concurrency(..., lease_duration=...)``): a holder that
crashes stops renewing it and the server frees the slot when the lease expires (60 s
here, the server's minimum), so a crash never blocks the budget for good.

Storage: one Variable per entry, ``psc-ledger-<project>-<YYYY-MM-DD>-<entry>``. A
Variable's value is capped at 5,000 characters (``prefect.types.MAX_VARIABLE_VALUE_LENGTH``);
an entry is ~300, so one per Variable never reaches it however many trainings a day
runs, and creating one is a single atomic insert. The month's entries are read with one
name filter (paged by 200). A reservation whose run crashed before the trigger's answer,
or whose trigger's outcome is unknown, stays ``reserved`` and keeps counting (erring
towards not spending) until the gate settles it from the model's status once its run can
no longer trigger (:mod:`prefect_scenario.spend.settlement`), or the same training is run
again (same entry id).

Example:
    >>> entry_variable_name("proj_1", "2026-12-02", "e1")[:32]
    'psc-ledger-f8d5ee0ecbba1420-2026'
    >>> ledger_lock_name("proj_1")
    'scenario-budget-f8d5ee0ecbba1420'
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

from prefect_scenario._locks import ensure_concurrency_limit
from prefect_scenario.spend.decisions import LedgerEntry, daily_summary

__all__ = [
    "LEDGER_ARTIFACT_KEY",
    "SUMMARY_ARTIFACT_KEY",
    "entry_variable_name",
    "ledger_lock",
    "ledger_lock_name",
    "ledger_rows",
    "publish_ledger",
    "read_entries",
    "write_entry",
]

LEDGER_ARTIFACT_KEY = "scenario-ledger"
SUMMARY_ARTIFACT_KEY = "scenario-ledger-summary"
LEDGER_TAG = "scenario-ledger"
_PAGE = 200
# Prefect's server refuses leases under 60 s; a crashed holder frees the lock after that.
LEASE_SECONDS = 60.0
_log = logging.getLogger(__name__)


def _project_slug(project: str) -> str:
    return hashlib.sha256(project.encode()).hexdigest()[:16]


def entry_variable_name(project: str, day: str, entry_id: str) -> str:
    """The Variable holding one entry (lowercase letters, digits and dashes only)."""
    return f"psc-ledger-{_project_slug(project)}-{day}-{entry_id}"


def ledger_lock_name(project: str) -> str:
    """The global concurrency limit that serialises the project's budget decisions."""
    return f"scenario-budget-{_project_slug(project)}"


@asynccontextmanager
async def ledger_lock(project: str) -> AsyncIterator[None]:
    """Hold the project's budget lock (one holder at a time, across processes and machines)."""
    from prefect.concurrency.asyncio import concurrency

    name = ledger_lock_name(project)
    await ensure_concurrency_limit(name)
    async with concurrency(name, occupy=1, lease_duration=LEASE_SECONDS, strict=True):
        yield


async def read_entries(project: str, month: date) -> list[LedgerEntry]:
    """The project's entries of ``month`` (any day in it), oldest first."""
    from prefect.client.orchestration import get_client

    prefix = f"psc-ledger-{_project_slug(project)}-{month.isoformat()[:7]}-"
    entries: list[LedgerEntry] = []
    async with get_client() as prefect:
        offset = 0
        while True:
            # The client's read_variables takes no filter; the endpoint does (POST /variables/filter).
            response = await prefect._client.post(
                "/variables/filter",
                json={"variables": {"name": {"like_": prefix}}, "limit": _PAGE, "offset": offset},
            )
            response.raise_for_status()
            page: list[dict[str, Any]] = response.json()
            entries += [LedgerEntry.model_validate(v["value"]) for v in page if isinstance(v.get("value"), dict)]
            if len(page) < _PAGE:
                break
            offset += _PAGE
    return sorted(entries, key=lambda e: (e.day, e.at or "", e.id))


async def write_entry(project: str, entry: LedgerEntry, *, exists: bool = False) -> None:
    """Create or replace ``entry``'s Variable.

    ``exists`` says which to try first (a reservation is being replaced): one request, not two,
    in the seconds between a trigger and a suspension.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import VariableCreate, VariableUpdate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    name = entry_variable_name(project, entry.day, entry.id)
    value = entry.model_dump(mode="json")
    async with get_client() as prefect:
        if exists:
            try:
                await prefect.update_variable(VariableUpdate(name=name, value=value))
                return
            except ObjectNotFound:
                pass  # released by hand, or another day's name: create it
        try:
            await prefect.create_variable(VariableCreate(name=name, value=value, tags=[LEDGER_TAG]))
        except ObjectAlreadyExists:
            await prefect.update_variable(VariableUpdate(name=name, value=value))


def ledger_rows(entries: Sequence[LedgerEntry]) -> list[dict[str, str]]:
    """The ledger table: date, dataset, model, estimate, actual cost, status, fleet, note (newest first).

    Example:
        >>> e = LedgerEntry(id="a", day="2026-12-02", dataset="hero", model_id="m1", estimate=104, status="reserved")
        >>> ledger_rows([e])[0]["actual cost"], ledger_rows([e])[0]["status"]
        ('', 'reserved')
    """
    return [
        {
            "date": e.day,
            "dataset": e.dataset,
            "model": e.model_id,
            "estimate": f"{e.estimate:g}",
            "actual cost": "" if e.actual is None else f"{e.actual:g}",
            "status": e.status,
            "fleet": e.fleet or "",
            "note": e.note or "",
        }
        for e in reversed(entries)
    ]


def summary_markdown(entries: Sequence[LedgerEntry], budget_line: str) -> str:
    """The per-day summary as markdown."""
    lines = [
        "# Scenario spend per day (UTC)",
        "",
        budget_line,
        "",
        "| date | trainings | estimated | spent | reserved |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['date']} | {r['trainings']} | {r['estimated']} | {r['spent']} | {r['reserved']} |"
        for r in daily_summary(entries)
    ]
    return "\n".join(lines) + "\n"


async def publish_ledger(entries: Sequence[LedgerEntry], budget_line: str) -> None:
    """The ledger table and the per-day summary artifacts; monitoring never fails a training."""
    try:
        await acreate_table_artifact(
            ledger_rows(entries), key=LEDGER_ARTIFACT_KEY, description=f"Scenario trainings this month. {budget_line}"
        )
        await acreate_markdown_artifact(
            summary_markdown(entries, budget_line), key=SUMMARY_ARTIFACT_KEY, description="Scenario spend per day"
        )
    except Exception as exc:
        _log.warning("ledger artifacts not updated: %s", type(exc).__name__)
