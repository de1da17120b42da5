"""What a training shows in the UI: artifact keys, one progress card per training that ends
at its outcome, the summary's sample grid and the dataset-score table's file names."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest

from prefect_scenario import reporting
from prefect_scenario.api.models import DatasetScore, Model
from prefect_scenario.reporting import FleetReporter, ProgressReporter, artifact_key
from prefect_scenario.summaries import dataset_score_rows, summary_markdown


@pytest.mark.parametrize(
    ("name", "model_id", "expected"),
    [
        pytest.param("Hero", "model_5h67Veg5fEU54qRFuawhf8", "scenario-training-hero-uawhf8", id="short-name"),
        pytest.param("x" * 200, "model_ABCDEF123456", "scenario-training-" + "x" * 23 + "-123456", id="long-name"),
        pytest.param("!!!", "model_Q", "scenario-training-q", id="no-letters"),
    ],
)
def test_keys_name_the_model_and_fit_a_card(name: str, model_id: str, expected: str) -> None:
    key = artifact_key("scenario-training", name, model_id=model_id)
    assert key == expected and len(key) <= 48


def test_keys_without_a_model_id_are_unchanged() -> None:
    assert artifact_key("scenario-training", "model_AbC") == "scenario-training-model-abc"


class Shown:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, float, str]] = []
        self.ids: set[UUID] = set()
        monkeypatch.setattr(reporting, "show_progress", self.show)
        monkeypatch.setattr(reporting, "emit_training_event", lambda *a, **k: None)

    async def show(self, artifact: UUID | None, key: str, percent: float, description: str) -> UUID:
        artifact = artifact or uuid4()
        self.ids.add(artifact)
        self.calls.append((key, percent, description))
        return artifact


def model(status: str, progress: float | None = None, **more: Any) -> Model:
    data: dict[str, Any] = {"id": "model_1", "name": "Hero", "status": status, **more}
    if progress is not None:
        data["trainingProgress"] = {"stage": "running-train", "progress": progress}
    return Model.model_validate(data)


@pytest.mark.parametrize(
    ("outcome", "percent", "description"),
    [
        pytest.param("trained", 100.0, "Hero: trained", id="trained"),
        pytest.param("failed", 52.5, "Hero: failed: out of memory", id="failed"),
        pytest.param("canceled", 52.5, "Hero: canceled: out of memory", id="canceled"),
    ],
)
async def test_one_card_ends_at_its_outcome(
    monkeypatch: pytest.MonkeyPatch, outcome: str, percent: float, description: str
) -> None:
    shown = Shown(monkeypatch)
    reporter = ProgressReporter(key="k")
    await reporter.note("estimated 108 creative units")
    await reporter.update(model("training", 0.5))
    await reporter.finish(outcome, "out of memory" if outcome != "trained" else None)
    assert len(shown.ids) == 1
    assert shown.calls[-1] == ("k", percent, description)


async def test_a_refused_run_says_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = Shown(monkeypatch)
    reporter = ProgressReporter(key="k")
    await reporter.note("estimated 108 creative units")
    await reporter.finish("refused", "108 creative units is over the per_dataset budget")
    assert shown.calls[-1] == ("k", 0.0, "k: refused: 108 creative units is over the per_dataset budget")
    with pytest.raises(ValueError, match="outcome"):
        await reporter.finish("done")


async def test_a_fleet_card_reaches_100_when_every_training_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = Shown(monkeypatch)
    fleet = FleetReporter(["model_1", "model_2", "model_3"], key="fleet")
    await fleet.update(model("trained"))
    await fleet.update(model("failed", id="model_2"))
    assert shown.calls[-1][1:] == (pytest.approx(66.7), "2/3 trainings finished: 1 trained, 1 failed")
    await fleet.finish("refused")
    assert shown.calls[-1][1:] == (100.0, "3/3 trainings finished: 1 trained, 1 refused, 1 failed")


def test_the_summary_shows_score_phases_cost_and_a_labelled_grid() -> None:
    epochs = [{"epoch": str(n), "assets": [{"url": f"https://s/{n}-a.png"}, {"url": f"https://s/{n}-b.png"}]}
              for n in (1, 2)]  # fmt: skip
    trained = model("trained", epochs=epochs)
    text = summary_markdown(
        trained,
        parameters={"samplePrompts": ["a hero, full body", "a hero, close-up"], "wandbKey": "wb-secret"},
        cost=118,
        dataset_score=0.8234,
        phases={"upload": 3.2, "queue": 12.0, "training": 40.4},
    )
    assert "| Dataset score | 0.82 |" in text and "| Cost | 118 creative units |" in text
    assert "| Duration | 56 s (upload 3.2 s, queue 12 s, training 40 s) |" in text
    assert "&" not in text  # the artifact page shows HTML entities literally
    lines = text.splitlines()
    first = lines.index("**a hero, full body**")
    assert lines[first + 2] == "| epoch 1 | epoch 2 |"
    assert (
        lines[first + 4]
        == "| ![a hero, full body, epoch 1](https://s/1-a.png) | ![a hero, full body, epoch 2](https://s/2-a.png) |"
    )
    assert "**a hero, close-up**" in lines and "wb-secret" not in text


def test_the_dataset_score_table_names_files() -> None:
    score = DatasetScore.model_validate(
        {"score": 0.5, "assetsWarnings": [{"assetId": "asset_1", "message": ["too small"]}],
         "assetCouplesWarnings": [{"couple": ["asset_1", "asset_2"], "message": ["near duplicates"]}]}
    )  # fmt: skip
    rows = dataset_score_rows(score, names={"asset_1": "hero-00.png", "asset_2": "hero-01.png"})
    assert rows[0] == {"file": "hero-00.png (asset_1)", "other file": "", "warning": "too small"}
    assert rows[1]["other file"] == "hero-01.png (asset_2)"


@pytest.mark.usefixtures("prefect_harness")
async def test_a_flow_run_keeps_one_progress_artifact_per_key() -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    @flow
    async def two_reporters() -> None:
        # The flow's own note and the training's updates, as two reporters of one run under one key.
        await ProgressReporter(key="scenario-training-one-card").note("estimated 108 creative units")
        second = ProgressReporter(key="scenario-training-one-card")
        await second.update(model("training", 0.5))
        await second.finish("trained")

    await two_reporters()
    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["scenario-training-one-card"]))
        )
    assert len(found) == 1 and found[0].data == 100.0


def test_every_reporter_of_one_training_writes_the_same_short_named_card() -> None:
    model = Model(id="model_5h67Veg5fEU54qRFuawhf8", name="Hero")
    named = ProgressReporter.for_training(model.id, model.name)
    from_model = ProgressReporter.for_training(model.id)
    from_model.model = model  # the wait loop's reporter learns the name from its first read
    assert named.key == from_model.key == "scenario-training-hero-uawhf8"
    with pytest.raises(ValueError, match="a key or a model id"):
        ProgressReporter()


def test_a_process_sends_each_terminal_event_once_and_every_other_event_each_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prefect's events worker fails with an ERROR line on a second in-flight event of one id.
    sent: list[tuple[str, UUID | None]] = []
    monkeypatch.setattr(reporting, "emit_event", lambda *, event, id, **_: sent.append((event, id)))
    ended = Model.model_validate({"id": f"model_{uuid4().hex}", "status": "trained", "jobId": "job_1"})
    for _ in range(3):
        reporting.emit_training_event(reporting.EVENT_COMPLETED, ended)
        reporting.emit_training_event(reporting.EVENT_PROGRESS, ended)
    again = ended.model_copy(update={"job_id": "job_2"})  # a second training of the same model
    reporting.emit_training_event(reporting.EVENT_COMPLETED, again)
    completed = [i for e, i in sent if e == reporting.EVENT_COMPLETED]
    assert len(completed) == 2 and len(set(completed)) == 2 and None not in completed
    assert [e for e, _ in sent].count(reporting.EVENT_PROGRESS) == 3
