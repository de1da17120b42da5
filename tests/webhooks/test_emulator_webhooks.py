"""The emulator's webhook endpoints and real deliveries, driven through ScenarioClient over a socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from prefect_scenario.api.client import ScenarioClient
from prefect_scenario.exceptions import ConfigurationError
from scenario_emulator import EmulatorConfig, EmulatorServer, ManualClock
from scenario_emulator.webhooks import TRAINING_EVENTS, events_due
from tests.emulator.helpers import add_images, new_model
from tests.emulator_fixtures import EMULATOR_KEY, EMULATOR_SECRET
from tests.webhooks.servers import Recorder, serve

PROJECT = "proj_hooks"


@pytest.fixture
async def client(emulator_server: EmulatorServer) -> AsyncIterator[ScenarioClient]:
    async with ScenarioClient(
        api_key=EMULATOR_KEY, api_secret=EMULATOR_SECRET, project_id=PROJECT, base_url=emulator_server.base_url
    ) as scenario:
        yield scenario


@pytest.fixture
async def raw(emulator_server: EmulatorServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=emulator_server.base_url, auth=(EMULATOR_KEY, EMULATOR_SECRET), params={"projectId": PROJECT}
    ) as http:
        yield http


async def trained_model(raw: httpx.AsyncClient, name: str = "hero") -> str:
    model_id = await new_model(raw, name=name, projectId=PROJECT)
    await add_images(raw, model_id, 5)
    assert (await raw.put(f"/models/{model_id}/train", json={})).status_code == 200
    return model_id


@pytest.mark.parametrize(
    ("status", "announced", "due"),
    [
        ("training", frozenset(), ["model.training.started"]),
        ("training", frozenset({"model.training.started"}), []),
        ("trained", frozenset(), ["model.training.started", "model.training.completed"]),
        ("failed", frozenset({"model.training.started"}), ["model.training.failed"]),
        ("training-canceled", frozenset({"model.training.started"}), ["model.training.cancelled"]),
        ("trained", frozenset({"model.training.started", "model.training.completed"}), []),
    ],
    ids=["start", "start-once", "both-between-looks", "failed", "cancelled", "nothing-left"],
)
def test_events_due(status: str, announced: frozenset[str], due: list[str]) -> None:
    assert events_due(status, announced) == due


async def test_create_list_get_delete(client: ScenarioClient, emulator_server: EmulatorServer) -> None:
    created = await client.create_webhook_endpoint("http://127.0.0.1:9/hook/tok", ["*"], "a note")
    assert created.secret is not None and created.secret.get_secret_value().startswith("whsec_")
    assert "whsec_" not in repr(created) and "/tok" not in repr(created)
    (listed,) = await client.list_webhook_endpoints()
    assert listed.id == created.id and listed.secret is None and listed.enabled_events == ["*"]
    assert listed.description == "a note"
    assert await client.delete_webhook_endpoint(created.id) is True
    assert await client.delete_webhook_endpoint(created.id) is False  # gone already: not an error
    assert await client.list_webhook_endpoints() == []


@pytest.mark.parametrize(
    "url", ["ftp://h/x", "/relative", "https://", "https://u:p@h/x", "https://h/x?q=1", "https://h/x#f", "https://h/ x"]
)
async def test_a_bad_url_is_refused_before_any_request(client: ScenarioClient, url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        await client.create_webhook_endpoint(url, ["*"])
    assert url not in str(caught.value)  # a receiver URL ends in a secret: never echoed
    with pytest.raises(ConfigurationError):
        await client.create_webhook_endpoint("https://h/x", [])
    assert client.request_count == 0


async def test_the_emulator_refuses_what_scenario_says_is_invalid(raw: httpx.AsyncClient) -> None:
    base = f"/projects/{PROJECT}/webhook-endpoints"
    for body in ({"url": "notaurl", "enabledEvents": ["*"]}, {"url": "https://h/x", "enabledEvents": []},
                 {"url": "https://h/x", "enabledEvents": ["bad event"]}, {"enabledEvents": ["*"]}):  # fmt: skip
        assert (await raw.post(base, json=body)).status_code == 400, body
    assert (await raw.get(f"{base}/whep_nope")).status_code == 404
    assert (await raw.get("/projects/other/webhook-endpoints")).json() == {"webhookEndpoints": []}


async def test_a_training_is_delivered_start_then_end_and_recorded(
    client: ScenarioClient, raw: httpx.AsyncClient, emulator_server: EmulatorServer, emulator_clock: ManualClock
) -> None:
    receiver = Recorder()
    with serve(receiver) as url:
        everything = await client.create_webhook_endpoint(f"{url}/all", ["*"])
        only_done = await client.create_webhook_endpoint(f"{url}/done", ["model.training.completed"])
        model_id = await trained_model(raw)
        (started,) = receiver.wait_for(1)
        assert started["type"] == "model.training.started" and started["data"]["modelId"] == model_id
        emulator_server.advance_clock(60)  # queued 3 s + starting 2 s + running 10 s
        bodies = receiver.wait_for(3)
    assert sorted(b["type"] for b in bodies) == sorted(["model.training.started", *["model.training.completed"] * 2])
    completed = [b for b in bodies if b["type"] == "model.training.completed"]
    assert {b["data"]["status"] for b in completed} == {"trained"}
    assert all(b["data"]["modelId"] == model_id and b["id"].startswith("evt_") for b in bodies)
    events = (await raw.get(f"/projects/{PROJECT}/webhook-endpoints/{everything.id}/events")).json()["webhookEvents"]
    assert [(e["eventType"], e["status"], e["attempts"]) for e in events] == [
        ("model.training.started", "success", 1),
        ("model.training.completed", "success", 1),
    ]
    events = (await raw.get(f"/projects/{PROJECT}/webhook-endpoints/{only_done.id}/events")).json()["webhookEvents"]
    assert [e["eventType"] for e in events] == ["model.training.completed"]
    assert set(TRAINING_EVENTS) >= {b["type"] for b in bodies}


async def test_the_end_is_delivered_when_the_clock_passes_it_not_when_someone_reads(
    client: ScenarioClient, raw: httpx.AsyncClient, emulator_server: EmulatorServer
) -> None:
    # Scenario posts when a training ends (§14). A suspended run reads nothing, so the emulator's
    # dispatcher must notice the end on its own timer: no API request between the clock move and
    # the delivery. The delivery's time is the training's end, which the lag benchmark relies on.
    receiver = Recorder()
    with serve(receiver) as url:
        await client.create_webhook_endpoint(f"{url}/end", ["model.training.completed"])
        model_id = await trained_model(raw, name="unread")
        served = len(emulator_server.requests())
        emulator_server.advance_clock(60)
        (body,) = receiver.wait_for(1)
        assert len(emulator_server.requests()) == served
    model = (await raw.get(f"/models/{model_id}")).json()["model"]
    assert (body["data"]["modelId"], body["data"]["status"]) == (model_id, "trained")
    assert body["createdAt"] == model["trainingStats"]["endedAt"]


async def test_failed_and_cancelled_trainings_are_delivered(
    client: ScenarioClient, raw: httpx.AsyncClient, emulator_server: EmulatorServer
) -> None:
    receiver = Recorder()
    with serve(receiver) as url:
        await client.create_webhook_endpoint(f"{url}/x", ["model.training.failed", "model.training.cancelled"])
        doomed = await trained_model(raw, name="doomed")  # the fixture's fail_names
        cancelled = await trained_model(raw, name="cancelled")
        assert (await raw.post(f"/models/{cancelled}/train/action", json={"action": "cancel"})).status_code == 200
        (first,) = receiver.wait_for(1)
        emulator_server.advance_clock(60)
        bodies = receiver.wait_for(2)
    assert first["type"] == "model.training.cancelled" and first["data"]["modelId"] == cancelled
    assert bodies[1]["type"] == "model.training.failed" and bodies[1]["data"]["modelId"] == doomed
    assert len(bodies) == 2


async def test_a_failing_receiver_is_retried_then_recorded_failed(emulator_config: EmulatorConfig) -> None:
    config = replace(emulator_config, webhook_retries=2, webhook_retry_seconds=0.001)
    receiver = Recorder(500, 503, 500)
    with serve(receiver) as url, EmulatorServer(config) as server:
        async with httpx.AsyncClient(
            base_url=server.base_url, auth=(EMULATOR_KEY, EMULATOR_SECRET), params={"projectId": PROJECT}
        ) as http:
            body = {"url": f"{url}/x", "enabledEvents": ["*"]}
            created = await http.post(f"/projects/{PROJECT}/webhook-endpoints", json=body)
            await trained_model(http)
        receiver.wait_for(3)
        (delivery,) = server.app.webhooks.deliveries(created.json()["webhookEndpoint"]["id"])
        assert delivery.done.wait(30)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("failed", 3, 500)


async def test_deliveries_go_only_to_allowed_hosts(client: ScenarioClient, raw: httpx.AsyncClient,
                                                   emulator_server: EmulatorServer) -> None:  # fmt: skip
    endpoint = await client.create_webhook_endpoint("https://elsewhere.example/hook/x", ["*"])
    await trained_model(raw)
    emulator_server.app.webhooks.scan()
    (delivery,) = emulator_server.app.webhooks.deliveries(endpoint.id)
    assert delivery.done.wait(30)
    assert delivery.status == "failed" and delivery.attempts == 0


async def test_endpoints_survive_a_restart_and_old_events_are_not_sent_again(
    emulator_config: EmulatorConfig, tmp_path: Path
) -> None:
    config = replace(emulator_config, db_path=tmp_path / "emulator.db")
    receiver = Recorder()
    with serve(receiver) as url:
        with EmulatorServer(config) as server:
            async with httpx.AsyncClient(
                base_url=server.base_url, auth=(EMULATOR_KEY, EMULATOR_SECRET), params={"projectId": PROJECT}
            ) as http:
                body = {"url": f"{url}/x", "enabledEvents": ["*"]}
                created = await http.post(f"/projects/{PROJECT}/webhook-endpoints", json=body)
                endpoint_id = created.json()["webhookEndpoint"]["id"]
                first = await trained_model(http)
            receiver.wait_for(1)
        with EmulatorServer(config) as again:
            assert list(again.app.store.webhook_endpoints) == [endpoint_id]
            async with httpx.AsyncClient(
                base_url=again.base_url, auth=(EMULATOR_KEY, EMULATOR_SECRET), params={"projectId": PROJECT}
            ) as http:
                second = await trained_model(http, name="second")
            bodies = receiver.wait_for(2)
            assert again.app.webhooks.scan() == 0
    assert [(b["type"], b["data"]["modelId"]) for b in bodies] == [
        ("model.training.started", first),
        ("model.training.started", second),
    ]
