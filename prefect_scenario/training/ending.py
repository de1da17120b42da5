"""How a training ends, whichever path reached it: one result, one summary, one terminal event.

A training is seen to end by the run's own wait, by a run resumed after ``wait="suspend"`` or
by a fleet's bulk poller. Each hands the finished model to :func:`end_training`, which builds
the :class:`TrainingResult`, publishes the summary artifact and emits the terminal event (its
id is derived from the model and job, so a second report of the same end is one event).
:class:`Phases` times the phases of a run with one clock.

Example:
    >>> clock = iter([0.0, 2.5, 2.5, 3.0]).__next__
    >>> phases = Phases(clock=clock)
    >>> with phases.phase("upload"):
    ...     pass
    >>> with phases.phase("trigger"):
    ...     pass
    >>> phases.rounded()
    {'upload': 2.5, 'trigger': 0.5, 'total': 3.0}
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, Field

from prefect_scenario._logging import run_logger
from prefect_scenario.api.models import Model
from prefect_scenario.catalog import TrainingType
from prefect_scenario.evaluation.flows import EvaluationResult
from prefect_scenario.reporting import emit_end_event, publish_summary

__all__ = ["EpochResult", "Phases", "TrainingResult", "end_training"]


class EpochResult(BaseModel):
    """One epoch of the trained model and its sample images."""

    epoch: str
    sample_urls: list[str] = Field(default_factory=list)


class TrainingResult(BaseModel):
    """What a training flow returns."""

    model_id: str
    name: str
    training_type: str
    family: str
    status: str
    idempotency_key: str
    reused: bool = Field(description="True when an identical, already-trained model was returned without training.")
    job_id: str | None = None
    creative_units_cost: float | None = None
    images: int = 0
    pairs: int = 0
    epochs: list[EpochResult] = Field(default_factory=list)
    sample_image_urls: list[str] = Field(default_factory=list)
    dataset_score: float | None = None
    durations: dict[str, float] = Field(default_factory=dict, description="Seconds spent per phase.")
    evaluation: EvaluationResult | None = Field(
        None, description="With promote=: how the LoRA was judged against production, and whether it was promoted."
    )

    @classmethod
    def of_model(
        cls, model: Model, ttype: TrainingType, key: str, *, name: str, images: int = 0, pairs: int = 0, **values: Any
    ) -> TrainingResult:
        """The result of a run that trains ``model``: its status as read, nothing reused.

        The one constructor a run uses, whether it just created the model or resumed waiting for it.
        """
        return cls(
            model_id=model.id,
            name=model.name or name,
            training_type=ttype.id,
            family=ttype.family,
            status=model.status,
            idempotency_key=key,
            reused=False,
            images=images,
            pairs=pairs,
            job_id=model.job_id,
            **values,
        )

    def with_model(self, model: Model) -> TrainingResult:
        """This result updated with the model's status, epochs and sample images."""
        epochs = [EpochResult(epoch=e.epoch, sample_urls=[a.url for a in e.assets if a.url]) for e in model.epochs]
        samples = next((e.sample_urls for e in reversed(epochs) if e.sample_urls), [])
        return self.model_copy(
            update={"status": model.status, "epochs": epochs, "sample_image_urls": samples, "name": model.name or ""}
        )


class Phases:
    """Seconds spent per phase of one run (prepare, create, upload, score, trigger, wait)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block as ``name`` (added to the phase's earlier time, if any), even when it raises."""
        started = self._clock()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + self._clock() - started

    def rounded(self) -> dict[str, float]:
        """Every phase and their ``total``, to the millisecond."""
        seconds = {k: v for k, v in self.seconds.items() if k != "total"}
        seconds["total"] = sum(seconds.values())
        return {k: round(v, 3) for k, v in seconds.items()}


async def end_training(
    result: TrainingResult,
    model: Model,
    *,
    phases: Phases | None = None,
    summary_key: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> TrainingResult:
    """``result`` completed from the finished ``model``: its summary published, its end event emitted.

    Args:
        result: what the run knows of the training (key, cost, dataset score, counts).
        model: the model as it ended (or, for a reused model, as it is).
        phases: the run's phase timer; its times become ``durations``.
        summary_key: the summary artifact's key; None publishes none (a fleet's own jobs do).
        parameters: the training parameters the summary lists.
    """
    emit_end_event(model)
    if summary_key is not None:
        timed = {k: v for k, v in phases.rounded().items() if k != "total"} if phases is not None else None
        await publish_summary(
            model,
            key=summary_key,
            parameters=parameters or {},
            cost=result.creative_units_cost,
            dataset_score=result.dataset_score,
            phases=timed,
        )
    run_logger().info("model %s is %s", model.id, model.status)
    ended = result.with_model(model)
    return ended.model_copy(update={"durations": phases.rounded()}) if phases is not None else ended
