"""Plan limits (parallel trainings, the team's image cap, the cooldown between launches).

Scenario's ``skills`` (``skills/scenario-model-training/SKILL.md``) quote the real API's
answers: 429 ``PlanLimitReachedError`` with ``details.actionName``/``actionLimit``, and a
429 naming ``remainingSeconds`` for repeated launches. Off by default; time moves by hand.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest

from scenario_emulator import EmulatorApp, EmulatorConfig, EmulatorServer, ManualClock, PlanLimits, create_app
from scenario_emulator import server as server_module
from scenario_emulator.limits import cooldown_error, parallel_training_error, team_image_error
from tests.emulator.helpers import add_images, assert_json_error, new_model, status_of, upload
from tests.emulator_fixtures import EMULATOR_KEY, EMULATOR_SECRET, data_url, png_bytes


@asynccontextmanager
async def limited_client(config: EmulatorConfig, **limits: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client on an emulator whose config sets ``limits``."""
    app = create_app(replace(config, **limits))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://emulator/v1", auth=(EMULATOR_KEY, EMULATOR_SECRET)
    ) as client:
        yield client
    app.store.close()


def plan_limit(action: str, limit: int) -> dict[str, Any]:
    return {"name": "PlanLimitReachedError", "details": {"actionName": action, "actionLimit": limit}}


async def trainable(client: httpx.AsyncClient, name: str) -> str:
    model_id = await new_model(client, name=name)
    await add_images(client, model_id, 1)
    return model_id


