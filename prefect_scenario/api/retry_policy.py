"""Whether to send a failed request again, and after how long: the one retry policy.

The client (:mod:`prefect_scenario.api.client`) is the only layer that retries; the
Prefect tasks have no retries of their own, so attempts never multiply. Two kinds of
call:

- **safe to repeat** (reads, get-bulk, tags, pairs, cancel, dry runs): a transient
  failure is sent again, up to ``max_retries`` times;
- **sent once** (create a model, add a training image, trigger a training: they create
  things or spend credits, and the API has no idempotency parameter): sent again only
  after a *reconcile* step has looked for what the first attempt did and found nothing.
  A 429 answer proves nothing happened, so it needs no reconcile; a timed-out call may
  still land, so the reconcile first waits as long again as the client waited.

Transient: 408, 409, 429 (not a plan limit), 5xx, timeouts and dropped connections,
with the server's ``x-should-retry`` first, as the official SDK decides
(``scenario_sdk._base_client._should_retry``). The wait: what the server asked for (a
cooldown body's ``remainingSeconds``, ``retry-after-ms``, ``Retry-After``) up to
:data:`MAX_RETRY_AFTER`, else a capped exponential backoff with jitter.

Worst case, with the default ``max_retries`` = :data:`DEFAULT_MAX_RETRIES`: a request
is attempted at most ``1 + max_retries`` = 9 times (about 40 s of backoff in all: 0.5, 1, 2,
4, then 8 s); a sent-once request is sent at most 9 times, each resend after a reconcile
whose reads have the same bound. Why 8 when openai-python's default is 2: the calls that
fail most often on Scenario, plan limits, are never retried, so the budget is spent only on
real outages, where riding out 40 s costs nothing next to re-running a training's uploads. A plan limit
(``PlanLimitReachedError``: "an immediate retry repeats the error", Scenario's
scenario-model-training skill) and every other 4xx are attempted once.

Example:
    >>> from prefect_scenario.exceptions import ServerError, PlanLimitError
    >>> decide(ServerError("boom", status_code=503), retries_made=0, send_once=True).reconcile
    True
    >>> decide(PlanLimitError("cap", status_code=429), retries_made=0, send_once=False).retry
    False
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from prefect_scenario._logging import run_logger
from prefect_scenario.exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    InvalidInputError,
    PlanLimitError,
    RateLimitError,
)

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "INITIAL_DELAY",
    "MAX_DELAY",
    "MAX_RETRY_AFTER",
    "RetryDecision",
    "backoff",
    "decide",
    "is_transient",
    "is_transient_status",
    "log_decision",
    "parse_retry_after",
    "parse_should_retry",
]

DEFAULT_MAX_RETRIES = 8
INITIAL_DELAY = 0.5
MAX_DELAY = 8.0
MAX_RETRY_AFTER = 60.0
# Upper bound of the wait before reconciling a timed-out sent-once call.
MAX_SETTLE_SECONDS = 120.0
_TRANSIENT_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class RetryDecision:
    """What to do after a failed attempt.

    ``reconcile``: look for what the failed attempt did before sending it again
    (sent-once calls whose failure does not prove that nothing happened).
    """

    retry: bool
    wait: float
    reconcile: bool
    reason: str


def parse_should_retry(headers: Mapping[str, str]) -> bool | None:
    """The server's ``x-should-retry`` verdict: True, False, or None when it gave none."""
    value = headers.get("x-should-retry")
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms``, then ``Retry-After``), or None.

    Example:
        >>> parse_retry_after({"retry-after-ms": "1500"})
        1.5
    """
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

    Bad input, authentication, plan limits and other 4xx answers are final: retrying
    them only spends time (and, for a 401, risks locking the key).
    """
    if isinstance(error, InvalidInputError | PlanLimitError):
        return False
    if isinstance(error, APIStatusError):
        return is_transient_status(error.status_code or 0, error.should_retry)
    if isinstance(error, APIConnectionError):
        return error.should_retry is not False
    return False


def backoff(retries_made: int, *, jitter: float | None = None, rng: random.Random | None = None) -> float:
    """Capped exponential backoff with jitter in (0.75, 1], for ``retries_made`` retries so far.

    Example:
        >>> backoff(0, jitter=1.0) < backoff(1, jitter=1.0)
        True
        >>> backoff(20, jitter=1.0) == backoff(40, jitter=1.0)  # capped
        True
    """
    if jitter is None:
        jitter = 1.0 - 0.25 * (rng or random).random()
    return min(INITIAL_DELAY * 2.0**retries_made, MAX_DELAY) * jitter


def decide(
    error: BaseException,
    *,
    retries_made: int,
    send_once: bool,
    max_retries: int = DEFAULT_MAX_RETRIES,
    settle_seconds: float = 0.0,
    jitter: float | None = None,
    rng: random.Random | None = None,
) -> RetryDecision:
    """Decide whether and when to send a failed request again.

    Args:
        error: what the attempt raised.
        retries_made: retries already made for this request (0 after the first attempt).
        send_once: the call creates something or spends credits (see the module docstring).
        max_retries: the retry budget.
        settle_seconds: for a timed-out sent-once call, how long its work may still take
            to land (the client timeout): the reconcile waits at least this long.
        jitter, rng: the backoff's jitter (fixed or seeded in tests).
    """
    reason = _describe(error)
    if not is_transient(error):
        return RetryDecision(False, 0.0, False, f"{reason}: not transient")
    if retries_made >= max_retries:
        return RetryDecision(False, 0.0, False, f"{reason}: {max_retries} retries spent")
    wait = backoff(retries_made, jitter=jitter, rng=rng)
    asked = error.retry_after if isinstance(error, RateLimitError) else None
    if asked is not None and 0 < asked <= MAX_RETRY_AFTER:
        wait = asked
    # A 429 answer proves the call did nothing; anything else may have landed.
    reconcile = send_once and not isinstance(error, RateLimitError)
    if reconcile and isinstance(error, APITimeoutError):
        wait = max(wait, min(settle_seconds, MAX_SETTLE_SECONDS))
    return RetryDecision(True, round(wait, 3), reconcile, reason)


def log_decision(call: str, decision: RetryDecision, attempt: int) -> None:
    """Log one retry decision at INFO in the Prefect run logger (the run's UI logs), else in ours."""
    if not decision.retry:
        return
    action = "reconcile, then retry" if decision.reconcile else "retry"
    run_logger().info("%s failed (%s); %s #%d in %.2fs", call, decision.reason, action, attempt, decision.wait)


def _describe(error: BaseException) -> str:
    if isinstance(error, APIStatusError):
        return f"HTTP {error.status_code}"
    if isinstance(error, APITimeoutError):
        return "timeout"
    if isinstance(error, APIConnectionError):
        return "connection dropped"
    return type(error).__name__
