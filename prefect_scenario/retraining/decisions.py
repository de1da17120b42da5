"""The S3 sensor's memory and its decision: a pure function of (state, what was seen, now).

Per dataset the state keeps the last seen content (name → ETag and size), whether it has
changed since the last retrain was requested (``pending``), when it last changed, and
the manifest digest of the last retrain actually requested. :func:`decide` applies a
:class:`~prefect_scenario.retraining.discovery.Listing` or
:class:`~prefect_scenario.retraining.discovery.ChangeSet` and says, per dataset:

- ``ready``: it changed (new image, changed ETag, deleted image, edited sidecar), then
  stayed unchanged for ``quiet_period``, and it holds enough images. The decision
  carries a deterministic idempotency key (dataset + manifest of keys and ETags).
- ``invalid``: it would be ready but cannot be trained as is (51 images, an unknown
  type): a clear message instead of a training that would fail. Reported once per content.
- ``waiting``: it changed but is not ready yet; the message says why.

Exactly once is a two-phase protocol, because the state may only record a retrain the
caller really created::

    state, decisions = decide(state, discovery.discover(), now, quiet_period=120)
    for d in decisions:
        if d.kind is DecisionKind.READY:
            run = run_deployment("retrain_from_s3/...", idempotency_key=d.idempotency_key, ...)
            state = mark_requested(state, d, now=now, run_id=str(run.id))
    save(state.to_json())          # then, and only then:
    discovery.ack(observed)

A crash anywhere before ``save`` leaves the old state, so the next cycle re-decides the
same dataset with the same manifest and the same idempotency key, and Prefect returns the
run it already created. After ``save`` the dataset is no longer pending.

The state serialises to compact JSON (``to_json``) with a ``version``; each tracked object
costs one ``"name": ["etag", size]`` entry (~57 bytes with S3's 32-hex ETags; 100,000
objects make 5.7 MB). That outgrows a Prefect Variable (5,000 characters) at about 80
images: store it as a JSON object (in the bucket, or a block) for real use.

Seeding the notifications mode: events only tell what changed after the queue was
connected, so a state that has never seen a listing of its root (``listed_at`` is None)
should first be given one; a periodic listing also repairs anything the queue lost.

Example:
    >>> from datetime import datetime, timedelta, timezone
    >>> from prefect_scenario.retraining.datasets import S3Object
    >>> from prefect_scenario.retraining.discovery import Listing
    >>> t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> seen = Listing("studio", "curated/", tuple(S3Object(f"curated/hero/{i}.png", f"e{i}", 9) for i in range(6)))
    >>> state, ds = decide(SensorState(bucket="studio", prefix="curated/"), seen, t0, quiet_period=60)
    >>> [d.kind.value for d in ds]
    ['waiting']
    >>> state, ds = decide(state, seen, t0 + timedelta(seconds=60), quiet_period=60)
    >>> [(d.kind.value, d.dataset_uri) for d in ds]
    [('ready', 's3://studio/curated/hero/')]
    >>> state = mark_requested(state, ds[0], now=t0 + timedelta(seconds=61))
    >>> decide(state, seen, t0 + timedelta(seconds=120), quiet_period=60)[1]
    []
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from prefect_scenario.catalog import (
    EDIT_MIN_PAIRS,
    MAX_IMAGES,
    MIN_IMAGES,
    TrainingType,
    check_dataset_size,
    get_training_type,
)
from prefect_scenario.exceptions import InvalidDatasetError, InvalidTrainingTypeError
from prefect_scenario.retraining.datasets import (
    Manifest,
    S3Object,
    dataset_uri,
    is_tracked,
    normalize_prefix,
    parse_s3_uri,
    split_key,
)
from prefect_scenario.retraining.discovery import ChangeSet, Listing

__all__ = [
    "STATE_VERSION",
    "DatasetState",
    "Decision",
    "DecisionKind",
    "SensorState",
    "decide",
    "mark_reported",
    "mark_requested",
    "retrain_idempotency_key",
]

STATE_VERSION = 1

_Objects = dict[str, tuple[str, int]]


class DatasetState(BaseModel):
    """What the sensor remembers about one dataset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    objects: _Objects = Field(
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


class DecisionKind(StrEnum):
    """What :func:`decide` says about a dataset."""

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


def retrain_idempotency_key(dataset_uri: str, manifest: Manifest) -> str:
    """The idempotency key of "retrain this dataset on exactly this content".

    Deterministic: the dataset URI (normalised) and the manifest's keys and ETags, so a
    re-decision after a crash, a restart or a second sensor gives the same key, and any
    change to the content gives another.

    Example:
        >>> m = Manifest((S3Object("curated/hero/01.png", "e1", 3),))
        >>> key = retrain_idempotency_key("s3://studio/curated/hero/", m)
        >>> key == retrain_idempotency_key("s3://studio/curated/hero", m)
        True
        >>> key[:17]
        'scenario-retrain-'
    """
    uri = _normalized_uri(dataset_uri)
    digest = hashlib.sha256(f"{uri}\n{manifest.digest}".encode()).hexdigest()
    return f"scenario-retrain-{digest[:32]}"


def _normalized_uri(uri: str) -> str:
    try:
        return dataset_uri(*parse_s3_uri(uri))
    except InvalidDatasetError as exc:
        raise ValueError(str(exc)) from None


# -- decide ---------------------------------------------------------------------------


def _seconds(value: timedelta | float) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 0:
        raise ValueError(f"quiet_period must not be negative; got {seconds} s")
    return seconds


def _check_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(timezone.utc))")


