"""Both discovery modes against a real moto server: same changes in, same decisions out."""

from __future__ import annotations

import doctest
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from prefect_scenario.dataset import listing
from prefect_scenario.retraining import discovery, notifications
from prefect_scenario.retraining.decisions import Decision, DecisionKind, SensorState, decide, mark_requested
from prefect_scenario.retraining.discovery import (
    ChangeSet,
    Discovery,
    Listing,
    ListingDiscovery,
    NotificationDiscovery,
    ObjectChange,
    list_objects,
    merge_changes,
    parse_message,
)
from tests.s3_fixtures import aws_client, count_requests, make_bucket, notify_queue, png_bytes, put_many, put_png

BUCKET = "studio-assets"
ROOT = "curated/"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def multipart_upload(s3: Any, bucket: str, key: str, seed: int = 0) -> str:
    """Upload ``key`` as a one-part multipart upload; return its ETag (``…-1``)."""
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)
    part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=png_bytes(seed))
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    return str(done["ETag"]).strip('"')


def queue_discovery(sqs: Any, url: str, **kwargs: Any) -> NotificationDiscovery:
    kwargs.setdefault("wait_time_seconds", 0)  # tests never wait on an empty queue
    return NotificationDiscovery(sqs, url, BUCKET, ROOT, **kwargs)


# -- list mode ---------------------------------------------------------------------------------


def test_list_paginates_past_1000_keys_with_one_request_per_page(s3_client: Any) -> None:
    make_bucket(s3_client, BUCKET)
    keys = [f"{ROOT}set-{d:02d}/{i:02d}.png" for d in range(21) for i in range(48)]  # 1,008 keys
    put_many(s3_client, BUCKET, keys)
    sent = count_requests(s3_client)

    mode = ListingDiscovery(s3_client, BUCKET, ROOT)
    listing = mode.discover()

    assert len(listing.objects) == 1008
    assert listing.requests == 2 == mode.requests["ListObjectsV2"] == sent["ListObjectsV2"]
    assert {o.key for o in listing.objects} == set(keys)
    state, _ = decide(SensorState(bucket=BUCKET, prefix=ROOT), listing, T0, quiet_period=60)
    _, decisions = decide(state, mode.discover(), T0 + timedelta(seconds=60), quiet_period=60)
    assert [d.kind for d in decisions] == [DecisionKind.READY] * 21
    assert all(d.image_count == 48 for d in decisions)
    assert sent["ListObjectsV2"] == 4  # two passes, two pages each


@pytest.mark.parametrize(
    ("page_size", "requests"),
    [
        pytest.param(1, 8, id="max-keys-1"),
        pytest.param(3, 3, id="partial-last-page"),
        pytest.param(4, 2, id="exact-multiple"),
        pytest.param(8, 1, id="exactly-one-page"),
        pytest.param(1000, 1, id="max-keys-1000"),
    ],
)
def test_list_page_size_edges(s3_client: Any, page_size: int, requests: int) -> None:
    make_bucket(s3_client, BUCKET)
    keys = [f"{ROOT}hero/{i}.png" for i in range(8)]
    put_many(s3_client, BUCKET, [*keys, "outside/1.png"])
    sent = count_requests(s3_client)
    listing = list_objects(s3_client, BUCKET, ROOT, page_size=page_size)
    assert sorted(o.key for o in listing.objects) == sorted(keys)
    assert listing.requests == requests == sent["ListObjectsV2"]


def test_list_empty_prefix_costs_one_request(s3_client: Any) -> None:
    make_bucket(s3_client, BUCKET)
    listing = list_objects(s3_client, BUCKET, "nothing-here")
    assert (listing.objects, listing.requests, listing.prefix) == ((), 1, "nothing-here/")


