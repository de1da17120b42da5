"""The pure dataset score: size, duplicates, outliers and captions."""

from __future__ import annotations

import pytest

from scenario_emulator import (
    ScoredAsset,
    score_dataset,
)
from scenario_emulator.scoring import caption_similarity

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


def _captioned(n: int, caption: str | None) -> ScoredAsset:
    return ScoredAsset(f"asset_{n}", 2048, 2048, f"hash{n}", (0.5, 0.5, 0.5), caption)


@pytest.mark.parametrize(
    ("captions", "asset_warnings", "couple_warnings"),
    [
        pytest.param([None, None], {}, [], id="no-captions-no-warnings"),
        pytest.param(["a fox", None], {"asset_1": ["Missing caption"]}, [], id="missing"),
        pytest.param(["a fox", "  "], {"asset_1": ["Empty caption"]}, [], id="empty"),
        pytest.param(["A fox ", "a fox"], {}, [["Captions are identical"]], id="identical"),
        pytest.param(
            ["one two three four five six seven eight nine ten", "ten nine eight seven six five four three two one"],
            {},
            [["Captions are too close"]],
            id="same-words",
        ),
        pytest.param(["a red fox in the snow", "a cat on a sofa"], {}, [], id="different"),
    ],
)
def test_caption_warnings(
    captions: list[str | None], asset_warnings: dict[str, list[str]], couple_warnings: list[list[str]]
) -> None:
    result = score_dataset("model_x", [_captioned(n, c) for n, c in enumerate(captions)], complete=True)
    assert {w["assetId"]: w["message"] for w in result.assets_warnings} == asset_warnings
    assert [w["message"] for w in result.couples_warnings] == couple_warnings
    assert result.score == 1.0  # caption warnings do not change the score


def test_caption_similarity_and_distance() -> None:
    assert caption_similarity("a red fox", "A RED FOX") == 1.0
    assert caption_similarity("a b c d", "a b c e") == 0.6
    close = [f"w{n}" for n in range(19)]
    assert caption_similarity(" ".join(close), " ".join([*close, "extra"])) == 0.95
    result = score_dataset(
        "m", [_captioned(0, "a b c d"), _captioned(1, "a b c e"), _captioned(2, None)], complete=True
    )
    assert result.details["assetCouplesCaptionsDistance"] == [{"couple": ["asset_0", "asset_1"], "distance": 0.4}]
    assert result.details["couplesCaptionsDistance"] == {"min": 0.4, "mean": 0.4, "median": 0.4}
