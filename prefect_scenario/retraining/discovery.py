"""Finding what changed under a root prefix: by listing the bucket, or from S3 events in SQS.

Two modes, one contract (:class:`Discovery`): ``discover()`` returns what was seen,
:func:`prefect_scenario.retraining.decisions.decide` turns it into decisions, and ``ack()`` is
called only after the caller has committed the new state.

``list`` (:class:`ListingDiscovery`)
    ListObjectsV2 over the whole root, one request per 1,000 keys, returned as a
    :class:`Listing` (a complete snapshot); ``decide`` diffs it against the stored
    manifests. Cost grows with the bucket; nothing to set up; self-healing.

``notifications`` (:class:`NotificationDiscovery`)
    S3 event notifications (or EventBridge events, or either wrapped by SNS) delivered to
    an SQS queue and read with long polling, returned as a :class:`ChangeSet` (one change
    per key). Cost grows with what changed, not with the bucket: an idle cycle is one
    ``ReceiveMessage``. Messages are deleted by ``ack()`` only, so a crash before the
    state is saved redelivers them (after the queue's visibility timeout); applying a
    change twice is harmless. Seed the state with one listing first: events only say
    what changed after the queue was connected.

Both count the requests they make (``requests``, per operation) so benchmarks can
report cost in requests rather than in moto's seconds.

Example:
    >>> changes = parse_message('{"Records": [{"eventName": "ObjectCreated:Put", '
    ...     '"s3": {"bucket": {"name": "b"}, "object": {"key": "c%2Fred+flower.png", "size": 3, "eTag": "e"}}}]}')
    >>> changes[0].key, changes[0].removed
    ('c/red flower.png', False)
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import unquote_plus

from prefect_scenario.retraining.datasets import S3Object, normalize_etag, normalize_prefix

__all__ = [
    "MAX_PAGE_SIZE",
    "ChangeSet",
    "Discovery",
    "Listing",
    "ListingDiscovery",
    "NotificationDiscovery",
    "ObjectChange",
    "S3ListClient",
    "SQSClient",
    "list_objects",
    "merge_changes",
    "parse_message",
]

MAX_PAGE_SIZE = 1000  # S3 returns at most 1,000 keys per ListObjectsV2 request
_SQS_BATCH = 10  # ReceiveMessage and DeleteMessageBatch take at most 10 messages
_MAX_WAIT_SECONDS = 20  # SQS's long-polling ceiling


class S3ListClient(Protocol):
    """The part of a boto3 S3 client that listing uses."""

    def list_objects_v2(self, **kwargs: Any) -> Any: ...


class SQSClient(Protocol):
    """The part of a boto3 SQS client that the notification mode uses."""

    def receive_message(self, **kwargs: Any) -> Any: ...

    def delete_message_batch(self, **kwargs: Any) -> Any: ...


# -- what discovery returns ------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    """Every object under ``prefix`` at one moment: a complete snapshot.

    ``prefix`` is the sensor's root or one dataset prefix under it; datasets under it
    that the snapshot does not mention have been deleted.
    """

    bucket: str
    prefix: str
    objects: tuple[S3Object, ...]
    requests: int = 0


@dataclass(frozen=True)
class ObjectChange:
    """One key created, overwritten or removed, as an event reported it.

    ``etag`` and ``size`` are None when the event does not carry them (S3 leaves them out
    of removals). ``sequencer`` orders events for one key (S3's own ordering token).
    """

    bucket: str
    key: str
    removed: bool
    etag: str | None = None
    size: int | None = None
    event_name: str = ""
    event_time: str | None = None
    sequencer: str | None = None


@dataclass(frozen=True)
class ChangeSet:
    """What changed since the last acknowledged batch: at most one change per key.

    Attributes:
        bucket: The bucket the changes are about (others' events are dropped).
        prefix: The root prefix the changes are about.
        changes: One change per key, the newest, sorted by key.
        receipt_handles: The SQS messages to delete once the caller has committed.
        drained: False when the read stopped at ``max_messages``: more may be queued,
            so no dataset should be judged quiet from this batch.
        requests: ``ReceiveMessage`` requests made for this batch.
        messages: Distinct messages received (including test events and skipped ones).
        records: Object records read, before de-duplication.
        skipped: Why messages were skipped (unreadable bodies, unknown formats).
    """

    bucket: str
    prefix: str
    changes: tuple[ObjectChange, ...] = ()
    receipt_handles: tuple[str, ...] = ()
    drained: bool = True
    requests: int = 0
    messages: int = 0
    records: int = 0
    skipped: tuple[str, ...] = ()


class Discovery(Protocol):
    """A discovery mode: ``discover()``, then (after the caller commits) ``ack()``."""

    requests: Counter[str]

    def discover(self) -> Listing | ChangeSet: ...

    def ack(self, observed: Listing | ChangeSet) -> int: ...


# -- list mode ------------------------------------------------------------------------


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def list_objects(
    client: S3ListClient,
    bucket: str,
    prefix: str = "",
    *,
    page_size: int = MAX_PAGE_SIZE,
    counter: Counter[str] | None = None,
) -> Listing:
    """List every object under ``prefix`` with ListObjectsV2, one request per page.

    Args:
        client: A boto3 S3 client.
        bucket: The bucket.
        prefix: The prefix to list (normalised to end with ``/``).
        page_size: Keys per request, 1–1,000 (``MaxKeys``); S3's own ceiling is 1,000.
        counter: Adds ``ListObjectsV2`` request counts here too.

    Returns:
        The snapshot, with ``requests`` = the number of ListObjectsV2 calls made.

    Raises:
        ValueError: ``page_size`` outside 1–1,000.

    Example:
        >>> import boto3  # doctest: +SKIP
        >>> list_objects(boto3.client("s3"), "studio-assets", "curated/").requests  # doctest: +SKIP
        1
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}; got {page_size}")
    prefix = normalize_prefix(prefix)
    objects: list[S3Object] = []
    requests = 0
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size}
        if token:
            kwargs["ContinuationToken"] = token
        page = client.list_objects_v2(**kwargs)
        requests += 1
        if counter is not None:
            counter["ListObjectsV2"] += 1
        for item in page.get("Contents", ()):
            objects.append(S3Object(item["Key"], normalize_etag(str(item.get("ETag", ""))), _as_int(item.get("Size"))))
        token = page.get("NextContinuationToken")
        # A truncated page always carries a token; trusting IsTruncated alone could loop forever
        # on a misbehaving endpoint, trusting the token alone could stop early on one that omits it.
        if not page.get("IsTruncated") or not token:
            break
    return Listing(bucket=bucket, prefix=prefix, objects=tuple(objects), requests=requests)


