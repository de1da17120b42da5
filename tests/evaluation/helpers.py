"""Helpers for evaluation tests: a client on the in-process emulator, trained LoRAs, a clock-moving sleep."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from prefect_scenario.api.client import ScenarioClient
from scenario_emulator import EmulatorApp, ManualClock
from tests.emulator.helpers import add_images, new_model
from tests.emulator_fixtures import EMULATOR_KEY, EMULATOR_SECRET

PROJECT = "proj_eval"


def client_for(app: EmulatorApp) -> ScenarioClient:
    return ScenarioClient(api_key=EMULATOR_KEY, api_secret=EMULATOR_SECRET, project_id=PROJECT,
                          base_url="http://127.0.0.1/v1", transport=httpx.ASGITransport(app=app),
                          sleep=lambda _s: _noop())  # fmt: skip


async def _noop() -> None:
    return None


def clock_sleep(clock: ManualClock) -> Callable[[float], Awaitable[None]]:
    """A sleep that moves the emulator's clock instead of waiting."""

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    return sleep


async def train(raw: httpx.AsyncClient, clock: ManualClock, *, epochs: int = 10, images: int = 3,
                type_: str = "flux.2-dev-lora", first: int = 0) -> str:  # fmt: skip
    """A trained LoRA in ``PROJECT``; ``first`` shifts which images make its dataset."""
    model_id = await new_model(raw, type_, projectId=PROJECT)
    await add_images_in(raw, model_id, images, first)
    response = await raw.put(f"/models/{model_id}/train", params={"projectId": PROJECT},
                             json={"parameters": {"nbEpochs": epochs}})  # fmt: skip
    assert response.status_code == 200, response.text
    clock.advance(60)
    return model_id


async def add_images_in(raw: httpx.AsyncClient, model_id: str, count: int, first: int) -> None:
    from tests.emulator_fixtures import data_url, png_bytes

    for n in range(first, first + count):
        body = {"name": f"{n}.png", "data": data_url(png_bytes((100 + n, 100, 100), size=(8, 8)))}
        response = await raw.post(f"/models/{model_id}/training-images", params={"projectId": PROJECT}, json=body)
        assert response.status_code == 200, response.text


async def true_quality(raw: httpx.AsyncClient, model_id: str) -> float:
    return float((await raw.get(f"http://emulator/_emulator/models/{model_id}/quality")).json()["trueQuality"])


__all__ = ["PROJECT", "add_images", "client_for", "clock_sleep", "train", "true_quality"]