# -- pure ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"parallel_trainings": -1}, id="negative-parallel"),
        pytest.param({"parallel_trainings": True}, id="bool-parallel"),
        pytest.param({"team_image_cap": 1.5}, id="float-cap"),
        pytest.param({"trigger_cooldown": -0.1}, id="negative-cooldown"),
        pytest.param({"trigger_cooldown": "30"}, id="string-cooldown"),
        pytest.param({"bogus": 1}, id="unknown-limit"),
    ],
)
def test_limits_are_validated(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PlanLimits.from_wire(settings)


def test_limit_decisions() -> None:
    assert parallel_training_error(PlanLimits(), running=100) is None
    assert parallel_training_error(PlanLimits(parallel_trainings=2), running=1) is None
    refused = parallel_training_error(PlanLimits(parallel_trainings=0), running=0)
    assert refused is not None and refused.status == 429 and refused.extra == plan_limit("parallel-training", 0)
    assert team_image_error(PlanLimits(team_image_cap=3), current=2, adding=1) is None
    over = team_image_error(PlanLimits(team_image_cap=3), current=2, adding=2)
    assert over is not None and over.extra == plan_limit("add-training-image", 3)
    assert cooldown_error(PlanLimits(trigger_cooldown=30), last_launch=None, now=5) is None
    assert cooldown_error(PlanLimits(trigger_cooldown=30), last_launch=100, now=130) is None
    wait = cooldown_error(PlanLimits(trigger_cooldown=30), last_launch=100, now=107.5)
    assert wait is not None and wait.status == 429 and wait.extra == {"remainingSeconds": 22.5}
    assert PlanLimits.from_wire({"team_image_cap": None}, PlanLimits(1, 2, 3)) == PlanLimits(1, None, 3.0)


# -- over HTTP, in process ---------------------------------------------------------------------------


async def test_no_limits_by_default(emulator_config: EmulatorConfig) -> None:
    async with limited_client(emulator_config) as limited:
        for n in range(3):
            assert (await limited.put(f"/models/{await trainable(limited, f'm{n}')}/train", json={})).status_code == 200


async def test_parallel_trainings(emulator_config: EmulatorConfig, emulator_clock: ManualClock) -> None:
    async with limited_client(emulator_config, parallel_trainings=1) as limited:
        first, second = await trainable(limited, "first"), await trainable(limited, "second")
        assert (await limited.put(f"/models/{first}/train", json={})).status_code == 200
        refused = await limited.put(f"/models/{second}/train", json={})
        body = assert_json_error(refused, 429)
        assert {k: body[k] for k in ("name", "details")} == plan_limit("parallel-training", 1)
        assert await status_of(limited, second) == "new"
        dry = await limited.put(f"/models/{second}/train", params={"dryRun": "true"}, json={})
        assert dry.status_code == 269  # an estimate starts nothing: no plan limit
        emulator_clock.advance(15)  # the first training ends
        assert await status_of(limited, first) == "trained"
        assert (await limited.put(f"/models/{second}/train", json={})).status_code == 200


async def test_a_plan_without_trainings(emulator_config: EmulatorConfig) -> None:
    async with limited_client(emulator_config, parallel_trainings=0) as limited:
        model_id = await trainable(limited, "never")
        body = assert_json_error(await limited.put(f"/models/{model_id}/train", json={}), 429)
        assert body["details"] == {"actionName": "parallel-training", "actionLimit": 0}


async def test_team_image_cap_counts_every_model(emulator_config: EmulatorConfig) -> None:
    async with limited_client(emulator_config, team_image_cap=3) as limited:
        first, second = await new_model(limited, name="a"), await new_model(limited, name="b", projectId="P2")
        await add_images(limited, first, 2)
        assets = [await upload(limited, (n, n, n)) for n in range(2)]
        batch = await limited.post(f"/models/{first}/training-images", json={"assetIds": assets})
        body = assert_json_error(batch, 429)
        assert {k: body[k] for k in ("name", "details")} == plan_limit("add-training-image", 3)
        assert (await limited.get(f"/models/{first}")).json()["model"]["trainingImagesNumber"] == 2  # nothing added
        third = {"name": "c.png", "data": data_url(png_bytes(size=(8, 8)))}
        added = await limited.post(f"/models/{second}/training-images", params={"projectId": "P2"}, json=third)
        assert added.status_code == 200  # another project, the same team: the 3rd image
        refused = await limited.post(f"/models/{first}/training-images", json={"assetId": assets[0]})
        assert assert_json_error(refused, 429)["details"]["actionName"] == "add-training-image"
        assert (await limited.delete(f"/models/{second}", params={"projectId": "P2"})).status_code == 200
        assert (await limited.post(f"/models/{first}/training-images", json={"assetId": assets[0]})).status_code == 200


async def test_trigger_cooldown(emulator_config: EmulatorConfig, emulator_clock: ManualClock) -> None:
    async with limited_client(emulator_config, trigger_cooldown=30) as limited:
        first, second = await trainable(limited, "first"), await trainable(limited, "second")
        assert (await limited.put(f"/models/{first}/train", json={})).status_code == 200
        emulator_clock.advance(10)
        body = assert_json_error(await limited.put(f"/models/{second}/train", json={}), 429)
        assert set(body) == {"reason", "traceId", "remainingSeconds"} and body["remainingSeconds"] == 20
        emulator_clock.advance(20)
        assert (await limited.put(f"/models/{second}/train", json={})).status_code == 200


async def test_limits_change_at_run_time(emulator_client: httpx.AsyncClient, emulator_app: EmulatorApp) -> None:
    admin = "http://emulator/_emulator/limits"
    assert (await emulator_client.get(admin)).json() == {
        "limits": {"parallel_trainings": None, "team_image_cap": None, "trigger_cooldown": 0.0}
    }
    changed = await emulator_client.put(admin, json={"parallel_trainings": 0, "trigger_cooldown": 5})
    assert changed.json()["limits"] == {"parallel_trainings": 0, "team_image_cap": None, "trigger_cooldown": 5.0}
    assert emulator_app.limits == PlanLimits(parallel_trainings=0, trigger_cooldown=5)
    model_id = await trainable(emulator_client, "limited")
    assert_json_error(await emulator_client.put(f"/models/{model_id}/train", json={}), 429)
    assert_json_error(await emulator_client.put(admin, json={"team_image_cap": -1}), 400)
    assert_json_error(await emulator_client.put(admin, json={"nope": 1}), 400)
    assert (await emulator_client.put(admin, json={"parallel_trainings": None})).json()["limits"][
        "parallel_trainings"
    ] is None
    assert emulator_app.set_limits(team_image_cap=4) == PlanLimits(team_image_cap=4, trigger_cooldown=5)
    emulator_app.reset()
    assert emulator_app.limits == PlanLimits()  # the configured ones


def test_cli_flags_set_the_limits() -> None:
    parser = server_module.build_parser()
    args = parser.parse_args(["--parallel-trainings", "0", "--team-image-cap", "20", "--trigger-cooldown", "2.5"])
    config = server_module.config_from_args(args)
    assert (config.parallel_trainings, config.team_image_cap, config.trigger_cooldown) == (0, 20, 2.5)
    default = server_module.config_from_args(parser.parse_args([]))
    assert default.plan_limits() == PlanLimits()
    with pytest.raises(SystemExit) as exited:
        server_module.main(["--port", "0", "--parallel-trainings", "-1"])
    assert exited.value.code == 2


# -- over a real socket -----------------------------------------------------------------------------------


def test_plan_limits_over_a_socket(emulator_server: EmulatorServer, emulator_clock: ManualClock) -> None:
    emulator_server.set_limits(parallel_trainings=1, trigger_cooldown=60)
    with httpx.Client(base_url=emulator_server.base_url, auth=(EMULATOR_KEY, EMULATOR_SECRET)) as client:
        ids = []
        for name in ("first", "second"):
            model_id = client.post("/models", json={"name": name, "type": "zimage-lora"}).json()["model"]["id"]
            raw = base64.b64encode(png_bytes(size=(8, 8))).decode()
            asset_id = client.post("/assets", json={"name": "a.png", "image": raw}).json()["asset"]["id"]
            assert client.post(f"/models/{model_id}/training-images", json={"assetId": asset_id}).status_code == 200
            ids.append(model_id)
        assert client.put(f"/models/{ids[0]}/train", json={}).status_code == 200
        cooling = client.put(f"/models/{ids[1]}/train", json={})
        assert cooling.status_code == 429 and cooling.json()["remainingSeconds"] == 60
        assert cooling.json()["traceId"] == cooling.headers["x-request-id"]
        emulator_clock.advance(60)  # the cooldown is over (and the first training too)
        emulator_server.set_limits(parallel_trainings=0)
        full = client.put(f"/models/{ids[1]}/train", json={})
        assert full.status_code == 429 and full.json()["details"] == {
            "actionName": "parallel-training",
            "actionLimit": 0,
        }
