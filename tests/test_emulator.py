"""The emulator: its pure decisions, its HTTP behaviour, faults, persistence, admin and CLI.

HTTP tests drive the app in process through ``httpx.ASGITransport``; the dropped-connection
tests use a real uvicorn server. Time moves by hand (``emulator_clock``); nothing sleeps.
"""

from __future__ import annotations

import base64
import random
import struct
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import scenario_sdk

import scenario_emulator as emulator_pkg
from scenario_emulator import (
    EmulatorApp,
    EmulatorConfig,
    EmulatorServer,
    FaultConfig,
    ManualClock,
    ScoredAsset,
    TrainingRecord,
    create_app,
    decide_fault,
    epochs_of,
    score_dataset,
    training_cost,
    training_view,
)
from scenario_emulator import server as server_module
from scenario_emulator.faults import FaultController
from scenario_emulator.state import job_type_for
from tests.emulator_fixtures import EMULATOR_KEY, EMULATOR_SECRET, data_url, png_bytes

# -- helpers -----------------------------------------------------------------------------


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


def assert_json_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"].startswith("req_")
    body = response.json()
    assert body["status"] == status and isinstance(body["error"], str) and body["error"]


# -- the pure state machine -------------------------------------------------------------------

T0 = 1000.0
RECORD = TrainingRecord.new(
    "job_x", "model_x", "proj", "flux.2-dev-lora", created_at=T0, queue_seconds=3, start_seconds=2, train_seconds=10
)


@pytest.mark.parametrize(
    ("at", "status", "stage", "position", "progress", "job_status"),
    [
        pytest.param(0, "training", "queued-for-train", 2, 0.0, "queued", id="queued-at-trigger"),
        pytest.param(1.0, "training", "queued-for-train", 1, 0.0, "queued", id="queued-one-ahead"),
        pytest.param(2.9, "training", "queued-for-train", 0, 0.0, "queued", id="queued-next"),
        pytest.param(3, "training", "starting-train", 0, 0.0, "warming-up", id="starting"),
        pytest.param(5, "training", "running-train", 0, 0.0, "in-progress", id="running-begins"),
        pytest.param(10, "training", "running-train", 0, 0.5, "in-progress", id="running-half"),
        pytest.param(15, "trained", None, None, None, "success", id="trained-at-end"),
        pytest.param(10**6, "trained", None, None, None, "success", id="trained-long-after"),
    ],
)
def test_training_stage_by_time(
    at: float, status: str, stage: str | None, position: int | None, progress: float | None, job_status: str
) -> None:
    view = training_view(RECORD, T0 + at)
    assert (view.model_status, view.stage, view.position, view.progress, view.job_status) == (
        status,
        stage,
        position,
        progress,
        job_status,
    )


@pytest.mark.parametrize(
    ("changes", "at", "status", "job_status", "error"),
    [
        pytest.param({"canceled_at": T0 + 1}, 0.5, "training", "queued", None, id="cancel-not-yet"),
        pytest.param({"canceled_at": T0 + 1}, 1, "training-canceled", "canceled", None, id="canceled-in-queue"),
        pytest.param({"canceled_at": T0 + 8}, 20, "training-canceled", "canceled", None, id="canceled-running"),
        pytest.param({"canceled_at": T0 + 99}, 20, "trained", "success", None, id="cancel-after-end-ignored"),
        pytest.param({"fail_at": T0 + 10, "fail_reason": "OOM"}, 9, "training", "in-progress", None, id="doomed"),
        pytest.param({"fail_at": T0 + 10, "fail_reason": "OOM"}, 10, "failed", "failure", "OOM", id="failed"),
        pytest.param(
            {"fail_at": T0 + 10, "fail_reason": "OOM", "canceled_at": T0 + 8},
            20,
            "training-canceled",
            "canceled",
            None,
            id="first-end-wins",
        ),
    ],
)
def test_training_cancel_and_fail(
    changes: dict[str, Any], at: float, status: str, job_status: str, error: str | None
) -> None:
    view = training_view(replace(RECORD, **changes), T0 + at)
    assert (view.model_status, view.job_status, view.error) == (status, job_status, error)


