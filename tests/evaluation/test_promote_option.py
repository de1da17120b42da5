"""``promote=`` on the training flows: a worse retrain is kept out of production, a better one replaces it.

Real flow runs (Prefect's ephemeral server) against the emulator on a socket: the training,
the renders, the Quality Gate scores and the promotion all go through the API. The emulator's
hidden quality of a LoRA peaks at a dataset-dependent epoch and falls past it (overcooking),
so the test knows which retrain is better before it trains.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefect_scenario import EvaluationOptions, ScenarioLoRA, ScenarioTraining, TrainingResult, train_lora
from prefect_scenario.evaluation.block import block_name
from prefect_scenario.exceptions import ConfigurationError
from scenario_emulator import EmulatorServer
from scenario_emulator.generation import true_quality
from tests.flow_fixtures import FAST_POLL, credentials_for
from tests.spend.test_flows import images

pytestmark = pytest.mark.usefixtures("prefect_harness")
SEED = 71


def _epochs() -> tuple[int, int]:
    """(best epoch, an epoch at least 15 points worse) for the dataset ``images(SEED)``."""
    dataset = tuple(sorted(hashlib.sha256(image).hexdigest() for image in images(SEED)))
    best = max(range(1, 40), key=lambda n: true_quality(dataset, n))
    worse = next(n for n in range(best + 1, 60) if true_quality(dataset, n) <= true_quality(dataset, best) - 15)
    return best, worse


def _train(server: EmulatorServer, project: str, dataset: str, epochs: int, **options: Any) -> TrainingResult:
    result: TrainingResult = train_lora(
        name=f"hero-{epochs}",
        training_type="flux.2-dev-lora",
        images=images(SEED),
        parameters={"nbEpochs": epochs},
        credentials=credentials_for(server, project_id=project),
        poll_policy=FAST_POLL,
        dataset=dataset,
        **options,
    )
    return result


def _true_quality(server: EmulatorServer, model_id: str) -> float:
    answer = httpx.get(f"{server.root_url}/_emulator/models/{model_id}/quality")
    return float(answer.json()["trueQuality"])


@pytest.mark.e2e  # three trainings with renders and judging (~50 s): `make test` runs it, `make check` not
def test_a_worse_retrain_is_kept_out_and_a_better_one_promoted(fast_emulator: EmulatorServer) -> None:
    project, dataset = f"proj_{uuid.uuid4().hex[:10]}", f"hero-{uuid.uuid4().hex[:6]}"
    best, worse = _epochs()
    # The first LoRA of a dataset has nothing to beat: it becomes production.
    first = _train(fast_emulator, project, dataset, worse, promote=True)
    assert first.evaluation is not None and first.evaluation.outcome == "promoted"
    assert first.evaluation.production_model_id is None

    better = _train(fast_emulator, project, dataset, best, promote=EvaluationOptions(review="never"))
    assert _true_quality(fast_emulator, better.model_id) > _true_quality(fast_emulator, first.model_id)
    assert better.evaluation is not None and better.evaluation.outcome == "promoted", better.evaluation
    assert better.evaluation.production_model_id == first.model_id
    assert ScenarioLoRA.load(block_name(dataset)).model_id == better.model_id

    # An overcooked retrain (more epochs than the best) is judged worse and production stays.
    again = _train(fast_emulator, project, dataset, worse + 1, promote=True)
    assert again.evaluation is not None and again.evaluation.outcome == "rejected", again.evaluation
    assert ScenarioLoRA.load(block_name(dataset)).model_id == better.model_id
    # Production's renders came from the cache: each evaluation paid for the candidate's only.
    assert again.evaluation.renders_paid == len(again.evaluation.candidate_scores)


def test_promote_without_waiting_is_refused_before_any_request(fast_emulator: EmulatorServer) -> None:
    with pytest.raises(ConfigurationError, match="promote needs the training's end"):
        _train(fast_emulator, "proj_x", "hero", 3, promote=True, wait=False)
    assert fast_emulator.requests() == []


def test_the_job_block_judges_the_trained_lora_once_in_fetch_result(
    fast_emulator: EmulatorServer, tmp_path: Path
) -> None:
    dataset = f"block-{uuid.uuid4().hex[:6]}"
    paths = []
    for i, image in enumerate(images(SEED + 1)):
        (tmp_path / f"{i}.png").write_bytes(image)
        paths.append(str(tmp_path / f"{i}.png"))
    training = ScenarioTraining(
        credentials=credentials_for(fast_emulator, project_id=f"proj_{uuid.uuid4().hex[:10]}"),
        name="hero-block",
        training_type="flux.2-dev-lora",
        images=paths,
        dataset=dataset,
        promote=True,
    )
    run = training.trigger()
    run.wait_for_completion()
    result = run.fetch_result()
    assert result.evaluation is not None and result.evaluation.outcome == "promoted"
    renders = len([r for r in fast_emulator.requests() if r["path"].startswith("/v1/generate/custom/")])
    assert renders > 0 and run.fetch_result() is result  # judged once: a second fetch renders nothing
    assert len([r for r in fast_emulator.requests() if r["path"].startswith("/v1/generate/custom/")]) == renders
    assert ScenarioLoRA.load(block_name(dataset)).model_id == result.model_id