class ListingDiscovery:
    """The ``list`` mode: a full ListObjectsV2 pass over the root on every ``discover()``.

    Example:
        >>> import boto3  # doctest: +SKIP
        >>> discovery = ListingDiscovery(boto3.client("s3"), "studio-assets", "curated/")  # doctest: +SKIP
        >>> listing = discovery.discover()  # doctest: +SKIP
        >>> discovery.requests["ListObjectsV2"]  # doctest: +SKIP
        1
    """

    def __init__(self, client: S3ListClient, bucket: str, prefix: str, *, page_size: int = MAX_PAGE_SIZE) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = normalize_prefix(prefix)
        self.page_size = page_size
        self.requests: Counter[str] = Counter()

    def discover(self) -> Listing:
        """List the root."""
        return list_objects(self.client, self.bucket, self.prefix, page_size=self.page_size, counter=self.requests)

    def list_dataset(self, prefix: str) -> Listing:
        """List one dataset prefix: a cheap re-sync of one dataset, e.g. after lost events."""
        return list_objects(self.client, self.bucket, prefix, page_size=self.page_size, counter=self.requests)

    def ack(self, observed: Listing | ChangeSet) -> int:
        """Nothing to acknowledge: a listing consumes nothing."""
        return 0


# -- notifications mode -------------------------------------------------------------------


def _s3_record(record: Mapping[str, Any]) -> ObjectChange | None:
    event_name = str(record.get("eventName", ""))
    s3 = record.get("s3")
    if not isinstance(s3, Mapping) or not event_name.startswith(("ObjectCreated", "ObjectRemoved")):
        return None
    obj = s3.get("object") or {}
    # S3 URL-encodes keys in notifications ("red flower.jpg" arrives as "red+flower.jpg").
    key = unquote_plus(str(obj.get("key", "")))
    etag = obj.get("eTag")
    return ObjectChange(
        bucket=str((s3.get("bucket") or {}).get("name", "")),
        key=key,
        removed=event_name.startswith("ObjectRemoved"),
        etag=normalize_etag(str(etag)) if etag else None,
        size=_as_int(obj["size"]) if obj.get("size") is not None else None,
        event_name=event_name,
        event_time=record.get("eventTime"),
        sequencer=obj.get("sequencer"),
    )


_EVENTBRIDGE_TYPES = {"Object Created": False, "Object Deleted": True}