def test_queue_position_counts_down_in_equal_steps() -> None:
    positions = [training_view(RECORD, T0 + n * 0.25).position for n in range(12)]
    assert positions == [2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0]
    # updatedAt moves only when the position changes
    assert [training_view(RECORD, T0 + t).updated_at for t in (0.5, 1.5, 2.5)] == [T0, T0 + 1, T0 + 2]


def test_running_progress_and_remaining_time() -> None:
    views = [training_view(RECORD, T0 + 5 + n) for n in range(10)]
    assert [v.progress for v in views] == [n / 10 for n in range(10)]
    assert [v.remaining_ms for v in views] == [(10 - n) * 1000 for n in range(10)]
    assert {v.running_since for v in views} == {T0 + 5}


@pytest.mark.parametrize(
    ("changes", "history", "job_progress"),
    [
        pytest.param({}, ["queued", "warming-up", "in-progress", "success"], 1.0, id="trained"),
        pytest.param({"canceled_at": T0 + 1}, ["queued", "canceled"], 0.0, id="canceled-in-queue"),
        pytest.param(
            {"fail_at": T0 + 10, "fail_reason": "x"},
            ["queued", "warming-up", "in-progress", "failure"],
            0.5,
            id="failed",
        ),
    ],
)
def test_job_history(changes: dict[str, Any], history: list[str], job_progress: float) -> None:
    view = training_view(replace(RECORD, **changes), T0 + 100)
    assert [s for _, s in view.history] == history
    assert [t for t, _ in view.history] == sorted(t for t, _ in view.history)
    assert view.job_progress == job_progress


def test_zero_timings_train_at_once() -> None:
    record = replace(RECORD, queue_seconds=0, start_seconds=0, train_seconds=0)
    assert training_view(record, T0).model_status == "trained"


def test_epochs_carry_samples_on_the_last_three() -> None:
    epochs = epochs_of(replace(RECORD, nb_epochs=5, sample_prompts=["a", "b"]))
    assert [name for name, _ in epochs] == ["000001", "000002", "000003", "000004", "000005"]
    assert [len(samples) for _, samples in epochs] == [0, 0, 2, 2, 2]
    assert all(not samples for _, samples in epochs_of(replace(RECORD, nb_epochs=3)))


def test_cost_and_job_type() -> None:
    assert training_cost(images=5, pairs=0, nb_epochs=10) == 120
    assert training_cost(images=0, pairs=2, nb_epochs=1) == 92
    assert job_type_for("flux.2-klein-4b-edit-lora") == "flux-model-training"
    assert job_type_for("qwen-image-lora") == "musubi-model-training"


# -- the pure dataset score ----------------------------------------------------------------------


def _asset(
    n: int, color: tuple[float, float, float] = (0.5, 0.5, 0.5), side: int = 2048, digest: str = ""
) -> ScoredAsset:
    return ScoredAsset(f"asset_{n}", side, side, digest or f"hash{n}", color)


@pytest.mark.parametrize(
    ("assets", "score", "asset_warnings", "couple_warnings"),
    [
        pytest.param([], 0.0, {}, 0, id="empty"),
        pytest.param([_asset(1), _asset(2), _asset(3)], 1.0, {}, 0, id="clean"),
        pytest.param(
            [_asset(1), _asset(2, side=800)],
            0.75,
            {"asset_2": ["Width and height must be larger than 1024"]},
            0,
            id="small",
        ),
        pytest.param([_asset(1, digest="same"), _asset(2, digest="same")], 0.85, {}, 1, id="same-asset"),
        pytest.param(
            [*[_asset(n) for n in range(4)], _asset(9, color=(1.0, 0.0, 0.0))],
            0.96,
            {"asset_9": ["Similarity with other assets is too low"]},
            0,
            id="outlier",
        ),
        pytest.param([_asset(1, (0, 0, 0)), _asset(2, (1, 1, 1))], 1.0, {}, 0, id="two-far-apart-not-judged"),
    ],
)
def test_dataset_score(
    assets: list[ScoredAsset], score: float, asset_warnings: dict[str, list[str]], couple_warnings: int
) -> None:
    result = score_dataset("model_x", assets, complete=bool(assets))
    assert result.score == score
    assert {w["assetId"]: w["message"] for w in result.assets_warnings} == asset_warnings
    assert len(result.couples_warnings) == couple_warnings
    wire = result.to_wire()
    assert wire["status"] == ("complete" if assets else "incomplete")
    assert len(wire["details"]["assetCouplesSimilarity"]) == len(assets) * (len(assets) - 1) // 2


