"""The S3 sensor's decision: a pure function of (state, what was seen, now).

:func:`decide` applies a :class:`~prefect_scenario.dataset.listing.Listing` or
:class:`~prefect_scenario.retraining.notifications.ChangeSet` to the
:class:`~prefect_scenario.retraining.sensor_state.SensorState` and says, per dataset:

- ``ready``: it changed (new image, changed ETag, deleted image, edited sidecar), then
  stayed unchanged for ``quiet_period``, and it holds enough images. The decision
  carries a deterministic idempotency key (:func:`retrain_idempotency_key`).
- ``invalid``: it would be ready but cannot be trained as is (51 images, an unknown
  type): a clear message instead of a training that would fail. Reported once per content.
- ``waiting``: it changed but is not ready yet; the message says why.

The quiet period is the rule of Airflow's ``S3KeysUnchangedSensor`` (new keys reset
the clock; succeed once nothing changed for the period with at least ``min_objects``),
made a pure state transition so every sequence can be tested by moving the clock.

Exactly once is a two-phase protocol, because the state may only record a retrain the
caller really created::

    state, decisions = decide(state, discovery.discover(), now, quiet_period=120)
    for d in decisions:
        if d.kind is DecisionKind.READY:
            run = run_deployment("scenario-retrain-from-s3/retrain-from-s3", idempotency_key=d.idempotency_key, ...)
            state = mark_requested(state, d, now=now, run_id=str(run.id))
    save(state.to_json())          # then, and only then:
    discovery.ack(observed)

A crash anywhere before ``save`` leaves the old state, so the next cycle re-decides the
same dataset with the same manifest and the same idempotency key, and Prefect returns the
run it already created. After ``save`` the dataset is no longer pending.

Seeding the notifications mode: events only tell what changed after the queue was
connected, so a state that has never seen a listing of its root (``listed_at`` is None)
should first be given one; a periodic listing also repairs anything the queue lost.

Example:
    >>> from datetime import datetime, timedelta, timezone
    >>> from prefect_scenario.dataset.layout import S3Object
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
from typing import Any

from prefect_scenario.catalog import (
    EDIT_MIN_PAIRS,
    MAX_IMAGES,
    MIN_IMAGES,
    TrainingType,
    check_dataset_size,
    get_training_type,
)
from prefect_scenario.dataset.layout import Manifest, dataset_uri, parse_dataset_uri, unsafe_segment
from prefect_scenario.dataset.listing import Listing
from prefect_scenario.exceptions import InvalidDatasetError, InvalidTrainingTypeError
from prefect_scenario.retraining.notifications import ChangeSet
from prefect_scenario.retraining.sensor_state import (
    STATE_VERSION,
    DatasetState,
    Decision,
    DecisionKind,
    Objects,
    SensorState,
    check_aware,
    mark_reported,
    mark_requested,
    observed_content,
)

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


def retrain_idempotency_key(dataset_uri: str, manifest: Manifest, *, ignore_sidecar_edits: bool = False) -> str:
    """The idempotency key of "retrain this dataset on exactly this content".

    The one place the key is made: the sensor's decision, the retrain flow and the cron
    flow all call it, so the run the sensor creates, the model tag the retrain records
    and the check the cron job makes agree. Deterministic: the dataset URI (normalised)
    and the manifest's keys and ETags, so a re-decision after a crash, a restart or a
    second sensor gives the same key, and any change to the content gives another.

    Args:
        dataset_uri: ``s3://bucket/prefix/`` of the dataset.
        manifest: The dataset's tracked objects, as listed or as the sensor remembers them.
        ignore_sidecar_edits: Leave the dataset's sidecar files out of the content, as the
            sensor does with the same option: a sidecar edit then gives the same key.

    Raises:
        ValueError: ``dataset_uri`` is not an ``s3://bucket/prefix/`` URI.

    Example:
        >>> from prefect_scenario.dataset.layout import S3Object
        >>> m = Manifest((S3Object("curated/hero/01.png", "e1", 3),))
        >>> key = retrain_idempotency_key("s3://studio/curated/hero/", m)
        >>> key == retrain_idempotency_key("s3://studio/curated/hero", m)
        True
        >>> key[:17]
        'scenario-retrain-'
        >>> with_sidecar = Manifest((*m.entries, S3Object("curated/hero/scenario.json", "e2", 9)))
        >>> retrain_idempotency_key("s3://studio/curated/hero/", with_sidecar, ignore_sidecar_edits=True) == key
        True
    """
    uri = _normalized_uri(dataset_uri)
    if ignore_sidecar_edits:
        manifest = manifest.without_sidecars(parse_dataset_uri(uri)[1])
    digest = hashlib.sha256(f"{uri}\n{manifest.digest}".encode()).hexdigest()
    return f"scenario-retrain-{digest[:32]}"


def _normalized_uri(uri: str) -> str:
    try:
        return dataset_uri(*parse_dataset_uri(uri))
    except InvalidDatasetError as exc:
        raise ValueError(str(exc)) from None


# -- decide ---------------------------------------------------------------------------


def _at_least_one(min_images: int) -> int:
    if min_images < 1:
        raise ValueError(f"min_images must be at least 1; got {min_images}")
    return min_images


def _seconds(value: timedelta | float) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 0:
        raise ValueError(f"quiet_period must not be negative; got {seconds} s")
    return seconds


@dataclass(frozen=True)
class _Rules:
    quiet: timedelta
    min_images: int
    default_type: TrainingType | None
    types: Mapping[str, str]
    backlog: bool
    ignore_sidecar_edits: bool


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


@dataclass(frozen=True)
class _Subject:
    """One pending dataset being decided, and how to word its decision."""

    uri: str
    prefix: str
    dataset: DatasetState
    manifest: Manifest

    def decision(self, kind: DecisionKind, message: str, **extra: Any) -> Decision:
        return Decision(
            kind=kind, dataset_uri=self.uri, prefix=self.prefix, manifest=self.manifest, message=message, **extra
        )

    def waiting(self, message: str, **extra: Any) -> tuple[DatasetState, Decision | None]:
        return self.dataset, self.decision(DecisionKind.WAITING, message, **extra)

    def invalid(self, message: str) -> tuple[DatasetState, Decision | None]:
        if self.manifest.digest == self.dataset.reported_digest:
            # Already reported for this content: say nothing until it changes.
            return self.dataset.model_copy(update={"pending": False}), None
        return self.dataset, self.decision(DecisionKind.INVALID, message)


def _evaluate(
    state: SensorState, prefix: str, dataset: DatasetState, now: datetime, rules: _Rules
) -> tuple[DatasetState, Decision | None]:
    """Whether a dataset's quiet period is over; if it is, what its content allows."""
    if not dataset.pending:
        return dataset, None
    manifest = dataset.manifest(prefix)
    if manifest.digest == dataset.requested_digest:
        # Changed and changed back: this content's retrain was already requested.
        return dataset.model_copy(update={"pending": False}), None
    subject = _Subject(state.dataset_uri(prefix), prefix, dataset, manifest)
    changed_at = dataset.last_activity or now
    ready_at = changed_at + rules.quiet
    if now < ready_at:
        left = (ready_at - now).total_seconds()
        return subject.waiting(
            f"{subject.uri} changed at {changed_at.isoformat()}; ready after {left:g} more seconds without changes",
            ready_at=ready_at,
        )
    if rules.backlog:
        return subject.waiting(
            f"{subject.uri}: more events are queued than one read takes; waiting for the queue to drain"
        )
    return _judge_content(subject, rules)


