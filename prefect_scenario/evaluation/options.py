"""The knobs of one evaluation, stated once: waits, concurrency, margin, review, budget.

Example:
    >>> EvaluationOptions().poll_seconds, EvaluationOptions(poll_seconds=0.5).poll_seconds
    (2.0, 2.0)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from prefect_scenario._titles import field_title

__all__ = ["DEFAULT_MARGIN", "MIN_POLL_SECONDS", "EvaluationOptions", "Review"]

# Scenario's clients never poll a job faster than every 2 s (quick-start "every 2-3 seconds",
# blender-plugin ~2 s, Scenario-Unity 4 s).
MIN_POLL_SECONDS = 2.0
# Quality Gate points (0-100) the candidate's mean paired gain must beat, chosen with
# benchmarks/bench_evaluation.py (50 emulated retrains): at 5, no worse model was promoted
# and every model better by 10 points or more was. With the default suite (4 renders) the
# paired mean of two equal models spreads by about 2 points, so a margin of 2 would promote
# an equal model about one time in six; 5 makes that about one in a hundred.
DEFAULT_MARGIN = 5.0
Review = Literal["never", "uncertain", "always"]


class EvaluationOptions(BaseModel):
    """How an evaluation renders, scores, decides and pays."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, field_title_generator=field_title)

    base_model_id: str | None = Field(None, description="The base to render through (None: from the type).")
    margin: float = Field(DEFAULT_MARGIN, ge=0, description="Mean paired score gain needed to promote.")
    review: Review = Field("never", description="When a human decides: never, uncertain results, or always.")
    review_timeout_seconds: float = Field(3600.0, gt=0, description="No answer by then never promotes.")
    poll_seconds: float = Field(MIN_POLL_SECONDS, description="Seconds between reads of a render job (at least 2).")
    max_in_flight: int = Field(2, ge=1, le=16, description="Render jobs in flight at once (a plan 429 lowers it).")
    timeout_seconds: float = Field(900.0, gt=0, description="How long the renders may take in all.")
    score_wait_seconds: float = Field(60.0, ge=0, description="How long to wait for Scenario's automatic scores.")
    sensitivity: Literal["low", "medium", "high"] | None = Field(None, description="Quality Gate sensitivity.")
    budget: Any = Field(None, description="A ScenarioBudget (or its block name) the renders are charged to.")
    max_creative_units: float | None = Field(None, ge=0, description="Refuse an evaluation quoted above this.")

    @field_validator("poll_seconds")
    @classmethod
    def _polite(cls, value: float) -> float:
        return max(MIN_POLL_SECONDS, value)