@pytest.mark.parametrize("page_size", [0, -1, 1001])
def test_list_refuses_impossible_page_sizes(page_size: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 1000"):
        list_objects(None, BUCKET, ROOT, page_size=page_size)  # type: ignore[arg-type]


def test_list_keeps_keys_with_spaces_and_plus_verbatim(s3_client: Any) -> None:
    make_bucket(s3_client, BUCKET)
    etag = put_png(s3_client, BUCKET, f"{ROOT}hero/red flower+1 (copy).png")
    (obj,) = list_objects(s3_client, BUCKET, ROOT).objects
    assert (obj.key, obj.etag, obj.size) == (f"{ROOT}hero/red flower+1 (copy).png", etag, len(png_bytes()))


def test_list_dataset_lists_one_prefix(s3_client: Any) -> None:
    make_bucket(s3_client, BUCKET)
    put_many(s3_client, BUCKET, [f"{ROOT}hero/1.png", f"{ROOT}villain/1.png", f"{ROOT}villain/2.png"])
    mode = ListingDiscovery(s3_client, BUCKET, ROOT)
    assert [o.key for o in mode.list_dataset(f"{ROOT}villain/").objects] == [
        f"{ROOT}villain/1.png",
        f"{ROOT}villain/2.png",
    ]
    assert mode.ack(mode.discover()) == 0 and mode.requests == Counter({"ListObjectsV2": 2})


# -- notifications mode ---------------------------------------------------------------------------


def test_test_event_is_skipped_and_keys_are_url_decoded(s3_client: Any, sqs_client: Any) -> None:
    make_bucket(s3_client, BUCKET)
    url = notify_queue(s3_client, sqs_client, BUCKET, prefix=ROOT)
    first = sqs_client.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"][0]
    assert json.loads(first["Body"])["Event"] == "s3:TestEvent"
    keys = [f"{ROOT}hero/red flower+1.png", f"{ROOT}hero/a%2Bb.png", f"{ROOT}hero/été/ü 1.webp"]
    etags = [put_png(s3_client, BUCKET, key, seed=i) for i, key in enumerate(keys)]

    changes = queue_discovery(sqs_client, url).discover()

    assert changes.messages == 4 and changes.records == 3
    assert [(c.key, c.etag, c.removed) for c in changes.changes] == sorted(
        (key, etag, False) for key, etag in zip(keys, etags, strict=True)
    )


def test_multipart_upload_two_records_one_change(s3_client: Any, sqs_client: Any) -> None:
    make_bucket(s3_client, BUCKET)
    url = notify_queue(s3_client, sqs_client, BUCKET, prefix=ROOT)
    etag = multipart_upload(s3_client, BUCKET, f"{ROOT}hero/big render.png")

    changes = queue_discovery(sqs_client, url).discover()

    assert changes.records == 2  # ObjectCreated:Put and ObjectCreated:CompleteMultipartUpload
    (change,) = changes.changes
    assert (change.key, change.etag, change.removed) == (f"{ROOT}hero/big render.png", etag, False)
    assert etag.endswith("-1")


def test_deletions_arrive_as_removals(s3_client: Any, sqs_client: Any) -> None:
    make_bucket(s3_client, BUCKET)
    url = notify_queue(s3_client, sqs_client, BUCKET, prefix=ROOT)
    mode = queue_discovery(sqs_client, url)
    put_many(s3_client, BUCKET, [f"{ROOT}hero/1.png", f"{ROOT}hero/2 two.png", f"{ROOT}hero/3.png"])
    mode.ack(mode.discover())
    s3_client.delete_object(Bucket=BUCKET, Key=f"{ROOT}hero/1.png")
    s3_client.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": f"{ROOT}hero/2 two.png"}]})

    changes = mode.discover()

    assert [(c.key, c.removed) for c in changes.changes] == [
        (f"{ROOT}hero/1.png", True),
        (f"{ROOT}hero/2 two.png", True),
    ]


def test_put_then_delete_in_one_batch_is_one_removal(s3_client: Any, sqs_client: Any) -> None:
    make_bucket(s3_client, BUCKET)
    url = notify_queue(s3_client, sqs_client, BUCKET, prefix=ROOT)
    put_png(s3_client, BUCKET, f"{ROOT}hero/oops.png")
    s3_client.delete_object(Bucket=BUCKET, Key=f"{ROOT}hero/oops.png")
    (change,) = queue_discovery(sqs_client, url).discover().changes
    assert change.removed


def test_messages_are_deleted_only_by_ack(s3_client: Any, sqs_client: Any) -> None:
    make_bucket(s3_client, BUCKET)
    url = notify_queue(s3_client, sqs_client, BUCKET, prefix=ROOT)
    put_many(s3_client, BUCKET, [f"{ROOT}hero/{i}.png" for i in range(12)])
    mode = queue_discovery(sqs_client, url)

    first = mode.discover()
    # The sensor "crashed" before saving: the visibility timeout runs out (moved, not waited for).
    for start in range(0, len(first.receipt_handles), 10):
        sqs_client.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                for i, h in enumerate(first.receipt_handles[start : start + 10])
            ],
        )
    again = mode.discover()
    assert again.changes == first.changes and again.messages == first.messages == 13

    assert mode.ack(again) == 13
    assert mode.discover().messages == 0


