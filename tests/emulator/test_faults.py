"""Fault injection: the pure decision, faults in process, and dropped connections over a socket."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import httpx
import pytest
import scenario_sdk

from scenario_emulator import (
    EmulatorApp,
    EmulatorConfig,
    EmulatorServer,
    FaultConfig,
    create_app,
    decide_fault,
)
from scenario_emulator.faults import FaultController
from tests.emulator.helpers import assert_json_error
from tests.emulator_fixtures import EMULATOR_KEY, EMULATOR_SECRET

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