def _check_listing_prefix(root: str, prefix: str) -> None:
    # A listing must cover whole datasets: the root itself, or exactly one dataset prefix.
    if prefix == root:
        return
    split = split_key(root, prefix)
    if split is None or split[1] != "":
        raise ValueError(f"a listing of {prefix!r} does not cover whole datasets under the root {root!r}")


def _observe(state: SensorState, observed: Listing | ChangeSet, *, ignore_sidecar_edits: bool) -> dict[str, _Objects]:
    """The new content of every dataset the observation says something about."""
    root = state.prefix
    updates: dict[str, _Objects] = {}
    if isinstance(observed, Listing):
        listed = observed.prefix
        _check_listing_prefix(root, listed)
        for obj in observed.objects:
            split = split_key(root, obj.key)
            if split is None or not split[0].startswith(listed):
                continue
            prefix, name = split
            if is_tracked(name, obj.size, ignore_sidecar_edits=ignore_sidecar_edits):
                updates.setdefault(prefix, {})[name] = (obj.etag, obj.size)
        # Datasets under the listed prefix that the snapshot does not mention are gone.
        for prefix in state.datasets:
            if prefix.startswith(listed):
                updates.setdefault(prefix, {})
        return updates
    for change in observed.changes:
        split = split_key(root, change.key) if change.bucket == state.bucket else None
        if split is None:
            continue
        prefix, name = split
        if prefix not in updates:
            known = state.datasets.get(prefix)
            updates[prefix] = dict(known.objects) if known is not None else {}
        if not change.removed and is_tracked(name, change.size, ignore_sidecar_edits=ignore_sidecar_edits):
            updates[prefix][name] = (change.etag or "", change.size or 0)
        else:
            # Removed, emptied (zero bytes), or not ours to track: in a listing it would be absent.
            updates[prefix].pop(name, None)
    return updates


@dataclass(frozen=True)
class _Rules:
    quiet: timedelta
    min_images: int
    default_type: TrainingType | None
    types: Mapping[str, str]
    backlog: bool


def _size_problem(uri: str, ttype: TrainingType | None, count: int) -> str | None:
    if count <= MAX_IMAGES:
        return None
    name = f"{ttype.id!r}" if ttype is not None else "a LoRA training"
    if ttype is not None and not ttype.edit:
        try:
            check_dataset_size(ttype, images=count)
        except InvalidDatasetError as exc:
            return f"{uri}: {exc}. Remove {count - MAX_IMAGES} image(s) to retrain it."
    return (
        f"{uri} holds {count} training images; {name} takes at most {MAX_IMAGES}. "
        f"Remove {count - MAX_IMAGES} image(s) to retrain it."
    )


def _evaluate(
    state: SensorState, prefix: str, dataset: DatasetState, now: datetime, rules: _Rules
) -> tuple[DatasetState, Decision | None]:
    if not dataset.pending:
        return dataset, None
    manifest = dataset.manifest(prefix)
    digest = manifest.digest
    if digest == dataset.requested_digest:
        # Changed and changed back: this content's retrain was already requested.
        return dataset.model_copy(update={"pending": False}), None
    uri = state.dataset_uri(prefix)

    def decision(kind: DecisionKind, message: str, **extra: Any) -> Decision:
        return Decision(kind=kind, dataset_uri=uri, prefix=prefix, manifest=manifest, message=message, **extra)

    changed_at = dataset.last_activity or now
    ready_at = changed_at + rules.quiet
    if now < ready_at:
        left = (ready_at - now).total_seconds()
        return dataset, decision(
            DecisionKind.WAITING,
            f"{uri} changed at {changed_at.isoformat()}; ready after {left:g} more seconds without changes",
            ready_at=ready_at,
        )
    if rules.backlog:
        return dataset, decision(
            DecisionKind.WAITING, f"{uri}: more events are queued than one read takes; waiting for the queue to drain"
        )

    def invalid(message: str) -> tuple[DatasetState, Decision | None]:
        if digest == dataset.reported_digest:
            return dataset.model_copy(update={"pending": False}), None
        return dataset, decision(DecisionKind.INVALID, message)

    ttype = rules.default_type
    if uri in rules.types:
        try:
            ttype = get_training_type(rules.types[uri])
        except InvalidTrainingTypeError as exc:
            return invalid(f"{uri}: {exc}")
    count = manifest.image_count
    floor = MIN_IMAGES if ttype is None or not ttype.edit else 2 * EDIT_MIN_PAIRS
    minimum = max(rules.min_images, floor)
    if count < minimum:
        return dataset, decision(
            DecisionKind.WAITING, f"{uri} holds {count} image(s); at least {minimum} are needed to retrain"
        )
    problem = _size_problem(uri, ttype, count)
    if problem is not None:
        return invalid(problem)
    return dataset, decision(
        DecisionKind.READY,
        f"{uri}: {count} image(s), unchanged for {rules.quiet.total_seconds():g} s: retrain",
        idempotency_key=retrain_idempotency_key(uri, manifest),
    )


