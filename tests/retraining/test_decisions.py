"""The sensor's decision, exhaustively: sequences of (time, what is in the bucket) → decisions.

Pure: listings are built in memory and the clock is a number of seconds after T0.
"""

from __future__ import annotations

import doctest
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from prefect_scenario.dataset.layout import Manifest, S3Object
from prefect_scenario.exceptions import InvalidTrainingTypeError
from prefect_scenario.retraining import decisions, sensor_state
from prefect_scenario.retraining.decisions import (
    STATE_VERSION,
    Decision,
    DecisionKind,
    SensorState,
    decide,
    mark_reported,
    mark_requested,
    retrain_idempotency_key,
)
from prefect_scenario.retraining.discovery import ChangeSet, Listing, ObjectChange

BUCKET = "studio-assets"
ROOT = "curated/"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
QUIET = 60


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def images(dataset: str, count: int, *, start: int = 0, etag: str = "e", size: int = 100) -> list[S3Object]:
    return [S3Object(f"{ROOT}{dataset}/{i:03d}.png", f"{etag}{i}", size) for i in range(start, start + count)]


def obj(key: str, etag: str = "x", size: int = 100) -> S3Object:
    return S3Object(ROOT + key, etag, size)


def name(decision: Decision) -> str:
    return decision.prefix[len(ROOT) :].rstrip("/") or "<root>"


def summary(decisions: list[Decision]) -> list[str]:
    return [f"{name(d)}:{d.kind.value}" for d in decisions]


@dataclass
class Step:
    """One sensor cycle: at ``at`` seconds, the bucket holds ``objects`` (None: nothing read)."""

    at: float
    objects: list[S3Object] | None
    expect: list[str]
    confirm: bool = False  # the caller created the runs / emitted the events, then saved
    crash: bool = False  # the sensor died before saving: the next cycle starts from the old state


@dataclass
class Scenario:
    steps: list[Step]
    options: dict[str, Any] = field(default_factory=dict)


def run(steps: list[Step], **options: Any) -> tuple[SensorState, list[list[Decision]]]:
    """Drive ``decide`` like the sensor flow would; check each cycle's decisions."""
    options.setdefault("quiet_period", QUIET)
    state = SensorState(bucket=BUCKET, prefix=ROOT)
    history = []
    for step in steps:
        observed = None if step.objects is None else Listing(BUCKET, ROOT, tuple(step.objects))
        new_state, decisions = decide(state, observed, at(step.at), **options)
        assert summary(decisions) == step.expect, f"cycle at +{step.at:g}s"
        if step.confirm:
            for d in decisions:
                if d.kind is DecisionKind.READY:
                    new_state = mark_requested(new_state, d, now=at(step.at), run_id=f"run-{step.at:g}")
                elif d.kind is DecisionKind.INVALID:
                    new_state = mark_reported(new_state, d)
        if not step.crash:
            state = SensorState.from_json(new_state.to_json())  # every cycle goes through storage
        history.append(decisions)
    return state, history


SIX = images("hero", 6)
SEVEN = images("hero", 7)
VILLAIN = images("villain", 5)
IDLE = [Step(600 + 60 * i, SIX, []) for i in range(20)]

CAPTIONS = [obj(f"hero/{i:03d}.txt", f"c{i}") for i in range(6)]
EDITED_CAPTION = [*CAPTIONS[:2], obj("hero/002.txt", "c2-edited"), *CAPTIONS[3:]]

