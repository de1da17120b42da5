"""The emulator's training-dataset score: simple, documented, pure.

How the real API computes its score is not stated; this stand-in uses what an
upload reveals (size, content hash, mean colour) and speaks the documented wire
shape and warning messages.

Per asset (``n`` assets in the dataset):

- **small**: width or height under 1024 px → asset warning
  ``"Width and height must be larger than 1024"``.
- **outlier**: with at least 3 assets, an asset whose mean colour is more than
  :data:`OUTLIER_DISTANCE` from the mean colour of the *other* assets → asset
  warning ``"Similarity with other assets is too low"``. Distances are Euclidean in
  RGB scaled to [0, 1] and divided by √3, so black-to-white is 1.
- **same**: two assets with identical bytes → couple warning ``"Same asset"``.

Score::

    score = max(0, 1 − 0.5·small/n − 0.3·min(1, same_couples/n) − 0.2·outliers/n)

and 0 for an empty dataset. Similarities in ``details`` are ``1 − distance``
(1 for identical colours). ``status`` is ``complete`` when the dataset is trainable
(the catalog's size check passes), else ``incomplete``.

Captions (an asset's ``description``, which training reads as the caption, per
Scenario's ``skills``, ``references/dataset-curation.md``) are judged once at least
one asset has one; a dataset without any caption gets no caption warning:

- an asset without a description → asset warning ``"Missing caption"``; one whose
  description is blank → ``"Empty caption"``;
- two captions equal (ignoring case and surrounding space) → couple warning
  ``"Captions are identical"``;
- two captions whose word sets overlap by a Jaccard index of at least
  :data:`CLOSE_CAPTIONS` (0.9) → couple warning ``"Captions are too close"``.

Caption distances in ``details`` are ``1 − Jaccard`` of the couple's word sets. Caption
warnings do not change the score.

Example:
    >>> a = ScoredAsset("asset_a", 2048, 2048, "h1", (0.5, 0.5, 0.5))
    >>> b = ScoredAsset("asset_b", 512, 512, "h2", (0.5, 0.5, 0.5))
    >>> result = score_dataset("model_x", [a, b], complete=True)
    >>> result.score, result.assets_warnings
    (0.75, [{'assetId': 'asset_b', 'message': ['Width and height must be larger than 1024']}])
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

__all__ = [
    "CLOSE_CAPTIONS",
    "MIN_SIDE",
    "OUTLIER_DISTANCE",
    "DatasetScore",
    "ScoredAsset",
    "caption_similarity",
    "colour_distance",
    "score_dataset",
]

MIN_SIDE = 1024
OUTLIER_DISTANCE = 0.4
SMALL_WEIGHT, SAME_WEIGHT, OUTLIER_WEIGHT = 0.5, 0.3, 0.2

SMALL = "Width and height must be larger than 1024"
OUTLIER = "Similarity with other assets is too low"
SAME = "Same asset"
MISSING_CAPTION = "Missing caption"
EMPTY_CAPTION = "Empty caption"
IDENTICAL_CAPTIONS = "Captions are identical"
CLOSE = "Captions are too close"
CLOSE_CAPTIONS = 0.9


@dataclass(frozen=True)
class ScoredAsset:
    """What the score needs to know of one asset. ``mean_color`` is RGB in [0, 1]; ``caption`` its description."""

    asset_id: str
    width: int
    height: int
    sha256: str
    mean_color: tuple[float, float, float]
    caption: str | None = None


@dataclass(frozen=True)
class DatasetScore:
    """The score and its wire form."""

    model_id: str
    score: float
    status: str
    assets_warnings: list[dict[str, Any]]
    couples_warnings: list[dict[str, Any]]
    details: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        """The ``GET /models/{id}/scores/training-dataset`` body."""
        return {
            "modelId": self.model_id,
            "score": self.score,
            "status": self.status,
            "details": self.details,
            "assetsWarnings": self.assets_warnings,
            "assetCouplesWarnings": self.couples_warnings,
        }


def colour_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Distance of two RGB colours in [0, 1]: 0 for equal, 1 for black vs white."""
    return math.dist(a, b) / math.sqrt(3)


def _mean_colour(colours: Sequence[Sequence[float]]) -> tuple[float, float, float]:
    return (
        statistics.fmean(c[0] for c in colours),
        statistics.fmean(c[1] for c in colours),
        statistics.fmean(c[2] for c in colours),
    )


def _stats(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"min": 0.0, "mean": 0.0, "median": 0.0}
    return {"min": min(values), "mean": statistics.fmean(values), "median": statistics.median(values)}


