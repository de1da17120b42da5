"""Our client against the emulator, in process and over a real socket, including every fault kind."""

from __future__ import annotations

import pickle

import httpx
import pytest

from prefect_scenario import exceptions as exc
from prefect_scenario.api.client import ScenarioClient, check_base_url
from scenario_emulator import EmulatorApp, EmulatorConfig, EmulatorServer
from scenario_emulator.faults import FaultConfig
from tests.emulator_fixtures import EMULATOR_KEY, EMULATOR_SECRET, png_bytes


async def _no_sleep(_: float) -> None:
    return None


def make_client(app: EmulatorApp, **kw: object) -> ScenarioClient:
    return ScenarioClient(
        api_key=EMULATOR_KEY,
        api_secret=EMULATOR_SECRET,
        project_id="proj_test",
        base_url="http://127.0.0.1/v1",
        transport=httpx.ASGITransport(app=app),
        sleep=_no_sleep,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "url",
    ["http://api.example.com/v1", "ftp://127.0.0.1/v1", "not a url", "http://10.0.0.1/v1"],
)
def test_unsafe_base_urls_are_refused(url: str) -> None:
    with pytest.raises(exc.ConfigurationError):
        check_base_url(url)


@pytest.mark.parametrize("url", ["https://api.cloud.scenario.com/v1/", "http://127.0.0.1:8787/v1", "http://[::1]/v1"])
def test_safe_base_urls(url: str) -> None:
    assert check_base_url(url) == url.rstrip("/")


@pytest.mark.parametrize(("key", "secret", "project"), [("", "s", "p"), ("k", " ", "p"), ("k", "s", "")])
def test_missing_credentials_are_refused_before_any_request(key: str, secret: str, project: str) -> None:
    with pytest.raises(exc.ConfigurationError):
        ScenarioClient(api_key=key, api_secret=secret, project_id=project)


def test_repr_never_shows_the_secret() -> None:
    client = ScenarioClient(api_key="key-abc", api_secret="secret-xyz", project_id="p")
    assert "secret-xyz" not in repr(client) and "key-abc" not in repr(client)
    assert "secret-xyz" not in repr(client._http.headers)


async def test_standard_sequence(emulator_app: EmulatorApp) -> None:
    async with make_client(emulator_app) as client:
        model = await client.create_model(name="hero", training_type="flux.2-dev-lora")
        assert model.status == "new"
        await client.update_tags(model.id, add=["psc-abc"])
        for i in range(3):
            await client.add_training_image(model.id, name=f"{i}.png", data=png_bytes((i, 0, 0)), mime_type="image/png")
        estimate = await client.estimate_training_cost(model.id)
        assert estimate.creative_units_cost and estimate.creative_units_cost > 0
        assert (await client.get_model(model.id)).status == "new"
        answer = await client.train(model.id)
        assert answer.model is not None and answer.model.status == "training" and answer.job is not None
        assert (await client.get_job(answer.job.job_id)).job_id == answer.job.job_id
        bulk = await client.get_models_bulk([model.id], all_training_images=True)
        assert len(bulk[0].training_images) == 3
        assert [m.id async for m in client.list_models() if "psc-abc" in m.tags] == [model.id]
        canceled = await client.cancel_training(model.id)
        assert canceled.status == "training-canceled"
    requests = emulator_app.requests()
    assert len(requests) == client.request_count == 12
    assert all("projectId=proj_test" in str(r["query"]) for r in requests)


async def test_wrong_credentials_fail_at_once_without_retry(emulator_app: EmulatorApp) -> None:
    client = ScenarioClient(
        api_key=EMULATOR_KEY,
        api_secret="wrong",
        project_id="p",
        base_url="http://127.0.0.1/v1",
        transport=httpx.ASGITransport(app=emulator_app),
        sleep=_no_sleep,
    )
    async with client:
        with pytest.raises(exc.AuthenticationError) as raised:
            await client.get_model("model_x")
    assert client.request_count == 1
    assert raised.value.status_code == 401
    assert raised.value.request_id
    assert "wrong" not in str(raised.value) and EMULATOR_KEY not in str(raised.value)
    assert pickle.loads(pickle.dumps(raised.value)).status_code == 401


