"""Registration against the emulator and Prefect's test server: idempotent, lost creates recognised."""

from __future__ import annotations

import logging

import pytest
from prefect.client.orchestration import get_client

from prefect_scenario.api.models import WebhookEndpoint
from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.exceptions import ConfigurationError
from prefect_scenario.webhooks import ScenarioWebhook, register_webhook
from prefect_scenario.webhooks.registration import check_public_url, plan_registration
from scenario_emulator import EmulatorServer
from tests.flow_fixtures import credentials_for

pytestmark = pytest.mark.usefixtures("prefect_harness")

URL = "http://127.0.0.1:9/scenario"


@pytest.fixture
def credentials(fast_emulator: EmulatorServer) -> ScenarioCredentials:
    return credentials_for(fast_emulator)


def creates(server: EmulatorServer) -> int:
    return sum(1 for r in server.requests() if r["method"] == "POST" and r["path"].endswith("/webhook-endpoints"))


async def block_count(name: str) -> int:
    async with get_client() as client:
        documents = await client.read_block_documents_by_type("scenario-webhook")
    return sum(1 for d in documents if d.name == name)


async def test_registering_twice_makes_one_endpoint_and_one_block(
    credentials: ScenarioCredentials, fast_emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, "prefect_scenario"):
        first = await register_webhook(URL, credentials=credentials, block_name="hooks-twice")
        again = await register_webhook(URL + "/", credentials=credentials, block_name="hooks-twice")
    assert first.created and not again.created
    assert creates(fast_emulator) == 1 and len(fast_emulator.app.store.webhook_endpoints) == 1
    assert await block_count("hooks-twice") == 1
    (stored,) = fast_emulator.app.store.webhook_endpoints.values()
    loaded = await ScenarioWebhook.aload("hooks-twice")
    assert isinstance(loaded, ScenarioWebhook) and loaded.endpoint_id == stored.id == again.webhook.endpoint_id
    assert loaded.endpoint_url() == stored.url and loaded.secret.get_secret_value() == stored.secret
    assert sorted(loaded.events) == sorted(stored.enabled_events) and "model.training.completed" in loaded.events
    token = loaded.path_token.get_secret_value()
    for text in (caplog.text, repr(loaded), str(loaded), loaded.model_dump_json(), repr(first)):
        assert token not in text and stored.secret not in text


async def test_a_lost_create_is_recognised_and_not_left_behind(
    credentials: ScenarioCredentials, fast_emulator: EmulatorServer
) -> None:
    fast_emulator.set_faults(drop_after_rate=1.0, methods=("POST",), paths=("webhook-endpoints",), limit=1)
    done = await register_webhook(URL, credentials=credentials, block_name="hooks-lost")
    assert creates(fast_emulator) == 2  # the first landed, its answer (and secret) was lost
    (stored,) = fast_emulator.app.store.webhook_endpoints.values()  # and it was deleted
    assert stored.id == done.webhook.endpoint_id and stored.secret == done.webhook.secret.get_secret_value()


async def test_stale_endpoints_are_replaced(credentials: ScenarioCredentials, fast_emulator: EmulatorServer) -> None:
    first = await register_webhook(URL, credentials=credentials, block_name="hooks-moved")
    moved = await register_webhook("http://127.0.0.1:9/elsewhere", credentials=credentials, block_name="hooks-moved")
    assert moved.created and moved.deleted == (first.webhook.endpoint_id,)
    # An endpoint under this URL that no block knows (its block deleted): its token is lost.
    orphan = await register_webhook(URL, credentials=credentials, block_name="hooks-orphan")
    async with get_client() as client:
        await client.delete_block_document(
            (await client.read_block_document_by_name("hooks-orphan", "scenario-webhook")).id
        )
    renewed = await register_webhook(URL, credentials=credentials, block_name="hooks-orphan")
    assert renewed.created and renewed.deleted == (orphan.webhook.endpoint_id,)
    assert {e.id for e in fast_emulator.app.store.webhook_endpoints.values()} == {
        moved.webhook.endpoint_id,
        renewed.webhook.endpoint_id,
    }


@pytest.mark.parametrize("url", ["ftp://h/x", "http://example.com/x", "https://h/x?token=1", "not a url"])
async def test_a_bad_url_is_refused_before_any_request(
    credentials: ScenarioCredentials, fast_emulator: EmulatorServer, url: str
) -> None:
    with pytest.raises(ConfigurationError):
        await register_webhook(url, credentials=credentials, block_name="hooks-bad")
    assert fast_emulator.requests() == []


def test_plan_keeps_only_the_blocks_live_endpoint() -> None:
    public = check_public_url("https://hooks.example.com/scenario/")
    block = ScenarioWebhook(endpoint_id="we_1", public_url=public, path_token="t" * 43, secret="s", project_id="p")
    live = WebhookEndpoint(id="we_1", url=block.endpoint_url())
    foreign = WebhookEndpoint(id="we_2", url="https://other.example/hook")
    orphan = WebhookEndpoint(id="we_3", url=public + "/abandoned")
    assert plan_registration(public, block, [live, foreign, orphan], project_id="p").keep == "we_1"
    assert plan_registration(public, block, [foreign], project_id="p").delete == ()
    other_project = plan_registration(public, block, [live], project_id="q")
    assert other_project.create and other_project.delete == ("we_1",)
    assert plan_registration(public, None, [live, foreign, orphan], project_id="p").delete == ("we_1", "we_3")