def caption_similarity(a: str, b: str) -> float:
    """The Jaccard index of two captions' word sets (case-insensitive): 1 for the same words."""
    words_a, words_b = set(a.casefold().split()), set(b.casefold().split())
    if not words_a and not words_b:
        return 1.0
    return len(words_a & words_b) / len(words_a | words_b)


def _caption_warnings(assets: Sequence[ScoredAsset], warnings: dict[str, list[str]]) -> None:
    """Add the per-asset caption warnings, when any asset has a caption."""
    if all(a.caption is None for a in assets):
        return
    for a in assets:
        if a.caption is None:
            warnings[a.asset_id].append(MISSING_CAPTION)
        elif not a.caption.strip():
            warnings[a.asset_id].append(EMPTY_CAPTION)


def _couple_messages(a: ScoredAsset, b: ScoredAsset) -> list[str]:
    messages = [SAME] if a.sha256 == b.sha256 else []
    if a.caption and b.caption and a.caption.strip() and b.caption.strip():
        if a.caption.strip().casefold() == b.caption.strip().casefold():
            messages.append(IDENTICAL_CAPTIONS)
        elif caption_similarity(a.caption, b.caption) >= CLOSE_CAPTIONS:
            messages.append(CLOSE)
    return messages


def _couples(assets: Sequence[ScoredAsset]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Every couple's colour similarity, caption distance (when both have one) and warnings."""
    similarity: list[dict[str, Any]] = []
    distance: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    for a, b in combinations(assets, 2):
        couple = [a.asset_id, b.asset_id]
        similarity.append({"couple": couple, "similarity": round(1 - colour_distance(a.mean_color, b.mean_color), 6)})
        if a.caption is not None and b.caption is not None:
            distance.append({"couple": couple, "distance": round(1 - caption_similarity(a.caption, b.caption), 6)})
        messages = _couple_messages(a, b)
        if messages:
            warnings.append({"couple": couple, "message": messages})
    return similarity, distance, warnings


def _outliers(assets: Sequence[ScoredAsset], warnings: dict[str, list[str]]) -> tuple[list[dict[str, Any]], int]:
    """Each asset's similarity to the others' mean colour, and how many are outliers (warned)."""
    own_similarity: list[dict[str, Any]] = []
    outliers = 0
    for i, a in enumerate(assets):
        others = [b.mean_color for j, b in enumerate(assets) if j != i]
        distance = colour_distance(a.mean_color, _mean_colour(others)) if others else 0.0
        own_similarity.append({"assetId": a.asset_id, "similarity": round(1 - distance, 6)})
        if len(assets) >= 3 and distance > OUTLIER_DISTANCE:
            warnings[a.asset_id].append(OUTLIER)
            outliers += 1
    return own_similarity, outliers


def score_dataset(model_id: str, assets: Sequence[ScoredAsset], *, complete: bool) -> DatasetScore:
    """Score a training dataset (see the module docstring for the formula). Pure.

    Args:
        model_id: The model the dataset belongs to.
        assets: Its assets, each once.
        complete: Whether the dataset is trainable as it stands.

    Returns:
        The score, warnings and details.
    """
    n = len(assets)
    warnings: dict[str, list[str]] = {a.asset_id: [] for a in assets}
    small = 0
    for a in assets:
        if a.width < MIN_SIDE or a.height < MIN_SIDE:
            warnings[a.asset_id].append(SMALL)
            small += 1
    own_similarity, outliers = _outliers(assets, warnings)
    _caption_warnings(assets, warnings)
    couples, caption_distances, couples_warnings = _couples(assets)
    same = sum(1 for w in couples_warnings if SAME in w["message"])
    score = 0.0
    if n:
        penalty = SMALL_WEIGHT * small / n + SAME_WEIGHT * min(1.0, same / n) + OUTLIER_WEIGHT * outliers / n
        score = round(max(0.0, 1.0 - penalty), 6)
    details = {
        "assetsEmbeddingSimilarity": own_similarity,
        "assetsSimilarity": _stats([s["similarity"] for s in own_similarity]),
        "assetCouplesSimilarity": couples,
        "couplesSimilarity": _stats([c["similarity"] for c in couples]),
        "assetCouplesCaptionsDistance": caption_distances,
        "couplesCaptionsDistance": _stats([c["distance"] for c in caption_distances]),
        "metadataScore": score,
    }
    return DatasetScore(
        model_id=model_id,
        score=score,
        status="complete" if complete else "incomplete",
        assets_warnings=[{"assetId": k, "message": v} for k, v in warnings.items() if v],
        couples_warnings=couples_warnings,
        details=details,
    )
