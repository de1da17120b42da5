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
  the trigger answered, and the ``scenario-ledger`` artifacts are updated. A trigger that
  failed is released only when the failure proves nothing started; one whose outcome is
  unknown keeps counting until the ledger settles it from the model
  (:mod:`prefect_scenario.spend.settlement`), as does a run that crashed in between. The
  gate settles the project's stale reservations before it decides.

A model that is already training (a run continued after a crash) is neither estimated
nor triggered; a model already trained and reused costs nothing and is not recorded.

Example:
    >>> entry_id("model_1", None) == entry_id("model_1", None), entry_id("model_1", None) == entry_id("model_1", "j1")
    (True, False)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from prefect.context import FlowRunContext

from prefect_scenario._dispatch import TASK_OPTIONS, scenario_task
from prefect_scenario._logging import run_logger
from prefect_scenario.api.models import CostEstimate, Model
from prefect_scenario.catalog import TrainingParameters
from prefect_scenario.credentials import ScenarioCredentials, resolve_credentials
from prefect_scenario.exceptions import APIError, BudgetExceeded
from prefect_scenario.reporting import ProgressReporter
from prefect_scenario.spend import charge as ledger_clock  # one clock to move in tests: charge.utc_now
from prefect_scenario.spend.approval import ask_approval
from prefect_scenario.spend.block import ScenarioBudget, check_units, resolve_budget
from prefect_scenario.spend.charge import SpendCharge, entry_id, publish_spend, today_utc, utc_now
from prefect_scenario.spend.decisions import LedgerEntry, SpendDecision, Verdict, decide_spend
from prefect_scenario.spend.ledger import ledger_lock, read_entries
from prefect_scenario.spend.settlement import (
    apply_settlements,
    read_outcomes,
    settle_reservation,
    stale_reservations,
    trigger_window_seconds,
)

__all__ = [
    "SpendCharge",
    "SpendPlan",
    "check_spend",
    "entry_id",
    "estimate_scenario_training_cost",
    "prepare_spend",
    "publish_spend",
    "today_utc",
    "utc_now",
]


# How long a training waits for a budget's slot before it gives up without triggering;
# as long as the default wait for a training, so a full slot frees within it.
DEFAULT_SLOT_TIMEOUT = 4 * 3600.0


@dataclass(frozen=True)
class SpendPlan:
    """What the gate needs to know of a training: checked limits, the loaded budget, its ledger names."""

    dataset: str
    fleet: str | None = None
    max_creative_units: float | None = None
    budget: ScenarioBudget | None = None
    slot_timeout: float = DEFAULT_SLOT_TIMEOUT

    @property
    def limited(self) -> bool:
        """Whether a limit was asked for (then a missing estimate refuses the trigger)."""
        return self.max_creative_units is not None or self.budget is not None


async def prepare_spend(
    *,
    dataset: str,
    max_creative_units: float | None,
    budget: ScenarioBudget | str | None,
    fleet: str | None = None,
    slot_timeout: float = DEFAULT_SLOT_TIMEOUT,
) -> SpendPlan:
    """Check the spend options and load the budget block, before any request to Scenario.

    Raises:
        ConfigurationError: ``max_creative_units`` zero, negative or not finite; a budget
            block that does not exist or is invalid.
    """
    return SpendPlan(
        dataset=dataset,
        fleet=fleet,
        max_creative_units=check_units("max_creative_units", max_creative_units),
        budget=await resolve_budget(budget),
        slot_timeout=slot_timeout,
    )


@scenario_task(
    name="scenario-estimate-training-cost", task_run_name="scenario-estimate-training-cost-{model_id}", **TASK_OPTIONS
)
async def estimate_scenario_training_cost(
    credentials: ScenarioCredentials | None,
    model_id: str,
    parameters: TrainingParameters | None = None,
    *,
    training_images_count: int | None = None,
) -> CostEstimate:
    """The creative units a training of the model would cost: a dry run, nothing is started or spent.

    Args:
        credentials: the Scenario credentials block (None: the ``SCENARIO_*`` environment).
        model_id: the model, with its training images or pairs in place, or still empty when
            ``training_images_count`` is given.
        parameters: the training parameters (the cost depends on them, e.g. the epochs).
        training_images_count: quote an empty model as if it held this many images (pairs on
            an edit type), before the first upload; ignored by the API once images are there.

    Returns:
        The estimate (``creative_units_cost``).
    """
    resolved = await resolve_credentials(credentials)
    async with resolved.get_client() as client:
        return await client.estimate_training_cost(model_id, parameters, training_images_count=training_images_count)


def _refusal(decision: SpendDecision, model_id: str, outcome: str = "refused") -> BudgetExceeded:
    verb = "refused" if outcome == "refused" else "skipped"
    return BudgetExceeded(
        f"training {verb} before any trigger: {decision.reason}",
        model_id=model_id,
        limit=decision.limit,
        limit_units=decision.limit_units,
        spent=decision.spent,
        estimate=decision.estimate,
        outcome=outcome,
    )


async def _estimate(
    plan: SpendPlan, credentials: ScenarioCredentials, model: Model, params: TrainingParameters, quoted: float | None
) -> float | None:
    if quoted is not None:  # priced before the upload (spend/quote.py): no second dry run
        return quoted
    limited = plan.limited
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
        raise BudgetExceeded(
            "the dry run answered no creative-units cost and a spend limit was asked for", model_id=model.id
        )
    units: float | None = estimate.creative_units_cost
    return units


