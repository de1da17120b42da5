"""Rendering with a trained LoRA on the emulator: bases, validation answers, dry runs, jobs, outputs, scores."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from scenario_emulator import EmulatorApp, ManualClock
from tests.emulator.helpers import add_images, assert_json_error, new_model, upload

FLUX2 = "model_bfl-flux-2-dev"


async def trained_lora(client: httpx.AsyncClient, clock: ManualClock, *, epochs: int = 10, images: int = 3,
                       type_: str = "flux.2-dev-lora") -> str:  # fmt: skip
    model_id = await new_model(client, type_)
    await add_images(client, model_id, images)
    response = await client.put(f"/models/{model_id}/train", json={"parameters": {"nbEpochs": epochs}})
    assert response.status_code == 200, response.text
    clock.advance(60)
    return model_id


def body(lora: str, **extra: Any) -> dict[str, Any]:
    return {"prompt": "a cabin", "loras": [lora], "lorasScale": [1.0], "numOutputs": 1, "seed": 7,
            "width": 1024, "height": 1024, **extra}  # fmt: skip


async def test_a_base_model_carries_inputs_and_the_loras_component(emulator_client: httpx.AsyncClient) -> None:
    model = (await emulator_client.get(f"/models/{FLUX2}")).json()["model"]
    assert model["custom"] is True and model["type"] == "custom"
    component = model["uiConfig"]["lorasComponent"]
    assert (component["modelInput"], component["scaleInput"], component["modelIdInput"]) == (
        "loras", "lorasScale", "modelId")  # fmt: skip
    loras = next(i for i in model["inputs"] if i["name"] == "loras")
    assert loras["modelTypes"] == ["flux.2-dev-lora", "flux.2-dev-edit-lora"] and loras["maxLength"] == 6


async def test_a_dry_run_answers_269_with_the_cost_only(
    emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    lora = await trained_lora(emulator_client, emulator_clock)
    response = await emulator_client.post(f"/generate/custom/{FLUX2}", params={"dryRun": "true"}, json=body(lora))
    assert response.status_code == 269
    assert response.json() == {"creativeUnitsCost": 4.0, "creativeUnitsDiscount": 0,
                               "costDetails": {"custom-generation": 3.5, "quality-gate": 0.5}}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ({"lorasScale": [3.0]}, 400, "Input lorasScale must be at most 2"),
        ({"prompt": "x" * 2049}, 400, "Input prompt must be at most 2048 characters long"),
        ({"numOutputs": 5}, 400, "Input numOutputs must be at most 4"),
        ({"loras": ["model_missing"]}, 404, "Model model_missing not found"),
    ],
    ids=["scale-over-2", "prompt-too-long", "too-many-outputs", "unknown-lora"],
)
async def test_validation_answers(
    emulator_client: httpx.AsyncClient, emulator_clock: ManualClock, change: dict[str, Any], status: int, reason: str
) -> None:
    lora = await trained_lora(emulator_client, emulator_clock)
    response = await emulator_client.post(f"/generate/custom/{FLUX2}", json={**body(lora), **change})
    assert_json_error(response, status, reason)


async def test_seven_loras_a_wrong_type_and_a_lora_as_target_are_refused(
    emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    lora = await trained_lora(emulator_client, emulator_clock)
    seven = {**body(lora), "loras": [lora] * 7, "lorasScale": [1.0] * 7}
    assert_json_error(await emulator_client.post(f"/generate/custom/{FLUX2}", json=seven), 400,
                      "Input loras must be at most 6 items long")  # fmt: skip
    zimage = await trained_lora(emulator_client, emulator_clock, type_="zimage-lora")
    assert_json_error(
        await emulator_client.post(f"/generate/custom/{FLUX2}", json=body(zimage)),
        400,
        f"Invalid model(s): {zimage}.\nAllowed model types: flux.2-dev-lora, flux.2-dev-edit-lora",
    )
    assert_json_error(await emulator_client.post(f"/generate/custom/{lora}", json=body(lora)), 400,
                      "Custom models only are supported for this endpoint")  # fmt: skip
    negative = await emulator_client.post(f"/generate/custom/{FLUX2}", params={"dryRun": "true"},
                                          json={**body(lora), "lorasScale": [-0.5]})  # fmt: skip
    assert negative.status_code == 269  # the schema's min is not enforced (captured)


async def test_an_untrained_lora_is_refused(emulator_client: httpx.AsyncClient) -> None:
    lora = await new_model(emulator_client)
    assert_json_error(await emulator_client.post(f"/generate/custom/{FLUX2}", json=body(lora)), 400,
                      f"Model {lora} is not trained")  # fmt: skip


async def _render(client: httpx.AsyncClient, clock: ManualClock, payload: dict[str, Any]) -> list[dict[str, Any]]:
    job = (await client.post(f"/generate/custom/{FLUX2}", json=payload)).json()["job"]
    assert job["status"] == "queued" and job["jobType"] == "custom" and "assetIds" not in job["metadata"]
    clock.advance(5)
    done = (await client.get(f"/jobs/{job['jobId']}")).json()["job"]
    assert done["status"] == "success"
    assets = (await client.post("/assets/get-bulk", json={"assetIds": done["metadata"]["assetIds"]})).json()
    return list(assets["assets"])


async def test_a_render_job_succeeds_with_ordered_outputs_then_scores(
    emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    lora = await trained_lora(emulator_client, emulator_clock)
    assets = await _render(emulator_client, emulator_clock, body(lora, numOutputs=2))
    assert [a["outputIndex"] for a in assets] == [0, 1]
    assert [a["metadata"]["seed"] for a in assets] == ["7", "8"]
    assert assets[0]["metadata"]["concepts"] == [{"modelId": lora, "scale": 1.0}]
    assert "qualityGate" not in assets[0]
    emulator_clock.advance(3)
    gate = (await emulator_client.get(f"/assets/{assets[0]['id']}")).json()["asset"]["qualityGate"]
    assert gate["status"] == "scored" and gate["verdict"] in ("pass", "warn", "fail")
    judged = (await emulator_client.post("/generate/quality-gate", json={"image": assets[0]["id"]})).json()
    assert judged["overallScore"] == gate["overallScore"] and "aiQuality" in judged
    assert (await emulator_client.get(f"http://emulator/_emulator/files/{assets[0]['id']}")).status_code == 200


async def test_a_bare_string_renders_without_the_lora(
    emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    lora = await trained_lora(emulator_client, emulator_clock)
    assets = await _render(emulator_client, emulator_clock, {**body(lora), "loras": lora})
    assert assets[0]["metadata"]["concepts"] == []


async def test_the_plan_ceiling_of_render_jobs_answers_429(
    emulator_client: httpx.AsyncClient, emulator_clock: ManualClock, emulator_app: EmulatorApp
) -> None:
    lora = await trained_lora(emulator_client, emulator_clock)
    emulator_app.store.generation.parallel_jobs = 1
    assert (await emulator_client.post(f"/generate/custom/{FLUX2}", json=body(lora))).status_code == 200
    refused = await emulator_client.post(f"/generate/custom/{FLUX2}", json=body(lora))
    assert refused.status_code == 429 and refused.json()["details"]["actionName"] == "parallel-custom-jobs"


async def test_true_quality_peaks_then_falls_with_epochs(
    emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    seen = []
    for epochs in (1, 11, 40):
        lora = await trained_lora(emulator_client, emulator_clock, epochs=epochs)
        seen.append((await emulator_client.get(f"http://emulator/_emulator/models/{lora}/quality")).json())
    assert seen[0]["dataset"] == seen[1]["dataset"]  # same images, same dataset
    assert seen[1]["trueQuality"] > seen[0]["trueQuality"] and seen[1]["trueQuality"] > seen[2]["trueQuality"]


async def test_collections_hold_models_and_filter_the_list(
    emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    lora = await trained_lora(emulator_client, emulator_clock)
    collection = (await emulator_client.post("/collections", json={"name": "prod-hero"})).json()["collection"]
    path = f"/collections/{collection['id']}/models"
    added = (await emulator_client.put(path, json={"modelIds": [lora]})).json()["collection"]
    assert added["modelCount"] == 1
    listed = (await emulator_client.get("/models", params={"collectionId": collection["id"]})).json()["models"]
    assert [m["id"] for m in listed] == [lora] and listed[0]["collectionIds"] == [collection["id"]]
    removed = await emulator_client.request("DELETE", path, json={"modelIds": [lora]})
    assert removed.json()["collection"]["modelCount"] == 0
    names = [c["name"] for c in (await emulator_client.get("/collections")).json()["collections"]]
    assert names == ["prod-hero"]
    assert_json_error(await emulator_client.get("/collections/collection_nope"), 404)


async def test_an_edit_base_requires_reference_images(
    emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    reference = await upload(emulator_client)
    payload = {"prompt": "make it red", "numOutputs": 1, "seed": 1}
    base = "/generate/custom/model_qwen-image-edit-2511"
    assert_json_error(await emulator_client.post(base, json=payload), 400, "Input referenceImages is required")
    accepted = await emulator_client.post(
        base, params={"dryRun": "true"}, json={**payload, "referenceImages": [reference]}
    )
    assert accepted.status_code == 269
