"""The emulator's records, its store, and the pure training state machine.

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
of the three ends comes first wins.

Example:
    >>> from scenario_emulator.state import TrainingRecord, training_view
    >>> record = TrainingRecord.new("job_1", "model_1", "proj", "flux.2-dev-lora", created_at=100.0,
    ...     queue_seconds=10, start_seconds=5, train_seconds=20)
    >>> training_view(record, 101.0).stage, training_view(record, 125.0).progress
    ('queued-for-train', 0.5)
    >>> training_view(record, 200.0).model_status
    'trained'
"""

from __future__ import annotations

import json
import math
import secrets
import sqlite3
import string
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "DEFAULT_NB_EPOCHS",
    "EPOCHS_WITH_SAMPLES",
    "AssetRecord",
    "EmulatorStore",
    "JobStatus",
    "ManualClock",
    "ModelRecord",
    "OffsetClock",
    "PairRecord",
    "Stage",
    "TrainingImageRecord",
    "TrainingRecord",
    "TrainingView",
    "epochs_of",
    "iso",
    "job_type_for",
    "new_id",
    "training_cost",
    "training_view",
]

# Seed table: nbEpochs "Default 10".
DEFAULT_NB_EPOCHS = 10
# The seed says sample images are generated at each epoch; how many epochs keep
# them is not stated. The emulator keeps the last 3, enough to pick an epoch by eye.
EPOCHS_WITH_SAMPLES = 3

Stage = Literal["queued-for-train", "starting-train", "running-train"]
JobStatus = Literal["queued", "warming-up", "in-progress", "success", "failure", "canceled"]
TrainingStatus = Literal["training", "trained", "failed", "training-canceled"]

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """A random id in the API's style, e.g. ``model_GTrL3mq4SXWyMxkOHRxlpw``."""
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(22))


def iso(seconds: float) -> str:
    """Epoch seconds as the API's ISO form, e.g. ``2023-02-03T11:19:41.579Z``."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- clocks ----------------------------------------------------------------------


class ManualClock:
    """A clock that only moves when told to; for tests.

    Example:
        >>> clock = ManualClock(1000.0)
        >>> clock.advance(5)
        >>> clock()
        1005.0
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds


class OffsetClock:
    """Wall-clock time plus an offset that ``advance`` grows: the emulator's own clock.

    Lets a running emulator (``POST /_emulator/clock``) skip ahead without sleeping.
    """

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.offset += seconds


# -- records -----------------------------------------------------------------------


@dataclass
class AssetRecord:
    """An uploaded image. Its bytes are kept by the store, apart from this record."""

    id: str
    project_id: str
    name: str
    mime_type: str
    format: str
    width: int
    height: int
    size: int
    sha256: str
    mean_color: tuple[float, float, float]
    created_at: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AssetRecord:
        color = data["mean_color"]
        return cls(**{**data, "mean_color": (float(color[0]), float(color[1]), float(color[2]))})


@dataclass
class TrainingImageRecord:
    """A training image of a model: an asset id and the original file name."""

    asset_id: str
    name: str
    created_at: float


@dataclass
class PairRecord:
    """A before/after pair of an edit model."""

    source_id: str
    target_id: str
    instruction: str


@dataclass
class ModelRecord:
    """A model as stored; its status comes from its latest training, if any."""

    id: str
    project_id: str
    type: str
    created_at: float
    updated_at: float
    name: str | None = None
    short_description: str | None = None
    class_slug: str | None = None
    concepts: list[dict[str, Any]] = field(default_factory=list)
    collection_ids: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    training_images: list[TrainingImageRecord] = field(default_factory=list)
    pairs: list[PairRecord] = field(default_factory=list)
    parameters: dict[str, Any] | None = None
    thumbnail_asset_id: str | None = None
    epoch: str | None = None
    job_id: str | None = None
    deleted_at: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelRecord:
        images = [TrainingImageRecord(**i) for i in data.get("training_images", [])]
        pairs = [PairRecord(**p) for p in data.get("pairs", [])]
        return cls(**{**data, "training_images": images, "pairs": pairs})

    def loose_image_ids(self) -> list[str]:
        """Training images that are not part of a pair: what the catalog calls ``images``."""
        paired = {p.source_id for p in self.pairs} | {p.target_id for p in self.pairs}
        return [i.asset_id for i in self.training_images if i.asset_id not in paired]


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
    def running_at(self) -> float:
        """When ``running-train`` starts."""
        return self.created_at + self.queue_seconds + self.start_seconds

    @property
    def ends_at(self) -> float:
        """When the training completes if nothing stops it first."""
        return self.running_at + self.train_seconds


