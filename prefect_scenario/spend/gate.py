"""The spend gate of a training: one dry run, the limits, the reservation, then the actual cost.

The training body (:mod:`prefect_scenario.training.pipeline`) calls :func:`check_spend`
right before the trigger and :meth:`SpendCharge.record` right after it:

- one dry run (``PUT /models/{id}/train?dryRun=true``, HTTP 269) gives the estimate, shown
  in the log and on the training's progress artifact;
- ``max_creative_units`` refuses a training estimated above it, and a
  :class:`~prefect_scenario.spend.block.ScenarioBudget` refuses or pauses one that would
  cross a limit, before anything is triggered (:class:`~prefect_scenario.exceptions.BudgetExceeded`
  gives the limit, the spend so far and the estimate);
- the ledger (:mod:`prefect_scenario.spend.ledger`) gets the reservation, then the cost
  the trigger answered, and the ``scenario-ledger`` artifacts are updated.

A model that is already training (a run continued after a crash) is neither estimated
nor triggered; a model already trained and reused costs nothing and is not recorded.

Example:
    >>> entry_id("model_1", None) == entry_id("model_1", None), entry_id("model_1", None) == entry_id("model_1", "j1")
    (True, False)
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from prefect.context import FlowRunContext

from prefect_scenario._dispatch import scenario_task
from prefect_scenario._logging import run_logger
from prefect_scenario.api.models import CostEstimate, Model, TrainResult
from prefect_scenario.catalog import TrainingParameters
from prefect_scenario.credentials import ScenarioCredentials, resolve_credentials
from prefect_scenario.exceptions import APIError, BudgetExceeded
from prefect_scenario.spend.approval import ask_approval
from prefect_scenario.spend.block import ScenarioBudget, check_units, resolve_budget
from prefect_scenario.spend.decisions import LedgerEntry, SpendDecision, Verdict, decide_spend
from prefect_scenario.spend.ledger import ledger_lock, publish_ledger, read_entries, write_entry
from prefect_scenario.training.monitoring import ProgressReporter, artifact_key
from prefect_scenario.training.tasks import TASK_OPTIONS

if TYPE_CHECKING:
    from prefect_scenario.training.pipeline import TrainingRequest

__all__ = [
    "SpendCharge",
    "check_spend",
    "entry_id",
    "estimate_scenario_training_cost",
    "prepare_spend",
    "publish_spend",
]


def today_utc() -> date:
    """Today in UTC: the day a reservation is booked on."""
    return datetime.now(UTC).date()


def entry_id(model_id: str, job_id: str | None) -> str:
    """One ledger entry per model and training: a run continued after a crash reuses its own."""
    return hashlib.sha256(f"{model_id}\0{job_id or ''}".encode()).hexdigest()[:16]


async def prepare_spend(request: TrainingRequest) -> None:
    """Check the spend options and load the budget block, before any request to Scenario.

    Raises:
        ConfigurationError: ``max_creative_units`` zero, negative or not finite; a budget
            block that does not exist or is invalid.
    """
    request.max_creative_units = check_units("max_creative_units", request.max_creative_units)
    request.budget = await resolve_budget(request.budget)


@scenario_task(
    name="scenario-estimate-training-cost", task_run_name="scenario-estimate-training-cost-{model_id}", **TASK_OPTIONS
)
async def estimate_scenario_training_cost(
    credentials: ScenarioCredentials | None, model_id: str, parameters: TrainingParameters | None = None
) -> CostEstimate:
    """The creative units a training of the model would cost: a dry run, nothing is started or spent.

    Args:
        credentials: the Scenario credentials block (None: the ``SCENARIO_*`` environment).
        model_id: the model, with its training images or pairs in place.
        parameters: the training parameters (the cost depends on them, e.g. the epochs).

    Returns:
        The estimate (``creative_units_cost``).
    """
    resolved = await resolve_credentials(credentials)
    async with resolved.get_client() as client:
        return await client.estimate_training_cost(model_id, parameters)


def _budget_line(budget: ScenarioBudget | None) -> str:
    if budget is None:
        return "No budget."
    limits = budget.limits()
    parts = [
        f"{name}={value:g}"
        for name, value in (("per_dataset", limits.per_dataset), ("per_project", limits.per_project),
                            ("per_fleet_run", limits.per_fleet_run))
        if value is not None
    ]  # fmt: skip
    return f"Budget: {', '.join(parts) or 'no limits'} per {limits.period} (UTC), on exceeded: {limits.on_exceeded}."


def _refusal(decision: SpendDecision, model_id: str, outcome: str = "refused") -> BudgetExceeded:
    verb = "refused" if outcome == "refused" else "skipped"
    return BudgetExceeded(
        f"training {verb} before any trigger: {decision.reason}", model_id=model_id, limit=decision.limit,
        limit_units=decision.limit_units, spent=decision.spent, estimate=decision.estimate, outcome=outcome,
    )  # fmt: skip


@dataclass
class SpendCharge:
    """One training's place in the ledger, between the gate and the trigger's answer."""

    project: str
    entry: LedgerEntry
    budget: ScenarioBudget | None
    reserved: bool

    async def _write(self, entry: LedgerEntry) -> None:
        self.entry = entry.model_copy(update={"at": datetime.now(UTC).isoformat()})
        await write_entry(self.project, self.entry, exists=self.reserved)

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
            await self._write(self.entry.model_copy(update={"actual": actual, "status": status}))
        except Exception as exc:
            # The training is paid and running: a ledger hiccup must not fail it (the
            # reservation, if any, keeps counting the estimate).
            run_logger().warning("ledger: actual cost of %s not recorded: %s", self.entry.model_id, type(exc).__name__)
            return
        cost = f"{actual:g}" if actual is not None else "unknown (the estimate stands)"
        run_logger().info("ledger: %s cost %s creative units (estimated %g)", self.entry.model_id, cost,
                          self.entry.estimate)  # fmt: skip
        if publish:
            await publish_spend(self.project, self.budget, date.fromisoformat(self.entry.day))

    async def release(self) -> None:
        """Free the reservation: the trigger failed, nothing was started."""
        if not self.reserved:
            return
        try:
            await self._write(self.entry.model_copy(update={"status": "released", "actual": 0.0}))
        except Exception as exc:
            run_logger().warning("ledger: reservation of %s not released: %s", self.entry.model_id,
                                 type(exc).__name__)  # fmt: skip

    @asynccontextmanager
    async def releasing_on_error(self) -> AsyncIterator[None]:
        """Release the reservation if the block raises (a failed trigger spent nothing)."""
        try:
            yield
        except BaseException:
            await self.release()
            raise


async def publish_spend(project: str, budget: ScenarioBudget | None, day: date | None = None) -> None:
    """Publish the ledger artifacts of ``day``'s month (today's by default); never fails a training."""
    try:
        entries = await read_entries(project, day or today_utc())
    except Exception as exc:
        run_logger().warning("ledger: artifacts not updated: %s", type(exc).__name__)
        return
    await publish_ledger(entries, _budget_line(budget))


async def _estimate(request: TrainingRequest, credentials: ScenarioCredentials, model: Model,
                    params: TrainingParameters) -> float | None:  # fmt: skip
    limited = request.max_creative_units is not None or request.budget is not None
    try:
        estimate = await estimate_scenario_training_cost(credentials, model.id, params)
    except APIError as exc:
        if limited:
            raise BudgetExceeded(
                f"the cost estimate is unavailable ({exc}) and a spend limit was asked for: not triggering",
                model_id=model.id,
            ) from None
        run_logger().warning("cost estimate unavailable (%s); training without it (no limit was set)", exc)
        return None
    if estimate.creative_units_cost is None and limited:
        raise BudgetExceeded("the dry run answered no creative-units cost and a spend limit was asked for",
                             model_id=model.id)  # fmt: skip
    units: float | None = estimate.creative_units_cost
    return units


async def check_spend(
    request: TrainingRequest, credentials: ScenarioCredentials, model: Model, params: TrainingParameters
) -> SpendCharge:
    """Estimate the training (one dry run) and apply ``max_creative_units`` and the budget.

    Returns:
        The training's :class:`SpendCharge` (its reservation, if a budget is set).

    Raises:
        BudgetExceeded: a limit refused it, or the pause for a decision skipped it;
            nothing was triggered.
    """
    logger = run_logger()
    units = await _estimate(request, credentials, model, params)
    today = today_utc()
    context = FlowRunContext.get()
    run_id = str(context.flow_run.id) if context and context.flow_run else None
    entry = LedgerEntry(
        id=entry_id(model.id, model.job_id), day=today.isoformat(), dataset=request.dataset or request.name,
        model_id=model.id, estimate=units or 0.0, status="reserved", fleet=request.fleet, flow_run_id=run_id,
    )  # fmt: skip
    budget = request.budget if isinstance(request.budget, ScenarioBudget) else None
    charge = SpendCharge(project=credentials.project_id, entry=entry, budget=budget, reserved=False)
    if units is None:
        return charge
    ceiling = f" (max_creative_units={request.max_creative_units:g})" if request.max_creative_units else ""
    logger.info("estimated cost of training %s: %g creative units%s", model.id, units, ceiling)
    await ProgressReporter(key=artifact_key("scenario-training", model.id)).note(
        f"{model.name or model.id}: estimated {units:g} creative units{ceiling}"
    )
    options: dict[str, Any] = {"estimate": units, "today": today, "dataset": entry.dataset, "fleet": request.fleet,
                               "max_creative_units": request.max_creative_units, "exclude_id": entry.id}  # fmt: skip
    if budget is None:
        decision = decide_spend([], limits=None, **options)
        if decision.verdict is not Verdict.ALLOW:
            raise _refusal(decision, model.id)
        return charge
    async with ledger_lock(charge.project):
        decision = decide_spend(await read_entries(charge.project, today), limits=budget.limits(), **options)
        if decision.verdict is Verdict.ALLOW:
            await charge._write(entry)
            charge.reserved = True
    logger.info("budget: %s", decision.reason)
    if decision.verdict is Verdict.REFUSE:
        raise _refusal(decision, model.id)
    if decision.verdict is Verdict.PAUSE:
        # The lock is not held while a person decides: other runs go on meanwhile.
        approved = await ask_approval(decision.reason, timeout_seconds=budget.pause_timeout_seconds,
                                      poll_seconds=budget.pause_poll_seconds, key=f"budget-{entry.id}")  # fmt: skip
        if not approved:
            raise _refusal(decision, model.id, outcome="skipped")
        async with ledger_lock(charge.project):
            await charge._write(entry.model_copy(update={"status": "approved"}))
            charge.reserved = True
    return charge