SCENARIOS = {
    "an-edited-caption-retrains-once": Scenario(
        [
            Step(0, SIX + CAPTIONS, ["hero:waiting"]),
            Step(60, SIX + CAPTIONS, ["hero:ready"], confirm=True),
            *[Step(120 + 60 * i, SIX + CAPTIONS, []) for i in range(3)],
            Step(400, SIX + EDITED_CAPTION, ["hero:waiting"]),
            Step(460, SIX + EDITED_CAPTION, ["hero:ready"], confirm=True),
            *[Step(520 + 60 * i, SIX + EDITED_CAPTION, []) for i in range(3)],
        ]
    ),
    "a-new-caption-retrains-once": Scenario(
        [
            Step(0, SIX, ["hero:waiting"]),
            Step(60, SIX, ["hero:ready"], confirm=True),
            Step(400, [*SIX, obj("hero/000.txt")], ["hero:waiting"]),
            Step(460, [*SIX, obj("hero/000.txt")], ["hero:ready"], confirm=True),
            Step(520, [*SIX, obj("hero/000.txt")], []),
        ]
    ),
    "first-sighting-waits-then-ready": Scenario(
        [Step(0, SIX, ["hero:waiting"]), Step(59, SIX, ["hero:waiting"]), Step(60, SIX, ["hero:ready"])]
    ),
    "activity-resets-the-quiet-clock": Scenario(
        [
            Step(0, SIX, ["hero:waiting"]),
            Step(50, SEVEN, ["hero:waiting"]),
            Step(60, SEVEN, ["hero:waiting"]),
            Step(109, SEVEN, ["hero:waiting"]),
            Step(110, SEVEN, ["hero:ready"]),
        ]
    ),
    "quiet-period-elapsed-ready-exactly-once": Scenario(
        [
            Step(0, SIX, ["hero:waiting"]),
            Step(60, SIX, ["hero:ready"], confirm=True),
            Step(120, SIX, []),
            Step(180, SIX, []),
        ]
    ),
    "no-change-for-many-cycles-nothing": Scenario(
        [Step(0, SIX, ["hero:waiting"]), Step(60, SIX, ["hero:ready"], confirm=True), *IDLE]
    ),
    "time-alone-ends-the-quiet-period": Scenario(
        [Step(0, SIX, ["hero:waiting"]), Step(30, None, ["hero:waiting"]), Step(60, None, ["hero:ready"])]
    ),
    "deleted-image-counts-as-activity": Scenario(
        [
            Step(0, SEVEN, ["hero:waiting"]),
            Step(60, SEVEN, ["hero:ready"], confirm=True),
            Step(100, SIX, ["hero:waiting"]),
            Step(159, SIX, ["hero:waiting"]),
            Step(160, SIX, ["hero:ready"], confirm=True),
            Step(220, SIX, []),
        ]
    ),
    "changed-etag-counts-as-activity": Scenario(
        [
            Step(0, SIX, ["hero:waiting"]),
            Step(60, SIX, ["hero:ready"], confirm=True),
            Step(100, [*SIX[:5], S3Object(SIX[5].key, "retouched", 120)], ["hero:waiting"]),
            Step(160, [*SIX[:5], S3Object(SIX[5].key, "retouched", 120)], ["hero:ready"]),
        ]
    ),
    "changed-then-changed-back-is-not-a-retrain": Scenario(
        [
            Step(0, SIX, ["hero:waiting"]),
            Step(60, SIX, ["hero:ready"], confirm=True),
            Step(100, SEVEN, ["hero:waiting"]),
            Step(130, SIX, []),
            Step(300, SIX, []),
        ]
    ),
    "below-min-images-waits": Scenario(
        [
            Step(0, images("hero", 3), ["hero:waiting"]),
            Step(60, images("hero", 3), ["hero:waiting"]),
            Step(600, images("hero", 3), ["hero:waiting"]),
            Step(610, images("hero", 5), ["hero:waiting"]),
            Step(670, images("hero", 5), ["hero:ready"]),
        ],
        {"min_images": 5},
    ),
    "fifty-one-images-invalid-not-retrain": Scenario(
        [
            Step(0, images("hero", 51), ["hero:waiting"]),
            Step(60, images("hero", 51), ["hero:invalid"], confirm=True),
            Step(120, images("hero", 51), []),
            Step(130, images("hero", 50), ["hero:waiting"]),
            Step(190, images("hero", 50), ["hero:ready"]),
        ]
    ),
    "fifty-images-is-the-cap-not-over-it": Scenario(
        [Step(0, images("hero", 50), ["hero:waiting"]), Step(60, images("hero", 50), ["hero:ready"])],
        {"training_type": "flux.2-dev-lora"},
    ),
    "crash-before-save-redecides": Scenario(
        [
            Step(0, SIX, ["hero:waiting"]),
            Step(60, SIX, ["hero:ready"], crash=True),
            Step(120, SIX, ["hero:ready"], confirm=True),
            Step(180, SIX, []),
        ]
    ),
    "saved-without-confirm-redecides": Scenario(
        [
            Step(0, SIX, ["hero:waiting"]),
            Step(60, SIX, ["hero:ready"]),
            Step(120, SIX, ["hero:ready"], confirm=True),
            Step(180, SIX, []),
        ]
    ),
    "confirmed-is-not-redecided": Scenario(
        [Step(0, SIX, ["hero:waiting"]), Step(60, SIX, ["hero:ready"], confirm=True), Step(61, SIX, [])]
    ),
    "two-datasets-only-the-changed-one": Scenario(
        [
            Step(0, [*SIX, *VILLAIN], ["hero:waiting", "villain:waiting"]),
            Step(60, [*SIX, *VILLAIN], ["hero:ready", "villain:ready"], confirm=True),
            Step(100, [*SIX, *images("villain", 6)], ["villain:waiting"]),
            Step(160, [*SIX, *images("villain", 6)], ["villain:ready"], confirm=True),
            Step(220, [*SIX, *images("villain", 6)], []),
        ]
    ),
    "sidecar-edit-is-activity-by-default": Scenario(
        [
            Step(0, [*SIX, obj("hero/scenario.json", "s1")], ["hero:waiting"]),
            Step(60, [*SIX, obj("hero/scenario.json", "s1")], ["hero:ready"], confirm=True),
            Step(100, [*SIX, obj("hero/scenario.json", "s2")], ["hero:waiting"]),
            Step(160, [*SIX, obj("hero/scenario.json", "s2")], ["hero:ready"]),
        ]
    ),
    "sidecar-edit-ignored-when-configured": Scenario(
        [
            Step(0, [*SIX, obj("hero/scenario.yaml", "s1")], ["hero:waiting"]),
            Step(60, [*SIX, obj("hero/scenario.yaml", "s1")], ["hero:ready"], confirm=True),
            Step(100, [*SIX, obj("hero/scenario.yaml", "s2"), obj("hero/pairs.jsonl", "p")], []),
            Step(200, [*SIX, obj("hero/scenario.yaml", "s2"), obj("hero/pairs.jsonl", "p")], []),
        ],
        {"ignore_sidecar_edits": True},
    ),
    "non-image-and-zero-byte-keys-ignored": Scenario(
        [
            Step(0, SIX, ["hero:waiting"]),
            Step(60, SIX, ["hero:ready"], confirm=True),
            Step(
                100,
                [
                    *SIX,
                    obj("hero/notes.txt"),
                    obj("hero/.DS_Store"),
                    obj("hero/._000.png"),
                    obj("hero/empty.png", size=0),
                    obj("hero/", size=0),
                    obj("hero/poses/readme.md"),
                ],
                [],
            ),
        ]
    ),
    "only-non-images-is-no-dataset": Scenario([Step(0, [obj("drafts/notes.txt"), obj("drafts/a.psd")], [])]),
    "image-emptied-to-zero-bytes-is-a-deletion": Scenario(
        [
            Step(0, SEVEN, ["hero:waiting"]),
            Step(60, SEVEN, ["hero:ready"], confirm=True),
            Step(100, [*SIX, S3Object(SEVEN[6].key, "empty", 0)], ["hero:waiting"]),
        ]
    ),
    "every-image-deleted-forgets-the-dataset": Scenario(
        [Step(0, SIX, ["hero:waiting"]), Step(60, SIX, ["hero:ready"], confirm=True), Step(100, [], [])]
    ),
    "images-directly-under-the-root-are-a-dataset": Scenario(
        [
            Step(0, [obj("a.png", "1"), obj("b.jpg", "2"), *SIX], ["<root>:waiting", "hero:waiting"]),
            Step(60, [obj("a.png", "1"), obj("b.jpg", "2"), *SIX], ["<root>:ready", "hero:ready"]),
        ]
    ),
    "nested-keys-belong-to-their-dataset": Scenario(
        [
            Step(0, [*SIX, obj("hero/poses/side.webp")], ["hero:waiting"]),
            Step(60, [*SIX, obj("hero/poses/side.webp")], ["hero:ready"], confirm=True),
            Step(100, [*SIX, obj("hero/poses/side.webp", "y")], ["hero:waiting"]),
        ]
    ),
    "edit-types-need-two-pairs-of-images": Scenario(
        [
            Step(0, images("hero", 3), ["hero:waiting"]),
            Step(60, images("hero", 3), ["hero:waiting"]),
            Step(70, images("hero", 4), ["hero:waiting"]),
            Step(130, images("hero", 4), ["hero:ready"]),
        ],
        {"training_type": "qwen-image-edit-2511-lora"},
    ),
    "unknown-dataset-type-invalid-once": Scenario(
        [
            Step(0, SIX, ["hero:waiting"]),
            Step(60, SIX, ["hero:invalid"], confirm=True),
            Step(120, SIX, []),
        ],
        {"training_types": {f"s3://{BUCKET}/{ROOT}hero/": "sdxl-lora"}},
    ),
    "quiet-period-zero-is-ready-at-once": Scenario([Step(0, SIX, ["hero:ready"])], {"quiet_period": 0}),
}


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_decision_sequences(scenario: Scenario) -> None:
    run(scenario.steps, **scenario.options)


