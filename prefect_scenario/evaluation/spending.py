"""Renders are credits: their dry-run total is charged through the same budget ledger as trainings.

The entry is written ``spent`` at the quoted total before the first render starts: a
render's price is exact from its dry run (the API quotes the exact body), and a ``spent``
entry is never settled against a training, so the ledger's settlement of stale training
reservations leaves it alone. Its id is stable per (model, suite, renders to pay), so a
re-run after a crash replaces its own entry instead of counting twice.

Example:
    >>> render_entry_id("model_1", "abc", ["k1", "k2"]) == render_entry_id("model_1", "abc", ["k2", "k1"])
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from prefect_scenario._logging import run_logger
from prefect_scenario.exceptions import BudgetExceeded
from prefect_scenario.spend import charge as ledger_clock  # the ledger's one clock, as the training gate's
from prefect_scenario.spend.block import resolve_budget
from prefect_scenario.spend.decisions import LedgerEntry, SpendDecision, Verdict, decide_spend
from prefect_scenario.spend.ledger import ledger_lock, read_entries, write_entry

__all__ = ["charge_renders", "render_entry_id"]


def render_entry_id(model_id: str, suite_digest: str, keys: Sequence[str]) -> str:
    """The ledger entry id of one batch of renders."""
    text = "\x1f".join([model_id, suite_digest, *sorted(keys)])
    return "eval-" + hashlib.sha256(text.encode()).hexdigest()[:20]


async def charge_renders(
    *,
    project: str,
    dataset: str,
    model_id: str,
    suite_digest: str,
    keys: Sequence[str],
    total: float,
    budget: object = None,
    max_creative_units: float | None = None,
) -> None:
    """Refuse renders quoted above ``max_creative_units`` or past the budget; else record them as spent.

    Without a budget nothing is written (as for a training without one); ``max_creative_units``
    still applies.

    Raises:
        BudgetExceeded: a limit refused the renders; nothing was spent.
    """
    entry_id = render_entry_id(model_id, suite_digest, keys)
    resolved = await resolve_budget(budget)  # type: ignore[arg-type]
    today = ledger_clock.today_utc()
    options = {
        "estimate": total,
        "today": today,
        "dataset": dataset,
        "max_creative_units": max_creative_units,
        "exclude_id": entry_id,
    }
    if resolved is None:
        made = decide_spend([], limits=None, **options)  # type: ignore[arg-type]
        if made.verdict is not Verdict.ALLOW:
            raise _refused(made, model_id, total)
        return
    async with ledger_lock(project):
        made = decide_spend(await read_entries(project, today), limits=resolved.limits(), **options)  # type: ignore[arg-type]
        if made.verdict is not Verdict.ALLOW:  # a pause is a refusal here: renders wait for no one
            raise _refused(made, model_id, total)
        entry = LedgerEntry(
            id=entry_id,
            day=today.isoformat(),
            dataset=dataset,
            model_id=model_id,
            estimate=total,
            actual=total,
            status="spent",
            at=ledger_clock.utc_now().isoformat(),
            note=f"evaluation renders, suite {suite_digest}",
        )
        await write_entry(project, entry)
    run_logger().info("Charged %g creative units of evaluation renders to the budget", total)


def _refused(made: SpendDecision, model_id: str, total: float) -> BudgetExceeded:
    return BudgetExceeded(
        f"evaluation renders refused: {made.reason}",
        model_id=model_id,
        limit=made.limit,
        limit_units=made.limit_units,
        spent=made.spent,
        estimate=total,
    )