def test_long_polling_waits_on_the_first_receive_only(s3_client: Any, sqs_client: Any) -> None:
    make_bucket(s3_client, BUCKET)
    url = notify_queue(s3_client, sqs_client, BUCKET, prefix=ROOT)
    put_many(s3_client, BUCKET, [f"{ROOT}hero/{i}.png" for i in range(14)])
    waits: list[int] = []
    sqs_client.meta.events.register(
        "provide-client-params.sqs.ReceiveMessage", lambda params, **_: waits.append(params["WaitTimeSeconds"])
    )
    mode = queue_discovery(sqs_client, url, wait_time_seconds=20)  # messages are there: no real wait

    changes = mode.discover()

    assert changes.messages == 15 and changes.drained
    assert waits == [20, 0, 0]  # 10 + 5 messages, then an empty answer ends the cycle
    assert mode.ack(changes) == 15
    assert mode.requests == Counter({"ReceiveMessage": 3, "DeleteMessageBatch": 2})


def test_an_idle_cycle_costs_one_request(s3_client: Any, sqs_client: Any) -> None:
    make_bucket(s3_client, BUCKET)
    url = notify_queue(s3_client, sqs_client, BUCKET, prefix=ROOT)
    mode = queue_discovery(sqs_client, url)
    mode.ack(mode.discover())  # the test event
    mode.requests.clear()
    changes = mode.discover()
    assert (changes.changes, changes.requests, changes.drained) == ((), 1, True)
    assert mode.ack(changes) == 0 and mode.requests == Counter({"ReceiveMessage": 1})


def test_max_messages_leaves_a_backlog_flag(s3_client: Any, sqs_client: Any) -> None:
    make_bucket(s3_client, BUCKET)
    url = notify_queue(s3_client, sqs_client, BUCKET, prefix=ROOT)
    put_many(s3_client, BUCKET, [f"{ROOT}hero/{i}.png" for i in range(6)])
    changes = queue_discovery(sqs_client, url, max_messages=4).discover()
    assert (changes.messages, changes.drained, changes.requests) == (4, False, 1)


def test_other_buckets_prefixes_and_unreadable_messages(s3_client: Any, sqs_client: Any) -> None:
    make_bucket(s3_client, BUCKET)
    make_bucket(s3_client, "other-bucket")
    url = notify_queue(s3_client, sqs_client, BUCKET)  # the whole bucket, not only the root
    put_png(s3_client, BUCKET, "drafts/1.png")
    put_png(s3_client, BUCKET, f"{ROOT}hero/1.png")
    sqs_client.send_message(QueueUrl=url, MessageBody="not json")
    sqs_client.send_message(QueueUrl=url, MessageBody=json.dumps({"hello": "world"}))
    mode = queue_discovery(sqs_client, url)

    changes = mode.discover()

    assert [c.key for c in changes.changes] == [f"{ROOT}hero/1.png"]
    assert len(changes.skipped) == 2 and "not JSON" in changes.skipped[0]
    assert mode.ack(changes) == 5  # test event, 2 events, 2 unreadable: none comes back
    assert mode.discover().messages == 0


class _Queue:
    """Just enough of an SQS client: one batch of messages, then an empty queue."""

    def __init__(self, bodies: list[str]) -> None:
        self.batches = [[{"ReceiptHandle": f"h{i}", "MessageId": f"m{i}", "Body": b} for i, b in enumerate(bodies)]]

    def receive_message(self, **kwargs: Any) -> Any:
        return {"Messages": self.batches.pop(0) if self.batches else []}

    def delete_message_batch(self, **kwargs: Any) -> Any:
        return {"Successful": kwargs["Entries"]}