async def test_a_second_trigger_is_already_training_and_not_retried(emulator_app: EmulatorApp) -> None:
    # The real API answers 400 "Model is already training" (Scenario's scenario-model-training skill).
    async with make_client(emulator_app) as client:
        model = await client.create_model(name="hero", training_type="flux.2-dev-lora")
        await client.add_training_image(model.id, name="a.png", data=png_bytes(), mime_type="image/png")
        await client.train(model.id)
        before = client.request_count
        with pytest.raises(exc.AlreadyTrainingError) as raised:
            await client.train(model.id)
        assert raised.value.status_code == 400 and "already training" in str(raised.value)
        assert raised.value.trace_id
        assert client.request_count == before + 1


async def test_bad_type_is_a_bad_request(emulator_app: EmulatorApp) -> None:
    async with make_client(emulator_app) as client:
        with pytest.raises(exc.BadRequestError, match="400"):
            await client.create_model(name="x", training_type="nope-lora")


@pytest.mark.parametrize(
    ("faults", "error"),
    [
        pytest.param({"error_rate": 1.0}, exc.ServerError, id="5xx"),
        pytest.param({"rate_limit_rate": 1.0, "retry_after_seconds": 0.01}, exc.RateLimitError, id="429"),
        pytest.param({"drop_before_rate": 1.0}, exc.APIConnectionError, id="drop-before"),
        pytest.param({"drop_after_rate": 1.0}, exc.APIConnectionError, id="drop-after"),
    ],
)
def test_every_fault_kind_over_a_real_socket(faults: dict[str, float], error: type[Exception]) -> None:
    import asyncio

    sleeps: list[float] = []

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    with EmulatorServer(EmulatorConfig(api_key=EMULATOR_KEY, api_secret=EMULATOR_SECRET)) as server:

        async def run() -> ScenarioClient:
            client = ScenarioClient(
                api_key=EMULATOR_KEY, api_secret=EMULATOR_SECRET, project_id="p", base_url=server.base_url,
                sleep=record, max_retries=2,
            )  # fmt: skip
            async with client:
                model = await client.create_model(name="m", training_type="flux.2-dev-lora")
                server.set_faults(FaultConfig.from_wire({**faults, "seed": 1}))
                with pytest.raises(error):
                    await client.get_model(model.id)  # safe to repeat: retried, then raised
                with pytest.raises(error):
                    # Sent once: without a reconcile step, only a 429 (which proves nothing happened) is resent.
                    await client.create_model(name="n", training_type="flux.2-dev-lora")
            return client

        client = asyncio.run(run())
    rate_limited = "retry_after_seconds" in faults
    assert client.requests_by_route["GET /models/{id}"] == 3
    assert client.requests_by_route["POST /models"] == (4 if rate_limited else 2)
    assert len(sleeps) == (4 if rate_limited else 2)
    if rate_limited:
        assert sleeps == [0.01] * 4  # Retry-After honoured


def test_a_transient_fault_is_survived_by_a_retry() -> None:
    import asyncio

    with EmulatorServer(EmulatorConfig(api_key=EMULATOR_KEY, api_secret=EMULATOR_SECRET)) as server:

        async def run() -> str:
            async with ScenarioClient(
                api_key=EMULATOR_KEY,
                api_secret=EMULATOR_SECRET,
                project_id="p",
                base_url=server.base_url,
                sleep=_no_sleep,
            ) as client:
                model = await client.create_model(name="m", training_type="flux.2-dev-lora")
                server.set_faults(FaultConfig(error_rate=1.0, limit=2))
                return (await client.get_model(model.id)).id

        assert asyncio.run(run()).startswith("model_")


async def test_a_dataset_is_quoted_before_its_first_upload(emulator_app: EmulatorApp) -> None:
    async with make_client(emulator_app) as client:
        model = await client.create_model(name="hero", training_type="flux.2-dev-lora")
        estimate = await client.estimate_training_cost(model.id, training_images_count=8)
        assert estimate.creative_units_cost == 50 + 10 * 8 + 2 * 10
        assert (await client.get_model(model.id)).training_images_number == 0
    assert "trainingImagesCount=8" in str(emulator_app.requests()[-2]["query"])
