"""The tag vocabulary: what prefect-scenario writes on Scenario models and on Prefect flow runs.

One place for every prefix, so a reader (the watcher, the crash-safe reconcile, a user's own
automation) and a writer never disagree. Scenario models carry ``psc-<key>`` (the run key that
makes a create idempotent, see :func:`idempotency_tag`); Prefect flow runs carry
``scenario-model:<id>`` and the ``scenario-*`` wait record.

Example:
    >>> tag_values(["psc-k1", "scenario-model:m1", "psc-k2"], IDEMPOTENCY_TAG_PREFIX)
    ['k1', 'k2']
    >>> credentials_block_of(["scenario-credentials:studio", "scenario-waiting"])
    'studio'
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "COST_TAG_PREFIX",
    "CREDENTIALS_TAG_PREFIX",
    "DEADLINE_TAG_PREFIX",
    "IDEMPOTENCY_TAG_PREFIX",
    "MODEL_TAG_PREFIX",
    "SCORE_TAG_PREFIX",
    "WAITING_TAG",
    "credentials_block_of",
    "idempotency_tag",
    "tag_values",
]

# On Scenario models: the run key of the flow run that created the model.
IDEMPOTENCY_TAG_PREFIX = "psc-"
# On Prefect flow runs: which models the run trains, and which credentials block it used.
MODEL_TAG_PREFIX = "scenario-model:"
CREDENTIALS_TAG_PREFIX = "scenario-credentials:"
# On a suspended flow run: the wait record the watcher and the webhook receiver read.
WAITING_TAG = "scenario-waiting"
DEADLINE_TAG_PREFIX = "scenario-deadline:"
COST_TAG_PREFIX = "scenario-cost:"
SCORE_TAG_PREFIX = "scenario-dataset-score:"


def tag_values(tags: Iterable[str], prefix: str) -> list[str]:
    """What follows ``prefix`` in the tags that carry it, in order (``scenario-model:m1`` → ``m1``)."""
    return [t[len(prefix) :] for t in tags if t.startswith(prefix)]


def idempotency_tag(key: str) -> str:
    """The model tag that records a run's idempotency key."""
    return f"{IDEMPOTENCY_TAG_PREFIX}{key}"


def credentials_block_of(tags: Iterable[str]) -> str | None:
    """The saved credentials block a flow run's tags name, if any."""
    blocks = tag_values(tags, CREDENTIALS_TAG_PREFIX)
    return blocks[0] if blocks else None
