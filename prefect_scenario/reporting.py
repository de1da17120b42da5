"""What a training shows in the Prefect UI: events, artifacts and their (pure) contents.

Events use the model as their resource (``scenario.model.<id>``), so an
automation can react to ``scenario.training.completed`` for one LoRA or for all.
Monitoring never fails a paid training: a failure to emit an event or write an artifact
(whatever it is) is logged at WARNING and the training goes on.

Example:
    >>> model_resource("model_1", name="Hero")["prefect.resource.id"]
    'scenario.model.model_1'
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID, uuid5

from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact
from prefect.events import emit_event

from prefect_scenario.api.models import Model, TrainingProgress
from prefect_scenario.summaries import (
    dataset_score_rows,
    publish_dataset_score,
    publish_summary,
    summary_markdown,
)

__all__ = [
    "EVENT_CANCELED",
    "EVENT_COMPLETED",
    "EVENT_CREATED",
    "EVENT_FAILED",
    "EVENT_PROGRESS",
    "EVENT_STARTED",
    "OUTCOMES",
    "FleetReporter",
    "ProgressReporter",
    "add_progress_listener",
    "artifact_key",
    "dataset_score_rows",
    "emit_end_event",
    "emit_training_event",
    "model_resource",
    "progress_percent",
    "publish_dataset_score",
    "publish_summary",
    "summary_markdown",
    "terminal_event_id",
]

EVENT_CREATED = "scenario.model.created"
EVENT_STARTED = "scenario.training.started"
EVENT_PROGRESS = "scenario.training.progress"
EVENT_COMPLETED = "scenario.training.completed"
EVENT_FAILED = "scenario.training.failed"
EVENT_CANCELED = "scenario.training.canceled"

_log = logging.getLogger(__name__)


def model_resource(model_id: str, *, name: str | None = None, training_type: str | None = None) -> dict[str, str]:
    """The event resource for a Scenario model."""
    resource = {"prefect.resource.id": f"scenario.model.{model_id}", "prefect.resource.name": name or model_id}
    if training_type:
        resource["scenario.training-type"] = training_type
    return resource


# The end of a training is seen by whoever looks first: the run's own wait, the watcher or the
# webhook receiver. Its events get an id derived from the event, the model and its job, so the
# Prefect server stores and evaluates each once (it drops a repeated event id, in storage and
# in the automations' triggers), however many of them report it.
_TERMINAL_EVENTS_NAMESPACE = UUID("9a2b4f0e-5f7d-4c55-9d61-3c1f1b8f6a01")


def terminal_event_id(event: str, model: Model) -> UUID | None:
    """The fixed id of a terminal event of one training of ``model`` (None for other events).

    Example:
        >>> m = Model.model_validate({"id": "model_1", "status": "trained", "jobId": "job_1"})
        >>> terminal_event_id(EVENT_COMPLETED, m) == terminal_event_id(EVENT_COMPLETED, m)
        True
        >>> terminal_event_id(EVENT_STARTED, m) is None
        True
    """
    if event not in (EVENT_COMPLETED, EVENT_FAILED, EVENT_CANCELED):
        return None
    return uuid5(_TERMINAL_EVENTS_NAMESPACE, f"{event}:{model.id}:{model.job_id or ''}")


# Prefect's events worker keys its in-flight events by id, so a second event with the same id
# sent by one process fails in that worker with an ERROR line ("Service 'EventsWorker' failed to
# process item"). A process sends each terminal event once; the server drops the other senders'.
_SENT_TERMINAL_IDS: OrderedDict[UUID, None] = OrderedDict()
_SENT_TERMINAL_IDS_KEPT = 10_000


def _first_send(event_id: UUID | None) -> bool:
    if event_id is None:
        return True
    if event_id in _SENT_TERMINAL_IDS:
        return False
    _SENT_TERMINAL_IDS[event_id] = None
    if len(_SENT_TERMINAL_IDS) > _SENT_TERMINAL_IDS_KEPT:
        _SENT_TERMINAL_IDS.popitem(last=False)
    return True


def emit_training_event(event: str, model: Model, payload: Mapping[str, Any] | None = None) -> None:
    """Emit ``event`` about ``model`` (a terminal event once per process); monitoring never breaks a training."""
    event_id = terminal_event_id(event, model)
    if not _first_send(event_id):
        _log.debug("%s for %s already sent by this process", event, model.id)
        return
    try:
        emit_event(
            event=event,
            resource=model_resource(model.id, name=model.name, training_type=model.type),
            payload={"status": model.status, **(payload or {})},
            id=event_id,
        )
    except Exception as exc:
        _log.warning("could not emit %s for %s: %s", event, model.id, type(exc).__name__)


def emit_end_event(model: Model) -> None:
    """Emit the terminal event of a model whose training ended (nothing for one still training)."""
    if model.status == "trained":
        emit_training_event(EVENT_COMPLETED, model, {"epochs": len(model.epochs)})
    elif model.status == "failed":
        emit_training_event(EVENT_FAILED, model, {"reason": model.failure_reason})
    elif model.status == "training-canceled":
        emit_training_event(EVENT_CANCELED, model)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def artifact_key(prefix: str, name: str, *, model_id: str | None = None) -> str:
    """An artifact key (lowercase letters, digits and dashes only).

    With ``model_id``: the prefix, the model's name (slugified, cut to 24 characters) and the
    id's last 6 characters, at most 48 characters in all, so a card shows the whole key.

    Example:
        >>> artifact_key("scenario-progress", "Hero Character, full body v2", model_id="model_5h67Veg5fEU54q")
        'scenario-progress-hero-character-full-bod-feu54q'
    """
    if model_id is None:
        slug = _slug(f"{prefix}-{name}")
        return slug[:100] or prefix
    short = _slug(re.sub(r"^model_", "", model_id))[-6:].strip("-")
    head = _slug(prefix)[:24]
    named = _slug(name)[: 48 - len(head) - len(short) - 2].strip("-")
    return "-".join(part for part in (head, named, short) if part) or prefix


def progress_percent(status: str, progress: TrainingProgress | None) -> float:
    """0–100 for the progress artifact: queueing and starting count as 0–5 %."""
    if status == "trained":
        return 100.0
    if progress is None:
        return 0.0
    if progress.stage == "running-train" and progress.progress is not None:
        return round(5.0 + 95.0 * max(0.0, min(1.0, progress.progress)), 1)
    if progress.stage == "starting-train":
        return 5.0
    return 0.0


def describe_progress(status: str, progress: TrainingProgress | None) -> str:
    """One line for the artifact description and the logs."""
    if progress is None or status != "training":
        return status
    parts = [progress.stage or "training"]
    if progress.stage == "queued-for-train" and progress.position is not None:
        parts.append(f"{int(progress.position)} ahead in the queue")
    if progress.progress is not None and progress.stage == "running-train":
        parts.append(f"{100 * progress.progress:.0f}%")
    if progress.remaining_time_ms:
        parts.append(f"~{progress.remaining_time_ms / 1000:.0f}s left")
    return ", ".join(parts)


OUTCOMES = ("trained", "refused", "failed", "canceled")


def _outcome(model: Model) -> str:
    return {"trained": "trained", "failed": "failed"}.get(model.status, "canceled")


ProgressListener = Callable[[Model], None]
_LISTENERS: list[ProgressListener] = []


def add_progress_listener(listener: ProgressListener) -> Callable[[], None]:
    """Call ``listener`` with every model update a wait loop sees (the CLI's progress bar).

    Returns:
        A function that removes the listener.
    """
    _LISTENERS.append(listener)
    return lambda: _LISTENERS.remove(listener)


async def _run_progress_artifact(key: str) -> UUID | None:
    """This flow run's latest progress artifact with ``key``, if any (a resumed run re-runs from the top)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
        ArtifactFilterType,
    )
    from prefect.client.schemas.sorting import ArtifactSort
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    wanted = ArtifactFilter(
        key=ArtifactFilterKey(any_=[key]),
        flow_run_id=ArtifactFilterFlowRunId(any_=[context.flow_run.id]),
        type=ArtifactFilterType(any_=["progress"]),
    )
    async with get_client() as client:
        found = await client.read_artifacts(artifact_filter=wanted, sort=ArtifactSort.CREATED_DESC, limit=1)
    return found[0].id if found else None


