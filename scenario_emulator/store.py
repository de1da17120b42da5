"""The emulator's store: models, assets, trainings and webhook endpoints, in memory or backed by SQLite.

With ``db_path``, every write goes through to one SQLite table of JSON blobs
(timestamps stay epoch seconds), so a restarted emulator picks up its models,
assets and trainings, and trainings continue by the clock. Every public method
takes the store's lock; a route wraps its read-modify-write in
:meth:`EmulatorStore.transaction` so the test thread and the server thread never
interleave.

The store is one team: every project shares the plan limits that count across it
(:meth:`EmulatorStore.team_training_images`, :meth:`EmulatorStore.running_trainings`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from scenario_emulator.generation import GenerationState
from scenario_emulator.records import AssetRecord, ModelRecord, WebhookEndpointRecord
from scenario_emulator.state_machine import TrainingRecord, training_view

__all__ = ["EmulatorStore"]


class EmulatorStore:
    """Models, assets and trainings, in memory or backed by SQLite.

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
        self.webhook_endpoints: dict[str, WebhookEndpointRecord] = {}
        # Model ids or names whose next training fails, with the reason (not persisted).
        self.pending_fails: dict[str, str] = {}
        # Render jobs, their outputs and collections (in memory only).
        self.generation = GenerationState()
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
            elif kind == "webhook_endpoint":
                self.webhook_endpoints[record["id"]] = WebhookEndpointRecord(**record)

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

    def put_asset(self, asset: AssetRecord, data: bytes | None = None) -> None:
        """Save an asset, and its bytes when given (else the stored bytes stay)."""
        with self.lock:
            self.assets[asset.id] = asset
            if data is not None:
                self.asset_data[asset.id] = data
            self._write("asset", asset.id, asset, self.asset_data.get(asset.id))

    def captions(self, asset_ids: list[str]) -> dict[str, str]:
        """The description of each of ``asset_ids`` that has one."""
        with self.lock:
            found = (self.assets.get(a) for a in asset_ids)
            return {a.id: a.description for a in found if a is not None and a.description is not None}

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

    def project_webhook_endpoints(self, project_id: str) -> list[WebhookEndpointRecord]:
        """The webhook endpoints of ``project_id``, oldest first."""
        with self.lock:
            return [e for e in self.webhook_endpoints.values() if e.project_id == project_id]

    def put_webhook_endpoint(self, endpoint: WebhookEndpointRecord) -> None:
        """Save a webhook endpoint."""
        with self.lock:
            self.webhook_endpoints[endpoint.id] = endpoint
            self._write("webhook_endpoint", endpoint.id, endpoint)

    def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        """Forget a webhook endpoint (on disk too)."""
        with self.lock:
            self.webhook_endpoints.pop(endpoint_id, None)
            if self._db is not None:
                self._db.execute("DELETE FROM records WHERE kind = 'webhook_endpoint' AND id = ?", (endpoint_id,))

    # -- counts across the team, for the plan limits ------------------------------------

    def team_training_images(self) -> int:
        """Training images of every model that is not deleted, in every project."""
        with self.lock:
            return sum(len(m.training_images) for m in self.models.values() if m.deleted_at is None)

    def running_trainings(self, now: float) -> int:
        """Models training at ``now``, in every project."""
        with self.lock:
            latest = (self.latest_training(m) for m in self.models.values())
            return sum(1 for t in latest if t is not None and training_view(t, now).model_status == "training")

    def last_launch(self) -> float | None:
        """When the latest training started (its trigger), in any project."""
        with self.lock:
            return max((t.created_at for t in self.trainings.values()), default=None)

    def reset(self) -> None:
        """Forget everything, on disk too."""
        with self.lock:
            self.models.clear()
            self.assets.clear()
            self.asset_data.clear()
            self.trainings.clear()
            self.webhook_endpoints.clear()
            self.pending_fails.clear()
            self.generation.reset()
            if self._db is not None:
                self._db.execute("DELETE FROM records")

    def close(self) -> None:
        """Close the SQLite connection, if any."""
        with self.lock:
            if self._db is not None:
                self._db.close()
                self._db = None
