"""The emulator's stored records (models, assets, training images, pairs) and id/time helpers.

A training's record lives in :mod:`.state_machine`, next to the pure function that
reads it.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "AssetRecord",
    "ModelRecord",
    "PairRecord",
    "TrainingImageRecord",
    "WebhookEndpointRecord",
    "iso",
    "new_id",
]

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """A random id in the API's style, e.g. ``model_GTrL3mq4SXWyMxkOHRxlpw``."""
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(22))


def iso(seconds: float) -> str:
    """Epoch seconds as the API's ISO form, e.g. ``2023-02-03T11:19:41.579Z``."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class AssetRecord:
    """An uploaded image. Its bytes are kept by the store, apart from this record.

    ``description`` is the caption training reads (SDK ``assets.update(description=…)``);
    ``None`` until a client sets one.
    """

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
    description: str | None = None
    updated_at: float | None = None

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
class WebhookEndpointRecord:
    """A project webhook endpoint. ``secret`` is shown once, in the creation answer."""

    id: str
    project_id: str
    url: str
    enabled_events: list[str]
    created_at: float
    updated_at: float
    secret: str = field(repr=False, default="")
    description: str | None = None

    def subscribes_to(self, event_type: str) -> bool:
        """Whether a delivery of ``event_type`` goes to this endpoint (``"*"`` takes every event)."""
        return "*" in self.enabled_events or event_type in self.enabled_events
