"""A human's decision where it pays: pause the run with the contact sheet until someone answers.

``pause_flow_run(wait_for_input=...)`` blocks the running flow in its process and polls the
API until the run is resumed with input from the UI (Prefect 3.9 ``prefect/flow_runs.py``);
it needs no deployment. No answer before the timeout never promotes.

Example:
    >>> sorted(ReviewInput.model_fields)
    ['decision']
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from prefect.input import RunInput

from prefect_scenario._logging import run_logger
from prefect_scenario.evaluation.decision import Decision

__all__ = ["ReviewInput", "Reviewer", "publish_markdown", "review_in_ui"]

Reviewer = Callable[[str, Decision, float], Awaitable[str | None]]


class ReviewInput(RunInput):
    """The reviewer's answer: promote the candidate, or reject it."""

    decision: Literal["promote", "reject"]


def _in_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


async def publish_markdown(markdown: str, *, key: str) -> None:
    """A markdown artifact of the current run (nothing outside a run)."""
    if _in_run():
        from prefect.artifacts import acreate_markdown_artifact

        await acreate_markdown_artifact(markdown, key=key, description="LoRA evaluation")


async def review_in_ui(sheet: str, decision: Decision, timeout_seconds: float) -> str:
    """Pause the flow run for a decision in the UI; ``timeout`` when nobody answers (never promotes)."""
    from prefect.context import FlowRunContext
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import apause_flow_run

    if FlowRunContext.get() is None:
        run_logger().warning("Review asked outside a flow run: nobody can answer, so the candidate is not promoted")
        return "timeout"
    run_logger().info("Waiting for a review (%s); the contact sheet is in the run's artifacts", decision.reason)
    context = FlowRunContext.get()
    assert context is not None and context.flow_run is not None
    try:
        answer = await apause_flow_run(
            wait_for_input=ReviewInput,
            timeout=max(1, int(timeout_seconds)),
            poll_interval=max(1, min(5, int(timeout_seconds) // 4)),
        )
    except FlowPauseTimeout:
        # Prefect leaves the run paused, and a paused run may not complete ("The flow was
        # completed and never resumed"): put it back to running, then carry on without a promotion.
        from prefect.client.orchestration import get_client
        from prefect.states import Running

        async with get_client() as prefect:
            await prefect.set_flow_run_state(context.flow_run.id, Running(), force=True)
        run_logger().info("Nobody answered the review within %g s: the candidate is not promoted", timeout_seconds)
        return "timeout"
    return answer.decision if isinstance(answer, ReviewInput) else "timeout"