def test_skipped_messages_are_logged_with_their_reason(caplog: pytest.LogCaptureFixture) -> None:
    mode = NotificationDiscovery(_Queue(["not json", '{"hello": "world"}']), "queue", BUCKET, ROOT, wait_time_seconds=0)
    with caplog.at_level(logging.INFO, logger=notifications.__name__):
        changes = mode.discover()
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == notifications.__name__]
    expected = [(logging.WARNING, f"SQS {reason}; skipped, and deleted with this batch") for reason in changes.skipped]
    assert logged == expected
    assert "message m0: not JSON" in logged[0][1] and "message m1: neither an S3 event" in logged[1][1]
    assert mode.ack(changes) == 2  # deleted, but not without a trace


def test_skipped_messages_go_to_the_given_logger(caplog: pytest.LogCaptureFixture) -> None:
    run_logger = logging.getLogger("tests.sensor-run")
    mode = NotificationDiscovery(_Queue(["{"]), "queue", BUCKET, ROOT, wait_time_seconds=0, logger=run_logger)
    with caplog.at_level(logging.WARNING, logger="tests.sensor-run"):
        mode.discover()
    assert [r.name for r in caplog.records] == ["tests.sensor-run"]
    assert "not JSON" in caplog.records[0].getMessage()


def test_eventbridge_records_through_sqs(moto_endpoint: str, s3_client: Any, sqs_client: Any) -> None:
    events = aws_client("events", moto_endpoint)
    make_bucket(s3_client, BUCKET)
    url = str(sqs_client.create_queue(QueueName="eventbridge")["QueueUrl"])
    arn = sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="curated", EventPattern=json.dumps({"source": ["aws.s3"]}))
    events.put_targets(Rule="curated", Targets=[{"Id": "queue", "Arn": arn}])
    s3_client.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    etag = put_png(s3_client, BUCKET, f"{ROOT}hero/red flower+1.png")
    put_png(s3_client, BUCKET, f"{ROOT}hero/gone.png")
    s3_client.delete_object(Bucket=BUCKET, Key=f"{ROOT}hero/gone.png")

    changes = queue_discovery(sqs_client, url).discover()

    assert [(c.key, c.removed) for c in changes.changes] == [
        (f"{ROOT}hero/gone.png", True),
        (f"{ROOT}hero/red flower+1.png", False),
    ]
    assert changes.changes[1].etag == etag and changes.changes[1].event_name == "Object Created:ObjectCreated"


class _RedeliveringQueue:
    """A queue whose message comes back within one read (its visibility timeout ran out)."""

    def __init__(self, body: str) -> None:
        self.batches = [
            [{"MessageId": "m1", "ReceiptHandle": "first", "Body": body}],
            [{"MessageId": "m1", "ReceiptHandle": "second", "Body": body}],
            [],
        ]
        self.deleted: list[str] = []

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        return {"Messages": self.batches.pop(0)}

    def delete_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        self.deleted += [entry["ReceiptHandle"] for entry in kwargs["Entries"]]
        return {"Successful": kwargs["Entries"]}


