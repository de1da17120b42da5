"""The champion/challenger decision: a pure function of paired scores, a margin and the review mode.

The candidate and the production model render the same prompts on the same seeds, so
each pair differs by the models and by noise only; the decision reads the mean paired
gain (candidate minus production):

- gain above ``margin``: promote;
- gain at or below ``-margin``: reject (production is better);
- in between: uncertain, which rejects unless a human says otherwise (``review``).

Example:
    >>> d = decide({("p", 1): 80.0, ("p", 2): 78.0}, {("p", 1): 70.0, ("p", 2): 71.0}, margin=5)
    >>> d.outcome, d.mean_gain, d.pairs
    ('promote', 8.5, 2)
    >>> decide({("p", 1): 72.0}, {("p", 1): 70.0}, margin=5).outcome
    'uncertain'
    >>> needs_review(decide({("p", 1): 72.0}, {("p", 1): 70.0}, margin=5), "uncertain")
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["Decision", "Outcome", "decide", "final_outcome", "needs_review"]

Outcome = Literal["promote", "reject", "uncertain"]
Key = tuple[str, int]


@dataclass(frozen=True)
class Decision:
    """What the scores say, and why."""

    outcome: Outcome
    mean_gain: float | None
    pairs: int
    margin: float
    reason: str


def decide(candidate: Mapping[Key, float], production: Mapping[Key, float] | None, *, margin: float) -> Decision:
    """Compare ``candidate`` with ``production`` on their shared (prompt, seed) pairs.

    No production model yet: the candidate is promoted (there is nothing it could be worse than).
    """
    if production is None:
        return Decision("promote", None, 0, margin, "no production model yet: the candidate becomes production")
    shared = sorted(set(candidate) & set(production))
    if not shared:
        return Decision("reject", None, 0, margin, "no prompt and seed in common with production: keeping it")
    gain = round(sum(candidate[k] - production[k] for k in shared) / len(shared), 4)
    if gain > margin:
        return Decision("promote", gain, len(shared), margin, f"mean paired gain {gain:+.2f} > margin {margin:g}")
    if gain <= -margin:
        return Decision("reject", gain, len(shared), margin, f"mean paired gain {gain:+.2f} <= -{margin:g}: worse")
    reason = f"mean paired gain {gain:+.2f} is within the margin ±{margin:g}: not clearly better"
    return Decision("uncertain", gain, len(shared), margin, reason)


def needs_review(decision: Decision, review: str) -> bool:
    """Whether a human decides: always, or for uncertain results when ``review='uncertain'``."""
    return review == "always" or (review == "uncertain" and decision.outcome == "uncertain")


def final_outcome(decision: Decision, answer: str | None = None) -> Literal["promote", "reject"]:
    """The outcome after review: a human's ``promote``/``reject`` wins; no answer never promotes an uncertain one.

    Example:
        >>> d = decide({("p", 1): 72.0}, {("p", 1): 70.0}, margin=5)
        >>> final_outcome(d), final_outcome(d, "promote"), final_outcome(d, None)
        ('reject', 'promote', 'reject')
    """
    if answer in ("promote", "reject"):
        return answer  # type: ignore[return-value]
    return "promote" if decision.outcome == "promote" and answer is None else "reject"
