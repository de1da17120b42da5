"""The emulator's clocks: a manual one for tests, and wall time with a movable offset."""

from __future__ import annotations

import time

__all__ = ["ManualClock", "OffsetClock"]


class ManualClock:
    """A clock that only moves when told to; for tests.

    Example:
        >>> clock = ManualClock(1000.0)
        >>> clock.advance(5)
        >>> clock()
        1005.0
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds


class OffsetClock:
    """Wall-clock time plus an offset that ``advance`` grows: the emulator's own clock.

    Lets a running emulator (``POST /_emulator/clock``) skip ahead without sleeping.
    """

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.offset += seconds