# -- the pure state machine -----------------------------------------------------------


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
    history: tuple[tuple[float, JobStatus], ...]


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


def training_view(record: TrainingRecord, now: float) -> TrainingView:
    """The state of ``record`` at time ``now`` (epoch seconds). Pure.

    Args:
        record: The training.
        now: The current time, in epoch seconds.

    Returns:
        The model status, ``trainingProgress`` values, job status, progress and history.
    """
    queued_until = record.created_at + record.queue_seconds
    end_at, end_status = _end(record)
    transitions: list[tuple[float, JobStatus]] = [
        (record.created_at, "queued"),
        (queued_until, "warming-up"),
        (record.running_at, "in-progress"),
    ]
    history = [(t, s) for t, s in transitions if t <= now and (t < end_at or s == "queued")]
    if now >= end_at:
        history.append((end_at, end_status))
        progress_at_end = 1.0 if end_status == "success" else _run_progress(record, end_at)
        return TrainingView(
            model_status=_MODEL_STATUS[end_status],
            job_status=end_status,
            job_progress=progress_at_end,
            stage=None,
            position=None,
            progress=None,
            remaining_ms=None,
            running_since=record.running_at if record.running_at < end_at else None,
            updated_at=end_at,
            ended_at=end_at,
            error=record.fail_reason if end_status == "failure" else None,
            history=tuple(history),
        )
    elapsed = now - record.created_at
    # queue_seconds > 0 is implied unless the clock reads before the trigger (a
    # restart with another clock); then the queue stage is simply skipped.
    if now < queued_until and record.queue_seconds > 0:
        slots = record.queue_position + 1
        done = math.floor(elapsed * slots / record.queue_seconds)
        position = max(0, min(record.queue_position, record.queue_position - done))
        changed = record.created_at + (record.queue_position - position) * record.queue_seconds / slots
        return TrainingView(
            "training",
            "queued",
            0.0,
            "queued-for-train",
            position,
            0.0,
            None,
            None,
            changed,
            None,
            None,
            tuple(history),
        )
    if now < record.running_at:
        return TrainingView(
            "training",
            "warming-up",
            0.0,
            "starting-train",
            0,
            0.0,
            None,
            None,
            queued_until,
            None,
            None,
            tuple(history),
        )
    progress = _run_progress(record, now)
    remaining = max(0.0, record.ends_at - now) * 1000
    return TrainingView(
        "training",
        "in-progress",
        progress,
        "running-train",
        0,
        progress,
        remaining,
        record.running_at,
        now,
        None,
        None,
        tuple(history),
    )


def job_type_for(model_type: str) -> str:
    """The job type of a training: ``flux-model-training`` for FLUX types, else ``musubi-model-training``.

    Which trainer each type uses is not stated; the SDK's parameter docs speak of
    "Flux LoRA" and "Musubi" trainers, so FLUX families go to the first.
    """
    return "flux-model-training" if model_type.startswith("flux") else "musubi-model-training"


def training_cost(*, images: int, pairs: int, nb_epochs: int) -> float:
    """The emulator's creative-units cost of a training (the real pricing is not stated).

    ``50 + 10 × (images + 2 × pairs) + 2 × nb_epochs``: a base, each dataset image,
    and each epoch. 5 images at the default 10 epochs cost 120.
    """
    return float(50 + 10 * (images + 2 * pairs) + 2 * nb_epochs)


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


# -- the store ---------------------------------------------------------------------


