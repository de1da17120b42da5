"""Assets and training images over HTTP (in process): uploads, batches, duplicates, captions."""

from __future__ import annotations

import base64

import httpx

from scenario_emulator import (
    EmulatorApp,
)
from tests.emulator.helpers import assert_json_error, new_model, upload
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
