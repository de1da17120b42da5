"""Scoring renders: a :class:`Scorer` protocol, and Scenario's Quality Gate as the default scorer.

Scenario scores a generation's outputs by itself, "computed asynchronously after
generation" (SDK ``Asset.qualityGate``: ``status`` ``scored``, ``overallScore`` 0-100,
``verdict``); :class:`QualityGateScorer` reads those scores, waits a bounded time for the
missing ones (every 2 s or more), then asks ``POST /generate/quality-gate`` for the rest.
It never changes the project's brief silently: a brief (``PUT /projects/{projectId}/brief``,
free text and up to 10 reference asset ids, SDK ``projects.brief.update``) is written only
when the caller passes ``brief=``, and an existing different brief is replaced only with
``replace_brief=True``.

Any object with an ``async score(client, renders)`` method plugs in the same way (a CLIP
model on the user's own GPU worker, a human's ratings).

Example:
    >>> gate_score({"status": "scored", "overallScore": 71.5, "verdict": "pass"})
    (71.5, 'pass')
    >>> gate_score({"status": "error"}) is None
    True
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from prefect_scenario._logging import run_logger
from prefect_scenario.evaluation.options import MIN_POLL_SECONDS
from prefect_scenario.evaluation.render import Render
from prefect_scenario.exceptions import EvaluationInputError

__all__ = ["MAX_BRIEF_REFERENCES", "ImageScore", "ProjectBrief", "QualityGateScorer", "Scorer", "gate_score"]

MAX_BRIEF_REFERENCES = 10


@dataclass(frozen=True)
class ImageScore:
    """One image's score (0-100, higher is better), verdict and reasons."""

    prompt: str
    seed: int
    asset_id: str
    score: float
    verdict: str | None = None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProjectBrief:
    """A project brief to judge against: free text and reference asset ids (at most 10)."""

    body: str
    reference_asset_ids: tuple[str, ...] = ()


@runtime_checkable
class Scorer(Protocol):
    """Scores renders; one :class:`ImageScore` per render, in the same order."""

    async def score(self, client: Any, renders: Sequence[Render]) -> list[ImageScore]:
        """Score ``renders``."""
        ...


def gate_score(gate: dict[str, Any] | None) -> tuple[float, str | None] | None:
    """The (score, verdict) of an asset's ``qualityGate``, if it has been scored."""
    if not gate or gate.get("status") != "scored" or not isinstance(gate.get("overallScore"), int | float):
        return None
    return float(gate["overallScore"]), gate.get("verdict")


class QualityGateScorer:
    """Scenario's Quality Gate: the automatic score when there is one, else ``POST /generate/quality-gate``.

    Args:
        wait_seconds: How long to wait for the automatic scores before asking.
        poll_seconds: Seconds between reads (at least 2).
        sensitivity: ``low``, ``medium`` or ``high`` for asked scores; Scenario's default if None.
        sleep: Awaited between reads (tests pass one that moves a clock).
        clock: Monotonic seconds.
        brief: Opt in to a project brief with reference assets (written before scoring).
        replace_brief: Replace a different brief the project has already (else refuse).
    """

    def __init__(
        self,
        *,
        wait_seconds: float = 60.0,
        poll_seconds: float = MIN_POLL_SECONDS,
        sensitivity: str | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        brief: ProjectBrief | None = None,
        replace_brief: bool = False,
    ) -> None:
        self.brief, self.replace_brief = brief, replace_brief
        self.wait_seconds, self.poll_seconds = wait_seconds, max(MIN_POLL_SECONDS, poll_seconds)
        self.sensitivity, self._sleep, self._clock = sensitivity, sleep or asyncio.sleep, clock

    async def score(self, client: Any, renders: Sequence[Render]) -> list[ImageScore]:
        """One score per render, in order.

        Raises:
            EvaluationInputError: ``brief`` given, and the project has a different one (without ``replace_brief``).
        """
        if self.brief is not None:
            await self._apply_brief(client, self.brief)
        found = {r.asset_id: s for r in renders if (s := gate_score(r.quality_gate)) is not None}
        reasons: dict[str, tuple[str, ...]] = {}
        deadline = self._clock() + self.wait_seconds
        while len(found) < len(renders) and self._clock() < deadline:
            await self._sleep(self.poll_seconds)
            missing = [r.asset_id for r in renders if r.asset_id not in found]
            for asset in await client.get_assets(missing):
                if (scored := gate_score(asset.quality_gate)) is not None:
                    found[asset.id] = scored
        for render in renders:
            if render.asset_id not in found:
                judged = await client.quality_gate(render.asset_id, sensitivity=self.sensitivity)
                found[render.asset_id] = (judged.overall_score, judged.verdict)
                reasons[render.asset_id] = tuple(str(x) for x in judged.ai_quality.get("reasons") or [])
        return [
            ImageScore(
                r.prompt, r.seed, r.asset_id, found[r.asset_id][0], found[r.asset_id][1], reasons.get(r.asset_id, ())
            )
            for r in renders
        ]

    async def _apply_brief(self, client: Any, brief: ProjectBrief) -> None:
        if len(brief.reference_asset_ids) > MAX_BRIEF_REFERENCES:
            raise EvaluationInputError(f"a brief takes at most {MAX_BRIEF_REFERENCES} reference assets")
        current = await client.get_project_brief()
        wanted = (brief.body, list(brief.reference_asset_ids))
        if current is not None and (current.get("body"), current.get("referenceAssetIds") or []) == wanted:
            return
        if current is not None and not self.replace_brief:
            raise EvaluationInputError(
                "the project has a different brief already: pass replace_brief=True to replace it, "
                "or score without brief="
            )
        await client.set_project_brief(brief.body, reference_asset_ids=brief.reference_asset_ids)
        run_logger().warning(
            "Set the project's brief for scoring (%d reference assets)", len(brief.reference_asset_ids)
        )
