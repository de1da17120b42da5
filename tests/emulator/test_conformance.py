"""The official SDK, in strict response-validation mode, against a real emulator server.

Every call below parses its answer with ``_strict_response_validation=True``: a missing
required field, a wrong type or an enum value outside the SDK's would raise
``APIResponseValidationError``. The clock is moved by hand; nothing sleeps.

Two answers are read leniently, because the real API's answer breaks the SDK's strict
schema and the emulator answers as the real API does (Scenario's blender plugin,
``scenario-labs/blender-plugin``, live captures under ``tests/fixtures/``):

- a dry run answers 269 with the cost fields only, where ``TrainTriggerResponse``
  requires ``model`` and ``job``: read as the raw response;
- ``GET /models`` rows carry ``"trainingProgress": {}``, where ``TrainingProgress``
  requires ``stage`` and ``updatedAt``: listed with a non-strict client.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest
import scenario_sdk
from scenario_sdk import Scenario

from scenario_emulator import EmulatorServer, ManualClock
from tests.emulator_fixtures import EMULATOR_KEY, EMULATOR_SECRET, data_url, png_bytes

PROJECT = "proj_conformance"


@pytest.fixture
def sdk(emulator_server: EmulatorServer) -> Iterator[Scenario]:
    client = Scenario(
        api_key=EMULATOR_KEY,
        api_secret=EMULATOR_SECRET,
        base_url=emulator_server.base_url,
        _strict_response_validation=True,
    )
    with client:
        yield client


@pytest.fixture
def lenient_sdk(emulator_server: EmulatorServer) -> Iterator[Scenario]:
    """The SDK without strict validation, for the answers the real API sends outside its schema."""
    with Scenario(api_key=EMULATOR_KEY, api_secret=EMULATOR_SECRET, base_url=emulator_server.base_url) as client:
        yield client


def _poll_until_done(sdk: Scenario, clock: ManualClock, model_id: str, step: float = 0.5) -> list[tuple[str, ...]]:
    """Advance the clock in steps, reading the model each time; return what was seen."""
    seen: list[tuple[str, ...]] = []
    for _ in range(200):
        model = sdk.models.retrieve(model_id, project_id=PROJECT).model
        progress = model.training_progress
        if progress is None:
            seen.append((model.status,))
        else:
            seen.append((model.status, progress.stage, str(progress.position), str(progress.progress)))
        if model.status in ("trained", "failed", "training-canceled"):
            return seen
        clock.advance(step)
    raise AssertionError(f"the training never ended: {seen[-3:]}")


def test_standard_lora_sequence(
    sdk: Scenario, lenient_sdk: Scenario, emulator_server: EmulatorServer, emulator_clock: ManualClock
) -> None:
    created = sdk.models.create(name="My Character", type="flux.2-dev-lora", project_id=PROJECT).model
    assert created.status == "new"
    assert created.type == "flux.2-dev-lora"

    for n in range(5):
        image = png_bytes((100 + 20 * n, 90, 80))
        added = sdk.models.training_images.add(
            created.id, name=f"image-{n:02d}.png", data=data_url(image), project_id=PROJECT
        )
        assert added.training_image.id.startswith("asset_")
        assert added.training_image.name == f"image-{n:02d}.png"

    dry = sdk.models.train.with_raw_response.trigger(created.id, dry_run="true", project_id=PROJECT)
    assert dry.status_code == 269
    estimate = dry.http_response.json()  # cost fields only: strict parsing would want model and job
    assert estimate["creativeUnitsCost"] == 120  # 50 + 10 × 5 images + 2 × 10 default epochs
    assert estimate["costDetails"]["train-model"] == 120
    assert estimate == {"creativeUnitsCost": 120, "creativeUnitsDiscount": 0, "costDetails": {"train-model": 120}}
    assert sdk.models.retrieve(created.id, project_id=PROJECT).model.status == "new"  # no state change

    prompts = ["a portrait of the character", "the character in a forest"]
    started = sdk.models.train.trigger(
        created.id, project_id=PROJECT, parameters={"nbEpochs": 4, "samplePrompts": prompts}
    )
    assert started.model.status == "training"
    assert started.job.job_type == "flux-model-training"
    assert started.job.status == "queued"
    assert started.creative_units_cost == 108  # the dry run's formula: 50 + 10 × 5 images + 2 × 4 epochs
    job_id = started.job.job_id

    seen = _poll_until_done(sdk, emulator_clock, created.id)
    stages = [s[1] for s in seen if len(s) > 1]
    assert stages[0] == "queued-for-train"
    assert {"starting-train", "running-train"} <= set(stages)
    positions = [int(float(s[2])) for s in seen if len(s) > 1 and s[1] == "queued-for-train"]
    assert positions == sorted(positions, reverse=True) and positions[0] == 2 and positions[-1] == 0
    progress = [float(s[3]) for s in seen if len(s) > 1 and s[1] == "running-train"]
    assert progress == sorted(progress) and 0 <= progress[0] < progress[-1] < 1
    assert seen[-1] == ("trained",)

    trained = sdk.models.retrieve(created.id, project_id=PROJECT).model
    assert trained.epochs is not None and [e.epoch for e in trained.epochs] == ["000001", "000002", "000003", "000004"]
    last = trained.epochs[-1]
    assert last.assets is not None and len(last.assets) == len(prompts)
    sample = httpx.get(last.assets[0].url)
    assert sample.status_code == 200 and sample.headers["content-type"] == "image/png"
    assert trained.training_stats is not None and trained.training_stats.ended_at is not None
    assert trained.training_images_number == 5

    job = sdk.jobs.retrieve(job_id, project_id=PROJECT).job
    assert job.status == "success" and job.progress == 1
    assert [h.status for h in job.status_history] == ["queued", "warming-up", "in-progress", "success"]
    assert job.billing is not None and job.billing.cu_cost == 108  # 50 + 10 × 5 images + 2 × 4 epochs

    tags = sdk.models.update_tags(created.id, add=["run-abc", "hero"], strict=False, project_id=PROJECT)
    assert tags.added == ["run-abc", "hero"] and tags.deleted == []
    tags = sdk.models.update_tags(created.id, add=["hero"], delete=["run-abc"], project_id=PROJECT)
    assert tags.added == [] and tags.deleted == ["run-abc"]

    others = [sdk.models.create(name=f"other-{n}", type="zimage-lora", project_id=PROJECT).model.id for n in range(4)]
    first_page = lenient_sdk.models.list(project_id=PROJECT, page_size=2)
    assert len(first_page.models) == 2 and first_page.next_pagination_token
    assert json.loads(base64.b64decode(first_page.next_pagination_token)) == {"offset": 2, "limit": 2}
    listed = [m.id for m in lenient_sdk.models.list(project_id=PROJECT, page_size=2)]  # the auto-pager
    assert sorted(listed) == sorted([created.id, *others])
    last_page = sdk.models.with_raw_response.list(project_id=PROJECT, page_size=5).http_response.json()
    assert "nextPaginationToken" not in last_page
    assert {(json.dumps(m["trainingProgress"]), json.dumps(m["parameters"])) for m in last_page["models"]} == {
        ("{}", "{}")
    }

    preview = sdk.models.get_bulk(model_ids=[created.id, "model_unknown"], project_id=PROJECT).models
    assert [m.id for m in preview] == [created.id]
    assert preview[0].training_images is not None and len(preview[0].training_images) == 3
    full = sdk.models.get_bulk(model_ids=[created.id], all_training_images=True, project_id=PROJECT).models
    assert full[0].training_images is not None and len(full[0].training_images) == 5

    assert sdk.models.delete(created.id, project_id=PROJECT) == {}
    with pytest.raises(scenario_sdk.NotFoundError):
        sdk.models.retrieve(created.id, project_id=PROJECT)


def test_edit_lora_sequence(sdk: Scenario, emulator_clock: ManualClock) -> None:
    model = sdk.models.create(name="Snowy", type="qwen-image-edit-2511-lora", project_id=PROJECT).model
    assert model.capabilities == ["img2img"]
    asset_ids = []
    for n in range(4):
        raw = base64.b64encode(png_bytes((40 * n, 100, 200))).decode()
        asset = sdk.assets.upload(name=f"pair-{n}.png", image=raw, project_id=PROJECT).asset
        assert asset.kind == "image" and asset.mime_type == "image/png"
        assert asset.properties.width == 1024 and asset.properties.height == 1024
        assert asset.properties.size > 0
        asset_ids.append(asset.id)

    pairs = sdk.models.training_images.replace_pairs(
        model.id,
        body=[
            {"sourceId": asset_ids[0], "targetId": asset_ids[1], "instruction": "make it snowy"},
            {"sourceId": asset_ids[2], "targetId": asset_ids[3], "instruction": "make it snowy"},
        ],
        project_id=PROJECT,
    )
    assert pairs.count == 2 and pairs.pairs[0].source_id == asset_ids[0]

    started = sdk.models.train.trigger(
        model.id,
        project_id=PROJECT,
        parameters={"nbEpochs": 2, "samplePrompts": ["make it snowy"], "sampleSourceImages": [asset_ids[0]]},
    )
    assert started.job.job_type == "musubi-model-training"
    assert _poll_until_done(sdk, emulator_clock, model.id, step=1.0)[-1] == ("trained",)
    trained = sdk.models.retrieve(model.id, project_id=PROJECT).model
    assert trained.training_image_pairs is not None and len(trained.training_image_pairs) == 2
    assert trained.epochs is not None and trained.epochs[-1].assets is not None
    assert trained.parameters is not None and trained.parameters.sample_source_images == [asset_ids[0]]


def test_cancel_ends_training_canceled(sdk: Scenario, emulator_clock: ManualClock) -> None:
    model = sdk.models.create(name="Quitter", type="flux.2-klein-4b-lora", project_id=PROJECT).model
    sdk.models.training_images.add(model.id, name="a.png", data=data_url(png_bytes()), project_id=PROJECT)
    job_id = sdk.models.train.trigger(model.id, project_id=PROJECT).job.job_id
    emulator_clock.advance(6)  # into running-train

    canceled = sdk.models.train.action(model.id, action="cancel", project_id=PROJECT).model
    assert canceled.status == "training-canceled"
    assert sdk.models.train.action(model.id, action="cancel", project_id=PROJECT).model.status == "training-canceled"
    emulator_clock.advance(60)
    assert sdk.models.retrieve(model.id, project_id=PROJECT).model.status == "training-canceled"
    job = sdk.jobs.retrieve(job_id, project_id=PROJECT).job
    assert job.status == "canceled" and 0 < job.progress < 1


def test_failed_training_carries_its_reason(sdk: Scenario, emulator_clock: ManualClock) -> None:
    model = sdk.models.create(name="doomed", type="zimage-turbo-lora", project_id=PROJECT).model
    sdk.models.training_images.add(model.id, name="a.png", data=data_url(png_bytes()), project_id=PROJECT)
    job_id = sdk.models.train.trigger(model.id, project_id=PROJECT).job.job_id
    assert _poll_until_done(sdk, emulator_clock, model.id, step=1.0)[-1] == ("failed",)
    failed = sdk.models.retrieve(model.id, project_id=PROJECT).model
    assert failed.to_dict()["trainingError"] == "Training failed (emulated failure)"
    job = sdk.jobs.retrieve(job_id, project_id=PROJECT).job
    assert job.status == "failure" and job.metadata.error == "Training failed (emulated failure)"


def test_dataset_score(sdk: Scenario) -> None:
    model = sdk.models.create(name="Scored", type="flux.2-dev-lora", project_id=PROJECT).model
    grey = png_bytes((120, 120, 120))
    images = [grey, grey, png_bytes((125, 120, 118)), png_bytes((118, 122, 120)), png_bytes((255, 0, 0))]
    images.append(png_bytes((121, 121, 121), size=(512, 512)))
    for n, image in enumerate(images):
        sdk.models.training_images.add(model.id, name=f"{n}.png", data=data_url(image), project_id=PROJECT)

    score = sdk.models.scores.retrieve_training_dataset(model.id, project_id=PROJECT)
    assert score.status == "complete"
    assert 0 < score.score < 1
    messages = {w.asset_id: w.message for w in score.assets_warnings or []}
    assert ["Width and height must be larger than 1024"] in messages.values()
    assert ["Similarity with other assets is too low"] in messages.values()
    assert [w.message for w in score.asset_couples_warnings or []] == [["Same asset"]]
    assert len(score.details.asset_couples_similarity) == 15  # 6 choose 2


def test_retrigger_fails_at_once_with_a_400(sdk: Scenario, emulator_server: EmulatorServer) -> None:
    model = sdk.models.create(name="Busy", type="flux.2-dev-lora", project_id=PROJECT).model
    sdk.models.training_images.add(model.id, name="a.png", data=data_url(png_bytes()), project_id=PROJECT)
    with pytest.raises(scenario_sdk.ConflictError) as conflict:  # nothing to cancel yet
        sdk.models.train.action(model.id, action="cancel", project_id=PROJECT)
    assert conflict.value.response.headers["x-should-retry"] == "false"
    sdk.models.train.trigger(model.id, project_id=PROJECT)
    before = len(emulator_server.requests())
    with pytest.raises(scenario_sdk.BadRequestError) as caught:
        sdk.models.train.trigger(model.id, project_id=PROJECT)
    assert caught.value.status_code == 400
    assert caught.value.body["reason"] == "Model is already training"
    assert len(emulator_server.requests()) == before + 1  # no SDK retry


def test_wrong_secret_is_401(emulator_server: EmulatorServer) -> None:
    with Scenario(api_key=EMULATOR_KEY, api_secret="wrong", base_url=emulator_server.base_url) as client:
        with pytest.raises(scenario_sdk.AuthenticationError) as caught:
            client.models.list()
    trace_id = caught.value.response.headers["x-request-id"]
    assert caught.value.body == {"reason": "missing or invalid credentials", "traceId": trace_id}


def test_batch_limits_are_typed_400s(sdk: Scenario) -> None:
    model = sdk.models.create(name="Batch", type="flux.2-dev-lora", project_id=PROJECT).model
    raw = base64.b64encode(png_bytes(size=(8, 8))).decode()
    assets = [sdk.assets.upload(name=f"{n}.png", image=raw, project_id=PROJECT).asset.id for n in range(11)]
    with pytest.raises(scenario_sdk.BadRequestError) as too_many:
        sdk.models.training_images.add(model.id, asset_ids=assets, project_id=PROJECT)
    assert (too_many.value.status_code, too_many.value.body["reason"]) == (
        400,
        "Too many assetIds provided in a single request",
    )
    added = sdk.models.training_images.add(model.id, asset_ids=assets[:10], project_id=PROJECT)
    assert added.training_image.id == assets[0]
    with pytest.raises(scenario_sdk.BadRequestError) as again:
        sdk.models.training_images.add(model.id, asset_id=assets[0], project_id=PROJECT)
    assert again.value.body["reason"] == "The provided assetId is already a training image of this model"
    assert again.value.body["traceId"] == again.value.response.headers["x-request-id"]


def test_plan_limits_are_typed_429s(
    sdk: Scenario, emulator_server: EmulatorServer, emulator_clock: ManualClock
) -> None:
    once = sdk.with_options(max_retries=0)  # "an immediate retry repeats the error" (Scenario's skills)
    models = []
    for name in ("first", "second"):
        model = once.models.create(name=name, type="zimage-lora", project_id=PROJECT).model
        once.models.training_images.add(model.id, name="a.png", data=data_url(png_bytes()), project_id=PROJECT)
        models.append(model.id)
    emulator_server.set_limits(parallel_trainings=1, team_image_cap=2, trigger_cooldown=30)
    with pytest.raises(scenario_sdk.RateLimitError) as full:
        once.models.training_images.add(models[0], name="b.png", data=data_url(png_bytes()), project_id=PROJECT)
    assert full.value.status_code == 429 and full.value.body["name"] == "PlanLimitReachedError"
    assert full.value.body["details"] == {"actionName": "add-training-image", "actionLimit": 2}

    assert once.models.train.trigger(models[0], project_id=PROJECT).model.status == "training"
    emulator_clock.advance(10)
    with pytest.raises(scenario_sdk.RateLimitError) as cooling:
        once.models.train.trigger(models[1], project_id=PROJECT)
    assert cooling.value.body["remainingSeconds"] == 20 and cooling.value.body["reason"]
    emulator_clock.advance(20)  # past the cooldown; a plan that allows no training at all
    emulator_server.set_limits(parallel_trainings=0)
    with pytest.raises(scenario_sdk.RateLimitError) as parallel:
        once.models.train.trigger(models[1], project_id=PROJECT)
    assert parallel.value.body["details"] == {"actionName": "parallel-training", "actionLimit": 0}


def test_update_an_asset_description(sdk: Scenario) -> None:
    model = sdk.models.create(name="Captions", type="flux.2-dev-lora", project_id=PROJECT).model
    image = sdk.models.training_images.add(model.id, name="a.png", data=data_url(png_bytes()), project_id=PROJECT)
    asset = sdk.assets.update(image.training_image.id, description="a red fox", project_id=PROJECT).asset
    assert asset.description == "a red fox"
    trained_images = sdk.models.retrieve(model.id, project_id=PROJECT).model.training_images
    assert trained_images is not None and trained_images[0].description == "a red fox"
