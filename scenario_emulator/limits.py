"""Plan limits: the ceilings Scenario's plans set, answered as 429s that a retry repeats.

Scenario's ``scenario-labs/skills`` (``skills/scenario-model-training/SKILL.md``) quotes
them: past a plan ceiling the API answers 429 with a ``PlanLimitReachedError`` body whose
``details.actionName`` names the limit and ``details.actionLimit`` its value, and
repeated launches hit a 429 whose body names ``remainingSeconds``. The emulator has
three, all off by default:

==========================  =====================  ===================================
setting                     CLI flag               refused request
==========================  =====================  ===================================
``parallel_trainings``      ``--parallel-trainings``  a trigger while N models train
                                                   (``parallel-training``; 0 allowed)
``team_image_cap``          ``--team-image-cap``   a training image past N in the team
                                                   (``add-training-image``)
``trigger_cooldown``        ``--trigger-cooldown``  a trigger within S seconds of the
                                                   team's previous launch
==========================  =====================  ===================================

The decisions below are pure: they take counts and times, and return the error to
answer, or ``None``.

Example:
    >>> limits = PlanLimits(parallel_trainings=1)
    >>> parallel_training_error(limits, running=1).extra["details"]
    {'actionName': 'parallel-training', 'actionLimit': 1}
    >>> cooldown_error(PlanLimits(trigger_cooldown=30), last_launch=100.0, now=110.0).extra
    {'remainingSeconds': 20.0}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from scenario_emulator.errors import ApiError

__all__ = [
    "PLAN_LIMIT_ERROR",
    "PlanLimits",
    "cooldown_error",
    "parallel_training_error",
    "plan_limit_error",
    "team_image_error",
]

PLAN_LIMIT_ERROR = "PlanLimitReachedError"


@dataclass(frozen=True)
class PlanLimits:
    """The plan's ceilings; ``None`` (or a zero cooldown) is no limit.

    Example:
        >>> PlanLimits.from_wire({"team_image_cap": 20}).to_wire()
        {'parallel_trainings': None, 'team_image_cap': 20, 'trigger_cooldown': 0.0}
    """

    parallel_trainings: int | None = None
    team_image_cap: int | None = None
    trigger_cooldown: float = 0.0

    def __post_init__(self) -> None:
        for name in ("parallel_trainings", "team_image_cap"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a whole number, not negative, or null")
        cooldown = self.trigger_cooldown
        if isinstance(cooldown, bool) or not isinstance(cooldown, int | float) or not 0 <= cooldown < math.inf:
            raise ValueError("trigger_cooldown must be a number of seconds, not negative")
        object.__setattr__(self, "trigger_cooldown", float(cooldown))

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], base: PlanLimits | None = None) -> PlanLimits:
        """Build from JSON (the snake_case field names); absent fields keep ``base``'s values.

        Raises:
            ValueError: an unknown field or an invalid value.
        """
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown limits: {', '.join(unknown)}")
        return cls(**{**asdict(base or cls()), **data})

    def to_wire(self) -> dict[str, Any]:
        """The JSON form, as accepted by :meth:`from_wire`."""
        return asdict(self)


def plan_limit_error(action: str, limit: int) -> ApiError:
    """The 429 ``PlanLimitReachedError`` for ``action`` (e.g. ``parallel-training``)."""
    return ApiError(
        429,
        f"Plan limit reached for {action}: your plan allows {limit}",
        extra={"name": PLAN_LIMIT_ERROR, "details": {"actionName": action, "actionLimit": limit}},
    )


def parallel_training_error(limits: PlanLimits, *, running: int) -> ApiError | None:
    """The error for one more training while ``running`` train, if the plan forbids it."""
    cap = limits.parallel_trainings
    return plan_limit_error("parallel-training", cap) if cap is not None and running >= cap else None


def team_image_error(limits: PlanLimits, *, current: int, adding: int) -> ApiError | None:
    """The error for adding ``adding`` training images to the team's ``current``, if past the cap."""
    cap = limits.team_image_cap
    return plan_limit_error("add-training-image", cap) if cap is not None and current + adding > cap else None


def cooldown_error(limits: PlanLimits, *, last_launch: float | None, now: float) -> ApiError | None:
    """The 429 for a launch within the cooldown of ``last_launch``, with ``remainingSeconds``."""
    if last_launch is None or limits.trigger_cooldown <= 0:
        return None
    remaining = last_launch + limits.trigger_cooldown - now
    if remaining <= 0:
        return None
    seconds = round(remaining, 3)
    return ApiError(
        429, f"Please wait {seconds} seconds before launching another training", extra={"remainingSeconds": seconds}
    )
