"""What the S3 sensor remembers between cycles, and how it is stored.

Per dataset the state keeps the last seen content (name → ETag and size), whether it has
changed since the last retrain was requested (``pending``), when it last changed, and
the manifest digest of the last retrain actually requested. :func:`observed_content`
reads a listing or a change set into per-dataset content; :func:`mark_requested` and
:func:`mark_reported` record what the caller did about a decision (phase two of the
protocol in :mod:`prefect_scenario.retraining.decisions`).

The state serialises to compact JSON (``to_json``) with a ``version``; each tracked object
costs one ``"name": ["etag", size]`` entry (~57 bytes with S3's 32-hex ETags; 100,000
objects make 5.7 MB). That outgrows a Prefect Variable (5,000 characters) at about 80
images: store it as a JSON object (in the bucket, or a block) for real use.

Example:
    >>> state = SensorState(bucket="studio-assets", prefix="curated")
    >>> state.datasets, state.listed_at
    ({}, None)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from prefect_scenario.dataset.layout import (
    Manifest,
    S3Object,
    dataset_uri,
    is_candidate,
    keep_captions_of_images,
    normalize_prefix,
    split_key,
)
from prefect_scenario.dataset.listing import Listing
from prefect_scenario.retraining.notifications import ChangeSet

__all__ = [
    "STATE_VERSION",
    "DatasetState",
    "Decision",
    "DecisionKind",
    "Objects",
    "SensorState",
    "check_aware",
    "mark_reported",
    "mark_requested",
    "observed_content",
]

STATE_VERSION = 1

# Name inside the dataset -> (ETag, size).
Objects = dict[str, tuple[str, int]]


class DecisionKind(StrEnum):
    """What :func:`prefect_scenario.retraining.decisions.decide` says about a dataset."""

    READY = "ready"
    INVALID = "invalid"
    WAITING = "waiting"


@dataclass(frozen=True)
class Decision:
    """One dataset's decision.

    Attributes:
        kind: ready, invalid or waiting.
        dataset_uri: ``s3://bucket/prefix/`` of the dataset.
        prefix: The dataset prefix (the key in ``SensorState.datasets``).
        manifest: The content the decision is about.
        message: Why, in a sentence (for logs, events and error artifacts).
        idempotency_key: For ``ready``: the key to create the retrain run with.
        ready_at: For ``waiting`` on the quiet period: when it ends if nothing changes.
    """

    kind: DecisionKind
    dataset_uri: str
    prefix: str
    manifest: Manifest
    message: str
    idempotency_key: str | None = None
    ready_at: datetime | None = None

    @property
    def image_count(self) -> int:
        """How many images the dataset holds."""
        return self.manifest.image_count


class DatasetState(BaseModel):
    """What the sensor remembers about one dataset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    objects: Objects = Field(
        default_factory=dict,
        description="The last seen tracked objects: name inside the dataset -> [ETag, size].",
    )
    pending: bool = Field(False, description="Changed since the last requested retrain, and not handled yet.")
    last_activity: datetime | None = Field(None, description="When the sensor last saw the content change.")
    requested_digest: str | None = Field(None, description="Manifest digest of the last retrain the caller created.")
    requested_at: datetime | None = Field(None, description="When that retrain was confirmed.")
    run_id: str | None = Field(None, description="The flow run created for that retrain, if the caller said.")
    reported_digest: str | None = Field(None, description="Manifest digest last reported as invalid.")

    def manifest(self, prefix: str) -> Manifest:
        """The manifest, with full keys, of this dataset at ``prefix``."""
        return Manifest(tuple(S3Object(prefix + name, etag, size) for name, (etag, size) in self.objects.items()))


class SensorState(BaseModel):
    """Everything one sensor remembers: its bucket and root prefix, and each dataset under it.

    Example:
        >>> state = SensorState(bucket="studio-assets", prefix="curated")
        >>> SensorState.from_json(state.to_json()) == state, state.prefix
        (True, 'curated/')
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(STATE_VERSION, description="The state format version.")
    bucket: str = Field(description="The watched bucket.")
    prefix: str = Field("", description="The watched root prefix; one dataset per immediate sub-prefix.")
    datasets: dict[str, DatasetState] = Field(default_factory=dict, description="Per dataset prefix.")
    listed_at: datetime | None = Field(None, description="When the whole root was last listed (None: never).")

    @model_validator(mode="before")
    @classmethod
    def _known_version(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("version"), int) and data["version"] > STATE_VERSION:
            raise ValueError(
                f"sensor state version {data['version']} is newer than this prefect-scenario reads "
                f"({STATE_VERSION}); upgrade prefect-scenario"
            )
        return data

    @field_validator("prefix")
    @classmethod
    def _normalize(cls, value: str) -> str:
        return normalize_prefix(value)

    def dataset_uri(self, prefix: str) -> str:
        """``s3://bucket/prefix/`` of the dataset at ``prefix``."""
        return dataset_uri(self.bucket, prefix)

    def manifest(self, prefix: str) -> Manifest:
        """The last seen manifest of the dataset at ``prefix`` (empty if unknown)."""
        dataset = self.datasets.get(prefix)
        return dataset.manifest(prefix) if dataset is not None else Manifest()

    def to_json(self) -> str:
        """Compact JSON, unset fields left out."""
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> SensorState:
        """Read a state written by :meth:`to_json`.

        Raises:
            ValueError: not a sensor state, or one written by a newer version.
        """
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'state'}: {e['msg']}" for e in exc.errors()[:3]
            )
            raise ValueError(f"not a readable sensor state: {problems}") from None