async def _settled(
    credentials: ScenarioCredentials, stale: list[LedgerEntry]
) -> dict[str, tuple[LedgerEntry, LedgerEntry]]:
    """What the stale reservations become, read from Scenario (outside the lock; nothing on a failed read)."""
    now = ledger_clock.utc_now()
    try:
        outcomes = await read_outcomes(credentials, stale)
    except APIError as exc:
        run_logger().warning("ledger: %d stale reservation(s) not settled (%s): they keep counting", len(stale), exc)
        return {}
    return {e.id: (e, settle_reservation(e, outcomes.get(e.model_id), now=now)) for e in stale}


async def _decide_and_reserve(
    charge: SpendCharge, credentials: ScenarioCredentials, budget: ScenarioBudget, options: dict[str, Any]
) -> SpendDecision:
    """Under the project's lock: read the ledger, decide, and write the reservation if allowed.

    Stale reservations found on the way are settled first: Scenario is read without the
    lock (other runs decide meanwhile), and each settlement is written only if its
    reservation is unchanged once the lock is held again.
    """
    today = options["today"]

    async def decide(entries: list[LedgerEntry]) -> SpendDecision:
        made = decide_spend(entries, limits=budget.limits(), **options)
        if made.verdict is Verdict.ALLOW:
            await charge.reserve()
        return made

    async with ledger_lock(charge.project):
        entries = await read_entries(charge.project, today)
        stale = stale_reservations(entries, now=ledger_clock.utc_now(), exclude_id=charge.entry.id)
        if not stale:
            return await decide(entries)
    settled = await _settled(credentials, stale)
    async with ledger_lock(charge.project):
        return await decide(await apply_settlements(charge.project, await read_entries(charge.project, today), settled))


def _charge(
    plan: SpendPlan, credentials: ScenarioCredentials, model: Model, units: float | None, today: date
) -> SpendCharge:
    """The training's ledger entry, not written yet: a reservation of the estimate, in this flow run."""
    context = FlowRunContext.get()
    run_id = str(context.flow_run.id) if context and context.flow_run else None
    entry = LedgerEntry(
        id=entry_id(model.id, model.job_id),
        day=today.isoformat(),
        dataset=plan.dataset,
        model_id=model.id,
        estimate=units or 0.0,
        status="reserved",
        fleet=plan.fleet,
        flow_run_id=run_id,
        job_before=model.job_id,
    )
    window = trigger_window_seconds(
        slot_timeout=plan.slot_timeout, timeout=credentials.timeout, max_retries=credentials.max_retries
    )
    return SpendCharge(
        project=credentials.project_id, entry=entry, budget=plan.budget, reserved=False, window_seconds=window
    )


async def check_spend(
    plan: SpendPlan, credentials: ScenarioCredentials, model: Model, params: TrainingParameters, quoted: float | None
) -> SpendCharge:
    """Estimate the training (one dry run, unless ``quoted`` before the upload) and apply the limits.

    With a budget, the project's stale reservations (runs that crashed before their
    trigger's answer, triggers whose outcome was unknown) are settled first.

    Returns:
        The training's :class:`SpendCharge` (its reservation, if a budget is set).

    Raises:
        BudgetExceeded: a limit refused it, or the pause for a decision skipped it;
            nothing was triggered.
    """
    logger = run_logger()
    units = await _estimate(plan, credentials, model, params, quoted)
    today = ledger_clock.today_utc()
    charge = _charge(plan, credentials, model, units, today)
    entry, budget = charge.entry, plan.budget
    if units is None:
        return charge
    ceiling = f" (max_creative_units={plan.max_creative_units:g})" if plan.max_creative_units else ""
    logger.info("estimated cost of training %s: %g creative units%s", model.id, units, ceiling)
    await ProgressReporter.for_training(model.id, model.name).note(
        f"{model.name or model.id}: estimated {units:g} creative units{ceiling}"
    )
    options: dict[str, Any] = {
        "estimate": units,
        "today": today,
        "dataset": entry.dataset,
        "fleet": plan.fleet,
        "max_creative_units": plan.max_creative_units,
        "exclude_id": entry.id,
    }
    if budget is None:
        unbudgeted = decide_spend([], limits=None, **options)
        if unbudgeted.verdict is not Verdict.ALLOW:
            raise _refusal(unbudgeted, model.id)
        return charge
    decision = await _decide_and_reserve(charge, credentials, budget, options)
    logger.info("budget: %s", decision.reason)
    if decision.verdict is Verdict.REFUSE:
        raise _refusal(decision, model.id)
    if decision.verdict is Verdict.PAUSE:
        # The lock is not held while a person decides: other runs go on meanwhile.
        approved = await ask_approval(
            decision.reason,
            timeout_seconds=budget.pause_timeout_seconds,
            poll_seconds=budget.pause_poll_seconds,
            key=f"budget-{entry.id}",
        )
        if not approved:
            raise _refusal(decision, model.id, outcome="skipped")
        async with ledger_lock(charge.project):
            await charge.reserve("approved")
    return charge