# -- the pure fault decision ---------------------------------------------------------------------


def _kinds(config: FaultConfig, n: int, method: str = "POST", path: str = "/v1/models") -> list[str]:
    rng = random.Random(config.seed)
    return [decide_fault(config, rng, method=method, path=path, injected=0).kind for _ in range(n)]


def test_fault_decisions_are_reproducible_and_follow_the_rates() -> None:
    config = FaultConfig(error_rate=0.2, rate_limit_rate=0.2, drop_before_rate=0.2, drop_after_rate=0.2, seed=42)
    kinds = _kinds(config, 2000)
    assert kinds == _kinds(config, 2000)
    for kind in ("error", "rate_limit", "drop_before", "drop_after", "none"):
        assert 0.16 < kinds.count(kind) / 2000 < 0.24, kind


@pytest.mark.parametrize(
    ("config", "method", "path", "kind"),
    [
        pytest.param(FaultConfig(error_rate=1), "GET", "/_emulator/health", "none", id="admin-never"),
        pytest.param(FaultConfig(error_rate=1), "GET", "/elsewhere", "none", id="outside-v1-never"),
        pytest.param(FaultConfig(error_rate=1, methods=("post",)), "GET", "/v1/models", "none", id="other-method"),
        pytest.param(FaultConfig(error_rate=1, methods=("post",)), "POST", "/v1/models", "error", id="method"),
        pytest.param(FaultConfig(drop_after_rate=1, paths=("/train",)), "PUT", "/v1/models/m/train", "drop_after"),
        pytest.param(FaultConfig(drop_after_rate=1, paths=("/train",)), "GET", "/v1/models/m", "none", id="other-path"),
    ],
)
def test_fault_filters(config: FaultConfig, method: str, path: str, kind: str) -> None:
    assert decide_fault(config, random.Random(0), method=method, path=path, injected=0).kind == kind