def _eventbridge_event(event: Mapping[str, Any], decode_keys: bool) -> ObjectChange | None:
    removed = _EVENTBRIDGE_TYPES.get(str(event.get("detail-type")))
    detail = event.get("detail")
    if removed is None or not isinstance(detail, Mapping):
        return None
    obj = detail.get("object") or {}
    key = str(obj.get("key", ""))
    etag = obj.get("etag") or obj.get("eTag")
    time = event.get("time")
    if isinstance(time, int | float):
        time = datetime.fromtimestamp(time, UTC).isoformat()
    return ObjectChange(
        bucket=str((detail.get("bucket") or {}).get("name", "")),
        key=unquote_plus(key) if decode_keys else key,
        removed=removed,
        etag=normalize_etag(str(etag)) if etag else None,
        size=_as_int(obj["size"]) if obj.get("size") is not None else None,
        event_name=f"{event.get('detail-type')}:{detail.get('reason', '')}",
        event_time=str(time) if time is not None else None,
        sequencer=obj.get("sequencer"),
    )


def parse_message(body: str, *, decode_eventbridge_keys: bool = False) -> list[ObjectChange]:
    """The object changes in one SQS message body (S3 notification, EventBridge or SNS-wrapped).

    ``s3:TestEvent`` (sent when a notification configuration is saved) and events other
    than created/removed give no changes. S3 notification keys are URL-decoded with
    ``unquote_plus``. EventBridge keys are taken as they come unless
    ``decode_eventbridge_keys`` (moto sends them unencoded).

    Raises:
        ValueError: the body is not JSON or not a recognised event format.

    Example:
        >>> parse_message('{"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}')
        []
    """
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg}") from None
    if isinstance(document, Mapping) and document.get("Type") == "Notification" and "Message" in document:
        return parse_message(str(document["Message"]), decode_eventbridge_keys=decode_eventbridge_keys)
    if not isinstance(document, Mapping):
        raise ValueError(f"expected a JSON object, got {type(document).__name__}")
    if document.get("Event") == "s3:TestEvent":
        return []
    if isinstance(document.get("Records"), list):
        changes = [_s3_record(r) for r in document["Records"] if isinstance(r, Mapping)]
        return [c for c in changes if c is not None]
    if document.get("source") == "aws.s3" and "detail-type" in document:
        change = _eventbridge_event(document, decode_eventbridge_keys)
        return [change] if change is not None else []
    raise ValueError("neither an S3 event notification nor an EventBridge S3 event")


def _is_newer(candidate: ObjectChange, current: ObjectChange) -> bool:
    a, b = candidate.sequencer, current.sequencer
    if a and b and a != b:
        # S3's rule: pad the shorter sequencer with leading zeros, then compare as strings.
        width = max(len(a), len(b))
        return a.upper().rjust(width, "0") > b.upper().rjust(width, "0")
    return True  # no order from S3: the later delivery wins


def merge_changes(changes: Iterable[ObjectChange]) -> tuple[ObjectChange, ...]:
    """One change per (bucket, key): the newest by S3's sequencer, else the last delivered.

    This is what folds the two records of a multipart upload (``Put`` style and
    ``CompleteMultipartUpload``, same key and ETag) into one change.

    Example:
        >>> a = ObjectChange("b", "k.png", False, "e1", 1, sequencer="0A")
        >>> b = ObjectChange("b", "k.png", True, sequencer="09")
        >>> merge_changes([a, b]) == (a,)
        True
    """
    newest: dict[tuple[str, str], ObjectChange] = {}
    for change in changes:
        slot = (change.bucket, change.key)
        current = newest.get(slot)
        if current is None or _is_newer(change, current):
            newest[slot] = change
    return tuple(newest[slot] for slot in sorted(newest))