# -- what the decisions carry --------------------------------------------------------------


def test_crash_between_decide_and_mark_requested_redecides_the_same_key() -> None:
    _, history = run(SCENARIOS["crash-before-save-redecides"].steps)
    first, second = history[1][0], history[2][0]
    assert first.idempotency_key == second.idempotency_key
    assert first.manifest == second.manifest
    assert first.idempotency_key == retrain_idempotency_key(first.dataset_uri, first.manifest)


def test_new_content_gets_a_new_key() -> None:
    _, history = run(SCENARIOS["deleted-image-counts-as-activity"].steps)
    keys = [d.idempotency_key for cycle in history for d in cycle if d.kind is DecisionKind.READY]
    assert len(keys) == 2 and keys[0] != keys[1]


def test_ready_decision_carries_the_manifest_and_key() -> None:
    _, history = run(SCENARIOS["first-sighting-waits-then-ready"].steps)
    ready = history[-1][0]
    assert ready.dataset_uri == f"s3://{BUCKET}/{ROOT}hero/"
    assert ready.manifest.keys == tuple(o.key for o in SIX)
    assert ready.image_count == 6
    assert ready.idempotency_key is not None and ready.idempotency_key.startswith("scenario-retrain-")


def test_waiting_decision_says_when_it_will_be_ready() -> None:
    _, history = run([Step(0, SIX, ["hero:waiting"]), Step(45, SIX, ["hero:waiting"])])
    waiting = history[-1][0]
    assert waiting.ready_at == at(QUIET)
    assert "15 more seconds" in waiting.message


