"""The pause: past a limit, ask a person in the Prefect UI whether to train anyway.

The flow run pauses (``pause_flow_run(wait_for_input=BudgetDecision, timeout=...)``): the
UI shows a form with one checkbox, ``approve``. Resuming with ``approve`` ticked trains
(over the limit, recorded as ``approved`` in the ledger); resuming without it, or letting
the timeout pass, skips the training. From code:
``prefect.flow_runs.resume_flow_run(flow_run_id, run_input={"approve": True})``.

Pausing blocks the flow run's process (unlike ``suspend_flow_run``, which needs a
deployment): the budget lock is not held meanwhile, so other runs go on.

Example:
    >>> BudgetDecision(approve=True).approve
    True
"""

from __future__ import annotations

import asyncio
from typing import cast

from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import apause_flow_run
from prefect.input import RunInput
from pydantic import Field

from prefect_scenario._logging import run_logger

__all__ = ["BudgetDecision", "ask_approval"]

# A flow run is paused once at a time: a fleet's jobs that cross a limit together ask in turn.
_PAUSES: dict[str, asyncio.Lock] = {}


class BudgetDecision(RunInput):
    """Train although a budget limit would be crossed? Tick approve to train, leave it to skip."""

    approve: bool = Field(False, description="Train anyway (over the budget); leave unticked to skip.")


async def ask_approval(reason: str, *, timeout_seconds: float, poll_seconds: float, key: str) -> bool:
    """Pause the current flow run until a person decides; True to train, False to skip.

    Args:
        reason: Why it paused (logged, so it shows beside the form in the UI).
        timeout_seconds: How long to wait; then the training is skipped.
        poll_seconds: How often to check whether the run was resumed.
        key: The pause's key (one per training, so a fleet's pauses do not collide).
    """
    context = FlowRunContext.get()
    run_id = str(context.flow_run.id) if context and context.flow_run else ""
    # One small lock per paused flow run, kept for the process's life (a flow run uses one event loop).
    async with _PAUSES.setdefault(run_id, asyncio.Lock()):
        return await _pause(reason, timeout_seconds=timeout_seconds, poll_seconds=poll_seconds, key=key)


async def _pause(reason: str, *, timeout_seconds: float, poll_seconds: float, key: str) -> bool:
    logger = run_logger()
    logger.warning("budget: %s. Pausing for a decision (approve to train, else skip) for %gs", reason, timeout_seconds)
    try:
        # pause_flow_run's timeout and poll are typed int, but both are used as seconds (anyio).
        answer = await apause_flow_run(
            wait_for_input=BudgetDecision,
            timeout=cast(int, timeout_seconds),
            poll_interval=cast(int, poll_seconds),
            key=key,
        )
    except FlowPauseTimeout:
        logger.warning("budget: no decision within %gs: skipping the training", timeout_seconds)
        return False
    except RuntimeError as exc:
        # Outside a flow run (or a run that cannot pause) nobody can be asked: skip.
        logger.warning("budget: cannot pause for a decision (%s): skipping the training", exc)
        return False
    logger.info("budget: %s", "approved: training over the limit" if answer.approve else "skipped by decision")
    return bool(answer.approve)
