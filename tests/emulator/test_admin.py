"""Admin routes, persistence, the CLI and the public names."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import pytest

import scenario_emulator as emulator_pkg
from prefect_scenario.catalog import TRAINING_TYPES
from scenario_emulator import (
    EmulatorApp,
    EmulatorConfig,
    FaultConfig,
    ManualClock,
    create_app,
)
from scenario_emulator import server as server_module
from scenario_emulator.openapi import openapi_schema
from tests.emulator.helpers import add_images, assert_json_error, new_model, status_of
from tests.emulator_fixtures import EMULATOR_KEY, EMULATOR_SECRET

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


def test_cli_prints_the_variables_the_project_reads(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[EmulatorApp] = []
    monkeypatch.setattr(server_module, "_serve", lambda app, sock, level: served.append(app))
    from prefect_scenario.cli import main as cli_main

    argv = ["emulator", "--port", "0", "--api-key", "cli-key", "--api-secret", "cli-secret-xyz", "--train-seconds", "4"]
    assert cli_main([*argv, "--error-rate", "0.1", "--fail-name", "bad"]) == 0
    out = capsys.readouterr().out
    assert "http://127.0.0.1:" in out and "/v1" in out
    for line in ("export SCENARIO_API_KEY=cli-key", "export SCENARIO_API_SECRET=cli-secret-xyz",
                 "export SCENARIO_PROJECT_ID=proj_emulator"):  # fmt: skip
        assert line in out
    assert "SCENARIO_SDK_" not in out
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


def test_print_env_is_what_from_env_reads(capsys: pytest.CaptureFixture[str]) -> None:
    import shlex

    from prefect_scenario.credentials import ScenarioCredentials

    argv = ["--port", "8799", "--api-key", "k-1", "--api-secret", "s 2'x", "--project-id", "proj_x"]
    assert server_module.main([*argv, "--print-env"]) == 0
    lines = capsys.readouterr().out.splitlines()
    env = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in lines)
    credentials = ScenarioCredentials.from_env(env)
    assert credentials.base_url == "http://127.0.0.1:8799/v1" and credentials.project_id == "proj_x"
    assert (credentials.api_key.get_secret_value(), credentials.api_secret.get_secret_value()) == ("k-1", "s 2'x")
    with pytest.raises(SystemExit):
        server_module.main(["--port", "0", "--print-env"])


def test_public_names() -> None:
    assert sorted(emulator_pkg.__all__) == emulator_pkg.__all__
    for name in emulator_pkg.__all__:
        assert getattr(emulator_pkg, name) is not None


def test_the_openapi_document_names_the_catalog_types() -> None:
    spec = openapi_schema()
    create = spec["paths"]["/models"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert create["properties"]["type"]["enum"] == sorted(TRAINING_TYPES)
    assert "put" in spec["paths"]["/assets/{assetId}"]
    error = spec["paths"]["/models/{modelId}/train"]["put"]["responses"]["429"]["content"]["application/json"]
    assert error["schema"]["required"] == ["reason", "traceId"]