def test_invalid_decision_explains_the_limit() -> None:
    _, history = run(SCENARIOS["fifty-one-images-invalid-not-retrain"].steps)
    invalid = history[1][0]
    assert invalid.kind is DecisionKind.INVALID and invalid.idempotency_key is None
    assert "51" in invalid.message and "50" in invalid.message and "Remove 1 image" in invalid.message
    assert invalid.dataset_uri in invalid.message


def test_invalid_with_a_known_type_names_it() -> None:
    state = SensorState(bucket=BUCKET, prefix=ROOT)
    listing = Listing(BUCKET, ROOT, tuple(images("hero", 60)))
    _, decisions = decide(state, listing, T0, quiet_period=0, training_type="zimage-lora")
    assert decisions[0].kind is DecisionKind.INVALID
    assert "'zimage-lora' takes at most 50 training images; got 60" in decisions[0].message


def test_unknown_sensor_training_type_is_a_configuration_error() -> None:
    with pytest.raises(InvalidTrainingTypeError):
        decide(SensorState(bucket=BUCKET, prefix=ROOT), None, T0, quiet_period=0, training_type="sdxl-lora")


# -- the two-phase protocol -------------------------------------------------------------


def test_mark_requested_records_the_run() -> None:
    state, decisions = decide(
        SensorState(bucket=BUCKET, prefix=ROOT), Listing(BUCKET, ROOT, tuple(SIX)), T0, quiet_period=0
    )
    state = mark_requested(state, decisions[0], now=at(1), run_id="abc")
    hero = state.datasets[f"{ROOT}hero/"]
    assert (hero.pending, hero.run_id, hero.requested_at) == (False, "abc", at(1))
    assert hero.requested_digest == decisions[0].manifest.digest


