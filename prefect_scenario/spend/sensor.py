"""The S3 sensor's budget check: skip a ready dataset that is over budget, with an event, instead of failing.

The sensor has no model to dry-run, so it judges by the ledger
(:func:`~prefect_scenario.spend.decisions.sensor_over_budget`: the dataset's and the
project's spend in the period, and the dataset's last estimate as the next one's cost).

A skipped dataset stays pending in the sensor's state: the next cycles look at it again
(one read of the ledger, no request to Scenario, no run created), so it retrains by
itself once the budget allows it (a new UTC day, a released reservation, a raised
limit). It does not loop: ``scenario.budget.exceeded`` has an id derived from the
dataset, its content and the day, and Prefect's event store keeps one event per id, so
the event is emitted once per content per day however many cycles see it.

Example:
    >>> budget_event_id("s3://b/hero/", "k1", "2026-12-02") == budget_event_id("s3://b/hero/", "k1", "2026-12-02")
    True
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from prefect.events import emit_event

from prefect_scenario._logging import run_logger
from prefect_scenario.credentials import ScenarioCredentials, resolve_credentials
from prefect_scenario.spend.block import ScenarioBudget, resolve_budget
from prefect_scenario.spend.decisions import LedgerEntry, SpendDecision, sensor_over_budget
from prefect_scenario.spend.ledger import read_entries

__all__ = ["EVENT_BUDGET_EXCEEDED", "SensorBudget", "budget_event_id"]

EVENT_BUDGET_EXCEEDED = "scenario.budget.exceeded"


def budget_event_id(dataset_uri: str, idempotency_key: str | None, day: str) -> uuid.UUID:
    """The event's id: one per dataset content per day."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"budget:{dataset_uri}#{idempotency_key or ''}#{day}")


@dataclass
class SensorBudget:
    """One sensor cycle's view of the budget: the limits, the project and (read once) its ledger."""

    budget: ScenarioBudget
    project: str
    today: date
    _entries: list[LedgerEntry] | None = field(default=None, repr=False)

    @classmethod
    async def load(
        cls, budget: ScenarioBudget | str | None, credentials: ScenarioCredentials | str | None, today: date
    ) -> SensorBudget | None:
        """The cycle's budget view, or None without a budget.

        Raises:
            ConfigurationError: a bad or missing budget block; no project to read the ledger of.
        """
        resolved = await resolve_budget(budget)
        if resolved is None:
            return None
        project = resolved.project_id or (await resolve_credentials(credentials)).project_id
        return cls(budget=resolved, project=project, today=today)

    async def over_budget(self, dataset_uri: str) -> SpendDecision | None:
        """Why ``dataset_uri`` should not retrain now, or None."""
        if self._entries is None:
            self._entries = await read_entries(self.project, self.today)
        return sensor_over_budget(self._entries, dataset=dataset_uri, limits=self.budget.limits(), today=self.today)

    def report(self, dataset_uri: str, idempotency_key: str | None, decision: SpendDecision) -> None:
        """Log the skip and emit ``scenario.budget.exceeded`` (once per content per day)."""
        run_logger().warning(
            "%s is ready but over budget: %s; skipped until the budget allows it", dataset_uri, decision.reason
        )
        payload: dict[str, Any] = {
            "dataset_uri": dataset_uri,
            "limit": decision.limit,
            "limit_units": decision.limit_units,
            "spent": decision.spent,
            "estimate": decision.estimate,
            "reason": decision.reason,
            "day": self.today.isoformat(),
            "idempotency_key": idempotency_key,
        }
        try:
            emit_event(
                event=EVENT_BUDGET_EXCEEDED,
                resource={"prefect.resource.id": f"s3.dataset.{dataset_uri}", "prefect.resource.name": dataset_uri},
                payload=payload,
                id=budget_event_id(dataset_uri, idempotency_key, self.today.isoformat()),
            )
        except Exception as exc:
            run_logger().warning("could not emit %s for %s: %s", EVENT_BUDGET_EXCEEDED, dataset_uri, type(exc).__name__)

    def forwarded(self, given: ScenarioBudget | str | None) -> str | None:
        """The budget's saved name, to pass on to the retrain runs (a run parameter holds no block)."""
        if isinstance(given, str):
            return given
        return getattr(self.budget, "_block_document_name", None)