class NotificationDiscovery:
    """The ``notifications`` mode: S3 events read from an SQS queue with long polling.

    ``discover()`` long-polls once (``wait_time_seconds``: an idle cycle costs one request
    and returns as soon as something arrives), then keeps receiving without waiting
    while messages keep coming, up to ``max_messages``. Nothing is deleted until
    ``ack(changes)``.

    Args:
        client: A boto3 SQS client.
        queue_url: The queue the bucket's notifications go to (one queue per sensor:
            ``ack`` deletes every message it read, including other buckets' events).
        bucket: The bucket to watch; other buckets' events are dropped.
        prefix: The root prefix; events for keys outside it are dropped.
        wait_time_seconds: Long-polling wait of the first receive, 0–20.
        max_messages: Upper bound on messages read per ``discover()``.
        visibility_timeout: Seconds a read message stays hidden before redelivery if not
            acked; None keeps the queue's setting (30 s by default). Make it longer than
            one whole cycle (read, decide, create runs, save, ack), or messages come back
            while still being handled: harmless, but paid for again.
        decode_eventbridge_keys: URL-decode EventBridge keys as well.

    Example:
        >>> import boto3  # doctest: +SKIP
        >>> sqs = boto3.client("sqs")  # doctest: +SKIP
        >>> discovery = NotificationDiscovery(sqs, QUEUE_URL, "studio-assets", "curated/")  # doctest: +SKIP
        >>> changes = discovery.discover()  # doctest: +SKIP
        >>> ...  # decide, create runs, save the state  # doctest: +SKIP
        >>> discovery.ack(changes)  # doctest: +SKIP
    """

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        bucket: str,
        prefix: str,
        *,
        wait_time_seconds: int = _MAX_WAIT_SECONDS,
        max_messages: int = 1000,
        visibility_timeout: int | None = None,
        decode_eventbridge_keys: bool = False,
    ) -> None:
        if not 0 <= wait_time_seconds <= _MAX_WAIT_SECONDS:
            raise ValueError(f"wait_time_seconds must be between 0 and {_MAX_WAIT_SECONDS}; got {wait_time_seconds}")
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1; got {max_messages}")
        self.client = client
        self.queue_url = queue_url
        self.bucket = bucket
        self.prefix = normalize_prefix(prefix)
        self.wait_time_seconds = wait_time_seconds
        self.max_messages = max_messages
        self.visibility_timeout = visibility_timeout
        self.decode_eventbridge_keys = decode_eventbridge_keys
        self.requests: Counter[str] = Counter()

    def _receive(self, count: int, wait: int) -> list[Mapping[str, Any]]:
        kwargs: dict[str, Any] = {"QueueUrl": self.queue_url, "MaxNumberOfMessages": count, "WaitTimeSeconds": wait}
        if self.visibility_timeout is not None:
            kwargs["VisibilityTimeout"] = self.visibility_timeout
        response = self.client.receive_message(**kwargs)
        self.requests["ReceiveMessage"] += 1
        return list(response.get("Messages") or ())

    def discover(self) -> ChangeSet:
        """Read the queue; return the changes under the root, one per key."""
        changes: list[ObjectChange] = []
        # MessageId -> the latest receipt handle: a message received twice (its visibility
        # timeout ran out during a long read) can only be deleted with its newest handle.
        receipts: dict[str, str] = {}
        skipped: list[str] = []
        requests = received = 0
        drained = False
        wait = self.wait_time_seconds
        while received < self.max_messages:
            batch = self._receive(min(_SQS_BATCH, self.max_messages - received), wait)
            requests += 1
            # Later receives do not wait: the queue was just seen non-empty, and an empty
            # answer now means this cycle's work is done.
            wait = 0
            if not batch:
                drained = True
                break
            for message in batch:
                received += 1
                handle = str(message["ReceiptHandle"])
                message_id = str(message.get("MessageId") or handle)
                seen = message_id in receipts
                receipts[message_id] = handle
                if seen:
                    continue
                try:
                    changes.extend(
                        parse_message(
                            str(message.get("Body", "")), decode_eventbridge_keys=self.decode_eventbridge_keys
                        )
                    )
                except ValueError as exc:
                    # Acked with the rest: a message that can never be read would otherwise
                    # come back every cycle. The caller logs ``skipped``.
                    skipped.append(f"message {message_id}: {exc}")
        ours = [c for c in changes if c.bucket == self.bucket and c.key.startswith(self.prefix)]
        return ChangeSet(
            bucket=self.bucket,
            prefix=self.prefix,
            changes=merge_changes(ours),
            receipt_handles=tuple(receipts.values()),
            drained=drained,
            requests=requests,
            messages=len(receipts),
            records=len(changes),
            skipped=tuple(skipped),
        )

    def ack(self, observed: Listing | ChangeSet) -> int:
        """Delete the messages behind ``observed``; call only after the new state is saved.

        Returns:
            How many messages were deleted. Failed deletes are not raised: the messages
            come back after the visibility timeout and re-applying them changes nothing.
        """
        if not isinstance(observed, ChangeSet):
            return 0
        deleted = 0
        handles = observed.receipt_handles
        for start in range(0, len(handles), _SQS_BATCH):
            chunk = handles[start : start + _SQS_BATCH]
            entries = [{"Id": str(i), "ReceiptHandle": handle} for i, handle in enumerate(chunk)]
            response = self.client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            self.requests["DeleteMessageBatch"] += 1
            deleted += len(response.get("Successful") or ())
        return deleted