def test_mark_requested_keeps_pending_when_content_moved_on() -> None:
    empty = SensorState(bucket=BUCKET, prefix=ROOT)
    old_state, (ready,) = decide(empty, Listing(BUCKET, ROOT, tuple(SIX)), T0, quiet_period=0)
    state, _ = decide(old_state, Listing(BUCKET, ROOT, tuple(SEVEN)), at(5), quiet_period=60)
    state = mark_requested(state, ready, now=at(6))
    assert state.datasets[f"{ROOT}hero/"].pending
    _, decisions = decide(state, Listing(BUCKET, ROOT, tuple(SEVEN)), at(65), quiet_period=60)
    assert summary(decisions) == ["hero:ready"] and decisions[0].idempotency_key != ready.idempotency_key


def test_mark_requested_for_a_vanished_dataset_changes_nothing() -> None:
    state, (ready,) = decide(
        SensorState(bucket=BUCKET, prefix=ROOT), Listing(BUCKET, ROOT, tuple(SIX)), T0, quiet_period=0
    )
    gone, _ = decide(state, Listing(BUCKET, ROOT, ()), at(1), quiet_period=0)
    assert mark_requested(gone, ready, now=at(2)) == gone


def test_marks_refuse_the_wrong_kind() -> None:
    state, (waiting,) = decide(
        SensorState(bucket=BUCKET, prefix=ROOT), Listing(BUCKET, ROOT, tuple(SIX)), T0, quiet_period=9
    )
    with pytest.raises(ValueError, match="only a ready decision"):
        mark_requested(state, waiting, now=T0)
    with pytest.raises(ValueError, match="only an invalid decision"):
        mark_reported(state, waiting)


# -- the idempotency key --------------------------------------------------------------------


def test_idempotency_key_is_deterministic() -> None:
    manifest = Manifest(tuple(SIX))
    shuffled = Manifest(tuple(reversed(SIX)))
    uri = f"s3://{BUCKET}/{ROOT}hero/"
    key = retrain_idempotency_key(uri, manifest)
    assert key == retrain_idempotency_key(uri, shuffled) == retrain_idempotency_key(uri.rstrip("/"), manifest)
    assert key == "scenario-retrain-" + key.removeprefix("scenario-retrain-")
    assert len(key) == len("scenario-retrain-") + 32


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(("s3://studio-assets/curated/villain/", SIX), id="other-dataset"),
        pytest.param(("s3://other-bucket/curated/hero/", SIX), id="other-bucket"),
        pytest.param((None, [*SIX[:5], S3Object(SIX[5].key, "changed", 100)]), id="changed-etag"),
        pytest.param((None, SIX[:5]), id="one-image-fewer"),
        pytest.param((None, [*SIX[:5], S3Object(SIX[5].key.replace("005", "105"), SIX[5].etag, 100)]), id="renamed"),
    ],
)
def test_idempotency_key_changes_with_dataset_or_content(other: tuple[str | None, list[S3Object]]) -> None:
    uri = f"s3://{BUCKET}/{ROOT}hero/"
    other_uri, objects = other
    assert retrain_idempotency_key(uri, Manifest(tuple(SIX))) != retrain_idempotency_key(
        other_uri or uri, Manifest(tuple(objects))
    )


