"""A real emulator delivery reaches the receiver built from the registered block: one hint, the right model."""

from __future__ import annotations

import httpx
import pytest

from prefect_scenario.webhooks import ScenarioWebhook, build_receiver, register_webhook
from scenario_emulator import EmulatorServer
from scenario_emulator.server import _bind
from tests.emulator.helpers import add_images, new_model
from tests.flow_fixtures import KEY, SECRET, credentials_for
from tests.webhooks.hints import CountingHint, model_gets
from tests.webhooks.servers import serve

pytestmark = pytest.mark.usefixtures("prefect_harness")


async def test_a_training_delivered_by_the_emulator_is_one_hint_for_its_model(fast_emulator: EmulatorServer) -> None:
    credentials = credentials_for(fast_emulator)
    sock = _bind("127.0.0.1", 0)
    public_url = f"http://127.0.0.1:{sock.getsockname()[1]}/scenario"
    registration = await register_webhook(public_url, credentials=credentials, block_name="hooks-e2e")
    webhook = await ScenarioWebhook.aload("hooks-e2e")
    assert isinstance(webhook, ScenarioWebhook)
    hint = CountingHint(credentials)
    with serve(build_receiver(webhook, credentials, on_hint=hint), sock):
        async with httpx.AsyncClient(
            base_url=fast_emulator.base_url, auth=(KEY, SECRET), params={"projectId": credentials.project_id}
        ) as raw:
            model_id = await new_model(raw, name="e2e", projectId=credentials.project_id)
            await add_images(raw, model_id, 5)
            assert (await raw.put(f"/models/{model_id}/train", json={})).status_code == 200
            assert hint.wait_for(model_id) == [model_id]
        deliveries = fast_emulator.app.webhooks.deliveries(registration.webhook.endpoint_id)
        assert [d.event_type for d in deliveries] == ["model.training.started", "model.training.completed"]
        assert all(d.done.wait(30) for d in deliveries)
    assert [(d.status, d.attempts) for d in deliveries] == [("success", 1), ("success", 1)]
    assert hint.calls == [model_id]  # the start was not worth a hint; the end was, once
    assert model_gets(fast_emulator) == 1


async def test_the_default_hint_resumes_the_suspended_run_of_a_delivered_model(
    emulator_server: EmulatorServer,
) -> None:
    # The whole fast path with the watcher's own settle_model: delivery → receiver → resume.
    from prefect.client.orchestration import get_client

    from prefect_scenario.credentials import ScenarioCredentials
    from prefect_scenario.waiting.hints import HintSettler
    from prefect_scenario.waiting.suspension import WaitRecord
    from prefect_scenario.waiting.watcher import WatchReport
    from tests.emulator_fixtures import EMULATOR_KEY, EMULATOR_SECRET
    from tests.training.test_watcher import start_training, suspended_run

    credentials = ScenarioCredentials(api_key=EMULATOR_KEY, api_secret=EMULATOR_SECRET, project_id="proj_e2e_hint",
                                      base_url=emulator_server.base_url)  # fmt: skip
    sock = _bind("127.0.0.1", 0)
    public_url = f"http://127.0.0.1:{sock.getsockname()[1]}/scenario"
    await register_webhook(public_url, credentials=credentials, block_name="hooks-e2e-resume")
    webhook = await ScenarioWebhook.aload("hooks-e2e-resume")
    assert isinstance(webhook, ScenarioWebhook)
    reports = CountingHint()

    class Recording(HintSettler):  # the default hint, its reports kept; the receiver starts and closes it
        async def __call__(self, model_id: str) -> WatchReport:
            report = await super().__call__(model_id)
            reports.outcomes.append(report)
            await reports(model_id)
            return report

    with serve(build_receiver(webhook, credentials, on_hint=Recording(credentials)), sock):
        model_id = await start_training(credentials, "resumed-by-webhook")
        async with get_client() as prefect:
            deadline = emulator_server.app.now() + 3600
            run_id = await suspended_run(prefect, WaitRecord(model_ids=(model_id,), keys=(), deadline=deadline))
            emulator_server.advance_clock(60)  # the training ends; the emulator delivers "completed"
            assert reports.wait_for(model_id) == [model_id]
            run = await prefect.read_flow_run(run_id)
    (report,) = reports.outcomes
    assert getattr(report, "resumed", None) == [str(run_id)]
    assert run.state is not None and run.state.type.value != "PAUSED"
