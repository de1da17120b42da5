"""The ``list`` discovery mode: ListObjectsV2 over the whole root, a complete snapshot each time.

One request per 1,000 keys (S3's page ceiling, see the ListObjectsV2 API reference); the
snapshot is diffed against the stored manifests by
:func:`prefect_scenario.retraining.decisions.decide`. Cost grows with the bucket; nothing
to set up; self-healing. Requests are counted (``requests``) so benchmarks can report
cost in requests rather than in moto's seconds.

The sensor's ``list`` discovery mode (:class:`prefect_scenario.retraining.discovery.ListingDiscovery`)
and the S3 preflight both list through :func:`list_objects`.

Example:
    >>> import boto3  # doctest: +SKIP
    >>> listing = list_objects(boto3.client("s3"), "studio-assets", "curated/")  # doctest: +SKIP
    >>> listing.requests  # doctest: +SKIP
    1
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

from prefect_scenario.dataset.layout import S3Object, normalize_etag, normalize_prefix

__all__ = ["MAX_PAGE_SIZE", "Listing", "S3ListClient", "list_objects"]

MAX_PAGE_SIZE = 1000  # S3 returns at most 1,000 keys per ListObjectsV2 request


class S3ListClient(Protocol):
    """The part of a boto3 S3 client that listing uses."""

    def list_objects_v2(self, **kwargs: Any) -> Any: ...


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
