from __future__ import annotations

import pytest

from prefect_scenario.api.models import Model, TrainingProgress, TrainResult
from prefect_scenario.waiting.polling import PollPolicy, is_terminal, next_poll_delay

P = PollPolicy()


@pytest.mark.parametrize(
    ("status", "progress", "expected"),
    [
        pytest.param("trained", None, P.minimum, id="terminal-needs-no-wait"),
        pytest.param("new", None, P.starting, id="just-triggered"),
        pytest.param("training", TrainingProgress(stage="queued-for-train", position=3), P.queued, id="queued"),
        pytest.param("training", TrainingProgress(stage="queued-for-train", position=0), P.starting, id="queue-head"),
        pytest.param("training", TrainingProgress(stage="starting-train"), P.starting, id="starting"),
        pytest.param(
            "training", TrainingProgress(stage="running-train", remainingTimeMs=600_000), 120.0, id="far-capped"
        ),
        pytest.param(
            "training", TrainingProgress(stage="running-train", remainingTimeMs=10_000), 6.0, id="aimed-before-the-end"
        ),
        pytest.param(
            "training", TrainingProgress(stage="running-train", remainingTimeMs=3_000), 3.25, id="just-after-end"
        ),
        pytest.param("training", TrainingProgress(stage="running-train", remainingTimeMs=1_500), 2.0, id="margin"),
        pytest.param("training", TrainingProgress(stage="running-train", remainingTimeMs=800), 2.0, id="near-end"),
        pytest.param("training", TrainingProgress(stage="running-train", progress=0.97), 2.0, id="progress-only"),
        pytest.param("weird", None, P.unknown, id="unknown-status"),
    ],
)
def test_next_poll_delay(status: str, progress: TrainingProgress | None, expected: float) -> None:
    assert next_poll_delay(status, progress) == pytest.approx(expected)


def test_delay_never_passes_the_deadline() -> None:
    assert next_poll_delay("training", TrainingProgress(stage="queued-for-train", position=5), remaining=1.5) == 1.5


def test_polls_grow_with_the_log_of_the_training_time() -> None:
    # Simulate a 600 s training: count polls until the end.
    remaining, polls = 600.0, 0
    while remaining > 0:
        delay = next_poll_delay("training", TrainingProgress(stage="running-train", remainingTimeMs=remaining * 1000))
        remaining -= delay
        polls += 1
    assert polls < 30  # a 1 s poller makes 600


@pytest.mark.parametrize("status", ["trained", "failed", "training-canceled"])
def test_terminal_statuses(status: str) -> None:
    assert is_terminal(status)


def test_wire_tolerance() -> None:
    assert Model.model_validate({"id": "m", "status": "draft", "extra": 1}).status == "new"
    seed = TrainResult.model_validate(
        {
            "model": {"id": "m"},
            "job": {"id": "job_1", "type": "flux-model-training"},
            "creativeUnits": {"estimatedCreativeUnits": 150},
        }
    )
    assert seed.job is not None and seed.job.job_id == "job_1" and seed.creative_units_cost == 150
    sdk = TrainResult.model_validate({"model": {"id": "m"}, "job": {"jobId": "job_2"}, "creativeUnitsCost": 7})
    assert sdk.job is not None and sdk.job.job_id == "job_2" and sdk.creative_units_cost == 7
