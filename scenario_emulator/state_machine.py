"""The pure training state machine: a training's record in, what a client sees out.

A training is stored as a :class:`TrainingRecord`: when it was triggered, the
timings it was given and, if it was cancelled or doomed to fail, when. Everything a
client can observe (model status, ``trainingProgress``, job status and history,
epochs) is computed from that record and the current time by
:func:`training_view`, a pure function, so tests move a clock instead of sleeping
and a restarted emulator continues a training where the clock says it is.

Timeline of one training triggered at ``t0`` (Q, S, T = queue, start, train seconds)::

    t0 ........ t0+Q ........ t0+Q+S .................. t0+Q+S+T
    queued-for-train  starting-train   running-train (progress 0→1)   trained
    job: queued       warming-up       in-progress                    success

A cancel at ``c`` ends it ``training-canceled`` (job ``canceled``) from ``c`` on; a
doomed training ends ``failed`` (job ``failure``) at its ``fail_at`` time. Whichever
of the three ends comes first wins. The stage and job status names are the SDK's
(``TrainingProgress.stage``, ``Job.status``).

Example:
    >>> record = TrainingRecord.new("job_1", "model_1", "proj", "flux.2-dev-lora", created_at=100.0,
    ...     queue_seconds=10, start_seconds=5, train_seconds=20)
    >>> training_view(record, 101.0).stage, training_view(record, 125.0).progress
    ('queued-for-train', 0.5)
    >>> training_view(record, 200.0).model_status
    'trained'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

__all__ = [
    "DEFAULT_NB_EPOCHS",
    "EPOCHS_WITH_SAMPLES",
    "JobStatus",
    "Stage",
    "TrainingRecord",
    "TrainingView",
    "epochs_of",
    "job_type_for",
    "training_view",
]

# The product doc "Training Models": nbEpochs "Default 10".
DEFAULT_NB_EPOCHS = 10
# The product doc says sample images are generated at each epoch; how many epochs keep
# them is not stated. The emulator keeps the last 3, enough to pick an epoch by eye.
EPOCHS_WITH_SAMPLES = 3

Stage = Literal["queued-for-train", "starting-train", "running-train"]
JobStatus = Literal["queued", "warming-up", "in-progress", "success", "failure", "canceled"]
TrainingStatus = Literal["training", "trained", "failed", "training-canceled"]
History = tuple[tuple[float, JobStatus], ...]


@dataclass
class TrainingRecord:
    """One training of a model: the input of :func:`training_view`. Times in epoch seconds."""

    job_id: str
    model_id: str
    project_id: str
    model_type: str
    created_at: float
    queue_seconds: float
    start_seconds: float
    train_seconds: float
    queue_position: int = 2
    nb_epochs: int = DEFAULT_NB_EPOCHS
    sample_prompts: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    cost: float = 0.0
    fail_reason: str | None = None
    fail_at: float | None = None
    canceled_at: float | None = None

    @classmethod
    def new(cls, job_id: str, model_id: str, project_id: str, model_type: str, **fields: Any) -> TrainingRecord:
        """A record with the given ids and any other fields by keyword."""
        return cls(job_id=job_id, model_id=model_id, project_id=project_id, model_type=model_type, **fields)

    @property
    def queued_until(self) -> float:
        """When ``starting-train`` starts."""
        return self.created_at + self.queue_seconds

    @property
    def running_at(self) -> float:
        """When ``running-train`` starts."""
        return self.queued_until + self.start_seconds

    @property
    def ends_at(self) -> float:
        """When the training completes if nothing stops it first."""
        return self.running_at + self.train_seconds


@dataclass(frozen=True)
class TrainingView:
    """What a client can see of a training at one instant."""

    model_status: TrainingStatus
    job_status: JobStatus
    job_progress: float
    stage: Stage | None
    position: int | None
    progress: float | None
    remaining_ms: float | None
    running_since: float | None
    updated_at: float
    ended_at: float | None
    error: str | None
    history: History


def _run_progress(record: TrainingRecord, at: float) -> float:
    if at < record.running_at:
        return 0.0
    if record.train_seconds <= 0:
        return 1.0
    return min(1.0, (at - record.running_at) / record.train_seconds)


def _end(record: TrainingRecord) -> tuple[float, JobStatus]:
    ends: list[tuple[float, JobStatus]] = [(record.ends_at, "success")]
    if record.fail_at is not None:
        ends.append((record.fail_at, "failure"))
    if record.canceled_at is not None:
        ends.append((record.canceled_at, "canceled"))
    # Ties go to the terminal state the client asked for or was warned about, not success.
    order: dict[JobStatus, int] = {"canceled": 0, "failure": 1, "success": 2}
    return min(ends, key=lambda e: (e[0], order[e[1]]))


_MODEL_STATUS: dict[JobStatus, TrainingStatus] = {
    "success": "trained",
    "failure": "failed",
    "canceled": "training-canceled",
}


def _ended(record: TrainingRecord, end_at: float, end_status: JobStatus, history: History) -> TrainingView:
    return TrainingView(
        model_status=_MODEL_STATUS[end_status],
        job_status=end_status,
        job_progress=1.0 if end_status == "success" else _run_progress(record, end_at),
        stage=None,
        position=None,
        progress=None,
        remaining_ms=None,
        running_since=record.running_at if record.running_at < end_at else None,
        updated_at=end_at,
        ended_at=end_at,
        error=record.fail_reason if end_status == "failure" else None,
        history=history,
    )


def _live(job_status: JobStatus, stage: Stage, position: int, progress: float, updated_at: float) -> TrainingView:
    """A training still running; the running-train fields are filled in by the caller."""
    return TrainingView(
        "training", job_status, progress, stage, position, progress, None, None, updated_at, None, None, ()
    )


def _queued(record: TrainingRecord, now: float) -> TrainingView:
    slots = record.queue_position + 1
    done = math.floor((now - record.created_at) * slots / record.queue_seconds)
    position = max(0, min(record.queue_position, record.queue_position - done))
    changed = record.created_at + (record.queue_position - position) * record.queue_seconds / slots
    return _live("queued", "queued-for-train", position, 0.0, changed)


def training_view(record: TrainingRecord, now: float) -> TrainingView:
    """The state of ``record`` at time ``now`` (epoch seconds). Pure.

    Args:
        record: The training.
        now: The current time, in epoch seconds.

    Returns:
        The model status, ``trainingProgress`` values, job status, progress and history.
    """
    end_at, end_status = _end(record)
    transitions: list[tuple[float, JobStatus]] = [
        (record.created_at, "queued"),
        (record.queued_until, "warming-up"),
        (record.running_at, "in-progress"),
    ]
    history = tuple((t, s) for t, s in transitions if t <= now and (t < end_at or s == "queued"))
    if now >= end_at:
        return _ended(record, end_at, end_status, (*history, (end_at, end_status)))
    # queue_seconds > 0 is implied unless the clock reads before the trigger (a
    # restart with another clock); then the queue stage is simply skipped.
    if now < record.queued_until and record.queue_seconds > 0:
        view = _queued(record, now)
    elif now < record.running_at:
        view = _live("warming-up", "starting-train", 0, 0.0, record.queued_until)
    else:
        progress = _run_progress(record, now)
        view = _live("in-progress", "running-train", 0, progress, now)
        remaining = max(0.0, record.ends_at - now) * 1000
        view = replace(view, remaining_ms=remaining, running_since=record.running_at)
    return replace(view, history=history)


def job_type_for(model_type: str) -> str:
    """The job type of a training: ``flux-model-training`` for FLUX types, else ``musubi-model-training``.

    Which trainer each type uses is not stated; the SDK's parameter docs speak of
    "Flux LoRA" and "Musubi" trainers, so FLUX families go to the first.
    """
    return "flux-model-training" if model_type.startswith("flux") else "musubi-model-training"


def epochs_of(record: TrainingRecord) -> list[tuple[str, list[str]]]:
    """The epochs of a completed training and the sample asset ids of each. Pure.

    One epoch per ``nbEpochs``, named ``000001``...; the last
    :data:`EPOCHS_WITH_SAMPLES` carry one sample asset per sample prompt.
    """
    out: list[tuple[str, list[str]]] = []
    first_with_samples = record.nb_epochs - EPOCHS_WITH_SAMPLES + 1
    suffix = record.job_id.removeprefix("job_")
    for n in range(1, record.nb_epochs + 1):
        samples = []
        if record.sample_prompts and n >= first_with_samples:
            samples = [f"asset_sample_{suffix}_{n}_{i}" for i in range(len(record.sample_prompts))]
        out.append((f"{n:06d}", samples))
    return out
