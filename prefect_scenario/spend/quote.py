"""A dataset quoted before its first upload: a refusal that is certain comes before any image is sent.

The dry run prices an empty model as if it held ``trainingImagesCount`` images (pairs on an
edit type): scenario-sdk 2.4.0's ``models.train.trigger(dry_run=True, training_images_count=…)``.
The quote only refuses early what the gate (:func:`~prefect_scenario.spend.gate.check_spend`)
would refuse after the upload anyway: ``max_creative_units``, and a budget whose limit is passed
even if every stale reservation were released. It reserves nothing; the gate takes the quote as
its estimate, reserves under the ledger's lock and decides a pause.

Example:
    >>> from prefect_scenario.spend.gate import SpendPlan
    >>> refusal = certain_refusal(SpendPlan(dataset="hero", max_creative_units=100), [], estimate=120, model_id="m")
    >>> refusal.reason if refusal else None
    'the estimate of 120 creative units is above max_creative_units=100'
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect_scenario._logging import run_logger
from prefect_scenario.api.models import Model
from prefect_scenario.catalog import TrainingParameters
from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.exceptions import APIError, BudgetExceeded
from prefect_scenario.spend import charge as ledger_clock  # one clock to move in tests: charge.utc_now
from prefect_scenario.spend.charge import entry_id
from prefect_scenario.spend.decisions import LedgerEntry, SpendDecision, Verdict, decide_spend
from prefect_scenario.spend.gate import SpendPlan, estimate_scenario_training_cost
from prefect_scenario.spend.ledger import read_entries
from prefect_scenario.spend.settlement import stale_reservations

__all__ = ["certain_refusal", "quote_before_upload"]


def certain_refusal(
    plan: SpendPlan, entries: Sequence[LedgerEntry], *, estimate: float, model_id: str
) -> SpendDecision | None:
    """The gate's refusal of this training whatever the upload changes, or None.

    Stale reservations are left out (the gate may settle and release them), so a refusal here
    is one the gate makes too. A pause is not decided here: the gate asks once, after the upload.
    """
    stale = {e.id for e in stale_reservations(entries, now=ledger_clock.utc_now())}
    decision = decide_spend(
        [e for e in entries if e.id not in stale],
        estimate=estimate,
        limits=plan.budget.limits() if plan.budget is not None else None,
        today=ledger_clock.today_utc(),
        dataset=plan.dataset,
        fleet=plan.fleet,
        max_creative_units=plan.max_creative_units,
        exclude_id=entry_id(model_id, None),
    )
    return decision if decision.verdict is Verdict.REFUSE else None


async def quote_before_upload(
    plan: SpendPlan, credentials: ScenarioCredentials, model: Model, params: TrainingParameters, count: int
) -> float | None:
    """Refuse, before any upload, a training the gate would refuse after it; return the quote.

    Nothing is asked without a limit, or for a model that already holds images (a run continued
    after a crash: the API ignores the count then, so the gate's own dry run decides).
    The gate uses the quote instead of a second dry run: the dataset it priced is the one
    uploaded next (a duplicate the API refuses makes it smaller, so the quote errs high, never low).

    Returns:
        The quoted creative units, or None (not quoted: the gate runs its dry run).

    Raises:
        BudgetExceeded: the quote is over ``max_creative_units``, or over the budget for certain.
    """
    if not plan.limited or model.training_images_number or count < 1:
        return None
    try:
        estimate = await estimate_scenario_training_cost(credentials, model.id, params, training_images_count=count)
    except APIError as exc:  # the gate refuses an unavailable estimate after the upload, with its reason
        run_logger().warning("the dataset could not be quoted before the upload (%s)", exc)
        return None
    units: float | None = estimate.creative_units_cost
    if units is None:
        return None
    entries = await read_entries(credentials.project_id, ledger_clock.today_utc()) if plan.budget is not None else []
    refusal = certain_refusal(plan, entries, estimate=units, model_id=model.id)
    run_logger().info("quoted %d image(s) before the upload: %g creative units", count, units)
    if refusal is not None:
        raise BudgetExceeded(
            f"training refused before any upload: {refusal.reason}",
            model_id=model.id,
            limit=refusal.limit,
            limit_units=refusal.limit_units,
            spent=refusal.spent,
            estimate=units,
        )
    return units
