"""Finding what changed under a root prefix: by listing the bucket, or from S3 events in SQS.

Two modes, one contract (:class:`Discovery`): ``discover()`` returns what was seen,
:func:`prefect_scenario.retraining.decisions.decide` turns it into decisions, and ``ack()`` is
called only after the caller has committed the new state.

``list`` (:class:`ListingDiscovery`)
    ListObjectsV2 over the whole root, one request per 1,000 keys, returned as a
    :class:`~prefect_scenario.dataset.listing.Listing` (a complete snapshot). Cost
    grows with the bucket; nothing to set up; self-healing.

``notifications`` (:class:`~prefect_scenario.retraining.notifications.NotificationDiscovery`)
    S3 event notifications delivered to an SQS queue and read with long polling,
    returned as a :class:`~prefect_scenario.retraining.notifications.ChangeSet` (one
    change per key). Cost grows with what changed, not with the bucket.

Both count the requests they make (``requests``, per operation) so benchmarks can
report cost in requests rather than in moto's seconds. This module re-exports both
modes' public names.

Example:
    >>> parse_message('{"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}')
    []
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from prefect_scenario.dataset.layout import normalize_prefix
from prefect_scenario.dataset.listing import MAX_PAGE_SIZE, Listing, S3ListClient, list_objects
from prefect_scenario.retraining.notifications import (
    ChangeSet,
    NotificationDiscovery,
    ObjectChange,
    SQSClient,
    merge_changes,
    parse_message,
)

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


class Discovery(Protocol):
    """A discovery mode: ``discover()``, then (after the caller commits) ``ack()``."""

    requests: Counter[str]

    def discover(self) -> Listing | ChangeSet: ...

    def ack(self, observed: Listing | ChangeSet) -> int: ...


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
