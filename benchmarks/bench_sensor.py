"""Sensor: one poll over a prefix of 1,000 and of 10,000 objects after 10 new ones arrived.

``list`` mode lists the whole root (``ListingDiscovery``) and diffs it against the
state; ``notifications`` mode reads the bucket's S3 events from SQS
(``NotificationDiscovery``), applies them and deletes them. Both then run the same
pure ``decide``. Each mode keeps its own state, seeded with one listing as the
sensor does; both must end up tracking the same objects.

Requests are what S3 and SQS would bill; the time is moto's (it scans the whole
bucket to list a prefix, so list-mode seconds are pessimistic, the request count is
not). Runs on its own moto server; needs no Prefect.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from benchmarks._common import (
    REPS,
    ListingDiscovery,
    NotificationDiscovery,
    Row,
    SensorState,
    aws_client,
    decide,
    median,
    moto_server,
    pick,
    run_alone,
)

BASELINE = "`list` mode (the contender is `notifications` mode)"
SIZES: tuple[int, ...] = pick((1_000, 10_000), (60,))
NEW: int = pick(10, 2)
ROOT = "curated/"
QUIET = 60.0  # long enough that no dataset becomes ready during the benchmark


def _put_many(s3: Any, bucket: str, keys: list[str]) -> None:
    # moto takes ~200 puts a second one at a time; threads bring it to ~650.
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=key.encode()), keys))


def _notify(s3: Any, sqs: Any, bucket: str) -> str:
    """Send the bucket's created/removed events under the root to a new queue; return its URL."""
    url = str(sqs.create_queue(QueueName=f"{bucket}-events")["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = {"Key": {"FilterRules": [{"Name": "prefix", "Value": ROOT}]}}
    config = {"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"], "Filter": rule}
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [config]})
    return url


def _tracked(state: Any) -> int:
    return sum(len(d.objects) for d in state.datasets.values())


def bench_size(s3: Any, sqs: Any, size: int) -> list[Row]:
    bucket = f"bench-{size}"
    s3.create_bucket(Bucket=bucket)
    # 50 images per dataset: the most a LoRA takes.
    _put_many(s3, bucket, [f"{ROOT}ds-{i // 50:04d}/img-{i % 50:02d}.png" for i in range(size)])
    # Connected after loading, as for an existing bucket: the queue holds only new events.
    queue = _notify(s3, sqs, bucket)
    listing = ListingDiscovery(s3, bucket, ROOT)
    events = NotificationDiscovery(sqs, queue, bucket, ROOT, wait_time_seconds=1)
    seed, _ = decide(SensorState(bucket=bucket, prefix=ROOT), listing.discover(), datetime.now(UTC), quiet_period=QUIET)
    events.ack(events.discover())  # the s3:TestEvent sent when the configuration was saved
    states = {"list": seed, "notifications": seed}
    runs: dict[str, list[tuple[int, float]]] = {"list": [], "notifications": []}

    def poll(mode: str) -> None:
        discovery = listing if mode == "list" else events
        before = sum(discovery.requests.values())
        started = time.monotonic()
        observed = discovery.discover()
        states[mode], _ = decide(states[mode], observed, datetime.now(UTC), quiet_period=QUIET)
        discovery.ack(observed)  # after the state is saved, in a real sensor
        runs[mode].append((sum(discovery.requests.values()) - before, time.monotonic() - started))

    for rep in range(REPS):
        _put_many(s3, bucket, [f"{ROOT}new-{rep:02d}/img-{k:02d}.png" for k in range(NEW)])
        for mode in ("list", "notifications") if rep % 2 == 0 else ("notifications", "list"):
            poll(mode)
        expected = size + NEW * (rep + 1)
        if {_tracked(s) for s in states.values()} != {expected}:
            raise RuntimeError(f"the modes disagree: {[_tracked(s) for s in states.values()]} != {expected}")

    # One more poll with nothing new: what every quiet cycle costs.
    idle: dict[str, float] = {}
    for mode in ("list", "notifications"):
        poll(mode)
        idle[mode] = runs[mode].pop()[0]

    def med(mode: str, index: int) -> float:
        return median([run[index] for run in runs[mode]])

    def per_object(mode: str) -> float:
        return len(states[mode].to_json()) / _tracked(states[mode])

    def row(metric: str, unit: str, contender: float, baseline: float, **options: Any) -> Row:
        return Row("sensor", f"{size:,} objects", metric, unit, contender, baseline, **options)

    ten_thousand = 0.1 if size == max(SIZES) else None
    return [
        row("poll requests", "req", med("notifications", 0), med("list", 0), limit=ten_thousand, note=f"{NEW} new"),
        row("poll time", "s", med("notifications", 1), med("list", 1), note="moto's seconds"),
        row("idle poll requests", "req", idle["notifications"], idle["list"], note="nothing new"),
        row("state bytes per tracked object", "B", per_object("notifications"), per_object("list")),
    ]


def run() -> list[dict[str, Any]]:
    with moto_server() as endpoint:
        s3, sqs = aws_client("s3", endpoint), aws_client("sqs", endpoint)
        rows = [row for size in SIZES for row in bench_size(s3, sqs, size)]
    return [r.to_dict() for r in rows]


if __name__ == "__main__":
    run_alone(run)
