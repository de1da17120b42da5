"""When to look at a training again: pure decisions for the wait loop.

The wait loop polls ``GET /models/{id}`` (or ``POST /models/get-bulk`` for many
models) and sleeps for :func:`next_poll_delay` in between. The delay follows the
training: long while queued (nothing to see), aimed at the predicted end while
running (``remainingTimeMs``), and at the floor once the end is near. The floor is
2 s: none of Scenario's own clients polls faster (blender-plugin ~2 s, Unity 4 s, the
product doc 10 s), and no rate limit is published, so we stay as polite as they are.

Example:
    >>> from prefect_scenario.api.models import TrainingProgress
    >>> next_poll_delay("training", TrainingProgress(stage="running-train", progress=0.5, remainingTimeMs=60_000))
    45.0
    >>> next_poll_delay("training", TrainingProgress(stage="running-train", progress=0.9, remainingTimeMs=3_000))
    3.25
    >>> next_poll_delay("training", TrainingProgress(stage="running-train", progress=0.99, remainingTimeMs=300))
    2.0
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect_scenario.api.models import TERMINAL_STATUSES, TrainingProgress

__all__ = ["PollPolicy", "is_terminal", "next_poll_delay"]


@dataclass(frozen=True)
class PollPolicy:
    """Bounds of the poll delay, in seconds.

    Within ``near_end_window`` of the predicted end, the next poll is aimed just after it
    (``end_margin``); a training that ends later than predicted is then polled every
    ``near_end``, which bounds how late it is noticed. ``max_ids_per_request`` caps
    the ids of one ``get-bulk`` request. ``slot_check`` is how often a trigger refused by
    the plan's ``parallel-training`` ceiling looks for a free slot again. ``fraction`` of the remaining
    time is slept while far from the end, so the number of polls grows with the
    logarithm of the training time, not linearly.
    """

    minimum: float = 2.0
    near_end: float = 2.0
    near_end_window: float = 4.0
    end_margin: float = 0.25
    fraction: float = 0.75
    queued: float = 5.0
    starting: float = 2.0
    unknown: float = 5.0
    maximum: float = 120.0
    max_ids_per_request: int = 50
    slot_check: float = 30.0


DEFAULT_POLICY = PollPolicy()
# Scenario's trainings take minutes to a few hours (scenario-sdk 2.4.0 polls them without a
# bound); four hours waits for the longest types while still cancelling a stuck one the same day.
DEFAULT_TIMEOUT_SECONDS = 4 * 3600.0


def is_terminal(status: str) -> bool:
    """``trained``, ``failed`` and ``training-canceled`` end a training."""
    return status in TERMINAL_STATUSES


def next_poll_delay(
    status: str,
    progress: TrainingProgress | None,
    policy: PollPolicy = DEFAULT_POLICY,
    *,
    remaining: float | None = None,
) -> float:
    """Seconds to wait before polling a training again.

    Args:
        status: the model's status.
        progress: its ``trainingProgress``, if any.
        policy: the bounds.
        remaining: seconds left before the caller's own deadline; the delay never exceeds it.
    """
    delay = _raw_delay(status, progress, policy)
    delay = max(policy.minimum, min(delay, policy.maximum))
    if remaining is not None:
        delay = max(0.0, min(delay, remaining))
    return delay


def _raw_delay(status: str, progress: TrainingProgress | None, policy: PollPolicy) -> float:
    if is_terminal(status):
        return 0.0
    if status != "training" or progress is None:
        # `new` right after the trigger, or a status we do not know: look again soon.
        return policy.starting if status in ("new", "draft") else policy.unknown
    stage = progress.stage
    if stage in ("pending", "queued-for-train"):
        # Each job ahead in the queue is a whole training; there is nothing to catch early.
        position = progress.position or 0
        return policy.queued if position > 0 else policy.starting
    if stage == "starting-train":
        return policy.starting
    if progress.remaining_time_ms is not None:
        remaining_s = progress.remaining_time_ms / 1000.0
        if remaining_s <= policy.near_end_window:
            # Close enough to trust the prediction: look just after the predicted end (a late
            # finish is then polled every ``near_end``), so a training is seen ending within
            # about ``end_margin``, not a whole interval later.
            return remaining_s + policy.end_margin
        # Aim at the end, keeping near_end_window of margin: a late finish still gets polled.
        return max(policy.near_end, min(remaining_s * policy.fraction, remaining_s - policy.near_end_window))
    if progress.progress is not None and progress.progress >= 0.95:
        return policy.near_end
    return policy.unknown
