"""The one retry policy: what is retried, after how long, and the worst case per request."""

from __future__ import annotations

import logging

import httpx
import pytest

from prefect_scenario import exceptions as exc
from prefect_scenario.api import retry_policy as policy
from prefect_scenario.api.client import ScenarioClient
from scenario_emulator import EmulatorApp
from scenario_emulator.faults import FaultConfig
from tests.emulator_fixtures import EMULATOR_KEY, EMULATOR_SECRET


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (exc.ServerError("x", status_code=503), True),
        (exc.RateLimitError("x", status_code=429), True),
        (exc.PlanLimitError("x", status_code=429, action_name="parallel-training", action_limit=2), False),
        (exc.ConflictError("x", status_code=409, should_retry=False), False),
        (exc.BadRequestError("x", status_code=400, should_retry=True), True),
        (exc.AuthenticationError("x", status_code=401), False),
        (exc.APIConnectionError("x"), True),
        (exc.APITimeoutError("x"), True),
        (exc.InvalidParametersError("x"), False),
        (ValueError("x"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_is_transient(error: Exception, transient: bool) -> None:
    assert policy.is_transient(error) is transient


@pytest.fixture(autouse=True)
def unscaled(monkeypatch: pytest.MonkeyPatch) -> None:
    # The suite shrinks the policy's waits (conftest.py); these tests check the real ones.
    monkeypatch.setattr(policy, "INITIAL_DELAY", 0.5)
    monkeypatch.setattr(policy, "MAX_DELAY", 8.0)


def test_backoff_and_headers() -> None:
    assert policy.backoff(0, jitter=1.0) == 0.5
    assert policy.backoff(10, jitter=1.0) == policy.MAX_DELAY
    assert policy.parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert policy.parse_retry_after({"retry-after": "2"}) == 2.0
    assert policy.parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10.0
    assert policy.parse_should_retry({"x-should-retry": "false"}) is False


@pytest.mark.parametrize(
    ("error", "send_once", "retry", "wait", "reconcile"),
    [
        pytest.param(exc.ServerError("x", status_code=500), False, True, 0.5, False, id="5xx-read"),
        pytest.param(exc.ServerError("x", status_code=500), True, True, 0.5, True, id="5xx-create-reconciles"),
        pytest.param(exc.RateLimitError("x", status_code=429, retry_after=3), True, True, 3.0, False,
                     id="429-honoured"),
        pytest.param(exc.RateLimitError("x", status_code=429, retry_after=600), False, True, 0.5, False,
                     id="429-out-of-range-backs-off"),
        pytest.param(exc.APITimeoutError("x"), True, True, 60.0, True, id="timeout-create-settles"),
        pytest.param(exc.APITimeoutError("x"), False, True, 0.5, False, id="timeout-read"),
        pytest.param(exc.PlanLimitError("x", status_code=429), True, False, 0.0, False, id="plan-limit-never"),
        pytest.param(exc.NotFoundError("x", status_code=404), False, False, 0.0, False, id="404-never"),
    ],
)  # fmt: skip
def test_decide(error: Exception, send_once: bool, retry: bool, wait: float, reconcile: bool) -> None:
    decision = policy.decide(error, retries_made=0, send_once=send_once, settle_seconds=60.0, jitter=1.0)
    assert (decision.retry, decision.wait, decision.reconcile) == (retry, wait, reconcile)


def test_the_budget_ends_the_retries() -> None:
    error = exc.ServerError("x", status_code=503)
    assert policy.decide(error, retries_made=4, send_once=False, max_retries=5).retry
    assert not policy.decide(error, retries_made=5, send_once=False, max_retries=5).retry


async def _no_sleep(_: float) -> None:
    return None


async def test_worst_case_is_one_plus_max_retries_and_each_retry_is_logged(
    emulator_app: EmulatorApp, caplog: pytest.LogCaptureFixture
) -> None:
    client = ScenarioClient(
        api_key=EMULATOR_KEY, api_secret=EMULATOR_SECRET, project_id="p", base_url="http://127.0.0.1/v1",
        transport=httpx.ASGITransport(app=emulator_app), sleep=_no_sleep,
    )  # fmt: skip
    async with client:
        model = await client.create_model(name="m", training_type="flux.2-dev-lora")
        emulator_app.set_faults(FaultConfig(error_rate=1.0))
        with caplog.at_level(logging.INFO), pytest.raises(exc.ServerError):
            await client.get_model(model.id)
    assert client.requests_by_route["GET /models/{id}"] == 1 + policy.DEFAULT_MAX_RETRIES
    lines = [r.getMessage() for r in caplog.records if "retry #" in r.getMessage()]
    assert len(lines) == policy.DEFAULT_MAX_RETRIES
    assert lines[0].startswith("GET /models/{id} failed (HTTP 5")


async def test_a_sent_once_call_is_resent_only_after_its_reconcile_found_nothing(emulator_app: EmulatorApp) -> None:
    client = ScenarioClient(
        api_key=EMULATOR_KEY, api_secret=EMULATOR_SECRET, project_id="p", base_url="http://127.0.0.1/v1",
        transport=httpx.ASGITransport(app=emulator_app), sleep=_no_sleep,
    )  # fmt: skip
    looked: list[int] = []

    async def reconcile() -> None:
        looked.append(1)
        return None

    async with client:
        emulator_app.set_faults(FaultConfig(error_rate=1.0, limit=2))
        model = await client.create_model(name="m", training_type="flux.2-dev-lora", reconcile=reconcile)
    assert model.id.startswith("model_")
    assert len(looked) == 2 and client.requests_by_route["POST /models"] == 3
