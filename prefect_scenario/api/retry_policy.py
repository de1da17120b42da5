"""Which failures are worth retrying, and how long to wait: pure decisions.

Shared by the client (which retries only requests that are safe to repeat) and
by the Prefect tasks (whose ``retry_condition_fn`` and delays come from here, so
retries show in the Prefect UI). The policy follows the official SDK: 408, 409,
429 and 5xx and dropped connections are transient; ``x-should-retry`` overrides
the status; ``retry-after-ms`` / ``Retry-After`` is honoured when it is between 0
and 60 s; otherwise a capped exponential backoff with jitter.

Example:
    >>> retry_delay(0, retry_after=2.5)
    2.5
    >>> 0.375 <= retry_delay(0, jitter=0.75) <= 0.5
    True
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping

from prefect_scenario.exceptions import (
    APIConnectionError,
    APIStatusError,
    InvalidInputError,
)

__all__ = [
    "INITIAL_DELAY",
    "MAX_DELAY",
    "MAX_RETRY_AFTER",
    "is_transient",
    "is_transient_status",
    "parse_retry_after",
    "parse_should_retry",
    "retry_delay",
]

INITIAL_DELAY = 0.5
MAX_DELAY = 8.0
MAX_RETRY_AFTER = 60.0
_TRANSIENT_STATUSES = frozenset({408, 409, 429})


def parse_should_retry(headers: Mapping[str, str]) -> bool | None:
    """The server's ``x-should-retry`` verdict: True, False, or None when it gave none."""
    value = headers.get("x-should-retry")
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms``, then ``Retry-After``), or None."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return float(raw_ms) / 1000.0
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        parsed = email.utils.parsedate_tz(raw)
        if parsed is None:
            return None
        return float(email.utils.mktime_tz(parsed)) - (time.time() if now is None else now)


def is_transient_status(status_code: int, should_retry: bool | None = None) -> bool:
    """Whether an HTTP error status is worth retrying, the server's verdict first."""
    if should_retry is not None:
        return should_retry
    return status_code in _TRANSIENT_STATUSES or status_code >= 500


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is a failure that a later attempt may not meet.

    Bad input, authentication and other 4xx answers are final: retrying them
    only spends time (and, for a 401, risks locking the key).
    """
    if isinstance(error, InvalidInputError):
        return False
    if isinstance(error, APIStatusError):
        return is_transient_status(error.status_code or 0, error.should_retry)
    if isinstance(error, APIConnectionError):
        return error.should_retry is not False
    return False


def retry_delay(
    retries_made: int,
    *,
    retry_after: float | None = None,
    jitter: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before the next attempt.

    Args:
        retries_made: how many retries were already made (0 before the first).
        retry_after: what the server asked for; used when 0 < value <= 60 s.
        jitter: a factor in (0.75, 1]; drawn from ``rng`` when not given.
        rng: the random source for the jitter (seed it in tests).
    """
    if retry_after is not None and 0 < retry_after <= MAX_RETRY_AFTER:
        return retry_after
    if jitter is None:
        jitter = 1.0 - 0.25 * (rng or random).random()
    return min(INITIAL_DELAY * 2.0**retries_made, MAX_DELAY) * jitter