def test_idempotency_key_refuses_a_non_s3_uri() -> None:
    with pytest.raises(ValueError, match="not an S3 URI"):
        retrain_idempotency_key("/local/hero", Manifest(tuple(SIX)))


# -- observations ---------------------------------------------------------------------------


def test_a_change_set_decides_like_a_listing() -> None:
    state = SensorState(bucket=BUCKET, prefix=ROOT)
    changes = ChangeSet(
        BUCKET,
        ROOT,
        (
            *(ObjectChange(BUCKET, o.key, False, o.etag, o.size) for o in SIX),
            ObjectChange(BUCKET, ROOT + "hero/notes.txt", False, "n", 3),
        ),
    )
    via_changes, decided = decide(state, changes, T0, quiet_period=0)
    via_listing, listed = decide(state, Listing(BUCKET, ROOT, tuple(SIX)), T0, quiet_period=0)
    assert via_changes.datasets == via_listing.datasets
    assert [d.idempotency_key for d in decided] == [d.idempotency_key for d in listed]


def test_change_set_removals_and_zero_byte_overwrites_remove() -> None:
    state, _ = decide(SensorState(bucket=BUCKET, prefix=ROOT), Listing(BUCKET, ROOT, tuple(SEVEN)), T0, quiet_period=0)
    changes = ChangeSet(
        BUCKET,
        ROOT,
        (
            ObjectChange(BUCKET, SEVEN[0].key, True),
            ObjectChange(BUCKET, SEVEN[1].key, False, "empty", 0),
            ObjectChange(BUCKET, ROOT + "hero/never-seen.png", True),
            ObjectChange("another-bucket", SEVEN[2].key, True),
            ObjectChange(BUCKET, "outside/hero/1.png", False, "o", 5),
        ),
    )
    state, _ = decide(state, changes, at(1), quiet_period=0)
    assert state.manifest(f"{ROOT}hero/").keys == tuple(o.key for o in SEVEN[2:])


def test_change_set_with_a_backlog_never_declares_quiet() -> None:
    state = SensorState(bucket=BUCKET, prefix=ROOT)
    changes = ChangeSet(BUCKET, ROOT, tuple(ObjectChange(BUCKET, o.key, False, o.etag, o.size) for o in SIX))
    backlog = ChangeSet(BUCKET, ROOT, (), drained=False)
    state, _ = decide(state, changes, T0, quiet_period=60)
    state, decisions = decide(state, backlog, at(120), quiet_period=60)
    assert summary(decisions) == ["hero:waiting"] and "queue" in decisions[0].message
    _, decisions = decide(state, ChangeSet(BUCKET, ROOT), at(121), quiet_period=60)
    assert summary(decisions) == ["hero:ready"]


def test_listing_one_dataset_prefix_leaves_the_others_alone() -> None:
    state, _ = decide(
        SensorState(bucket=BUCKET, prefix=ROOT), Listing(BUCKET, ROOT, tuple(SIX + VILLAIN)), T0, quiet_period=0
    )
    state, _ = decide(state, Listing(BUCKET, ROOT + "villain/", ()), at(1), quiet_period=0)
    assert list(state.datasets) == [f"{ROOT}hero/"]
    assert state.listed_at == T0  # a dataset listing is not a listing of the root


