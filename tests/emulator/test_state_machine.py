"""The pure training state machine, epochs, cost and job type: values in, values out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from scenario_emulator import (
    TrainingRecord,
    epochs_of,
    training_cost,
    training_view,
)
from scenario_emulator.state_machine import job_type_for

# -- the pure state machine -------------------------------------------------------------------

T0 = 1000.0
RECORD = TrainingRecord.new(
    "job_x", "model_x", "proj", "flux.2-dev-lora", created_at=T0, queue_seconds=3, start_seconds=2, train_seconds=10
)


@pytest.mark.parametrize(
    ("at", "status", "stage", "position", "progress", "job_status"),
    [
        pytest.param(0, "training", "queued-for-train", 2, 0.0, "queued", id="queued-at-trigger"),
        pytest.param(1.0, "training", "queued-for-train", 1, 0.0, "queued", id="queued-one-ahead"),
        pytest.param(2.9, "training", "queued-for-train", 0, 0.0, "queued", id="queued-next"),
        pytest.param(3, "training", "starting-train", 0, 0.0, "warming-up", id="starting"),
        pytest.param(5, "training", "running-train", 0, 0.0, "in-progress", id="running-begins"),
        pytest.param(10, "training", "running-train", 0, 0.5, "in-progress", id="running-half"),
        pytest.param(15, "trained", None, None, None, "success", id="trained-at-end"),
        pytest.param(10**6, "trained", None, None, None, "success", id="trained-long-after"),
    ],
)
def test_training_stage_by_time(
    at: float, status: str, stage: str | None, position: int | None, progress: float | None, job_status: str
) -> None:
    view = training_view(RECORD, T0 + at)
    assert (view.model_status, view.stage, view.position, view.progress, view.job_status) == (
        status,
        stage,
        position,
        progress,
        job_status,
    )


@pytest.mark.parametrize(
    ("changes", "at", "status", "job_status", "error"),
    [
        pytest.param({"canceled_at": T0 + 1}, 0.5, "training", "queued", None, id="cancel-not-yet"),
        pytest.param({"canceled_at": T0 + 1}, 1, "training-canceled", "canceled", None, id="canceled-in-queue"),
        pytest.param({"canceled_at": T0 + 8}, 20, "training-canceled", "canceled", None, id="canceled-running"),
        pytest.param({"canceled_at": T0 + 99}, 20, "trained", "success", None, id="cancel-after-end-ignored"),
        pytest.param({"fail_at": T0 + 10, "fail_reason": "OOM"}, 9, "training", "in-progress", None, id="doomed"),
        pytest.param({"fail_at": T0 + 10, "fail_reason": "OOM"}, 10, "failed", "failure", "OOM", id="failed"),
        pytest.param(
            {"fail_at": T0 + 10, "fail_reason": "OOM", "canceled_at": T0 + 8},
            20,
            "training-canceled",
            "canceled",
            None,
            id="first-end-wins",
        ),
    ],
)
def test_training_cancel_and_fail(
    changes: dict[str, Any], at: float, status: str, job_status: str, error: str | None
) -> None:
    view = training_view(replace(RECORD, **changes), T0 + at)
    assert (view.model_status, view.job_status, view.error) == (status, job_status, error)


def test_queue_position_counts_down_in_equal_steps() -> None:
    positions = [training_view(RECORD, T0 + n * 0.25).position for n in range(12)]
    assert positions == [2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0]
    # updatedAt moves only when the position changes
    assert [training_view(RECORD, T0 + t).updated_at for t in (0.5, 1.5, 2.5)] == [T0, T0 + 1, T0 + 2]


def test_running_progress_and_remaining_time() -> None:
    views = [training_view(RECORD, T0 + 5 + n) for n in range(10)]
    assert [v.progress for v in views] == [n / 10 for n in range(10)]
    assert [v.remaining_ms for v in views] == [(10 - n) * 1000 for n in range(10)]
    assert {v.running_since for v in views} == {T0 + 5}


@pytest.mark.parametrize(
    ("changes", "history", "job_progress"),
    [
        pytest.param({}, ["queued", "warming-up", "in-progress", "success"], 1.0, id="trained"),
        pytest.param({"canceled_at": T0 + 1}, ["queued", "canceled"], 0.0, id="canceled-in-queue"),
        pytest.param(
            {"fail_at": T0 + 10, "fail_reason": "x"},
            ["queued", "warming-up", "in-progress", "failure"],
            0.5,
            id="failed",
        ),
    ],
)
def test_job_history(changes: dict[str, Any], history: list[str], job_progress: float) -> None:
    view = training_view(replace(RECORD, **changes), T0 + 100)
    assert [s for _, s in view.history] == history
    assert [t for t, _ in view.history] == sorted(t for t, _ in view.history)
    assert view.job_progress == job_progress


def test_zero_timings_train_at_once() -> None:
    record = replace(RECORD, queue_seconds=0, start_seconds=0, train_seconds=0)
    assert training_view(record, T0).model_status == "trained"


def test_epochs_carry_samples_on_the_last_three() -> None:
    epochs = epochs_of(replace(RECORD, nb_epochs=5, sample_prompts=["a", "b"]))
    assert [name for name, _ in epochs] == ["000001", "000002", "000003", "000004", "000005"]
    assert [len(samples) for _, samples in epochs] == [0, 0, 2, 2, 2]
    assert all(not samples for _, samples in epochs_of(replace(RECORD, nb_epochs=3)))


def test_cost_and_job_type() -> None:
    assert training_cost(images=5, pairs=0, nb_epochs=10) == 120
    assert training_cost(images=0, pairs=2, nb_epochs=1) == 92
    assert job_type_for("flux.2-klein-4b-edit-lora") == "flux-model-training"
    assert job_type_for("qwen-image-lora") == "musubi-model-training"
