"""One training's place in the spend ledger, from the gate's reservation to the trigger's answer.

:class:`SpendCharge` is what :func:`~prefect_scenario.spend.gate.check_spend` hands the
training body: it writes the reservation, replaces it by the cost the trigger answered, or
releases or holds it when the trigger failed (:mod:`prefect_scenario.spend.settlement`
decides which). The ledger's clock is :func:`utc_now`: tests move it instead of waiting.

Example:
    >>> entry_id("model_1", None) == entry_id("model_1", None), entry_id("model_1", None) == entry_id("model_1", "j1")
    (True, False)
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from prefect_scenario._logging import run_logger
from prefect_scenario.api.models import TrainResult
from prefect_scenario.spend.block import ScenarioBudget
from prefect_scenario.spend.decisions import LedgerEntry
from prefect_scenario.spend.ledger import publish_ledger, read_entries, write_entry
from prefect_scenario.spend.settlement import UNKNOWN_OUTCOME_SETTLE_SECONDS, trigger_spent_nothing

__all__ = ["SpendCharge", "entry_id", "publish_spend", "today_utc", "utc_now"]


def utc_now() -> datetime:
    """The gate's clock (UTC): tests move it instead of waiting."""
    return datetime.now(UTC)


def today_utc() -> date:
    """Today in UTC: the day a reservation is booked on."""
    return utc_now().date()


def entry_id(model_id: str, job_id: str | None) -> str:
    """One ledger entry per model and training: a run continued after a crash reuses its own."""
    return hashlib.sha256(f"{model_id}\0{job_id or ''}".encode()).hexdigest()[:16]


@dataclass
class SpendCharge:
    """One training's place in the ledger, between the gate and the trigger's answer."""

    project: str
    entry: LedgerEntry
    budget: ScenarioBudget | None
    reserved: bool
    window_seconds: float = 0.0  # how long after a reservation its run may still trigger

    async def _write(self, entry: LedgerEntry) -> None:
        self.entry = entry.model_copy(update={"at": utc_now().isoformat()})
        await write_entry(self.project, self.entry, exists=self.reserved)

    async def reserve(self, status: str = "reserved") -> None:
        """Write the reservation: it counts the estimate, and may be settled once its run can no longer trigger."""
        settle_after = (utc_now() + timedelta(seconds=self.window_seconds)).isoformat()
        await self._write(self.entry.model_copy(update={"status": status, "settle_after": settle_after}))
        self.reserved = True

    async def record(self, answer: TrainResult, *, publish: bool = True) -> None:
        """Replace the reservation by the cost the trigger answered; update the ledger artifacts.

        An answer without a cost (a lost answer recognised on the model, or a training a
        concurrent trigger started first) cannot tell whose trigger spent: the estimate
        stands as the charge, erring towards not overspending. ``publish=False`` leaves the
        artifacts to :func:`publish_spend` (a run about to suspend publishes once resumed,
        so its process ends sooner after the trigger).
        """
        actual = answer.creative_units_cost
        status = "approved" if self.entry.status == "approved" else "spent"
        try:
            await self._write(self.entry.model_copy(update={"actual": actual, "status": status, "settle_after": None}))
        except Exception as exc:
            # The training is paid and running: a ledger hiccup must not fail it (the
            # reservation, if any, keeps counting the estimate).
            run_logger().warning("ledger: actual cost of %s not recorded: %s", self.entry.model_id, type(exc).__name__)
            return
        cost = f"{actual:g}" if actual is not None else "unknown (the estimate stands)"
        run_logger().info(
            "ledger: %s cost %s creative units (estimated %g)", self.entry.model_id, cost, self.entry.estimate
        )
        if publish:
            await publish_spend(self.project, self.budget, date.fromisoformat(self.entry.day))

    async def release(self) -> None:
        """Free the reservation: the trigger failed, nothing was started."""
        if not self.reserved:
            return
        try:
            await self._write(self.entry.model_copy(update={"status": "released", "actual": 0.0, "settle_after": None}))
        except Exception as exc:
            run_logger().warning("ledger: reservation of %s not released: %s", self.entry.model_id, type(exc).__name__)

    async def hold(self, error: BaseException) -> None:
        """Keep counting the estimate of a trigger whose outcome is unknown, until the ledger settles it.

        It is written even without a budget (as every training is): a budget read later
        must see a training that may have been paid. It becomes settleable once a request
        still in flight has had time to land.
        """
        settle_after = (utc_now() + timedelta(seconds=UNKNOWN_OUTCOME_SETTLE_SECONDS)).isoformat()
        try:
            await self._write(self.entry.model_copy(update={"settle_after": settle_after}))
            self.reserved = True
        except Exception as exc:
            # The reservation, if any, stays as written: settled later, after its longer bound.
            run_logger().warning(
                "ledger: unknown trigger of %s not marked: %s", self.entry.model_id, type(exc).__name__
            )
            return
        run_logger().warning(
            "ledger: the trigger of %s failed without proof that nothing started (%s): its %g creative units stay "
            "counted until the ledger settles them from the model's status (after %s)",
            self.entry.model_id,
            type(error).__name__,
            self.entry.estimate,
            settle_after,
        )

    @asynccontextmanager
    async def settling_on_error(self) -> AsyncIterator[None]:
        """On a failed trigger: release the reservation if nothing started, else keep it counted.

        A cancelled or killed run (a ``BaseException``) writes nothing: its reservation
        stays as written, and is settled once its run can no longer trigger.
        """
        try:
            yield
        except Exception as exc:
            if trigger_spent_nothing(exc):
                await self.release()
            else:
                await self.hold(exc)
            raise


async def publish_spend(project: str, budget: ScenarioBudget | None, day: date | None = None) -> None:
    """Publish the ledger artifacts of ``day``'s month (today's by default); never fails a training."""
    try:
        entries = await read_entries(project, day or today_utc())
    except Exception as exc:
        run_logger().warning("ledger: artifacts not updated: %s", type(exc).__name__)
        return
    await publish_ledger(entries, _budget_line(budget))


def _budget_line(budget: ScenarioBudget | None) -> str:
    if budget is None:
        return "No budget."
    limits = budget.limits()
    parts = [
        f"{name}={value:g}"
        for name, value in (
            ("per_dataset", limits.per_dataset),
            ("per_project", limits.per_project),
            ("per_fleet_run", limits.per_fleet_run),
        )
        if value is not None
    ]
    return f"Budget: {', '.join(parts) or 'no limits'} per {limits.period} (UTC), on exceeded: {limits.on_exceeded}."
