"""The ``notifications`` discovery mode: S3 events read from an SQS queue.

S3 event notifications (or EventBridge events, or either wrapped by SNS) are delivered to
an SQS queue (see the S3 User Guide, "Amazon S3 Event Notifications", and its event
message structure) and read with long polling. The result is a :class:`ChangeSet`, one
change per key. Cost grows with what changed, not with the bucket: an idle cycle is one
``ReceiveMessage``. Messages are deleted by ``ack()`` only, so a crash before the state is
saved redelivers them after the queue's visibility timeout; applying a change twice is
harmless. Events only say what changed after the queue was connected: seed the state with
one listing first (:mod:`prefect_scenario.dataset.listing`).

Example:
    >>> changes = parse_message('{"Records": [{"eventName": "ObjectCreated:Put", '
    ...     '"s3": {"bucket": {"name": "b"}, "object": {"key": "c%2Fred+flower.png", "size": 3, "eTag": "e"}}}]}')
    >>> changes[0].key, changes[0].removed
    ('c/red flower.png', False)
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import unquote_plus

from prefect_scenario.dataset.layout import normalize_etag, normalize_prefix
from prefect_scenario.dataset.listing import Listing

__all__ = ["ChangeSet", "NotificationDiscovery", "ObjectChange", "SQSClient", "merge_changes", "parse_message"]

_SQS_BATCH = 10  # ReceiveMessage and DeleteMessageBatch take at most 10 messages
_MAX_WAIT_SECONDS = 20  # SQS's long-polling ceiling
_logger = logging.getLogger(__name__)


class SQSClient(Protocol):
    """The part of a boto3 SQS client that the notification mode uses."""

    def receive_message(self, **kwargs: Any) -> Any: ...

    def delete_message_batch(self, **kwargs: Any) -> Any: ...


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


def _size(obj: Mapping[str, Any]) -> int | None:
    """An event's object size; None when the event leaves it out (S3 does for removals)."""
    value = obj.get("size")
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


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
        size=_size(obj),
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
        size=_size(obj),
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


@dataclass
class _Read:
    """What one ``discover()`` has read so far."""

    changes: list[ObjectChange] = field(default_factory=list)
    # MessageId -> its latest receipt handle.
    receipts: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    requests: int = 0
    received: int = 0
    drained: bool = False


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
        logger: Where skipped messages are logged (default: this module's logger); the
            sensor flow passes its run logger so they show in the Prefect UI.

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
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
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
        self.logger = logger or _logger
        self.requests: Counter[str] = Counter()

    def _receive(self, count: int, wait: int) -> list[Mapping[str, Any]]:
        kwargs: dict[str, Any] = {"QueueUrl": self.queue_url, "MaxNumberOfMessages": count, "WaitTimeSeconds": wait}
        if self.visibility_timeout is not None:
            kwargs["VisibilityTimeout"] = self.visibility_timeout
        response = self.client.receive_message(**kwargs)
        self.requests["ReceiveMessage"] += 1
        return list(response.get("Messages") or ())

    def discover(self) -> ChangeSet:
        """Read the queue; return the changes under the root, one per key.

        A message that cannot be read (not JSON, not an S3 or EventBridge event) is logged
        at WARNING with the reason, listed in ``skipped`` and acked with the rest: one that
        can never be read would otherwise come back every cycle.
        """
        read = _Read()
        wait = self.wait_time_seconds
        while read.received < self.max_messages:
            batch = self._receive(min(_SQS_BATCH, self.max_messages - read.received), wait)
            read.requests += 1
            # Later receives do not wait: the queue was just seen non-empty, and an empty
            # answer now means this cycle's work is done.
            wait = 0
            if not batch:
                read.drained = True
                break
            for message in batch:
                self._take(message, read)
        ours = [c for c in read.changes if c.bucket == self.bucket and c.key.startswith(self.prefix)]
        return ChangeSet(
            bucket=self.bucket,
            prefix=self.prefix,
            changes=merge_changes(ours),
            receipt_handles=tuple(read.receipts.values()),
            drained=read.drained,
            requests=read.requests,
            messages=len(read.receipts),
            records=len(read.changes),
            skipped=tuple(read.skipped),
        )

    def _take(self, message: Mapping[str, Any], read: _Read) -> None:
        read.received += 1
        handle = str(message["ReceiptHandle"])
        message_id = str(message.get("MessageId") or handle)
        seen = message_id in read.receipts
        # A message received twice (its visibility timeout ran out during a long read) can
        # only be deleted with its newest receipt handle.
        read.receipts[message_id] = handle
        if seen:
            return
        try:
            body = str(message.get("Body", ""))
            read.changes.extend(parse_message(body, decode_eventbridge_keys=self.decode_eventbridge_keys))
        except ValueError as exc:
            reason = f"message {message_id}: {exc}"
            self.logger.warning("SQS %s; skipped, and deleted with this batch", reason)
            read.skipped.append(reason)

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