def _judge_content(subject: _Subject, rules: _Rules) -> tuple[DatasetState, Decision | None]:
    """Ready, too small (waiting) or untrainable (invalid): the quiet dataset's content decides."""
    uri = subject.uri
    bad = next((k for k in subject.manifest.keys if unsafe_segment(k) is not None), None)
    if bad is not None:
        return subject.invalid(
            f"{uri}: the key {bad!r} holds a '..', '.' or empty segment; a dataset is a name, never a path"
        )
    ttype = rules.default_type
    if uri in rules.types:
        try:
            ttype = get_training_type(rules.types[uri])
        except InvalidTrainingTypeError as exc:
            return subject.invalid(f"{uri}: {exc}")
    count = subject.manifest.image_count
    floor = MIN_IMAGES if ttype is None or not ttype.edit else 2 * EDIT_MIN_PAIRS
    minimum = max(rules.min_images, floor)
    if count < minimum:
        return subject.waiting(f"{uri} holds {count} image(s); at least {minimum} are needed to retrain")
    problem = _size_problem(uri, ttype, count)
    if problem is not None:
        return subject.invalid(problem)
    key = retrain_idempotency_key(uri, subject.manifest, ignore_sidecar_edits=rules.ignore_sidecar_edits)
    return subject.dataset, subject.decision(
        DecisionKind.READY,
        f"{uri}: {count} image(s), unchanged for {rules.quiet.total_seconds():g} s: retrain",
        idempotency_key=key,
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
    check_aware(now)
    rules = _Rules(
        min_images=_at_least_one(min_images),
        quiet=timedelta(seconds=_seconds(quiet_period)),
        default_type=get_training_type(training_type) if training_type else None,
        types=training_types or {},
        backlog=isinstance(observed, ChangeSet) and not observed.drained,
        ignore_sidecar_edits=ignore_sidecar_edits,
    )
    updates = {} if observed is None else observed_content(state, observed, ignore_sidecar_edits=ignore_sidecar_edits)
    whole_root = isinstance(observed, Listing) and observed.prefix == state.prefix
    listed_at = now if whole_root else state.listed_at
    datasets, decisions = _apply(state, updates, now, rules)
    return state.model_copy(update={"datasets": datasets, "listed_at": listed_at}), decisions


def _apply(
    state: SensorState, updates: Mapping[str, Objects], now: datetime, rules: _Rules
) -> tuple[dict[str, DatasetState], list[Decision]]:
    """Each dataset's new state (new content resets its quiet clock) and decision."""
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
    return datasets, decisions