def test_listing_must_not_split_datasets() -> None:
    state = SensorState(bucket=BUCKET, prefix=ROOT)
    with pytest.raises(ValueError, match="does not cover whole datasets"):
        decide(state, Listing(BUCKET, ROOT + "he", ()), T0, quiet_period=0)
    with pytest.raises(ValueError, match="does not cover whole datasets"):
        decide(state, Listing(BUCKET, "elsewhere/", ()), T0, quiet_period=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"now": datetime(2026, 1, 1)}, "timezone-aware", id="naive-now"),
        pytest.param({"quiet_period": -1}, "must not be negative", id="negative-quiet"),
        pytest.param({"min_images": 0}, "at least 1", id="zero-min-images"),
        pytest.param({"observed": Listing("other", ROOT, ())}, "watches bucket", id="other-bucket"),
    ],
)
def test_decide_refuses_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"observed": None, "now": T0, "quiet_period": 60, **kwargs}
    with pytest.raises(ValueError, match=match):
        decide(SensorState(bucket=BUCKET, prefix=ROOT), args.pop("observed"), args.pop("now"), **args)


def test_quiet_period_accepts_a_timedelta() -> None:
    steps = [Step(0, SIX, ["hero:waiting"]), Step(119, SIX, ["hero:waiting"]), Step(120, SIX, ["hero:ready"])]
    run(steps, quiet_period=timedelta(minutes=2))


# -- the state on disk ---------------------------------------------------------------------


def test_state_round_trips_through_json_with_a_version() -> None:
    state, _ = run(SCENARIOS["two-datasets-only-the-changed-one"].steps)
    text = state.to_json()
    document = json.loads(text)
    assert document["version"] == STATE_VERSION == 1
    assert document["bucket"] == BUCKET and document["prefix"] == ROOT
    assert document["datasets"][f"{ROOT}hero/"]["objects"]["000.png"] == ["e0", 100]
    assert SensorState.from_json(text) == state


def test_state_is_small_per_tracked_object() -> None:
    objects = [
        S3Object(f"{ROOT}hero/IMG_{i:04d}.jpg", "d41d8cd98f00b204e9800998ecf8427e", 2_345_678) for i in range(50)
    ]
    state, (ready,) = decide(
        SensorState(bucket=BUCKET, prefix=ROOT), Listing(BUCKET, ROOT, tuple(objects)), T0, quiet_period=0
    )
    state = mark_requested(state, ready, now=T0, run_id="7f0c3a52-2d7b-4d0f-9a57-0a6f1b1d2c3e")
    per_object = len(state.to_json()) / len(objects)
    assert per_object < 70, per_object


def test_state_from_a_newer_version_is_refused_clearly() -> None:
    text = json.dumps({"version": STATE_VERSION + 1, "bucket": BUCKET})
    with pytest.raises(ValueError, match="newer than this prefect-scenario reads"):
        SensorState.from_json(text)


def test_state_that_is_not_a_state_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="not a readable sensor state"):
        SensorState.from_json('{"datasets": 3}')


@pytest.mark.parametrize("module", [decisions, sensor_state], ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_module_examples_run(module: Any) -> None:
    assert doctest.testmod(module).failed == 0


def test_a_caption_is_content_but_never_an_image() -> None:
    _, history = run(SCENARIOS["an-edited-caption-retrains-once"].steps)
    ready = [d for cycle in history for d in cycle if d.kind is DecisionKind.READY]
    assert len(ready) == 2 and ready[0].idempotency_key != ready[1].idempotency_key
    assert ready[1].image_count == 6 and "curated/hero/002.txt" in ready[1].manifest.keys
    assert all(o.key.endswith(".png") for o in ready[1].manifest.images)


def test_a_caption_change_set_decides_like_a_listing() -> None:
    state = SensorState(bucket=BUCKET, prefix=ROOT)
    listed = SIX + CAPTIONS
    changes = ChangeSet(BUCKET, ROOT, tuple(ObjectChange(BUCKET, o.key, False, o.etag, o.size) for o in listed))
    via_changes, _ = decide(state, changes, T0, quiet_period=0)
    via_listing, _ = decide(state, Listing(BUCKET, ROOT, tuple(listed)), T0, quiet_period=0)
    assert via_changes.datasets == via_listing.datasets
    assert "000.txt" in via_listing.datasets["curated/hero/"].objects
