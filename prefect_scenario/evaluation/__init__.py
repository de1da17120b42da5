"""Judge every retrained LoRA before it replaces production: render, score, compare, promote, roll back.

The package sits below :mod:`prefect_scenario.training` (which offers ``promote=``): it
imports only the API client, the credentials, the spend ledger and the shared helpers.
"""

from prefect_scenario.evaluation.block import ScenarioLoRA
from prefect_scenario.evaluation.decision import Decision, decide
from prefect_scenario.evaluation.flows import EvaluationResult, evaluate, evaluate_and_promote, render_scenario_lora
from prefect_scenario.evaluation.options import DEFAULT_MARGIN, EvaluationOptions
from prefect_scenario.evaluation.promotion import promote_model, read_production, rollback
from prefect_scenario.evaluation.review import ReviewInput
from prefect_scenario.evaluation.scoring import ImageScore, QualityGateScorer, Scorer
from prefect_scenario.evaluation.suite import EvaluationSuite, default_suite

__all__ = [
    "DEFAULT_MARGIN",
    "Decision",
    "EvaluationOptions",
    "EvaluationResult",
    "EvaluationSuite",
    "ImageScore",
    "QualityGateScorer",
    "ReviewInput",
    "ScenarioLoRA",
    "Scorer",
    "decide",
    "default_suite",
    "evaluate",
    "evaluate_and_promote",
    "promote_model",
    "read_production",
    "render_scenario_lora",
    "rollback",
]
