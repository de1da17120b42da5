"""Assets and training images over HTTP (in process): uploads, batches, duplicates, captions."""

from __future__ import annotations

import base64

import httpx

from scenario_emulator import (
    EmulatorApp,
)
from tests.emulator.helpers import add_images, assert_json_error, new_model, upload
from tests.emulator_fixtures import data_url, png_bytes


async def test_the_51st_image_is_refused(emulator_client: httpx.AsyncClient, emulator_app: EmulatorApp) -> None:
    model_id = await new_model(emulator_client)
    assets = [await upload(emulator_client, (n, n, n)) for n in range(51)]
    assert_json_error(
        await emulator_client.post(f"/models/{model_id}/training-images", json={"assetIds": assets[:11]}), 400
    )
    for start in range(0, 50, 10):
        batch = (
            await emulator_client.post(
                f"/models/{model_id}/training-images", json={"assetIds": assets[start : start + 10]}
            )
        ).json()
        assert len(batch["trainingImages"]) == 10 and batch["trainingImage"] == batch["trainingImages"][0]
    last = await emulator_client.post(f"/models/{model_id}/training-images", json={"assetId": assets[50]})
    assert_json_error(last, 400)
    assert "at most 50" in last.json()["reason"]
    model = (await emulator_client.get(f"/models/{model_id}")).json()["model"]
    assert model["trainingImagesNumber"] == 50 and len(model["trainingImages"]) == 50


async def test_training_images_by_asset_delete_and_replace(emulator_client: httpx.AsyncClient) -> None:
    model_id = await new_model(emulator_client)
    first, second = await upload(emulator_client, (1, 1, 1)), await upload(emulator_client, (2, 2, 2))
    url = f"/models/{model_id}/training-images"
    assert (await emulator_client.post(url, json={"assetId": first})).json()["trainingImage"]["id"] == first
    # The same asset again is a 400 (Scenario's skills quote the text), and adds nothing.
    again = await emulator_client.post(url, json={"assetId": first})
    assert_json_error(again, 400, "The provided assetId is already a training image of this model")
    assert (await emulator_client.get(f"/models/{model_id}")).json()["model"]["trainingImagesNumber"] == 1
    replaced = await emulator_client.put(f"{url}/{first}", json={"assetId": second})
    assert replaced.json()["trainingImage"]["id"] == second
    assert (await emulator_client.delete(f"{url}/{second}")).json() == {}
    assert_json_error(await emulator_client.delete(f"{url}/{second}"), 404)
    assert (await emulator_client.get(f"/models/{model_id}")).json()["model"]["trainingImagesNumber"] == 0


async def test_assets_take_data_urls_and_raw_base64(emulator_client: httpx.AsyncClient) -> None:
    image = png_bytes((255, 0, 0), size=(30, 20))
    for payload in (data_url(image), base64.b64encode(image).decode()):
        asset = (await emulator_client.post("/assets", json={"name": "r.png", "image": payload})).json()["asset"]
        assert asset["properties"] == {"size": len(image), "width": 30, "height": 20, "format": "png"}
        assert (await emulator_client.get(asset["url"])).content == image
        assert (await emulator_client.get(f"/assets/{asset['id']}")).json()["asset"]["id"] == asset["id"]


async def test_more_than_ten_asset_ids_is_a_400(emulator_client: httpx.AsyncClient) -> None:
    model_id = await new_model(emulator_client)
    assets = [await upload(emulator_client, (n, n, n)) for n in range(11)]
    url = f"/models/{model_id}/training-images"
    too_many = await emulator_client.post(url, json={"assetIds": assets})
    assert_json_error(too_many, 400, "Too many assetIds provided in a single request")
    assert len((await emulator_client.post(url, json={"assetIds": assets[:10]})).json()["trainingImages"]) == 10


async def test_a_batch_with_an_existing_training_image_adds_nothing(emulator_client: httpx.AsyncClient) -> None:
    model_id = await new_model(emulator_client)
    first, second = await upload(emulator_client, (1, 1, 1)), await upload(emulator_client, (2, 2, 2))
    url = f"/models/{model_id}/training-images"
    assert (await emulator_client.post(url, json={"assetIds": [first]})).status_code == 200
    again = await emulator_client.post(url, json={"assetIds": [second, first]})
    assert_json_error(again, 400, "The provided assetId is already a training image of this model")
    assert (await emulator_client.get(f"/models/{model_id}")).json()["model"]["trainingImagesNumber"] == 1
    # Re-sending only what did not land works (the advice of Scenario's skills).
    assert (await emulator_client.post(url, json={"assetIds": [second]})).status_code == 200
    replaced = await emulator_client.put(f"{url}/{first}", json={"assetId": second})
    assert_json_error(replaced, 400, "The provided assetId is already a training image of this model")


async def test_a_caption_is_the_asset_description(emulator_client: httpx.AsyncClient) -> None:
    model_id = await new_model(emulator_client)
    [image_id] = await add_images(emulator_client, model_id, 1)
    asset = (await emulator_client.get(f"/assets/{image_id}")).json()["asset"]
    assert "description" not in asset
    updated = await emulator_client.put(f"/assets/{image_id}", json={"description": "a red fox in the snow"})
    assert updated.status_code == 200
    assert updated.json()["asset"]["description"] == "a red fox in the snow"
    assert (await emulator_client.get(f"/assets/{image_id}")).json()["asset"]["description"] == "a red fox in the snow"
    model = (await emulator_client.get(f"/models/{model_id}")).json()["model"]
    assert model["trainingImages"][0]["description"] == "a red fox in the snow"
    assert model["trainingImages"][0]["automaticCaptioning"] == ""
    other = await upload(emulator_client, (9, 9, 9))
    await emulator_client.put(f"/assets/{other}", json={"description": "a fox"})
    added = await emulator_client.post(f"/models/{model_id}/training-images", json={"assetId": other})
    assert added.json()["trainingImage"]["description"] == "a fox"
    assert_json_error(await emulator_client.put("/assets/asset_nope", json={"description": "x"}), 404)
    assert_json_error(await emulator_client.put(f"/assets/{other}", json={"description": 5}), 400)
    fresh = await emulator_client.post(
        f"/models/{model_id}/training-images", json={"assetId": await upload(emulator_client)}
    )
    assert fresh.json()["trainingImage"]["description"] == ""


async def test_captions_reach_the_dataset_score(emulator_client: httpx.AsyncClient) -> None:
    model_id = await new_model(emulator_client)
    ids = await add_images(emulator_client, model_id, 4)
    url = f"/models/{model_id}/scores/training-dataset"
    assert all("caption" not in str(w) for w in (await emulator_client.get(url)).json()["assetsWarnings"])
    captions = ["a red fox in the snow", "a red fox in the snow", "a cat on a sofa"]
    for asset_id, caption in zip(ids, captions, strict=False):
        await emulator_client.put(f"/assets/{asset_id}", json={"description": caption})
    score = (await emulator_client.get(url)).json()
    messages = {w["assetId"]: w["message"] for w in score["assetsWarnings"]}
    assert "Missing caption" in messages[ids[3]]
    assert {"couple": [ids[0], ids[1]], "message": ["Captions are identical"]} in score["assetCouplesWarnings"]
    assert len(score["details"]["assetCouplesCaptionsDistance"]) == 3  # the couples where both have a caption