def test_fault_limit_latency_and_spikes() -> None:
    controller = FaultController(
        FaultConfig(rate_limit_rate=1, limit=2, latency_seconds=0.1, slow_rate=1, slow_seconds=5)
    )
    decisions = [controller.decide("GET", "/v1/models") for _ in range(3)]
    assert [d.kind for d in decisions] == ["rate_limit", "rate_limit", "none"]
    assert {d.delay_seconds for d in decisions} == {5.1}
    controller.replace(FaultConfig(error_rate=1))
    assert (controller.decide("GET", "/v1/models").kind, controller.injected) == ("error", 1)


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"error_rate": 1.5}, id="rate-above-one"),
        pytest.param({"error_rate": 0.6, "drop_after_rate": 0.6}, id="rates-sum-above-one"),
        pytest.param({"error_status": 404}, id="error-not-5xx"),
        pytest.param({"latency_seconds": -1}, id="negative-latency"),
        pytest.param({"bogus": 1}, id="unknown-setting"),
        pytest.param({"methods": "POST"}, id="methods-not-a-list"),
    ],
)
def test_fault_settings_are_validated(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FaultConfig.from_wire(settings)


# -- validation over HTTP ----------------------------------------------------------------------------


async def test_create_refuses_unknown_or_missing_type(emulator_client: httpx.AsyncClient) -> None:
    assert_json_error(await emulator_client.post("/models", json={"type": "flux.2-dev"}), 400)
    assert_json_error(await emulator_client.post("/models", json={"name": "no type"}), 400)
    created = (await emulator_client.post("/models", json={"type": "zimage-lora"})).json()["model"]
    assert created["status"] == "new" and "name" not in created


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
    assert "at most 50" in last.json()["error"]
    model = (await emulator_client.get(f"/models/{model_id}")).json()["model"]
    assert model["trainingImagesNumber"] == 50 and len(model["trainingImages"]) == 50


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
    assert message in response.json()["error"]
    assert await status_of(emulator_client, model_id) == "new"


async def test_training_conflicts(emulator_client: httpx.AsyncClient, emulator_clock: ManualClock) -> None:
    model_id = await new_model(emulator_client)
    await add_images(emulator_client, model_id, 2)
    cancel = await emulator_client.post(f"/models/{model_id}/train/action", json={"action": "cancel"})
    assert_json_error(cancel, 409)
    assert cancel.headers["x-should-retry"] == "false"
    first = (await emulator_client.put(f"/models/{model_id}/train", json={})).json()["job"]["jobId"]
    for call in (
        emulator_client.put(f"/models/{model_id}/train", json={}),
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


async def test_projects_own_their_models(emulator_client: httpx.AsyncClient) -> None:
    in_p = await new_model(emulator_client, projectId="P")
    assert (await emulator_client.get(f"/models/{in_p}", params={"projectId": "P"})).status_code == 200
    assert_json_error(await emulator_client.get(f"/models/{in_p}", params={"projectId": "Q"}), 404)
    assert_json_error(await emulator_client.get(f"/models/{in_p}"), 404)  # the default project
    assert_json_error(await emulator_client.get("/jobs/job_nope"), 404)


async def test_dry_run_changes_nothing(emulator_client: httpx.AsyncClient) -> None:
    model_id = await new_model(emulator_client)
    response = await emulator_client.put(
        f"/models/{model_id}/train", params={"dryRun": "api", "trainingImagesCount": "7"}, json={}
    )
    assert response.status_code == 269
    body = response.json()
    assert body["creativeUnitsCost"] == training_cost(images=7, pairs=0, nb_epochs=10)
    assert body["model"]["status"] == "new" and "jobId" not in body["model"]
    assert_json_error(await emulator_client.get(f"/jobs/{body['job']['jobId']}"), 404)
    assert_json_error(await emulator_client.put(f"/models/{model_id}/train", json={}), 400)  # still no images


async def test_wandb_key_is_never_echoed(emulator_client: httpx.AsyncClient) -> None:
    model_id = await new_model(emulator_client)
    await add_images(emulator_client, model_id, 1)
    response = await emulator_client.put(f"/models/{model_id}/train", json={"parameters": {"wandbKey": "wb-secret"}})
    assert response.status_code == 200 and "wb-secret" not in response.text
    assert "wb-secret" not in (await emulator_client.get(f"/models/{model_id}")).text


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
    assert "larger than 50000000 pixels" in refused.json()["error"]


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


async def test_training_images_by_asset_delete_and_replace(emulator_client: httpx.AsyncClient) -> None:
    model_id = await new_model(emulator_client)
    first, second = await upload(emulator_client, (1, 1, 1)), await upload(emulator_client, (2, 2, 2))
    url = f"/models/{model_id}/training-images"
    for _ in range(2):  # the same asset twice is one training image
        assert (await emulator_client.post(url, json={"assetId": first})).json()["trainingImage"]["id"] == first
    replaced = await emulator_client.put(f"{url}/{first}", json={"assetId": second})
    assert replaced.json()["trainingImage"]["id"] == second
    assert (await emulator_client.delete(f"{url}/{second}")).json() == {}
    assert_json_error(await emulator_client.delete(f"{url}/{second}"), 404)
    assert (await emulator_client.get(f"/models/{model_id}")).json()["model"]["trainingImagesNumber"] == 0


async def test_get_bulk_previews_three_images(emulator_client: httpx.AsyncClient) -> None:
    model_id = await new_model(emulator_client)
    await add_images(emulator_client, model_id, 4)
    preview = (await emulator_client.post("/models/get-bulk", json={"modelIds": [model_id, model_id]})).json()
    assert len(preview["models"]) == 1 and len(preview["models"][0]["trainingImages"]) == 3
    body = {"modelIds": [model_id], "allTrainingImages": True}
    assert len((await emulator_client.post("/models/get-bulk", json=body)).json()["models"][0]["trainingImages"]) == 4


async def test_assets_take_data_urls_and_raw_base64(emulator_client: httpx.AsyncClient) -> None:
    image = png_bytes((255, 0, 0), size=(30, 20))
    for payload in (data_url(image), base64.b64encode(image).decode()):
        asset = (await emulator_client.post("/assets", json={"name": "r.png", "image": payload})).json()["asset"]
        assert asset["properties"] == {"size": len(image), "width": 30, "height": 20, "format": "png"}
        assert (await emulator_client.get(asset["url"])).content == image
        assert (await emulator_client.get(f"/assets/{asset['id']}")).json()["asset"]["id"] == asset["id"]


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


# -- faults in process --------------------------------------------------------------------------------


async def test_error_and_rate_limit_faults_do_no_work(
    emulator_client: httpx.AsyncClient, emulator_app: EmulatorApp
) -> None:
    emulator_app.set_faults(error_rate=1.0, limit=1)
    assert_json_error(await emulator_client.post("/models", json={"type": "zimage-lora"}), 503)
    emulator_app.set_faults(rate_limit_rate=1.0, retry_after_seconds=0.01, limit=1)
    limited = await emulator_client.post("/models", json={"type": "zimage-lora"})
    assert_json_error(limited, 429)
    assert (limited.headers["retry-after"], limited.headers["retry-after-ms"]) == ("1", "10")
    assert emulator_app.store.models == {}
    assert (await emulator_client.post("/models", json={"type": "zimage-lora"})).status_code == 200  # limit reached
    assert [r["fault"] for r in emulator_app.requests()] == ["error", "rate_limit", None]


@pytest.mark.parametrize(("kind", "models_after"), [("drop_before", 0), ("drop_after", 1)])
async def test_drops_in_process(
    emulator_client: httpx.AsyncClient, emulator_app: EmulatorApp, kind: str, models_after: int
) -> None:
    emulator_app.set_faults(**{f"{kind}_rate": 1.0})
    with pytest.raises(httpx.RemoteProtocolError):
        await emulator_client.post("/models", json={"type": "zimage-lora"})
    assert len(emulator_app.store.models) == models_after
    assert emulator_app.requests()[-1] | {"time": 0, "requestId": ""} == {
        "method": "POST",
        "path": "/v1/models",
        "query": "",
        "status": None,
        "time": 0,
        "requestId": "",
        "fault": kind,
        "retryCount": None,
    }


async def test_latency_and_spikes_use_the_injected_sleep(emulator_config: EmulatorConfig) -> None:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    faults = FaultConfig(latency_seconds=0.2, slow_rate=0.5, slow_seconds=30, methods=("GET",), seed=3)
    app = create_app(replace(emulator_config, sleep=record, faults=faults))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://e", auth=(EMULATOR_KEY, EMULATOR_SECRET)
    ) as client:
        for _ in range(20):
            assert (await client.get("/v1/models")).status_code == 200
        await client.post("/v1/models", json={"type": "zimage-lora"})
        await client.get("/_emulator/health")
    assert len(slept) == 20 and set(slept) == {0.2, 30.2}


# -- faults over a real socket ---------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "models_after"), [("drop_before", 0), ("drop_after", 1)])
def test_drops_over_a_socket(emulator_server: EmulatorServer, kind: str, models_after: int) -> None:
    emulator_server.set_faults(**{f"{kind}_rate": 1.0}, methods=("POST",))
    with httpx.Client(base_url=emulator_server.base_url, auth=(EMULATOR_KEY, EMULATOR_SECRET)) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/models", json={"type": "zimage-lora"})
        assert len(client.get("/models").json()["models"]) == models_after  # the server is fine
    logged = emulator_server.requests()
    assert [(r["method"], r["status"], r["fault"]) for r in logged] == [("POST", None, kind), ("GET", 200, None)]


def test_spike_past_the_client_timeout(emulator_server: EmulatorServer) -> None:
    emulator_server.set_faults(slow_rate=1.0, slow_seconds=0.3, limit=0)
    with httpx.Client(base_url=emulator_server.base_url, auth=(EMULATOR_KEY, EMULATOR_SECRET), timeout=0.05) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get("/models")


def test_sdk_retry_after_a_dropped_create_duplicates_it(
    emulator_server: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator_server.set_faults(drop_after_rate=1.0, methods=("POST",), limit=1)
    with scenario_sdk.Scenario(
        api_key=EMULATOR_KEY, api_secret=EMULATOR_SECRET, base_url=emulator_server.base_url
    ) as sdk:
        monkeypatch.setattr(sdk, "_calculate_retry_timeout", lambda *args, **kwargs: 0.001)
        sdk.models.create(name="twice", type="zimage-lora")
    assert [m.name for m in emulator_server.app.store.models.values()] == ["twice", "twice"]
    assert [r["retryCount"] for r in emulator_server.requests()] == ["0", "1"]


# -- persistence -----------------------------------------------------------------------------------------------


async def test_sqlite_state_survives_a_restart(
    emulator_config: EmulatorConfig, emulator_clock: ManualClock, tmp_path: Path
) -> None:
    config = replace(emulator_config, db_path=tmp_path / "emulator.db")

    def client_for(app: EmulatorApp) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app)
        return httpx.AsyncClient(transport=transport, base_url="http://e/v1", auth=(EMULATOR_KEY, EMULATOR_SECRET))

    first = create_app(config)
    async with client_for(first) as client:
        model_id = await new_model(client)
        images = await add_images(client, model_id, 2)
        await client.put(f"/models/{model_id}/train", json={})
        emulator_clock.advance(10)
        assert (await client.get(f"/models/{model_id}")).json()["model"]["trainingProgress"]["progress"] == 0.5
    first.store.close()

    second = create_app(config)
    async with client_for(second) as client:
        model = (await client.get(f"/models/{model_id}")).json()["model"]
        assert model["status"] == "training" and model["trainingProgress"]["progress"] == 0.5
        assert [i["id"] for i in model["trainingImages"]] == images
        assert (await client.get(model["trainingImages"][0]["downloadUrl"])).status_code == 200
        emulator_clock.advance(10)
        assert await status_of(client, model_id) == "trained"
        second.reset()
    second.store.close()

    third = create_app(config)
    assert third.store.models == {} and third.store.assets == {}
    third.store.close()


# -- admin ------------------------------------------------------------------------------------------------------


async def test_admin_requests_reset_and_faults(emulator_client: httpx.AsyncClient, emulator_app: EmulatorApp) -> None:
    admin = "http://emulator/_emulator"
    await new_model(emulator_client)
    assert (await emulator_client.get(f"{admin}/health")).json()["models"] == 1
    logged = (await emulator_client.get(f"{admin}/requests")).json()["requests"]
    assert [(r["method"], r["path"], r["status"]) for r in logged] == [("POST", "/v1/models", 200)]

    faults = await emulator_client.put(f"{admin}/faults", json={"error_rate": 1.0, "methods": ["DELETE"]})
    assert faults.json()["faults"]["methods"] == ["DELETE"]
    assert (await emulator_client.get(f"{admin}/faults")).json()["faults"]["error_rate"] == 1.0
    assert_json_error(await emulator_client.put(f"{admin}/faults", json={"error_rate": 2}), 400)
    assert_json_error(await emulator_client.put(f"{admin}/faults", json={"nope": 1}), 400)

    assert (await emulator_client.post(f"{admin}/reset")).json() == {}
    assert emulator_app.store.models == {} and emulator_app.requests() == []
    assert emulator_app.faults.config == FaultConfig()
    assert (await emulator_client.delete(f"{admin}/requests")).status_code == 200


async def test_admin_fail_now_or_next(emulator_client: httpx.AsyncClient, emulator_clock: ManualClock) -> None:
    admin = "http://emulator/_emulator"
    running = await new_model(emulator_client, name="running")
    await add_images(emulator_client, running, 1)
    await emulator_client.put(f"/models/{running}/train", json={})
    result = await emulator_client.post(f"{admin}/fail", json={"modelId": running, "reason": "GPU lost"})
    assert result.json() == {"failed": [running], "pending": None}
    model = (await emulator_client.get(f"/models/{running}")).json()["model"]
    assert (model["status"], model["trainingError"]) == ("failed", "GPU lost")

    later = await new_model(emulator_client, name="later")
    await add_images(emulator_client, later, 1)
    assert (await emulator_client.post(f"{admin}/fail", json={"name": "later"})).json()["pending"] == "later"
    job_id = (await emulator_client.put(f"/models/{later}/train", json={})).json()["job"]["jobId"]
    emulator_clock.advance(100)
    job = (await emulator_client.get(f"/jobs/{job_id}")).json()["job"]
    assert (job["status"], job["metadata"]["error"]) == ("failure", "Training failed (emulated failure)")
    assert_json_error(await emulator_client.post(f"{admin}/fail", json={"modelId": "model_nope"}), 404)
    assert_json_error(await emulator_client.post(f"{admin}/fail", json={}), 400)


async def test_admin_clock_and_files(emulator_config: EmulatorConfig) -> None:
    for clock, expected in ((None, 200), (ManualClock(10.0), 200), (lambda: 5.0, 409)):
        app = create_app(replace(emulator_config, clock=clock))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as client:
            before = app.now()
            response = await client.post("/_emulator/clock", json={"advance": 3600})
            assert response.status_code == expected
            if expected == 200:
                assert response.json()["now"] >= before + 3600
            assert_json_error(await client.post("/_emulator/clock", json={"advance": -1}), 400)
            sample = await client.get("/_emulator/files/asset_sample_x_1_0")
            assert sample.headers["content-type"] == "image/png"
            assert_json_error(await client.get("/_emulator/files/asset_nope"), 404)
            assert app.requests() == []  # admin calls are not logged


# -- CLI, public names, no leaked secret ------------------------------------------------------------------------


def test_cli_prints_how_to_connect_but_never_the_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[EmulatorApp] = []
    monkeypatch.setattr(server_module, "_serve", lambda app, sock, level: served.append(app))
    from prefect_scenario.cli import main as cli_main

    argv = ["emulator", "--port", "0", "--api-key", "cli-key", "--api-secret", "cli-secret-xyz", "--train-seconds", "4"]
    assert cli_main([*argv, "--error-rate", "0.1", "--fail-name", "bad"]) == 0
    out = capsys.readouterr().out
    assert "http://127.0.0.1:" in out and "/v1" in out and "SCENARIO_SDK_API_KEY=cli-key" in out
    assert "cli-secret-xyz" not in out
    config = served[0].config
    assert (config.api_secret, config.train_seconds, config.faults.error_rate, tuple(config.fail_names)) == (
        "cli-secret-xyz",
        4.0,
        0.1,
        ("bad",),
    )
    assert "cli-secret-xyz" not in repr(config)
    with pytest.raises(SystemExit) as exited:
        server_module.main(["--port", "0", "--error-rate", "3"])
    assert exited.value.code == 2


def test_public_names() -> None:
    assert sorted(emulator_pkg.__all__) == emulator_pkg.__all__
    for name in emulator_pkg.__all__:
        assert getattr(emulator_pkg, name) is not None