async def show_progress(artifact: UUID | None, key: str, percent: float, description: str) -> UUID | None:
    """Update the flow run's progress artifact with ``key``, creating it only if the run has none yet.

    Returns its id (monitoring never fails a training: on an error, the id given).
    """
    try:
        artifact = artifact or await _run_progress_artifact(key)
        if artifact is None:
            return await acreate_progress_artifact(percent, key=key, description=description)
        await aupdate_progress_artifact(artifact, percent, description=description)
    except Exception as exc:
        _log.warning("progress artifact %s not updated: %s", key, type(exc).__name__)
    return artifact


class ProgressReporter:
    """Keeps a progress artifact and progress events in step with a training.

    Events are sent on a stage change and at most once per 10 % of progress,
    so a long training does not flood the event stream.
    """

    def __init__(self, *, key: str | None = None, model_id: str | None = None, name: str | None = None) -> None:
        if (key is None) == (model_id is None):
            raise ValueError("a progress reporter takes a key or a model id")
        self.model: Model | None = None
        self._key, self._model_id, self._name = key, model_id, name
        self._artifact: UUID | None = None
        self._percent = 0.0
        self._last_stage: str | None = None
        self._last_decile = -1

    @classmethod
    def for_training(cls, model_id: str, name: str | None = None) -> ProgressReporter:
        """The reporter of one training's card: key ``scenario-training-<name>-<short id>``.

        Every reporter of one training must know the model's name before it publishes (from
        ``name``, or from the first model it is given), so all of them write the same card.
        """
        return cls(model_id=model_id, name=name)

    @property
    def key(self) -> str:
        if self._key is not None:
            return self._key
        assert self._model_id is not None
        name = self._name or (self.model.name if self.model is not None else None) or ""
        return artifact_key("scenario-training", name, model_id=self._model_id)

    async def note(self, description: str, percent: float = 0.0) -> None:
        """Show a line on the progress artifact (e.g. waiting for a training slot) before the training starts."""
        self._percent = percent
        self._artifact = await show_progress(self._artifact, self.key, percent, description)

    async def finish(self, outcome: str, detail: str | None = None) -> None:
        """The artifact's last value: 100 and "trained", or the outcome where the progress stopped.

        Args:
            outcome: ``trained``, ``refused``, ``failed`` or ``canceled``.
            detail: why, for the description (e.g. the refusal or the failure reason).
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
        percent = 100.0 if outcome == "trained" else self._percent
        label = self.model.name or self.model.id if self.model is not None else self.key
        description = f"{label}: {outcome}" + (f": {detail}" if detail else "")
        self._percent = percent
        self._artifact = await show_progress(self._artifact, self.key, percent, description)

    async def update(self, model: Model) -> None:
        self.model = model
        for listener in list(_LISTENERS):
            listener(model)
        progress = model.training_progress
        percent = progress_percent(model.status, progress)
        description = f"{model.name or model.id}: {describe_progress(model.status, progress)}"
        self._percent = percent
        self._artifact = await show_progress(self._artifact, self.key, percent, description)
        stage = progress.stage if progress else model.status
        decile = int(percent // 10)
        if model.status == "training" and (stage != self._last_stage or decile > self._last_decile):
            emit_training_event(
                EVENT_PROGRESS,
                model,
                {
                    "stage": stage,
                    "percent": percent,
                    "position": progress.position if progress else None,
                    "remainingTimeMs": progress.remaining_time_ms if progress else None,
                },
            )
        self._last_stage, self._last_decile = stage, max(decile, self._last_decile)


class FleetReporter:
    """One progress artifact for many trainings, and each model's terminal event once."""

    def __init__(self, model_ids: list[str], *, key: str) -> None:
        self.key = key
        self.models: dict[str, Model | None] = dict.fromkeys(model_ids)
        self._artifact: UUID | None = None
        self._announced: set[str] = set()

    def pending(self) -> list[str]:
        return [i for i, m in self.models.items() if m is None or not m.is_terminal]

    async def update(self, model: Model) -> None:
        self.models[model.id] = model
        for listener in list(_LISTENERS):
            listener(model)
        if model.is_terminal and model.id not in self._announced:
            self._announced.add(model.id)
            event = {"trained": EVENT_COMPLETED, "failed": EVENT_FAILED}.get(model.status, EVENT_CANCELED)
            emit_training_event(event, model, {"reason": model.failure_reason} if model.status == "failed" else None)
        await self._show()

    async def finish(self, outcome: str | None = None) -> None:
        """The fleet card's last value: 100 once every training ended, with each outcome counted.

        Args:
            outcome: for the trainings not seen to end (e.g. ``refused`` or ``canceled``).
        """
        if outcome is not None and outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
        await self._show(unfinished=outcome)

    async def _show(self, unfinished: str | None = None) -> None:
        outcomes = [_outcome(m) if m is not None and m.is_terminal else unfinished for m in self.models.values()]
        percents = [
            100.0 if outcome else progress_percent(m.status, m.training_progress) if m else 0.0
            for m, outcome in zip(self.models.values(), outcomes, strict=True)
        ]
        mean = round(sum(percents) / max(1, len(percents)), 1)
        counts = {o: outcomes.count(o) for o in OUTCOMES if o in outcomes}
        done = sum(counts.values())
        tally = ", ".join(f"{n} {o}" for o, n in counts.items())
        description = f"{done}/{len(self.models)} trainings finished" + (f": {tally}" if tally else "")
        self._artifact = await show_progress(self._artifact, self.key, mean, description)
