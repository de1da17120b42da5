"""Finding what an earlier attempt of a run already did, so a retry never does it twice.

A run's idempotency key is recorded on its model as the tag ``psc-<key>``.

Example:
    >>> idempotency_tag("abc")
    'psc-abc'
"""

from __future__ import annotations

__all__ = ["IDEMPOTENCY_TAG_PREFIX", "idempotency_tag"]

IDEMPOTENCY_TAG_PREFIX = "psc-"


def idempotency_tag(key: str) -> str:
    """The model tag that records a run's idempotency key."""
    return f"{IDEMPOTENCY_TAG_PREFIX}{key}"
