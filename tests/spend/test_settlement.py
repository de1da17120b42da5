"""The pure settlement decisions: which failed triggers release, which reservations are stale, what they become."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from prefect_scenario.exceptions import (
    AlreadyTrainingError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    PlanLimitError,
    RateLimitError,
    ServerError,
    TrainingTimeout,
)
from prefect_scenario.spend.decisions import LedgerEntry
from prefect_scenario.spend.settlement import (
    LEGACY_SETTLE_SECONDS,
    TRIGGER_MARGIN_SECONDS,
    ModelOutcome,
    is_reservation,
    settle_reservation,
    stale_reservations,
    trigger_spent_nothing,
    trigger_window_seconds,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def stamp(seconds: float) -> str:
    """NOW moved by ``seconds``, as the ledger writes it."""
    return (NOW + timedelta(seconds=seconds)).isoformat()


def entry(
    *,
    status: str = "reserved",
    actual: float | None = None,
    settle_after: str | None = None,
    at: str | None = None,
    job_before: str | None = None,
    id: str = "e1",
) -> LedgerEntry:
    return LedgerEntry(
        id=id, day="2026-12-02", dataset="hero", model_id="m1", estimate=104, actual=actual,
        status=status, settle_after=settle_after, at=at, job_before=job_before,  # type: ignore[arg-type]
    )  # fmt: skip


FAILED_TRIGGERS = [
    pytest.param(PlanLimitError("cap", status_code=429, action_name="parallel-training"), True, id="plan-limit-429"),
    pytest.param(RateLimitError("cooldown", status_code=429, retry_after=30), True, id="cooldown-429"),
    pytest.param(BadRequestError("bad", status_code=400), True, id="bad-request-400"),
    pytest.param(BadRequestError("bad", status_code=422), True, id="validation-422"),
    pytest.param(AuthenticationError("no", status_code=401), True, id="auth-401"),
    pytest.param(NotFoundError("gone", status_code=404), True, id="not-found-404"),
    pytest.param(APIStatusError("teapot", status_code=418), True, id="other-4xx"),
    pytest.param(TrainingTimeout("no slot freed", model_id="m1"), True, id="no-slot-before-the-deadline"),
    pytest.param(ConfigurationError("bad credentials"), True, id="refused-before-sending"),
    pytest.param(AlreadyTrainingError("Model is already training", status_code=400), False, id="already-training"),
    pytest.param(ConflictError("lock", status_code=409), False, id="conflict-409"),
    pytest.param(APIStatusError("request timeout", status_code=408), False, id="request-timeout-408"),
    pytest.param(ServerError("boom", status_code=503), False, id="server-5xx"),
    pytest.param(APIConnectionError("dropped"), False, id="connection-dropped"),
    pytest.param(APITimeoutError("no answer"), False, id="timeout"),
    pytest.param(RuntimeError("something else"), False, id="not-ours"),
]  # fmt: skip


@pytest.mark.parametrize(("error", "spent_nothing"), FAILED_TRIGGERS)
def test_only_a_failure_that_proves_nothing_started_releases(error: BaseException, spent_nothing: bool) -> None:
    assert trigger_spent_nothing(error) is spent_nothing


RESERVATIONS = [
    pytest.param(entry(settle_after=stamp(60)), True, id="reserved"),
    pytest.param(entry(status="approved", settle_after=stamp(60)), True, id="approved-before-its-trigger"),
    pytest.param(entry(status="approved"), False, id="approved-and-recorded-without-a-cost"),
    pytest.param(entry(status="spent", actual=104), False, id="spent"),
    pytest.param(entry(status="spent"), False, id="spent-without-a-cost"),
    pytest.param(entry(status="released", actual=0), False, id="released"),
]  # fmt: skip


@pytest.mark.parametrize(("item", "expected"), RESERVATIONS)
def test_is_reservation(item: LedgerEntry, expected: bool) -> None:
    assert is_reservation(item) is expected


STALENESS = [
    pytest.param(entry(settle_after=stamp(-1)), True, id="past-its-bound"),
    pytest.param(entry(settle_after=stamp(0)), True, id="at-its-bound"),
    pytest.param(entry(settle_after=stamp(1)), False, id="before-its-bound"),
    pytest.param(entry(status="approved", settle_after=stamp(-1)), True, id="approved-past-its-bound"),
    pytest.param(entry(status="spent", actual=104, settle_after=stamp(-1)), False, id="charged-is-never-stale"),
    pytest.param(entry(at=stamp(-LEGACY_SETTLE_SECONDS - 1)), True, id="legacy-reservation-past-the-default-bound"),
    pytest.param(entry(at=stamp(-LEGACY_SETTLE_SECONDS + 60)), False, id="legacy-reservation-within-it"),
    pytest.param(entry(), False, id="no-time-at-all-keeps-counting"),
    pytest.param(entry(settle_after="not a time"), False, id="unreadable-time-keeps-counting"),
    pytest.param(entry(settle_after=stamp(-1), id="mine"), False, id="the-training-being-decided"),
]  # fmt: skip


@pytest.mark.parametrize(("item", "stale"), STALENESS)
def test_stale_reservations(item: LedgerEntry, stale: bool) -> None:
    assert (stale_reservations([item], now=NOW, exclude_id="mine") == [item]) is stale


SETTLEMENTS = [
    pytest.param(entry(), ModelOutcome("new"), "released", 0.0, id="never-started"),
    pytest.param(entry(), ModelOutcome("failed", "job_2"), "released", 0.0, id="failed-jobs-are-reimbursed"),
    pytest.param(entry(), ModelOutcome("training", "job_2", cost=104), "spent", 104.0, id="training-its-job-cost"),
    pytest.param(entry(), ModelOutcome("trained", "job_2", cost=98), "spent", 98.0, id="trained-its-job-cost"),
    pytest.param(entry(), ModelOutcome("trained", "job_2"), "spent", None, id="trained-cost-unread-estimate-stands"),
    pytest.param(entry(), ModelOutcome("trained", "job_2", cost=float("nan")), "spent", None,
                 id="trained-cost-unusable-estimate-stands"),
    pytest.param(entry(), ModelOutcome("training", None), "spent", None, id="training-without-a-job-id"),
    pytest.param(entry(), ModelOutcome("training-canceled", "job_2", cost=104), "spent", 104.0,
                 id="cancelled-after-it-started-refund-not-stated"),
    pytest.param(entry(job_before="job_1"), ModelOutcome("trained", "job_1"), "released", 0.0,
                 id="retrain-whose-trigger-never-landed"),
    pytest.param(entry(job_before="job_1"), ModelOutcome("trained", "job_2", cost=104), "spent", 104.0,
                 id="retrain-that-started"),
    pytest.param(entry(status="approved"), ModelOutcome("trained", "job_2", cost=104), "approved", 104.0,
                 id="approved-stays-approved"),
    pytest.param(entry(), None, "spent", None, id="model-not-returned-estimate-stands"),
    pytest.param(entry(), ModelOutcome("copying"), "spent", None, id="unknown-status-estimate-stands"),
]  # fmt: skip


@pytest.mark.parametrize(("item", "outcome", "status", "actual"), SETTLEMENTS)
def test_settle_reservation(item: LedgerEntry, outcome: ModelOutcome | None, status: str, actual: float | None) -> None:
    settled = settle_reservation(item, outcome, now=NOW)
    assert (settled.status, settled.actual) == (status, actual)
    assert settled.settle_after is None and settled.at == NOW.isoformat()
    assert settled.note and settled.note.startswith("settled: ")
    # Settling never counts less than the estimate for a training that may have been paid.
    assert settled.charged == (0.0 if status == "released" else (actual if actual is not None else item.estimate))
    assert not is_reservation(settled)


def test_the_trigger_window_covers_the_slot_wait_and_the_retry_loop() -> None:
    assert trigger_window_seconds(slot_timeout=600, timeout=60, max_retries=8) == 600 + TRIGGER_MARGIN_SECONDS
    # A slow client with many retries needs longer than the margin.
    slow = trigger_window_seconds(slot_timeout=0, timeout=300, max_retries=20)
    assert slow == 21 * (3 * 300 + 120 + 60) > TRIGGER_MARGIN_SECONDS
