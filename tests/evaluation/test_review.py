"""Review in the UI: a real pause of a (non-deployment) flow run in Prefect; no answer never promotes."""

from __future__ import annotations

import asyncio

import pytest
from prefect import flow

from prefect_scenario.evaluation.decision import decide, final_outcome
from prefect_scenario.evaluation.review import review_in_ui

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_a_pause_nobody_answers_times_out_and_the_run_still_ends() -> None:
    decision = decide({("p", 1): 72.0}, {("p", 1): 70.0}, margin=5)

    @flow
    async def judged() -> str:
        answer = await review_in_ui("| sheet |", decision, 1)
        return final_outcome(decision, answer)

    state = asyncio.run(judged(return_state=True))
    assert state.is_completed(), state
    assert state.result() == "reject"


async def test_outside_a_flow_run_nobody_can_answer() -> None:
    decision = decide({("p", 1): 72.0}, {("p", 1): 70.0}, margin=5)
    assert await review_in_ui("| sheet |", decision, 1) == "timeout"


def test_an_answer_from_the_ui_resumes_the_run_with_the_decision() -> None:
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext
    from prefect.flow_runs import aresume_flow_run

    decision = decide({("p", 1): 72.0}, {("p", 1): 70.0}, margin=5)

    async def answer_when_paused(flow_run_id: object) -> None:
        async with get_client() as prefect:
            for _ in range(600):  # waiting for the pause, not for time to pass
                run = await prefect.read_flow_run(flow_run_id)  # type: ignore[arg-type]
                if run.state is not None and run.state.is_paused():
                    await aresume_flow_run(flow_run_id, run_input={"decision": "promote"})  # type: ignore[arg-type]
                    return
                await asyncio.sleep(0.05)

    @flow
    async def judged() -> str:
        context = FlowRunContext.get()
        assert context is not None and context.flow_run is not None
        helper = asyncio.create_task(answer_when_paused(context.flow_run.id))
        answer = await review_in_ui("| sheet |", decision, 8)
        await helper
        return final_outcome(decision, answer)

    state = asyncio.run(judged(return_state=True))
    assert state.is_completed(), state
    assert state.result() == "promote"
