"""Ids cannot leave their path: every path-building client method, given hostile ids.

A refused id sends nothing (the emulator's request log stays empty); an id that has its
kind's shape reaches only its own collection (``/v1/models/…``, ``/v1/assets/…``,
``/v1/jobs/…``, the project's webhook endpoints).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from prefect_scenario import exceptions as exc
from prefect_scenario.api.client import ScenarioClient
from prefect_scenario.catalog import TrainingParameters
from scenario_emulator import EmulatorApp
from tests.api.test_client import make_client

HOSTILE = [
    pytest.param("../../teams/x", id="dot-dot"),
    pytest.param("model_x?projectId=other&", id="query"),
    pytest.param("model_x#frag", id="fragment"),
    pytest.param("model_x/../../teams/x", id="prefixed-dot-dot"),
    pytest.param("model_%2e%2e%2fteams", id="percent"),
    pytest.param("model_a b", id="space"),
    pytest.param("model_x\r\nX-Evil: 1", id="crlf"),
    pytest.param("model_" + "x" * 100_000, id="100k-chars"),
    pytest.param("", id="empty"),
    pytest.param("model_", id="prefix-only"),
    pytest.param("model_\u202e", id="bidi"),
]

Call = Callable[[ScenarioClient, str], Awaitable[Any]]

MODEL_CALLS: dict[str, Call] = {
    "get_model": lambda c, i: c.get_model(i),
    "update_tags": lambda c, i: c.update_tags(i, add=["t"]),
    "add_training_image": lambda c, i: c.add_training_image(i, name="a.png", data=b"x", mime_type="image/png"),
    "add_training_image_assets": lambda c, i: c.add_training_image_assets(i, ["asset_1"]),
    "delete_training_image": lambda c, i: c.delete_training_image(i, "asset_1"),
    "set_training_pairs": lambda c, i: c.set_training_pairs(i, [{"sourceId": "asset_1", "targetId": "asset_2"}]),
    "estimate_training_cost": lambda c, i: c.estimate_training_cost(i, TrainingParameters()),
    "train": lambda c, i: c.train(i),
    "cancel_training": lambda c, i: c.cancel_training(i),
    "get_dataset_score": lambda c, i: c.get_dataset_score(i),
}
OTHER_CALLS: dict[str, Call] = {
    "delete_training_image(image)": lambda c, i: c.delete_training_image("model_ok", i.replace("model_", "asset_")),
    "update_asset_description": lambda c, i: c.update_asset_description(i.replace("model_", "asset_"), "d"),
    "get_job": lambda c, i: c.get_job(i.replace("model_", "job_")),
    "delete_webhook_endpoint": lambda c, i: c.delete_webhook_endpoint(i.replace("model_", "")),
}


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize("call", [*MODEL_CALLS, *OTHER_CALLS])
async def test_a_hostile_id_sends_nothing(emulator_app: EmulatorApp, call: str, hostile: str) -> None:
    method = {**MODEL_CALLS, **OTHER_CALLS}[call]
    if call == "delete_webhook_endpoint" and hostile in ("model_", "model_" + "x" * 100_000):
        pytest.skip("an endpoint id's shape is not stated: a plain word is a valid one")
    async with make_client(emulator_app) as client:
        with pytest.raises(exc.InvalidIdError) as refused:
            await method(client, hostile)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 300
    assert emulator_app.requests() == []


@pytest.mark.parametrize("call", list(MODEL_CALLS))
async def test_a_well_shaped_id_stays_under_its_model(emulator_app: EmulatorApp, call: str) -> None:
    async with make_client(emulator_app) as client:
        try:
            await MODEL_CALLS[call](client, "model_Unknown-1")
        except exc.APIError:
            pass  # 404 and friends: what matters is where the request went
    paths = [r["path"] for r in emulator_app.requests()]
    assert paths and all(p.startswith("/v1/models/model_Unknown-1") for p in paths), paths
    assert all("?" not in p for p in paths)
