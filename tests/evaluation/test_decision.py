"""The pure parts: the paired decision, review, the suite's digest and default, the render bodies."""

from __future__ import annotations

import pytest

from prefect_scenario.api.models import BaseModelRecord
from prefect_scenario.evaluation.bases import render_bodies
from prefect_scenario.evaluation.decision import decide, final_outcome, needs_review
from prefect_scenario.evaluation.suite import GENERIC_PROMPTS, EvaluationSuite, default_suite
from prefect_scenario.exceptions import EvaluationInputError
from scenario_emulator.generation import BASE_MODELS

PAIRS = [("a", 1), ("b", 1), ("c", 1), ("d", 1)]


@pytest.mark.parametrize(
    ("gains", "margin", "outcome"),
    [
        ([10, 8, 9, 7], 5, "promote"),
        ([5, 5, 5, 5], 5, "uncertain"),  # reaching the margin is not beating it
        ([1, -2, 3, 0], 5, "uncertain"),
        ([-5, -5, -5, -5], 5, "reject"),
        ([-20, 3, -4, -1], 5, "reject"),
        ([0.1, 0.1, 0.1, 0.1], 0, "promote"),
    ],
    ids=["clearly-better", "exactly-the-margin", "noise", "exactly-minus-margin", "clearly-worse", "zero-margin"],
)
def test_the_paired_decision(gains: list[float], margin: float, outcome: str) -> None:
    production = {k: 60.0 for k in PAIRS}
    candidate = {k: 60.0 + g for k, g in zip(PAIRS, gains, strict=True)}
    assert decide(candidate, production, margin=margin).outcome == outcome


def test_only_shared_pairs_count_and_no_production_promotes() -> None:
    assert decide({("a", 1): 90.0, ("z", 9): 0.0}, {("a", 1): 50.0}, margin=5).pairs == 1
    assert decide({("a", 1): 10.0}, None, margin=5).outcome == "promote"
    assert decide({("a", 1): 10.0}, {("b", 1): 10.0}, margin=5).outcome == "reject"


@pytest.mark.parametrize(
    ("outcome_gain", "review", "answer", "asked", "final"),
    [
        (10, "never", None, False, "promote"),
        (2, "never", None, False, "reject"),
        (2, "uncertain", "promote", True, "promote"),
        (2, "uncertain", "timeout", True, "reject"),
        (10, "uncertain", None, False, "promote"),
        (10, "always", "timeout", True, "reject"),
        (10, "always", "reject", True, "reject"),
        (-10, "always", "promote", True, "promote"),
    ],
)
def test_review_and_the_final_outcome(outcome_gain: float, review: str, answer: str | None, asked: bool,
                                      final: str) -> None:  # fmt: skip
    decision = decide({("a", 1): 50.0 + outcome_gain}, {("a", 1): 50.0}, margin=5)
    assert needs_review(decision, review) is asked
    assert final_outcome(decision, answer if asked else None) == final


def test_the_digest_changes_with_every_setting() -> None:
    base = EvaluationSuite(prompts=("a fox",))
    changes = {"seeds": (2,), "width": 512, "lora_scale": 0.8, "trigger_word": "T", "prompts": ("a cat",)}
    variants = [base.model_copy(update={k: v}) for k, v in changes.items()]
    assert len({base.digest, *(v.digest for v in variants)}) == 6


def test_the_default_suite_falls_back_to_generic_prompts() -> None:
    generic = default_suite(["", "  "])
    assert generic.prompts == GENERIC_PROMPTS and generic.trigger_word is None
    with_trigger = default_suite(trigger_word="HERO")
    assert with_trigger.prompts == GENERIC_PROMPTS and all(p.startswith("HERO") for p, _ in with_trigger.items())


def test_bodies_send_arrays_one_output_and_an_explicit_seed() -> None:
    base = BaseModelRecord.model_validate(BASE_MODELS["model_bfl-flux-2-dev"])
    suite = EvaluationSuite(prompts=("a fox",), seeds=(3, 4), lora_scale=0.75)
    bodies = [r.body for r in render_bodies(base, suite, ["model_x"])]
    assert bodies[0] == {"prompt": "a fox", "loras": ["model_x"], "lorasScale": [0.75], "numOutputs": 1, "seed": 3,
                         "width": 1024, "height": 1024}  # fmt: skip
    assert [b["seed"] for b in bodies] == [3, 4]
    with pytest.raises(EvaluationInputError, match="at most 6"):
        render_bodies(base, EvaluationSuite(prompts=("a fox",)), [f"model_{i}" for i in range(7)])
