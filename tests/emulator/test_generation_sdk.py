"""The official SDK, in strict response-validation mode, reads the emulator's render answers.

A dry run answers 269 with the cost fields only, where the SDK's ``GenerateRunModelResponse``
requires ``job``: it is read leniently, as Scenario's blender plugin reads it (raw response).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from scenario_sdk import Scenario

from scenario_emulator import EmulatorServer, ManualClock
from tests.emulator_fixtures import EMULATOR_KEY, EMULATOR_SECRET, data_url, png_bytes

PROJECT = "proj_sdk_render"


@pytest.fixture
def sdk(emulator_server: EmulatorServer) -> Iterator[Scenario]:
    with Scenario(api_key=EMULATOR_KEY, api_secret=EMULATOR_SECRET, base_url=emulator_server.base_url,
                  _strict_response_validation=True) as client:  # fmt: skip
        yield client


def _trained(server: EmulatorServer, clock: ManualClock) -> str:
    with httpx.Client(base_url=server.base_url, auth=(EMULATOR_KEY, EMULATOR_SECRET),
                      params={"projectId": PROJECT}) as raw:  # fmt: skip
        model_id = str(raw.post("/models", json={"name": "h", "type": "flux.2-dev-lora"}).json()["model"]["id"])
        for n in range(3):
            raw.post(f"/models/{model_id}/training-images",
                     json={"name": f"{n}.png", "data": data_url(png_bytes((n, 1, 1), size=(8, 8)))})  # fmt: skip
        raw.put(f"/models/{model_id}/train", json={})
    clock.advance(60)
    return model_id


def test_the_sdk_renders_reads_the_job_the_assets_and_scores_strictly(
    sdk: Scenario, emulator_server: EmulatorServer, emulator_clock: ManualClock
) -> None:
    lora = _trained(emulator_server, emulator_clock)
    body = {"prompt": "a cabin", "loras": [lora], "lorasScale": [1.0], "numOutputs": 1, "seed": 3}
    quote = sdk.generate.with_raw_response.run_model("model_bfl-flux-2-dev", body=body, dry_run="true",
                                                     project_id=PROJECT)  # fmt: skip
    assert quote.status_code == 269 and quote.http_response.json()["creativeUnitsCost"] == 4.0
    started = sdk.generate.run_model("model_bfl-flux-2-dev", body=body, project_id=PROJECT)
    assert started.job.job_type == "custom"
    emulator_clock.advance(10)
    job = sdk.jobs.retrieve(started.job.job_id, project_id=PROJECT).job
    assert job.status == "success" and job.metadata.asset_ids
    assets = sdk.assets.get_bulk(asset_ids=job.metadata.asset_ids, project_id=PROJECT).assets
    assert assets[0].output_index == 0 and assets[0].quality_gate is not None
    gate = sdk.generate.quality_gate(image=assets[0].id, project_id=PROJECT)
    assert 0 <= gate.overall_score <= 100 and gate.verdict in ("pass", "warn", "fail")
    base = sdk.models.retrieve("model_bfl-flux-2-dev", project_id=PROJECT).model
    assert base.ui_config is not None and base.inputs


def test_the_sdk_reads_collections_strictly(sdk: Scenario, emulator_server: EmulatorServer,
                                            emulator_clock: ManualClock) -> None:  # fmt: skip
    lora = _trained(emulator_server, emulator_clock)
    collection = sdk.collections.create(name="prod", project_id=PROJECT).collection
    added = sdk.collections.models.add(collection.id, model_ids=[lora], project_id=PROJECT).collection
    assert added.api_model_count == 1
    listed = sdk.collections.list(project_id=PROJECT).collections
    assert [c.id for c in listed] == [collection.id]
    removed = sdk.collections.models.remove(collection.id, model_ids=[lora], project_id=PROJECT).collection
    assert removed.api_model_count == 0
