"""Helpers for the emulator tests over HTTP: make models, images and assets; check error answers."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from tests.emulator_fixtures import data_url, png_bytes


async def new_model(client: httpx.AsyncClient, type_: str = "flux.2-dev-lora", name: str = "hero", **query: str) -> str:
    response = await client.post("/models", params=query, json={"name": name, "type": type_})
    assert response.status_code == 200, response.text
    return str(response.json()["model"]["id"])


async def add_images(client: httpx.AsyncClient, model_id: str, count: int) -> list[str]:
    ids = []
    for n in range(count):
        body = {"name": f"{n}.png", "data": data_url(png_bytes((100 + n, 100, 100), size=(8, 8)))}
        response = await client.post(f"/models/{model_id}/training-images", json=body)
        assert response.status_code == 200, response.text
        ids.append(response.json()["trainingImage"]["id"])
    return ids


async def upload(client: httpx.AsyncClient, color: tuple[int, int, int] = (1, 2, 3), size: int = 8) -> str:
    raw = base64.b64encode(png_bytes(color, size=(size, size))).decode()
    response = await client.post("/assets", json={"name": "a.png", "image": raw})
    assert response.status_code == 200, response.text
    return str(response.json()["asset"]["id"])


async def status_of(client: httpx.AsyncClient, model_id: str) -> str:
    return str((await client.get(f"/models/{model_id}")).json()["model"]["status"])


def assert_json_error(response: httpx.Response, status: int, reason: str | None = None) -> dict[str, Any]:
    """A JSON error in the real API's shape: ``reason`` (the message) and ``traceId`` (the request id)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"].startswith("req_")
    body: dict[str, Any] = response.json()
    assert isinstance(body["reason"], str) and body["reason"]
    assert body["traceId"] == response.headers["x-request-id"]
    if reason is not None:
        assert body["reason"] == reason
    return body