class EmulatorStore:
    """Models, assets and trainings, in memory or backed by SQLite.

    With ``db_path``, every write goes through to one SQLite table of JSON blobs
    (timestamps stay epoch seconds), so a restarted emulator picks up its models,
    assets and trainings, and trainings continue by the clock. Every public method
    takes the store's lock; a route wraps its read-modify-write in
    :meth:`transaction` so the test thread and the server thread never interleave.

    Example:
        >>> store = EmulatorStore()
        >>> store.put_model(ModelRecord("model_1", "proj", "flux.2-dev-lora", 1.0, 1.0))
        >>> store.model("proj", "model_1").type, store.model("other", "model_1")
        ('flux.2-dev-lora', None)
    """

    def __init__(self, db_path: str | Path | None = None) -> None:
        self.lock = threading.RLock()
        self.models: dict[str, ModelRecord] = {}
        self.assets: dict[str, AssetRecord] = {}
        self.asset_data: dict[str, bytes] = {}
        self.trainings: dict[str, TrainingRecord] = {}
        # Model ids or names whose next training fails, with the reason (not persisted).
        self.pending_fails: dict[str, str] = {}
        self._db: sqlite3.Connection | None = None
        if db_path is not None:
            self._db = sqlite3.connect(str(db_path), check_same_thread=False, isolation_level=None)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS records (kind TEXT, id TEXT, body TEXT, data BLOB, PRIMARY KEY (kind, id))"
            )
            self._load()

    def _load(self) -> None:
        assert self._db is not None
        for kind, body, data in self._db.execute("SELECT kind, body, data FROM records"):
            record = json.loads(body)
            if kind == "model":
                self.models[record["id"]] = ModelRecord.from_dict(record)
            elif kind == "asset":
                self.assets[record["id"]] = AssetRecord.from_dict(record)
                self.asset_data[record["id"]] = bytes(data)
            elif kind == "training":
                self.trainings[record["job_id"]] = TrainingRecord(**record)

    def _write(self, kind: str, id_: str, record: Any, data: bytes | None = None) -> None:
        if self._db is not None:
            self._db.execute(
                "INSERT OR REPLACE INTO records (kind, id, body, data) VALUES (?, ?, ?, ?)",
                (kind, id_, json.dumps(asdict(record)), data),
            )

    @contextmanager
    def transaction(self) -> Iterator[EmulatorStore]:
        """Hold the lock for a read-modify-write."""
        with self.lock:
            yield self

    def model(self, project_id: str, model_id: str, *, deleted: bool = False) -> ModelRecord | None:
        """The model, if it exists in ``project_id`` (and is not deleted, unless ``deleted``)."""
        with self.lock:
            model = self.models.get(model_id)
            if model is None or model.project_id != project_id or (model.deleted_at is not None and not deleted):
                return None
            return model

    def project_models(self, project_id: str) -> list[ModelRecord]:
        """Every model of ``project_id``, deleted ones included."""
        with self.lock:
            return [m for m in self.models.values() if m.project_id == project_id]

    def put_model(self, model: ModelRecord) -> None:
        """Save a model."""
        with self.lock:
            self.models[model.id] = model
            self._write("model", model.id, model)

    def asset(self, project_id: str, asset_id: str) -> AssetRecord | None:
        """The asset, if it exists in ``project_id``."""
        with self.lock:
            asset = self.assets.get(asset_id)
            return asset if asset is not None and asset.project_id == project_id else None

    def put_asset(self, asset: AssetRecord, data: bytes) -> None:
        """Save an asset and its bytes."""
        with self.lock:
            self.assets[asset.id] = asset
            self.asset_data[asset.id] = data
            self._write("asset", asset.id, asset, data)

    def training(self, project_id: str, job_id: str) -> TrainingRecord | None:
        """The training with job id ``job_id``, if it belongs to ``project_id``."""
        with self.lock:
            training = self.trainings.get(job_id)
            return training if training is not None and training.project_id == project_id else None

    def put_training(self, training: TrainingRecord) -> None:
        """Save a training."""
        with self.lock:
            self.trainings[training.job_id] = training
            self._write("training", training.job_id, training)

    def latest_training(self, model: ModelRecord) -> TrainingRecord | None:
        """The model's latest training, if it was ever trained."""
        with self.lock:
            return self.trainings.get(model.job_id) if model.job_id else None

    def reset(self) -> None:
        """Forget everything, on disk too."""
        with self.lock:
            self.models.clear()
            self.assets.clear()
            self.asset_data.clear()
            self.trainings.clear()
            self.pending_fails.clear()
            if self._db is not None:
                self._db.execute("DELETE FROM records")

    def close(self) -> None:
        """Close the SQLite connection, if any."""
        with self.lock:
            if self._db is not None:
                self._db.close()
                self._db = None
