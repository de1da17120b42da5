"""Training over HTTP (in process): validation, conflicts, dry run, parameters."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from scenario_emulator import (
    ManualClock,
    training_cost,
)
from tests.emulator.helpers import add_images, assert_json_error, new_model, status_of, upload
from tests.emulator_fixtures import data_url, png_bytes

# -- validation over HTTP ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "images", "pairs", "parameters", "message"),
    [
        pytest.param("flux.2-dev-lora", 0, 0, None, "at least 1", id="no-images"),
        pytest.param("qwen-image-edit-lora", 0, 1, None, "at least 2 pairs", id="edit-one-pair"),
        pytest.param("flux.2-dev-lora", 2, 1, None, "standard type", id="standard-with-pairs"),
        pytest.param("flux.2-dev-lora", 2, 0, {"rank": 500}, "rank", id="rank-out-of-range"),
        pytest.param("flux.2-dev-lora", 2, 0, {"learningRate": 1}, "learningRate", id="lr-out-of-range"),
        pytest.param("flux.2-dev-lora", 2, 0, {"lrScheduler": "cosine"}, "unknown parameter", id="unknown-parameter"),
        pytest.param(
            "flux.2-dev-lora",
            2,
            0,
            {"samplePrompts": ["a"], "sampleSourceImages": ["x"]},
            "edit",
            id="source-on-standard",
        ),
        pytest.param("flux.2-dev-lora", 2, 0, {"samplePrompts": ["a"] * 5}, "samplePrompts", id="five-prompts"),
    ],
)
async def test_train_validation(
    emulator_client: httpx.AsyncClient, type_: str, images: int, pairs: int, parameters: Any, message: str
) -> None:
    model_id = await new_model(emulator_client, type_)
    await add_images(emulator_client, model_id, images)
    if pairs:
        assets = [await upload(emulator_client) for _ in range(2)]
        body = [{"sourceId": assets[0], "targetId": assets[1], "instruction": "x"}] * pairs
        assert (await emulator_client.put(f"/models/{model_id}/training-images/pairs", json=body)).status_code == 200
    response = await emulator_client.put(
        f"/models/{model_id}/train", json={"parameters": parameters} if parameters else {}
    )
    assert_json_error(response, 400)
    assert message in response.json()["reason"]
    assert await status_of(emulator_client, model_id) == "new"


async def test_training_conflicts(emulator_client: httpx.AsyncClient, emulator_clock: ManualClock) -> None:
    model_id = await new_model(emulator_client)
    await add_images(emulator_client, model_id, 2)
    cancel = await emulator_client.post(f"/models/{model_id}/train/action", json={"action": "cancel"})
    assert_json_error(cancel, 409)
    assert cancel.headers["x-should-retry"] == "false"
    first = (await emulator_client.put(f"/models/{model_id}/train", json={})).json()["job"]["jobId"]
    # A second launch while training is a 400 (Scenario's skills: "one launch at a time"), not a 409.
    assert_json_error(await emulator_client.put(f"/models/{model_id}/train", json={}), 400, "Model is already training")
    for call in (
        emulator_client.post(f"/models/{model_id}/training-images", json={"data": data_url(png_bytes(size=(8, 8)))}),
        emulator_client.put(f"/models/{model_id}", json={"type": "zimage-lora"}),
    ):
        response = await call
        assert_json_error(response, 409)
        assert response.headers["x-should-retry"] == "false"
    assert_json_error(await emulator_client.post(f"/models/{model_id}/train/action", json={"action": "stop"}), 400)
    emulator_clock.advance(100)
    assert await status_of(emulator_client, model_id) == "trained"
    assert_json_error(await emulator_client.post(f"/models/{model_id}/train/action", json={"action": "cancel"}), 409)
    retrain = await emulator_client.put(f"/models/{model_id}/train", json={})
    assert retrain.status_code == 200 and retrain.json()["job"]["jobId"] != first
    assert retrain.json()["model"]["status"] == "training"


async def test_dry_run_changes_nothing(emulator_client: httpx.AsyncClient) -> None:
    model_id = await new_model(emulator_client)
    response = await emulator_client.put(
        f"/models/{model_id}/train", params={"dryRun": "api", "trainingImagesCount": "7"}, json={}
    )
    assert response.status_code == 269
    body = response.json()
    assert body["creativeUnitsCost"] == training_cost(images=7, pairs=0, nb_epochs=10)
    # Cost fields only (Scenario's blender plugin captured a 269 this way): no model, no job.
    assert body == {"creativeUnitsCost": 140, "creativeUnitsDiscount": 0, "costDetails": {"train-model": 140}}
    model = (await emulator_client.get(f"/models/{model_id}")).json()["model"]
    assert model["status"] == "new" and "jobId" not in model
    assert_json_error(await emulator_client.put(f"/models/{model_id}/train", json={}), 400)  # still no images


@pytest.mark.parametrize(
    ("type_", "count", "expected"),
    [
        pytest.param("flux.2-dev-lora", 1, training_cost(images=1, pairs=0, nb_epochs=10), id="standard-one"),
        pytest.param("flux.2-dev-lora", 12, training_cost(images=12, pairs=0, nb_epochs=10), id="standard-twelve"),
        pytest.param("qwen-image-edit-lora", 3, training_cost(images=0, pairs=3, nb_epochs=10), id="edit-pairs"),
    ],
)
async def test_a_dry_run_quotes_an_empty_model_before_any_upload(
    emulator_client: httpx.AsyncClient, type_: str, count: int, expected: float
) -> None:
    model_id = await new_model(emulator_client, type_)
    response = await emulator_client.put(
        f"/models/{model_id}/train", params={"dryRun": "true", "trainingImagesCount": str(count)}, json={}
    )
    assert response.status_code == 269, response.text
    assert response.json()["creativeUnitsCost"] == expected
    listed = (await emulator_client.get(f"/models/{model_id}")).json()["model"]
    assert listed["status"] == "new" and not listed.get("trainingImages")


async def test_the_simulated_count_is_ignored_once_images_are_there(emulator_client: httpx.AsyncClient) -> None:
    model_id = await new_model(emulator_client)
    await add_images(emulator_client, model_id, 2)
    response = await emulator_client.put(
        f"/models/{model_id}/train", params={"dryRun": "true", "trainingImagesCount": "30"}, json={}
    )
    assert response.json()["creativeUnitsCost"] == training_cost(images=2, pairs=0, nb_epochs=10)


async def test_a_dry_run_without_images_or_count_is_refused(emulator_client: httpx.AsyncClient) -> None:
    model_id = await new_model(emulator_client)
    response = await emulator_client.put(f"/models/{model_id}/train", params={"dryRun": "true"}, json={})
    assert "at least 1 training image" in assert_json_error(response, 400)["reason"]


async def test_wandb_key_is_never_echoed(emulator_client: httpx.AsyncClient) -> None:
    model_id = await new_model(emulator_client)
    await add_images(emulator_client, model_id, 1)
    response = await emulator_client.put(f"/models/{model_id}/train", json={"parameters": {"wandbKey": "wb-secret"}})
    assert response.status_code == 200 and "wb-secret" not in response.text
    assert "wb-secret" not in (await emulator_client.get(f"/models/{model_id}")).text


async def test_the_cost_is_the_same_on_dry_run_trigger_and_job(emulator_client: httpx.AsyncClient) -> None:
    model_id = await new_model(emulator_client)
    await add_images(emulator_client, model_id, 3)
    body = {"parameters": {"nbEpochs": 5}}
    expected = training_cost(images=3, pairs=0, nb_epochs=5)
    assert expected == 90  # 50 + 10 × 3 images + 2 × 5 epochs
    dry = await emulator_client.put(f"/models/{model_id}/train", params={"dryRun": "true"}, json=body)
    assert (dry.status_code, dry.json()["creativeUnitsCost"]) == (269, expected)
    assert set(dry.json()) == {"creativeUnitsCost", "creativeUnitsDiscount", "costDetails"}
    started = (await emulator_client.put(f"/models/{model_id}/train", json=body)).json()
    assert started["creativeUnitsCost"] == expected and started["costDetails"] == {"train-model": expected}
    job = (await emulator_client.get(f"/jobs/{started['job']['jobId']}")).json()["job"]
    assert job["billing"] == {"cuCost": expected, "cuDiscount": 0}


async def test_a_dry_run_of_a_training_model_is_also_refused(emulator_client: httpx.AsyncClient) -> None:
    model_id = await new_model(emulator_client)
    await add_images(emulator_client, model_id, 1)
    await emulator_client.put(f"/models/{model_id}/train", json={})
    dry = await emulator_client.put(f"/models/{model_id}/train", params={"dryRun": "true"}, json={})
    assert_json_error(dry, 400, "Model is already training")
