"""After a training, ``promote=``: judge the new LoRA before it replaces the dataset's production LoRA.

Every training flow, the fleet, the job block and ``retrain_from_s3`` take ``promote``; each
ends here once its training is ``trained``. The judging itself (render the suite on the same
seeds, score, compare, promote or reject) is :func:`prefect_scenario.evaluation.flows.evaluate`.
The renders spend credits, so they are charged to the training's budget unless the
evaluation options name their own.

Example:
    >>> evaluation_options(True).margin == evaluation_options(EvaluationOptions()).margin
    True
    >>> evaluation_options(False) is None
    True
    >>> trigger_word("KAEL_07, ")
    'KAEL_07'
"""

from __future__ import annotations

from typing import Any

from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.evaluation.flows import evaluate
from prefect_scenario.evaluation.options import EvaluationOptions
from prefect_scenario.training.ending import TrainingResult

__all__ = ["evaluation_options", "judge_training", "trigger_word"]


def evaluation_options(promote: bool | EvaluationOptions, budget: Any = None) -> EvaluationOptions | None:
    """The evaluation ``promote`` asks for (None: none); the training's budget unless it names one."""
    if promote is False:
        return None
    options = promote if isinstance(promote, EvaluationOptions) else EvaluationOptions()
    if options.budget is None and budget is not None:
        options = options.model_copy(update={"budget": budget})
    return options


def trigger_word(caption_prefix: str | None) -> str | None:
    """The trigger word a caption prefix carries (``"KAEL_07, "`` → ``"KAEL_07"``), for the default suite."""
    word = (caption_prefix or "").strip().rstrip(",;:").strip()
    return word or None


async def judge_training(
    credentials: ScenarioCredentials,
    result: TrainingResult,
    *,
    promote: bool | EvaluationOptions,
    dataset: str,
    caption_prefix: str | None = None,
    budget: Any = None,
    manifest_digest: str | None = None,
) -> TrainingResult:
    """``result`` with its evaluation, when ``promote`` asks for one and the model trained."""
    options = evaluation_options(promote, budget)
    if options is None or result.status != "trained":
        return result
    async with credentials.get_client() as client:
        verdict = await evaluate(
            client,
            result.model_id,
            dataset,
            options=options,
            trigger_word=trigger_word(caption_prefix),
            manifest_digest=manifest_digest,
        )
    return result.model_copy(update={"evaluation": verdict})
