"""Models over HTTP (in process): create, list, tags, get-bulk, update, projects, auth and bad requests."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from dataclasses import replace
from typing import Any

import httpx
import pytest

from scenario_emulator import (
    EmulatorApp,
    EmulatorConfig,
    ManualClock,
    create_app,
)
from tests.emulator.helpers import add_images, assert_json_error, new_model, upload
from tests.emulator_fixtures import EMULATOR_KEY, EMULATOR_SECRET, png_bytes

# -- auth and malformed requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param("Basic " + base64.b64encode(f"{EMULATOR_KEY}:wrong".encode()).decode(), id="wrong-secret"),
        pytest.param("Basic " + base64.b64encode(f"other:{EMULATOR_SECRET}".encode()).decode(), id="wrong-key"),
        pytest.param("Basic !!!not-base64", id="garbage"),
        pytest.param("Bearer some.jwt.token", id="bearer"),
    ],
)
async def test_bad_credentials_are_401(emulator_app: EmulatorApp, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator_app), base_url="http://e") as client:
        response = await client.get("/v1/models", headers=headers)
        assert_json_error(response, 401)
        assert EMULATOR_SECRET not in response.text
        assert (await client.get("/_emulator/health")).status_code == 200  # admin needs no auth


def _raw(body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    return {"content": body, "headers": {"content-type": content_type}}


NOT_AN_IMAGE = base64.b64encode(b"not an image").decode()


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        pytest.param("POST", "/models", _raw(b"{not json"), 400, id="malformed-json"),
        pytest.param("POST", "/models", _raw(b'{"type": NaN}'), 400, id="nan"),
        pytest.param("POST", "/models", _raw(b'{"type": "zimage-lora"}', "text/plain"), 415, id="wrong-content-type"),
        pytest.param("POST", "/models", {"json": ["zimage-lora"]}, 400, id="array-not-object"),
        pytest.param("POST", "/models", {"json": {"type": 5}}, 400, id="type-not-string"),
        pytest.param("POST", "/models", _raw(b"x" * 5000), 413, id="huge-body"),
        pytest.param("GET", "/nowhere", {}, 404, id="unknown-path"),
        pytest.param("PATCH", "/models", {}, 405, id="wrong-method"),
        pytest.param("DELETE", "/jobs/job_1", {}, 405, id="wrong-method-on-job"),
        pytest.param("GET", "/models?pageSize=0", {}, 400, id="page-size-zero"),
        pytest.param("GET", "/models?pageSize=many", {}, 400, id="page-size-not-int"),
        pytest.param("GET", "/models?paginationToken=%%%", {}, 400, id="bad-token"),
        pytest.param("GET", "/models?status=draft", {}, 400, id="bad-status"),
        pytest.param("GET", "/models?sortBy=updatedAt&createdAfter=2024-01-01", {}, 400, id="created-after-needs-sort"),
        pytest.param("POST", "/assets", {"json": {"name": "x", "image": NOT_AN_IMAGE}}, 400, id="not-an-image"),
        pytest.param("POST", "/assets", {"json": {"name": "x", "image": "@@@"}}, 400, id="not-base64"),
        pytest.param("POST", "/assets", {"json": {"image": "@@@"}}, 400, id="asset-without-name"),
        pytest.param("POST", "/models/get-bulk", {"json": {"modelIds": "m"}}, 400, id="ids-not-a-list"),
    ],
)
async def test_bad_requests_get_json_4xx(
    emulator_config: EmulatorConfig, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    app = create_app(replace(emulator_config, max_body_bytes=1000))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://e/v1", auth=(EMULATOR_KEY, EMULATOR_SECRET)
    ) as client:
        assert_json_error(await client.request(method, path, **kwargs), status)


def _png_claiming(width: int, height: int) -> bytes:
    """A 1×1 PNG whose header claims another size: a decompression bomb in a few bytes."""
    png = bytearray(png_bytes(size=(1, 1)))
    header = struct.pack(">II", width, height) + bytes(png[24:29])
    png[16:29] = header
    png[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(png)


async def test_bad_model_bodies(emulator_client: httpx.AsyncClient) -> None:
    model_id = await new_model(emulator_client)
    asset = await upload(emulator_client)
    bomb = base64.b64encode(_png_claiming(8_000, 8_000)).decode()  # 64 MP, under Pillow's own guard
    for call in (
        emulator_client.post("/models", **_raw(b"[" * 100_000)),
        emulator_client.put(f"/models/{model_id}/training-images/pairs", json={"sourceId": asset}),
        emulator_client.put(
            f"/models/{model_id}/training-images/pairs", json=[{"sourceId": asset, "targetId": "asset_x"}]
        ),
        emulator_client.put(f"/models/{model_id}/train", params={"dryRun": "maybe"}, json={}),
        emulator_client.post(f"/models/{model_id}/training-images", json={}),
        emulator_client.post(f"/models/{model_id}/training-images", json={"assetIds": [asset], "assetId": asset}),
        emulator_client.post(f"/models/{model_id}/training-images", json={"assetId": "asset_unknown"}),
        emulator_client.put(f"/models/{model_id}", json={"parameters": {"rank": 1}}),
        emulator_client.put(f"/models/{model_id}", json={"thumbnail": "asset_unknown"}),
        emulator_client.put(f"/models/{model_id}/tags", json={"add": "one"}),
    ):
        assert_json_error(await call, 400)
    refused = await emulator_client.post("/assets", json={"name": "bomb.png", "image": bomb})
    assert_json_error(refused, 400)
    assert "larger than 50000000 pixels" in refused.json()["reason"]


# -- models, images, tags, lists ------------------------------------------------------------------------------


async def test_list_pagination_filters_and_sort(
    emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    ids = []
    for n in range(7):
        ids.append(await new_model(emulator_client, name=f"m{n}"))
        emulator_clock.advance(1)
    pages, token = [], None
    while True:
        params = {"pageSize": "3", "sortDirection": "asc", **({"paginationToken": token} if token else {})}
        body = (await emulator_client.get("/models", params=params)).json()
        pages.append([m["id"] for m in body["models"]])
        token = body.get("nextPaginationToken")
        if token is None:
            break
    assert pages == [ids[0:3], ids[3:6], ids[6:7]]
    newest_first = (await emulator_client.get("/models")).json()["models"]
    assert [m["id"] for m in newest_first] == ids[::-1]

    await add_images(emulator_client, ids[0], 1)
    await emulator_client.put(f"/models/{ids[0]}/train", json={})
    await emulator_client.delete(f"/models/{ids[1]}")
    training = (await emulator_client.get("/models", params={"status": "training"})).json()["models"]
    assert [m["id"] for m in training] == [ids[0]]
    deleted = (await emulator_client.get("/models", params={"status": "deleted"})).json()["models"]
    assert [m["id"] for m in deleted] == [ids[1]] and "deletedAt" in deleted[0]
    tagged = (await emulator_client.get("/models", params={"tags": "nope", "type": "zimage-lora"})).json()["models"]
    assert len(tagged) == 6  # tags/type filter public models only: ignored here
    assert (await emulator_client.get("/models", params={"privacy": "public"})).json() == {"models": []}


async def test_tags_strict_and_idempotent(emulator_client: httpx.AsyncClient) -> None:
    model_id = await new_model(emulator_client)
    url = f"/models/{model_id}/tags"
    assert (await emulator_client.put(url, json={"add": ["a", "b"]})).json() == {"added": ["a", "b"], "deleted": []}
    assert (await emulator_client.put(url, json={"add": ["a"]})).json() == {"added": [], "deleted": []}
    assert_json_error(await emulator_client.put(url, json={"add": ["a"], "strict": True}), 400)
    assert_json_error(await emulator_client.put(url, json={"delete": ["zzz"], "strict": True}), 400)
    assert (await emulator_client.put(url, json={"delete": ["a", "zzz"]})).json() == {"added": [], "deleted": ["a"]}
    assert (await emulator_client.get(f"/models/{model_id}")).json()["model"]["tags"] == ["b"]


async def test_get_bulk_previews_three_images(emulator_client: httpx.AsyncClient) -> None:
    model_id = await new_model(emulator_client)
    await add_images(emulator_client, model_id, 4)
    preview = (await emulator_client.post("/models/get-bulk", json={"modelIds": [model_id, model_id]})).json()
    assert len(preview["models"]) == 1 and len(preview["models"][0]["trainingImages"]) == 3
    body = {"modelIds": [model_id], "allTrainingImages": True}
    assert len((await emulator_client.post("/models/get-bulk", json=body)).json()["models"][0]["trainingImages"]) == 4


async def test_update_model_and_epoch(emulator_client: httpx.AsyncClient, emulator_clock: ManualClock) -> None:
    model_id = await new_model(emulator_client)
    await add_images(emulator_client, model_id, 1)
    assert_json_error(await emulator_client.put(f"/models/{model_id}", json={"epoch": "000001"}), 409)
    updated = await emulator_client.put(f"/models/{model_id}", json={"name": "renamed", "parameters": {"nbEpochs": 3}})
    assert updated.json()["model"]["name"] == "renamed"
    assert updated.json()["model"]["parameters"] == {"nbEpochs": 3}
    await emulator_client.put(f"/models/{model_id}/train", json={})  # trains with the stored parameters
    emulator_clock.advance(100)
    model = (await emulator_client.get(f"/models/{model_id}")).json()["model"]
    assert [e["epoch"] for e in model["epochs"]] == ["000001", "000002", "000003"] and model["epoch"] == "000003"
    assert (await emulator_client.put(f"/models/{model_id}", json={"epoch": "000002"})).json()["model"][
        "epoch"
    ] == "000002"
    assert_json_error(await emulator_client.put(f"/models/{model_id}", json={"epoch": "000009"}), 400)


async def test_create_refuses_unknown_or_missing_type(emulator_client: httpx.AsyncClient) -> None:
    assert_json_error(await emulator_client.post("/models", json={"type": "flux.2-dev"}), 400)
    assert_json_error(await emulator_client.post("/models", json={"name": "no type"}), 400)
    created = (await emulator_client.post("/models", json={"type": "zimage-lora"})).json()["model"]
    assert created["status"] == "new" and "name" not in created


async def test_projects_own_their_models(emulator_client: httpx.AsyncClient) -> None:
    in_p = await new_model(emulator_client, projectId="P")
    assert (await emulator_client.get(f"/models/{in_p}", params={"projectId": "P"})).status_code == 200
    assert_json_error(await emulator_client.get(f"/models/{in_p}", params={"projectId": "Q"}), 404)
    assert_json_error(await emulator_client.get(f"/models/{in_p}"), 404)  # the default project
    assert_json_error(await emulator_client.get("/jobs/job_nope"), 404)


async def test_list_rows_carry_empty_progress_and_parameters(
    emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    model_id = await new_model(emulator_client)
    await add_images(emulator_client, model_id, 1)
    await emulator_client.put(f"/models/{model_id}/train", json={"parameters": {"nbEpochs": 2}})
    emulator_clock.advance(6)
    for expected_status in ("training", "trained"):
        [row] = (await emulator_client.get("/models")).json()["models"]
        assert (row["status"], row["trainingProgress"], row["parameters"]) == (expected_status, {}, {})
        full = (await emulator_client.get(f"/models/{model_id}")).json()["model"]
        assert full["parameters"] == {"nbEpochs": 2}  # GET one keeps everything
        if expected_status == "training":
            assert full["trainingProgress"]["stage"] == "running-train"
        emulator_clock.advance(100)


async def test_cursors_are_base64_offset_and_limit(emulator_client: httpx.AsyncClient) -> None:
    for n in range(5):
        await new_model(emulator_client, name=f"m{n}")
    body = (await emulator_client.get("/models", params={"pageSize": "2"})).json()
    token = body["nextPaginationToken"]
    assert json.loads(base64.b64decode(token)) == {"offset": 2, "limit": 2}
    assert token == base64.b64encode(b'{"offset":2,"limit":2}').decode()
    second = (await emulator_client.get("/models", params={"paginationToken": token})).json()
    assert len(second["models"]) == 2
    assert json.loads(base64.b64decode(second["nextPaginationToken"])) == {"offset": 4, "limit": 2}
    for bad in ({"offset": -1, "limit": 2}, {"offset": 0, "limit": 0}, {"offset": "0", "limit": 2}, {"limit": 2}):
        forged = base64.b64encode(json.dumps(bad).encode()).decode()
        assert_json_error(await emulator_client.get("/models", params={"paginationToken": forged}), 400)
    past_the_end = base64.b64encode(b'{"offset":50,"limit":2}').decode()
    assert (await emulator_client.get("/models", params={"paginationToken": past_the_end})).json() == {"models": []}


async def test_not_found_reason_names_the_model(emulator_client: httpx.AsyncClient) -> None:
    assert_json_error(await emulator_client.get("/models/model_nope"), 404, "Model model_nope not found")