def decide(
    state: SensorState,
    observed: Listing | ChangeSet | None,
    now: datetime,
    *,
    quiet_period: timedelta | float,
    min_images: int = MIN_IMAGES,
    training_type: str | None = None,
    training_types: Mapping[str, str] | None = None,
    ignore_sidecar_edits: bool = False,
) -> tuple[SensorState, list[Decision]]:
    """Apply what was seen at ``now`` and decide, per dataset, whether to retrain.

    Pure: no I/O, no clock. Call it every cycle, with ``observed=None`` if nothing was
    read, because quiet periods end with time alone.

    Args:
        state: The state saved after the last cycle.
        observed: A listing of the root (or of one dataset prefix), or a change set from
            the queue, or None.
        now: The current time, timezone-aware.
        quiet_period: How long a dataset must stay unchanged after its last change
            before it is ready (seconds or a timedelta).
        min_images: Fewest images to retrain on; fewer means waiting, not invalid.
        training_type: The sensor's training type, whose limits apply to every dataset
            without its own entry in ``training_types``. None: only the 50-image cap.
        training_types: Per dataset URI, its training type (e.g. from its sidecar).
        ignore_sidecar_edits: Whether edits of ``scenario.*``/``pairs.jsonl`` are not activity.

    Returns:
        The new state (ready datasets stay pending until :func:`mark_requested`) and the
        decisions, sorted by dataset.

    Raises:
        ValueError: a naive ``now``, a negative quiet period, ``min_images`` < 1, an
            observation of another bucket or of a prefix that splits datasets.
        InvalidTrainingTypeError: ``training_type`` is unknown.

    Example:
        >>> from datetime import datetime, timezone
        >>> state = SensorState(bucket="b", prefix="c/")
        >>> decide(state, None, datetime(2026, 1, 1, tzinfo=timezone.utc), quiet_period=60)
        (SensorState(version=1, bucket='b', prefix='c/', datasets={}, listed_at=None), [])
    """
    _check_aware(now)
    if min_images < 1:
        raise ValueError(f"min_images must be at least 1; got {min_images}")
    rules = _Rules(
        quiet=timedelta(seconds=_seconds(quiet_period)),
        min_images=min_images,
        default_type=get_training_type(training_type) if training_type else None,
        types=training_types or {},
        backlog=isinstance(observed, ChangeSet) and not observed.drained,
    )
    updates: dict[str, _Objects] = {}
    listed_at = state.listed_at
    if observed is not None:
        if observed.bucket != state.bucket:
            raise ValueError(f"this state watches bucket {state.bucket!r}, not {observed.bucket!r}")
        updates = _observe(state, observed, ignore_sidecar_edits=ignore_sidecar_edits)
        if isinstance(observed, Listing) and observed.prefix == state.prefix:
            listed_at = now

    datasets: dict[str, DatasetState] = {}
    decisions: list[Decision] = []
    for prefix in sorted(state.datasets.keys() | updates.keys()):
        dataset = state.datasets.get(prefix, DatasetState())
        if prefix in updates:
            objects = updates[prefix]
            if not objects:
                # Every image is gone: forget the dataset. If the same content comes back,
                # its idempotency key is the same one and Prefect will not run it twice.
                continue
            if objects != dataset.objects:
                dataset = dataset.model_copy(update={"objects": objects, "pending": True, "last_activity": now})
        dataset, decision = _evaluate(state, prefix, dataset, now, rules)
        datasets[prefix] = dataset
        if decision is not None:
            decisions.append(decision)
    return state.model_copy(update={"datasets": datasets, "listed_at": listed_at}), decisions


# -- the second phase ---------------------------------------------------------------------


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
    _check_aware(now)
    if decision.kind is not DecisionKind.READY:
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
    if decision.kind is not DecisionKind.INVALID:
        raise ValueError(f"only an invalid decision can be marked reported; this one is {decision.kind.value}")
    return _confirm(state, decision, {"reported_digest": decision.manifest.digest})
