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
(the catalog's size check passes), else ``incomplete``. No captions exist in the
emulator, so caption distances are empty lists and zero statistics.

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

__all__ = ["MIN_SIDE", "OUTLIER_DISTANCE", "DatasetScore", "ScoredAsset", "colour_distance", "score_dataset"]

MIN_SIDE = 1024
OUTLIER_DISTANCE = 0.4
SMALL_WEIGHT, SAME_WEIGHT, OUTLIER_WEIGHT = 0.5, 0.3, 0.2

SMALL = "Width and height must be larger than 1024"
OUTLIER = "Similarity with other assets is too low"
SAME = "Same asset"


@dataclass(frozen=True)
class ScoredAsset:
    """What the score needs to know of one asset. ``mean_color`` is RGB in [0, 1]."""

    asset_id: str
    width: int
    height: int
    sha256: str
    mean_color: tuple[float, float, float]


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

    own_similarity: list[dict[str, Any]] = []
    outliers = 0
    for i, a in enumerate(assets):
        others = [b.mean_color for j, b in enumerate(assets) if j != i]
        distance = colour_distance(a.mean_color, _mean_colour(others)) if others else 0.0
        own_similarity.append({"assetId": a.asset_id, "similarity": round(1 - distance, 6)})
        if n >= 3 and distance > OUTLIER_DISTANCE:
            warnings[a.asset_id].append(OUTLIER)
            outliers += 1

    couples: list[dict[str, Any]] = []
    couples_warnings: list[dict[str, Any]] = []
    for a, b in combinations(assets, 2):
        couples.append(
            {
                "couple": [a.asset_id, b.asset_id],
                "similarity": round(1 - colour_distance(a.mean_color, b.mean_color), 6),
            }
        )
        if a.sha256 == b.sha256:
            couples_warnings.append({"couple": [a.asset_id, b.asset_id], "message": [SAME]})

    if n == 0:
        score = 0.0
    else:
        penalty = SMALL_WEIGHT * small / n + SAME_WEIGHT * min(1.0, len(couples_warnings) / n)
        penalty += OUTLIER_WEIGHT * outliers / n
        score = round(max(0.0, 1.0 - penalty), 6)
    details = {
        "assetsEmbeddingSimilarity": own_similarity,
        "assetsSimilarity": _stats([s["similarity"] for s in own_similarity]),
        "assetCouplesSimilarity": couples,
        "couplesSimilarity": _stats([c["similarity"] for c in couples]),
        "assetCouplesCaptionsDistance": [],
        "couplesCaptionsDistance": _stats([]),
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
