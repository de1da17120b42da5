"""The pure dataset score: size, duplicates, outliers and captions."""

from __future__ import annotations

import pytest

from scenario_emulator import (
    ScoredAsset,
    score_dataset,
)

# -- the pure dataset score ----------------------------------------------------------------------


def _asset(
    n: int, color: tuple[float, float, float] = (0.5, 0.5, 0.5), side: int = 2048, digest: str = ""
) -> ScoredAsset:
    return ScoredAsset(f"asset_{n}", side, side, digest or f"hash{n}", color)


@pytest.mark.parametrize(
    ("assets", "score", "asset_warnings", "couple_warnings"),
    [
        pytest.param([], 0.0, {}, 0, id="empty"),
        pytest.param([_asset(1), _asset(2), _asset(3)], 1.0, {}, 0, id="clean"),
        pytest.param(
            [_asset(1), _asset(2, side=800)],
            0.75,
            {"asset_2": ["Width and height must be larger than 1024"]},
            0,
            id="small",
        ),
        pytest.param([_asset(1, digest="same"), _asset(2, digest="same")], 0.85, {}, 1, id="same-asset"),
        pytest.param(
            [*[_asset(n) for n in range(4)], _asset(9, color=(1.0, 0.0, 0.0))],
            0.96,
            {"asset_9": ["Similarity with other assets is too low"]},
            0,
            id="outlier",
        ),
        pytest.param([_asset(1, (0, 0, 0)), _asset(2, (1, 1, 1))], 1.0, {}, 0, id="two-far-apart-not-judged"),
    ],
)
def test_dataset_score(
    assets: list[ScoredAsset], score: float, asset_warnings: dict[str, list[str]], couple_warnings: int
) -> None:
    result = score_dataset("model_x", assets, complete=bool(assets))
    assert result.score == score
    assert {w["assetId"]: w["message"] for w in result.assets_warnings} == asset_warnings
    assert len(result.couples_warnings) == couple_warnings
    wire = result.to_wire()
    assert wire["status"] == ("complete" if assets else "incomplete")
    assert len(wire["details"]["assetCouplesSimilarity"]) == len(assets) * (len(assets) - 1) // 2