def _check_listing_prefix(root: str, prefix: str) -> None:
    # A listing must cover whole datasets: the root itself, or exactly one dataset prefix.
    if prefix == root:
        return
    split = split_key(root, prefix)
    if split is None or split[1] != "":
        raise ValueError(f"a listing of {prefix!r} does not cover whole datasets under the root {root!r}")


def observed_content(
    state: SensorState, observed: Listing | ChangeSet, *, ignore_sidecar_edits: bool = False
) -> dict[str, Objects]:
    """The new content of every dataset the observation says something about.

    A listing replaces the content of every dataset under its prefix (a dataset it does
    not mention is empty: deleted); a change set edits the remembered content key by key.

    Raises:
        ValueError: an observation of another bucket, or a listing of a prefix that
            splits datasets.
    """
    if observed.bucket != state.bucket:
        raise ValueError(f"this state watches bucket {state.bucket!r}, not {observed.bucket!r}")
    root = state.prefix
    updates: dict[str, Objects] = {}
    if isinstance(observed, Listing):
        listed = observed.prefix
        _check_listing_prefix(root, listed)
        for obj in observed.objects:
            split = split_key(root, obj.key)
            if split is None or not split[0].startswith(listed):
                continue
            prefix, name = split
            if is_candidate(name, obj.size, ignore_sidecar_edits=ignore_sidecar_edits):
                updates.setdefault(prefix, {})[name] = (obj.etag, obj.size)
        # Datasets under the listed prefix that the snapshot does not mention are gone.
        for prefix in state.datasets:
            if prefix.startswith(listed):
                updates.setdefault(prefix, {})
        return _captions_of_images(updates)
    for change in observed.changes:
        split = split_key(root, change.key) if change.bucket == state.bucket else None
        if split is None:
            continue
        prefix, name = split
        if prefix not in updates:
            known = state.datasets.get(prefix)
            updates[prefix] = dict(known.objects) if known is not None else {}
        if not change.removed and is_candidate(name, change.size, ignore_sidecar_edits=ignore_sidecar_edits):
            updates[prefix][name] = (change.etag or "", change.size or 0)
        else:
            # Removed, emptied (zero bytes), or not ours to track: in a listing it would be absent.
            updates[prefix].pop(name, None)
    return _captions_of_images(updates)


def _captions_of_images(updates: dict[str, Objects]) -> dict[str, Objects]:
    # A .txt counts only beside its image. From notifications, a caption that arrives before
    # its image is dropped until the next listing (or an edit of it) brings it back.
    return {prefix: {n: objs[n] for n in keep_captions_of_images(objs)} for prefix, objs in updates.items()}


def check_aware(now: datetime) -> None:
    """Refuse a naive ``now``: quiet periods compare instants, not wall-clock readings.

    Raises:
        ValueError: ``now`` has no timezone.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(timezone.utc))")


# -- recording what the caller did about a decision (phase two) ----------------------------


def _confirm(state: SensorState, decision: Decision, update: dict[str, Any]) -> SensorState:
    dataset = state.datasets.get(decision.prefix)
    if dataset is None:
        # Gone since the decision (every image deleted): nothing left to remember.
        return state
    # If the content moved on since the decision, the new content still needs its own turn.
    update["pending"] = dataset.manifest(decision.prefix).digest != decision.manifest.digest
    datasets = {**state.datasets, decision.prefix: dataset.model_copy(update=update)}
    return state.model_copy(update={"datasets": datasets})


def mark_requested(state: SensorState, decision: Decision, *, now: datetime, run_id: str | None = None) -> SensorState:
    """Record that the retrain for a ``ready`` decision was created (phase two).

    Call it only after the run exists (``run_deployment`` returned, or the event was
    accepted), then save the state. Until then the dataset stays pending and is
    re-decided with the same idempotency key.

    Raises:
        ValueError: ``decision`` is not a ``ready`` decision, or ``now`` is naive.

    Example:
        >>> # state, [ready] = decide(...); run = run_deployment(..., idempotency_key=ready.idempotency_key)
        >>> # state = mark_requested(state, ready, now=now, run_id=str(run.id))
    """
    check_aware(now)
    if decision.kind != "ready":
        raise ValueError(f"only a ready decision can be marked requested; this one is {decision.kind.value}")
    return _confirm(
        state,
        decision,
        {"requested_digest": decision.manifest.digest, "requested_at": now, "run_id": run_id},
    )


def mark_reported(state: SensorState, decision: Decision) -> SensorState:
    """Record that an ``invalid`` decision was reported (event emitted), so it is not repeated.

    The dataset is decided again as soon as its content changes.

    Raises:
        ValueError: ``decision`` is not an ``invalid`` decision.
    """
    if decision.kind != "invalid":
        raise ValueError(f"only an invalid decision can be marked reported; this one is {decision.kind.value}")
    return _confirm(state, decision, {"reported_digest": decision.manifest.digest})
