"""Rendering a suite with a trained LoRA against the in-process emulator: quote, render, cache, bad input."""

from __future__ import annotations

import itertools

import httpx
import pytest

from prefect_scenario.evaluation.options import EvaluationOptions
from prefect_scenario.evaluation.render import render_lora
from prefect_scenario.evaluation.suite import EvaluationSuite, default_suite
from prefect_scenario.exceptions import BudgetExceeded, EvaluationInputError
from scenario_emulator import EmulatorApp, ManualClock
from tests.emulator.helpers import new_model
from tests.evaluation.helpers import PROJECT, client_for, clock_sleep, train

SUITE = default_suite(["a red fox", "a blue bird", "a green frog", "a grey wolf"])


def _spent(app: EmulatorApp) -> list[str]:
    """The paid requests: real renders (not dry runs)."""
    return [r["path"] for r in app.requests() if r["path"].startswith("/v1/generate/custom")
            and "dryRun" not in (r["query"] or "")]  # fmt: skip


async def test_renders_one_output_per_prompt_and_seed_then_the_cache_pays_nothing(
    emulator_app: EmulatorApp, emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    lora = await train(emulator_client, emulator_clock)
    async with client_for(emulator_app) as client:
        first = await render_lora(client, lora, SUITE, sleep=clock_sleep(emulator_clock), clock=emulator_clock)
        assert [r.prompt for r in first.renders] == list(SUITE.prompts) and first.paid == 4 and first.cost == 16.0
        assert len(_spent(emulator_app)) == 4
        by_job: dict[str, list[float]] = {}
        for r in emulator_app.requests():
            if r["path"].startswith("/v1/jobs/"):
                by_job.setdefault(r["path"], []).append(r["time"])
        assert by_job and all(b - a >= 2 for times in by_job.values() for a, b in itertools.pairwise(times))
        again = await render_lora(client, lora, SUITE, sleep=clock_sleep(emulator_clock), clock=emulator_clock)
    assert again.paid == 0 and all(r.cached for r in again.renders) and len(_spent(emulator_app)) == 4
    assert [r.asset_id for r in again.renders] == [r.asset_id for r in first.renders]


async def test_the_plan_ceiling_is_waited_not_retried(
    emulator_app: EmulatorApp, emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    lora = await train(emulator_client, emulator_clock)
    emulator_app.store.generation.parallel_jobs = 1
    async with client_for(emulator_app) as client:
        done = await render_lora(client, lora, SUITE, EvaluationOptions(max_in_flight=4),
                                 sleep=clock_sleep(emulator_clock), clock=emulator_clock)  # fmt: skip
    assert len(done.renders) == 4
    refused = [r for r in emulator_app.requests() if r["status"] == 429]
    assert len(refused) == 1  # one 429, then the ceiling is kept


@pytest.mark.parametrize(
    ("suite", "message"),
    [
        (EvaluationSuite(prompts=("x" * 2050,)), "at most 2048"),
        (EvaluationSuite(prompts=("a fox",), lora_scale=2.5), "lora_scale=2.5"),
        (EvaluationSuite(prompts=("a fox",), lora_scale=-0.5), "lora_scale=-0.5"),
        (EvaluationSuite(prompts=("a fox",), width=4096), "width=4096"),
    ],
    ids=["prompt-too-long", "scale-over-2", "scale-negative", "too-wide"],
)
async def test_a_suite_over_the_base_limits_is_refused_before_any_credit(
    emulator_app: EmulatorApp, emulator_client: httpx.AsyncClient, emulator_clock: ManualClock,
    suite: EvaluationSuite, message: str,
) -> None:  # fmt: skip
    lora = await train(emulator_client, emulator_clock)
    emulator_app.clear_requests()
    async with client_for(emulator_app) as client:
        with pytest.raises(EvaluationInputError, match=message):
            await render_lora(client, lora, suite)
    assert not [r for r in emulator_app.requests() if "generate" in r["path"]]


async def test_untrained_edit_without_references_and_unknown_type_are_refused(
    emulator_app: EmulatorApp, emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    untrained = await new_model(emulator_client, projectId=PROJECT)
    edit, klein = await train(emulator_client, emulator_clock), await train(emulator_client, emulator_clock)
    emulator_app.store.models[edit].type = "flux.2-dev-edit-lora"  # trained as a pair set would be
    emulator_app.store.models[klein].type = "flux.2-klein-4b-lora"  # a type no known base runs
    emulator_app.clear_requests()
    async with client_for(emulator_app) as client:
        with pytest.raises(EvaluationInputError, match="not 'trained'"):
            await render_lora(client, untrained, SUITE)
        with pytest.raises(EvaluationInputError, match="reference_images"):
            await render_lora(client, edit, SUITE)
        with pytest.raises(EvaluationInputError, match=r"flux\.2-klein-4b-lora"):
            await render_lora(client, klein, SUITE)
    assert not [r for r in emulator_app.requests() if "generate" in r["path"]]


async def test_max_creative_units_refuses_before_any_render(
    emulator_app: EmulatorApp, emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    lora = await train(emulator_client, emulator_clock)
    async with client_for(emulator_app) as client:
        with pytest.raises(BudgetExceeded, match="max_creative_units"):
            await render_lora(client, lora, SUITE, EvaluationOptions(max_creative_units=10))
    assert not _spent(emulator_app)


async def test_a_brief_is_written_only_on_opt_in_and_never_over_another(
    emulator_app: EmulatorApp, emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    from prefect_scenario.evaluation.scoring import ProjectBrief, QualityGateScorer

    lora = await train(emulator_client, emulator_clock)
    async with client_for(emulator_app) as client:
        renders = (await render_lora(client, lora, SUITE, sleep=clock_sleep(emulator_clock),
                                     clock=emulator_clock)).renders  # fmt: skip
        plain = await QualityGateScorer(sleep=clock_sleep(emulator_clock), clock=emulator_clock).score(client, renders)
        assert len(plain) == 4 and await client.get_project_brief() is None  # no opt-in: no brief written
        await client.set_project_brief("the user's own brief")
        opted = QualityGateScorer(brief=ProjectBrief("hero style", ()), sleep=clock_sleep(emulator_clock),
                                  clock=emulator_clock)  # fmt: skip
        with pytest.raises(EvaluationInputError, match="replace_brief=True"):
            await opted.score(client, renders)
        assert (await client.get_project_brief() or {})["body"] == "the user's own brief"
        replaced = QualityGateScorer(brief=ProjectBrief("hero style", ()), replace_brief=True, wait_seconds=0)
        scores = await replaced.score(client, renders)
    assert (emulator_app.store.generation.briefs[PROJECT])["body"] == "hero style"
    assert [s.score for s in scores] == [s.score for s in plain]
