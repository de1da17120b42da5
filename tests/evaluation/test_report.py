"""The contact sheet and the lineage summary (pure)."""

from __future__ import annotations

from prefect_scenario.api.models import Model
from prefect_scenario.evaluation.render import Render, RenderSet
from prefect_scenario.evaluation.report import contact_sheet, epoch_samples, lineage_markdown
from prefect_scenario.evaluation.scoring import ImageScore


def _set(model_id: str, urls: list[str]) -> RenderSet:
    renders = [Render(f"k{i}", f"prompt {i}", 7, f"job_{i}", f"asset_{model_id}_{i}", u, None, False)
               for i, u in enumerate(urls)]  # fmt: skip
    return RenderSet(model_id, "model_bfl-flux-2-dev", "digest1", renders)


def test_the_sheet_puts_candidate_and_production_side_by_side_with_scores_and_samples() -> None:
    mine, theirs = (
        _set("model_new", ["https://a/1.png", "https://a/2.png"]),
        _set("model_old", ["https://b/1.png", None]),
    )
    scores = [ImageScore("prompt 0", 7, "x", 81.0, "pass"), ImageScore("prompt 1", 7, "y", 64.5, "warn")]
    old = [ImageScore("prompt 0", 7, "x", 70.0, "pass"), ImageScore("prompt 1", 7, "y", 60.0, "warn")]
    samples = [{"assetId": "s1", "url": "https://s/1"}, {"assetId": "s2", "url": "https://s/2"}]
    model = Model.model_validate({"id": "model_new", "parameters": {"samplePrompts": ["a fox", "a cat"]},
                                  "epochs": [{"epoch": "000010", "assets": samples}]})  # fmt: skip
    sheet = contact_sheet(mine, scores, theirs, old, epoch_samples(model))
    assert (
        "| prompt 0 | 7 | ![render](https://a/1.png)<br>81.0 (pass) | ![render](https://b/1.png)<br>70.0 (pass) |"
        in sheet
    )
    assert "(no image)<br>60.0 (warn)" in sheet
    assert "| 000010 | a cat | ![render](https://s/2)<br>– |" in sheet


def test_without_production_and_with_mismatched_samples() -> None:
    model = Model.model_validate(
        {"id": "m", "epochs": [{"epoch": "000001", "assets": [{"assetId": "s", "url": None}]}]}
    )
    assert epoch_samples(model) == [("000001", "sample 1", None)]
    sheet = contact_sheet(_set("m", ["https://a"]), [ImageScore("prompt 0", 7, "x", 50.0)], None, None)
    assert "production (none yet)" in sheet and sheet.rstrip().endswith("| – |")


def test_the_lineage_reads_dataset_to_decision() -> None:
    details = {"dataset": "s3://b/hero/", "manifest_digest": "m1", "model_id": "model_x", "suite_digest": "d1",
               "mean_gain": 7.5, "decision": "promoted", "reason": "better"}  # fmt: skip
    text = lineage_markdown(details)
    order = [text.index(k) for k in ("s3://b/hero/", "m1", "model_x", "d1", "7.5", "promoted")]
    assert order == sorted(order)
