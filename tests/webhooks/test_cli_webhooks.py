"""``prefect-scenario webhooks register|list`` and ``webhook-receiver`` against the emulator."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import uvicorn

from prefect_scenario.cli import main
from prefect_scenario.webhooks import WebhookReceiver
from scenario_emulator import EmulatorServer
from tests.flow_fixtures import KEY, SECRET

pytestmark = pytest.mark.usefixtures("prefect_harness")

URL = "http://127.0.0.1:9/scenario"


@pytest.fixture
def scenario_env(fast_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    monkeypatch.setenv("SCENARIO_API_KEY", KEY)
    monkeypatch.setenv("SCENARIO_API_SECRET", SECRET)
    monkeypatch.setenv("SCENARIO_PROJECT_ID", "proj_cli_hooks")
    monkeypatch.setenv("SCENARIO_BASE_URL", fast_emulator.base_url)
    return fast_emulator


def test_register_twice_then_list(scenario_env: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["webhooks", "register", "--url", URL, "--block", "cli-hooks"]) == 0
    first = capsys.readouterr().out
    assert main(["webhooks", "register", "--url", URL, "--block", "cli-hooks"]) == 0
    again = capsys.readouterr().out
    assert first.startswith("registered: endpoint ") and again.startswith("already registered: endpoint ")
    (endpoint,) = scenario_env.app.store.webhook_endpoints.values()
    token = endpoint.url.rpartition("/")[2]
    assert endpoint.id in first and "/scenario/**********" in first and token not in first + again
    assert main(["webhooks", "list"]) == 0
    listed = capsys.readouterr().out
    assert endpoint.id in listed and "model.training.completed" in listed and token not in listed


def test_bad_input_exits_2_before_any_request(scenario_env: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    for url in ("ftp://x/y", "http://example.com/plain-http", "https://h/x?q=1"):
        assert main(["webhooks", "register", "--url", url]) == 2
        assert capsys.readouterr().err.startswith("error: the webhook url")
    assert main(["webhook-receiver", "--block", "no-such-webhook-block"]) == 2
    assert "webhooks register" in capsys.readouterr().err
    assert scenario_env.requests() == []


def test_the_receiver_serves_the_registered_block(
    scenario_env: EmulatorServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["webhooks", "register", "--url", URL, "--block", "cli-served"]) == 0
    served: dict[str, Any] = {}

    def run(app: Any, **options: Any) -> None:  # stands in for uvicorn.run, which would block
        served.update(app=app, **options)

    monkeypatch.setattr(uvicorn, "run", run)
    ours = logging.getLogger("prefect_scenario")
    before = ours.level
    ours.setLevel(logging.WARNING)  # as Prefect's logging setup leaves it
    try:
        assert main(["webhook-receiver", "--block", "cli-served", "--port", "8799"]) == 0
        assert ours.level == logging.INFO  # by default each delivery's outcome is logged
    finally:
        ours.setLevel(before)
    assert isinstance(served["app"], WebhookReceiver)
    assert served["port"] == 8799 and served["access_log"] is False  # the path is the secret: never logged
    (endpoint,) = scenario_env.app.store.webhook_endpoints.values()
    assert endpoint.url.rpartition("/")[2] not in capsys.readouterr().err
