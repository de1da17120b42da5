"""When the webhook receiver reads a model: a delivery never delays a later one. Pure (clock injected).

A delivery is unsigned (Scenario's API reference types its payload as a bare object), so it
is only a hint to read the model. Per model (and event kind), the gate decides:

- **a cooldown only after a read that found the training ended**: then replays cost
  nothing for ``cooldown_seconds``. A read that found it still training (a forged
  ``completed``, or a genuine one that came before the API shows the new status) starts no
  cooldown, so the real delivery that follows is read at once;
- **at most one read per ``floor_seconds``**: deliveries closer together than that are
  coalesced into one read at the end of the floor (never dropped), deliveries during a read
  into one read after it; a flood of forged deliveries costs one read per floor;
- **one re-check at the predicted end**: a read that found the training within
  ``recheck_window`` seconds of its predicted end (``remainingTimeMs``) schedules one more
  read just after it, so an early genuine delivery still resumes its run without a watcher.

Example:
    >>> now = [0.0]
    >>> gate = HintGate(cooldown_seconds=30, floor_seconds=1, clock=lambda: now[0])
    >>> gate.admit("m"), gate.begin("m", 0.0)      # read now
    (0.0, True)
    >>> gate.done("m", ended=False, recheck_in=3.0)  # still training: one re-check just after its predicted end
    3.25
    >>> now[0] = 2.0
    >>> gate.admit("m"), gate.begin("m", 2.0)      # the real delivery: read at once
    (0.0, True)
    >>> gate.done("m", ended=True), gate.admit("m")  # ended: replays wait out the cooldown
    (None, None)
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DEFAULT_COOLDOWN_SECONDS", "DEFAULT_FLOOR_SECONDS", "HintGate"]

DEFAULT_COOLDOWN_SECONDS = 30.0
# One read per model per second at most: a forged flood costs that, a real delivery waits at most that.
DEFAULT_FLOOR_SECONDS = 1.0
# A read that finds the end this close schedules one re-check just after it.
DEFAULT_RECHECK_WINDOW = 30.0
_END_MARGIN = 0.25


@dataclass
class _Model:
    last_read: float = -math.inf
    reading: bool = False
    pending: bool = False  # a delivery came during the read
    due: float | None = None  # when the one scheduled read is due
    cooldown_until: float = -math.inf


class HintGate:
    """Per model and event kind: read now, read later (once), or skip; remembers at most ``max_models``."""

    def __init__(
        self,
        cooldown_seconds: float = DEFAULT_COOLDOWN_SECONDS,
        *,
        floor_seconds: float = DEFAULT_FLOOR_SECONDS,
        recheck_window: float = DEFAULT_RECHECK_WINDOW,
        max_models: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cooldown_seconds = cooldown_seconds
        self.floor_seconds = floor_seconds
        self.recheck_window = recheck_window
        self.max_models = max_models
        self._clock = clock
        self._models: OrderedDict[str, _Model] = OrderedDict()

    def _get(self, key: str) -> _Model:
        model = self._models.get(key)
        if model is None:
            if len(self._models) >= self.max_models:
                idle = next((k for k, m in self._models.items() if not m.reading and m.due is None), None)
                self._models.pop(idle if idle is not None else next(iter(self._models)))
            model = self._models[key] = _Model()
        self._models.move_to_end(key)
        return model

    def admit(self, key: str) -> float | None:
        """For a delivery: the seconds until its read (0: now), or None when no read is needed.

        A non-None answer is a read the caller must start with :meth:`begin` after that delay.
        """
        now = self._clock()
        model = self._get(key)
        if now < model.cooldown_until:
            return None
        if model.reading:
            model.pending = True
            return None
        earliest = max(now, model.last_read + self.floor_seconds)
        if model.due is not None and model.due <= earliest:
            return None  # a read already comes no later than one could
        model.due = earliest
        return earliest - now

    def begin(self, key: str, due: float) -> bool:
        """A scheduled read (``due`` as :meth:`admit` or :meth:`done` set it) starts: False if no longer needed."""
        model = self._get(key)
        if model.due != due:
            return False  # superseded by a sooner read
        model.due = None
        now = self._clock()
        if now < model.cooldown_until:
            return False
        if model.reading:
            model.pending = True
            return False
        model.reading, model.last_read = True, now
        return True

    def done(self, key: str, *, ended: bool, recheck_in: float | None = None) -> float | None:
        """After a read: the seconds until the one follow-up read (then :meth:`begin` it), or None."""
        now = self._clock()
        model = self._get(key)
        model.reading = False
        pending, model.pending = model.pending, False
        if ended:
            model.cooldown_until = now + self.cooldown_seconds
            return None
        floor = model.last_read + self.floor_seconds
        wanted = [max(now, floor)] if pending else []
        if recheck_in is not None and recheck_in <= self.recheck_window:
            wanted.append(max(floor, now + recheck_in + _END_MARGIN))
        if not wanted:
            return None
        due = min(wanted)
        if model.due is not None and model.due <= due:
            return None
        model.due = due
        return due - now

    def due(self, key: str) -> float | None:
        """When the scheduled read of ``key`` is due (the receiver passes it back to :meth:`begin`)."""
        model = self._models.get(key)
        return None if model is None else model.due