def test_a_message_redelivered_within_one_read_counts_once_and_is_deleted_by_its_newest_handle() -> None:
    queue = _RedeliveringQueue(_s3_body(f"{ROOT}hero/1.png", size=1, eTag="e"))
    mode = NotificationDiscovery(queue, "url", BUCKET, ROOT, wait_time_seconds=0)
    changes = mode.discover()
    assert (len(changes.changes), changes.messages, changes.receipt_handles) == (1, 1, ("second",))
    assert mode.ack(changes) == 1 and queue.deleted == ["second"]


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"wait_time_seconds": 21}, "between 0 and 20"), ({"max_messages": 0}, "at least 1")]
)
def test_notification_mode_refuses_impossible_settings(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NotificationDiscovery(_RedeliveringQueue(""), "url", BUCKET, ROOT, **kwargs)


# -- parsing, pure ------------------------------------------------------------------------------------


def _s3_body(key: str, event: str = "ObjectCreated:Put", **obj: Any) -> str:
    record = {"eventName": event, "s3": {"bucket": {"name": BUCKET}, "object": {"key": key, **obj}}}
    return json.dumps({"Records": [record]})


def test_parse_sns_wrapped_notification() -> None:
    body = json.dumps({"Type": "Notification", "Message": _s3_body("curated/hero/a+b.png", size=3, eTag='"e"')})
    (change,) = parse_message(body)
    assert (change.key, change.etag, change.size) == ("curated/hero/a b.png", "e", 3)


def test_parse_removal_without_etag_or_size() -> None:
    (change,) = parse_message(_s3_body("curated/hero/a.png", "ObjectRemoved:DeleteMarkerCreated", sequencer="0A"))
    assert (change.removed, change.etag, change.size, change.sequencer) == (True, None, None, "0A")


def test_parse_ignores_other_s3_events() -> None:
    assert parse_message(_s3_body("curated/hero/a.png", "ObjectTagging:Put")) == []
    assert parse_message(json.dumps({"source": "aws.s3", "detail-type": "Object Tags Added", "detail": {}})) == []


def test_parse_eventbridge_keys_decoded_only_on_request() -> None:
    body = json.dumps(
        {
            "source": "aws.s3",
            "detail-type": "Object Created",
            "time": "2026-03-01T12:00:00Z",
            "detail": {"bucket": {"name": BUCKET}, "object": {"key": "a+b.png", "size": 1, "etag": "e"}},
        }
    )
    assert parse_message(body)[0].key == "a+b.png"
    assert parse_message(body, decode_eventbridge_keys=True)[0].key == "a b.png"


@pytest.mark.parametrize(
    ("body", "match"),
    [("{", "not JSON"), ("[1]", "expected a JSON object"), ('{"a": 1}', "neither an S3 event")],
)
def test_parse_refuses_unknown_bodies(body: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_message(body)


def test_merge_orders_by_sequencer_then_by_arrival() -> None:
    put = ObjectChange(BUCKET, "k.png", False, "e", 1, sequencer="00A")
    delete = ObjectChange(BUCKET, "k.png", True, sequencer="9")
    assert merge_changes([put, delete]) == (put,)  # "00A" > "009": the put is newer
    assert merge_changes([delete, put]) == (put,)
    late = ObjectChange(BUCKET, "k.png", True)
    assert merge_changes([put, late]) == (late,)  # no sequencer: last delivered wins
    other = ObjectChange("other", "k.png", True)
    assert merge_changes([put, other]) == (other, put)


# -- both modes, same decisions ----------------------------------------------------------------------


@dataclass
class Sensor:
    """What the sensor flow does around the pure functions, minus Prefect."""

    mode: Discovery
    state: SensorState = field(default_factory=lambda: SensorState(bucket=BUCKET, prefix=ROOT))
    requested: list[str] = field(default_factory=list)

    def cycle(self, now: datetime, **options: Any) -> list[Decision]:
        observed = self.mode.discover()
        state, decisions = decide(self.state, observed, now, quiet_period=60, **options)
        for d in decisions:
            if d.kind is DecisionKind.READY:
                assert d.idempotency_key is not None
                self.requested.append(d.idempotency_key)  # run_deployment(..., idempotency_key=...)
                state = mark_requested(state, d, now=now)
        self.state = state  # saved ...
        self.mode.ack(observed)  # ... then acknowledged
        return decisions


def _key(decisions: list[Decision]) -> list[tuple[str, str, str, str | None]]:
    return [(d.kind.value, d.dataset_uri, d.manifest.digest, d.idempotency_key) for d in decisions]


def test_both_modes_make_the_same_decisions(s3_client: Any, sqs_client: Any) -> None:
    make_bucket(s3_client, BUCKET)
    url = notify_queue(s3_client, sqs_client, BUCKET, prefix=ROOT)
    listing = Sensor(ListingDiscovery(s3_client, BUCKET, ROOT, page_size=5))
    events = Sensor(queue_discovery(sqs_client, url))
    hero = f"{ROOT}hero/"
    villain = f"{ROOT}villain/"

    def step(seconds: float, expected: list[str]) -> None:
        now = T0 + timedelta(seconds=seconds)
        by_listing, by_events = listing.cycle(now), events.cycle(now)
        assert _key(by_listing) == _key(by_events), f"+{seconds:g}s"
        assert [f"{d.prefix[len(ROOT) :]}{d.kind.value}" for d in by_listing] == expected, f"+{seconds:g}s"
        assert listing.state.datasets == events.state.datasets

    put_many(s3_client, BUCKET, {f"{hero}{i} pose+{i}.png": png_bytes(i) for i in range(5)})
    put_many(s3_client, BUCKET, {f"{villain}{i}.jpg": png_bytes(100 + i) for i in range(6)})
    step(0, ["hero/waiting", "villain/waiting"])
    multipart_upload(s3_client, BUCKET, f"{hero}big render.png", seed=7)
    step(30, ["hero/waiting", "villain/waiting"])
    step(60, ["hero/waiting", "villain/ready"])
    step(90, ["hero/ready"])
    for _ in range(3):
        step(150, [])

    # Noise only: nothing to retrain.
    put_many(
        s3_client,
        BUCKET,
        {f"{hero}notes.txt": b"hi", f"{hero}empty.png": b"", f"{villain}.DS_Store": b"x", "drafts/x.png": png_bytes()},
    )
    step(200, [])

    # A deletion in one dataset and a sidecar in the other.
    s3_client.delete_object(Bucket=BUCKET, Key=f"{villain}0.jpg")
    put_many(s3_client, BUCKET, {f"{hero}scenario.json": json.dumps({"type": "flux.2-dev-lora"}).encode()})
    step(300, ["hero/waiting", "villain/waiting"])
    step(360, ["hero/ready", "villain/ready"])

    # An overwrite with new content, then a zero-byte overwrite of another image.
    put_png(s3_client, BUCKET, f"{hero}0 pose+0.png", seed=999)
    s3_client.put_object(Bucket=BUCKET, Key=f"{hero}1 pose+1.png", Body=b"")
    step(400, ["hero/waiting"])
    step(460, ["hero/ready"])
    step(520, [])

    assert listing.requested == events.requested and len(set(events.requested)) == 5
    assert isinstance(listing.mode, ListingDiscovery) and isinstance(events.mode, NotificationDiscovery)
    # 13 cycles: list mode paid for every object every time; notifications mode for what changed.
    assert listing.mode.requests["ListObjectsV2"] >= 13 * 3
    assert events.mode.requests["ReceiveMessage"] <= 13 + 8


def test_both_modes_ignore_sidecar_edits_when_configured(s3_client: Any, sqs_client: Any) -> None:
    make_bucket(s3_client, BUCKET)
    url = notify_queue(s3_client, sqs_client, BUCKET, prefix=ROOT)
    sensors = [Sensor(ListingDiscovery(s3_client, BUCKET, ROOT)), Sensor(queue_discovery(sqs_client, url))]
    put_many(s3_client, BUCKET, [f"{ROOT}hero/{i}.png" for i in range(3)])
    for seconds in (0, 60):
        assert _key(sensors[0].cycle(T0 + timedelta(seconds=seconds), ignore_sidecar_edits=True)) == _key(
            sensors[1].cycle(T0 + timedelta(seconds=seconds), ignore_sidecar_edits=True)
        )
    put_many(s3_client, BUCKET, {f"{ROOT}hero/scenario.yaml": b"type: zimage-lora\n", f"{ROOT}hero/pairs.jsonl": b"\n"})
    for seconds in (100, 200):
        now = T0 + timedelta(seconds=seconds)
        assert (
            sensors[0].cycle(now, ignore_sidecar_edits=True) == sensors[1].cycle(now, ignore_sidecar_edits=True) == []
        )
    assert len(sensors[0].requested) == len(sensors[1].requested) == 1


def test_notifications_seeded_by_one_listing_know_the_older_images(s3_client: Any, sqs_client: Any) -> None:
    make_bucket(s3_client, BUCKET)
    put_many(s3_client, BUCKET, [f"{ROOT}hero/{i}.png" for i in range(5)])  # before the queue existed
    url = notify_queue(s3_client, sqs_client, BUCKET, prefix=ROOT)
    sensor = Sensor(queue_discovery(sqs_client, url))
    assert sensor.state.listed_at is None  # never listed: seed first
    state, _ = decide(sensor.state, list_objects(s3_client, BUCKET, ROOT), T0, quiet_period=60)
    sensor.state = state
    assert state.listed_at == T0
    put_png(s3_client, BUCKET, f"{ROOT}hero/5.png", seed=5)
    sensor.cycle(T0 + timedelta(seconds=30))
    (ready,) = sensor.cycle(T0 + timedelta(seconds=90))
    assert ready.kind is DecisionKind.READY and ready.image_count == 6


def test_a_listing_and_a_change_set_are_the_two_observations() -> None:
    assert Listing(BUCKET, ROOT, ()).requests == 0
    assert ChangeSet(BUCKET, ROOT).drained


@pytest.mark.parametrize("module", [discovery, listing, notifications], ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_module_examples_run(module: Any) -> None:
    assert doctest.testmod(module).failed == 0
