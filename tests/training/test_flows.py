"""The training flows against the emulator on a real socket, in Prefect's ephemeral mode."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from prefect_scenario import exceptions as exc
from prefect_scenario.training.flows import train_edit_lora, train_lora
from scenario_emulator import EmulatorConfig, EmulatorServer
from scenario_emulator.faults import FaultConfig
from tests.flow_fixtures import FAST_POLL, KEY, SECRET, credentials_for, end_training_once_polled

pytestmark = pytest.mark.usefixtures("prefect_harness")


def png(i: int, size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), ((i * 37) % 256, (i * 91) % 256, 120)).save(buffer, "PNG")
    return buffer.getvalue()


def api_requests(server: EmulatorServer, method: str, suffix: str, status: int | None = 200) -> list[dict[str, Any]]:
    return [
        r
        for r in server.requests()
        if r["method"] == method and r["path"].endswith(suffix) and (status is None or r["status"] == status)
    ]


def models_on(server: EmulatorServer) -> list[Any]:
    return list(server.app.store.models.values()) if hasattr(server.app.store, "models") else []


async def test_standard_lora_trains_and_a_rerun_reuses_it(fast_emulator: EmulatorServer) -> None:
    creds = credentials_for(fast_emulator)
    images = [png(i) for i in range(6)]
    params = {"nbEpochs": 3, "samplePrompts": ["a hero"]}
    result = await train_lora(
        name="hero", training_type="flux.2-dev-lora", images=images, credentials=creds, parameters=params,
        poll_policy=FAST_POLL,
    )  # fmt: skip
    assert result.status == "trained" and not result.reused
    assert result.images == 6 and len(result.epochs) == 3 and result.sample_image_urls
    assert result.creative_units_cost and result.creative_units_cost > 0
    assert len(api_requests(fast_emulator, "POST", "/training-images")) == 6
    again = await train_lora(
        name="hero", training_type="flux.2-dev-lora", images=images, credentials=creds, parameters=params,
        poll_policy=FAST_POLL,
    )  # fmt: skip
    assert again.reused and again.model_id == result.model_id
    assert len(api_requests(fast_emulator, "PUT", "/train")) == 1
    assert len(api_requests(fast_emulator, "POST", "/models")) == 1


async def test_edit_lora_trains_from_pairs(fast_emulator: EmulatorServer, tmp_path: Path) -> None:
    paths = []
    for i in range(4):
        path = tmp_path / f"{i}.png"
        path.write_bytes(png(i + 10))
        paths.append(str(path))
    result = await train_edit_lora(
        name="snow",
        training_type="qwen-image-edit-2511-lora",
        pairs=[(paths[0], paths[1], "make it snowy"), {"before": paths[2], "after": paths[3], "instruction": "snow"}],
        credentials=credentials_for(fast_emulator),
        poll_policy=FAST_POLL,
    )
    assert result.status == "trained" and result.pairs == 2
    pairs_calls = api_requests(fast_emulator, "PUT", "/training-images/pairs")
    assert len(pairs_calls) == 1


async def test_faults_still_give_one_model_the_given_images_and_one_training(fast_emulator: EmulatorServer) -> None:
    fast_emulator.set_faults(
        FaultConfig(
            error_rate=0.2,
            rate_limit_rate=0.1,
            retry_after_seconds=0.01,
            drop_after_rate=0.1,
            drop_before_rate=0.05,
            seed=3,
        )
    )
    result = await train_lora(
        name="faulty", training_type="flux.2-dev-lora", images=[png(i) for i in range(8)],
        # ~45% of requests fault here: the one retry layer needs a larger budget than the default to
        # ride it out (each request has its own; there are no task retries on top any more).
        credentials=credentials_for(fast_emulator, max_retries=10), poll_policy=FAST_POLL,
    )  # fmt: skip
    fast_emulator.set_faults(FaultConfig())
    assert result.status == "trained"
    faulted = [r for r in fast_emulator.requests() if r["status"] != 200]
    assert faulted, "the fault injection should have hit some requests"
    from prefect_scenario.api.client import ScenarioClient

    async with ScenarioClient(
        api_key=KEY, api_secret=SECRET, project_id="proj_flows", base_url=fast_emulator.base_url
    ) as c:
        models = [m async for m in c.list_models()]
        assert [m.id for m in models] == [result.model_id]
        (model,) = await c.get_models_bulk([result.model_id], all_training_images=True)
        assert len(model.training_images) == 8
        assert len({i.name for i in model.training_images}) == 8
        job = await c.get_job(result.job_id or "")
        assert job.status == "success"


async def test_failure_raises_with_the_server_reason(fast_emulator: EmulatorServer) -> None:
    with pytest.raises(exc.TrainingFailed, match="out of memory") as raised:
        await train_lora(
            name="doomed", training_type="zimage-turbo-lora", images=[png(1), png(2)],
            credentials=credentials_for(fast_emulator), poll_policy=FAST_POLL,
        )  # fmt: skip
    assert raised.value.reason and "out of memory" in raised.value.reason


async def test_timeout_cancels_the_remote_training() -> None:
    from prefect_scenario.api.client import ScenarioClient

    # A 600 s training: however busy the machine, it is still training when the timeout cancels it.
    config = EmulatorConfig(api_key=KEY, api_secret=SECRET, queue_seconds=0.05, start_seconds=0.05, train_seconds=600)
    with EmulatorServer(config) as emulator:
        with pytest.raises(exc.TrainingTimeout) as raised:
            await train_lora(
                name="slow", training_type="flux.2-klein-4b-lora", images=[png(1)], timeout_seconds=0.05,
                credentials=credentials_for(emulator), poll_policy=FAST_POLL,
            )  # fmt: skip
        async with ScenarioClient(
            api_key=KEY, api_secret=SECRET, project_id="proj_flows", base_url=emulator.base_url
        ) as c:
            assert (await c.get_model(raised.value.model_id or "")).status == "training-canceled"


def _bad(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "bad", "training_type": "flux.2-dev-lora", "images": [png(1), png(2)]}
    return {**base, **kw}


def _file(tmp: Path, name: str, data: bytes) -> str:
    path = tmp / name
    path.write_bytes(data)
    return str(path)


BAD_INPUTS = [
    pytest.param(lambda t: _bad(training_type="flux.3-lora"), exc.InvalidTrainingTypeError, id="unknown-type"),
    pytest.param(lambda t: _bad(images=[]), exc.InvalidDatasetError, id="0-images"),
    pytest.param(lambda t: _bad(images=[png(i) for i in range(51)]), exc.InvalidDatasetError, id="51-images"),
    pytest.param(lambda t: _bad(parameters={"rank": 1}), exc.InvalidParametersError, id="rank-1"),
    pytest.param(lambda t: _bad(parameters={"rank": 300}), exc.InvalidParametersError, id="rank-300"),
    pytest.param(lambda t: _bad(parameters={"learningRate": 0.1}), exc.InvalidParametersError, id="lr-0.1"),
    pytest.param(
        lambda t: _bad(parameters={"samplePrompts": list("abcde")}), exc.InvalidParametersError, id="5-prompts"
    ),
    pytest.param(
        lambda t: _bad(parameters={"samplePrompts": ["a"], "sampleSourceImages": ["asset_1"]}),
        exc.InvalidParametersError,
        id="source-images-on-standard",
    ),
    pytest.param(lambda t: _bad(images=[b"not an image"]), exc.InvalidImageError, id="non-image-bytes"),
    pytest.param(lambda t: _bad(images=[_file(t, "notes.txt", b"hello")]), exc.InvalidImageError, id="text-file"),
    pytest.param(lambda t: _bad(images=[_file(t, "empty.png", b"")]), exc.InvalidImageError, id="zero-byte"),
    pytest.param(lambda t: _bad(images=[_file(t, "cut.png", png(1)[:60])]), exc.InvalidImageError, id="truncated"),
    pytest.param(lambda t: _bad(images=[_file(t, "photo.jpg", png(1))]), exc.InvalidImageError, id="wrong-extension"),
    pytest.param(lambda t: _bad(images=[str(t / "missing.png")]), exc.InvalidImageError, id="missing-file"),
    pytest.param(lambda t: _bad(images=[png(1), png(1)]), exc.InvalidDatasetError, id="duplicate-images"),
    pytest.param(
        lambda t: _bad(training_type="qwen-image-edit-2511-lora"), exc.InvalidTrainingTypeError, id="images-for-edit"
    ),
    pytest.param(lambda t: _bad(timeout_seconds=0), exc.ConfigurationError, id="zero-timeout"),
]


@pytest.mark.parametrize(("make", "error"), BAD_INPUTS)
async def test_bad_input_fails_before_any_request(
    fast_emulator: EmulatorServer, tmp_path: Path, make: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await train_lora(**make(tmp_path), credentials=credentials_for(fast_emulator))
    assert fast_emulator.requests() == []


@pytest.mark.parametrize(
    ("pairs", "error"),
    [
        pytest.param(lambda: [(png(1), png(2), "x")], exc.InvalidDatasetError, id="1-pair"),
        pytest.param(
            lambda: [(png(1), png(2), ""), (png(3), png(4), "x")], exc.InvalidDatasetError, id="empty-instruction"
        ),
        pytest.param(lambda: [(png(1), png(1), "x"), (png(3), png(4), "x")], exc.InvalidDatasetError, id="same-image"),
        pytest.param(
            lambda: [("/nope/a.png", png(2), "x"), (png(3), png(4), "x")], exc.InvalidImageError, id="missing"
        ),
    ],
)
async def test_bad_pairs_fail_before_any_request(
    fast_emulator: EmulatorServer, pairs: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await train_edit_lora(
            name="bad",
            training_type="qwen-image-edit-2511-lora",
            pairs=pairs(),
            credentials=credentials_for(fast_emulator),
        )
    assert fast_emulator.requests() == []


async def test_bad_credentials_fail_before_any_request(fast_emulator: EmulatorServer) -> None:
    with pytest.raises(exc.ConfigurationError):
        await train_lora(**_bad(), credentials=credentials_for(fast_emulator, api_secret=""))
    with pytest.raises(exc.ConfigurationError):
        await train_lora(**_bad(), credentials=credentials_for(fast_emulator, base_url="http://example.com/v1"))
    assert fast_emulator.requests() == []


async def test_wrong_secret_fails_at_once_without_retries(fast_emulator: EmulatorServer) -> None:
    with pytest.raises(exc.AuthenticationError):
        await train_lora(**_bad(), credentials=credentials_for(fast_emulator, api_secret="wrong-secret"))
    assert len(fast_emulator.requests()) == 1


async def test_a_fleet_is_polled_with_one_bulk_request_per_cycle(fast_emulator: EmulatorServer) -> None:
    from prefect_scenario.training.fleet import train_lora_fleet

    jobs = [{"name": f"m{i}", "training_type": "flux.2-klein-4b-lora", "images": [png(100 + i)]} for i in range(5)]
    results = await train_lora_fleet(jobs=jobs, credentials=credentials_for(fast_emulator), poll_policy=FAST_POLL)
    assert [r.status for r in results] == ["trained"] * 5
    assert len({r.model_id for r in results}) == 5
    # The wait phase reads the fleet through get-bulk only: no per-model GET after the triggers.
    log = fast_emulator.requests()
    last_trigger = max(i for i, r in enumerate(log) if r["method"] == "PUT" and r["path"].endswith("/train"))
    wait_phase = log[last_trigger + 1 :]
    assert wait_phase and all(r["path"].endswith("/models/get-bulk") for r in wait_phase)


async def test_a_fleet_refuses_a_bad_job_before_any_request(fast_emulator: EmulatorServer) -> None:
    from prefect_scenario.training.fleet import train_lora_fleet

    jobs = [
        {"name": "ok", "training_type": "flux.2-dev-lora", "images": [png(1)]},
        {"name": "bad", "training_type": "flux.2-dev-lora", "images": [png(2)], "parameters": {"rank": 999}},
    ]
    with pytest.raises(exc.InvalidParametersError):
        await train_lora_fleet(jobs=jobs, credentials=credentials_for(fast_emulator))
    assert fast_emulator.requests() == []


@pytest.mark.e2e  # waits for the events to reach the Prefect API: about 2 minutes (`make check` skips it)
async def test_artifacts_and_events_are_visible_through_the_prefect_api() -> None:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.settings import PREFECT_API_URL

    from prefect_scenario.reporting import ProgressReporter
    from tests.prefect_api import arequest

    config = EmulatorConfig(api_key=KEY, api_secret=SECRET, queue_seconds=0.05, start_seconds=0.05, train_seconds=600)
    with EmulatorServer(config) as emulator:
        result, _ = await asyncio.gather(
            train_lora(
                name="Visible Hero", training_type="flux.2-dev-lora", images=[png(300 + i) for i in range(3)],
                parameters={"samplePrompts": ["a hero"]}, credentials=credentials_for(emulator), poll_policy=FAST_POLL,
            ),
            end_training_once_polled(emulator),  # seen training (a progress event), then trained
        )  # fmt: skip
    async with get_client() as prefect:
        summary = await prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["scenario-model-visible-hero"]))
        )
        progress = await prefect.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[ProgressReporter.for_training(result.model_id, "Visible Hero").key])
            )
        )
        score = await prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_="scenario-dataset-score"))
        )
    assert summary and "FLUX.2 Dev" in str(summary[0].data) and "sample" in str(summary[0].data)
    # The key's first version is the cost estimate's note (spend control), its latest the finished training.
    assert progress and progress[0].type == "progress" and max(progress, key=lambda a: a.created).data == 100
    assert score and score[0].type == "table"

    resource = f"scenario.model.{result.model_id}"
    wanted = {"scenario.model.created", "scenario.training.started", "scenario.training.progress",
              "scenario.training.completed"}  # fmt: skip
    seen: set[str] = set()
    for _ in range(40):  # events are written asynchronously by the server
        response = await arequest(  # retried on the busy server's 503, as Prefect's client does
            "POST",
            f"{PREFECT_API_URL.value()}/events/filter",
            json={"filter": {"resource": {"id": [resource]}}, "limit": 50},
        )
        seen = {e["event"] for e in response.json()["events"]}
        if wanted <= seen:
            break
        await asyncio.sleep(0.25)
    assert wanted <= seen


async def test_a_low_dataset_score_refuses_to_train_before_spending(fast_emulator: EmulatorServer) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from prefect_scenario.reporting import artifact_key

    with pytest.raises(exc.DatasetRejected, match=r"below the required 0\.90") as raised:
        await train_lora(
            name="small-images", training_type="flux.2-dev-lora", images=[png(400 + i) for i in range(5)],
            min_dataset_score=0.9, credentials=credentials_for(fast_emulator), poll_policy=FAST_POLL,
        )  # fmt: skip
    assert raised.value.score is not None and raised.value.score < 0.9
    assert api_requests(fast_emulator, "PUT", "/train", status=None) == []  # nothing spent
    async with get_client() as prefect:
        (table,) = await prefect.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(
                    any_=[artifact_key("scenario-dataset-score", "", model_id=raised.value.model_id or "")]
                )
            )
        )
    assert "Width and height must be larger than 1024" in str(table.data)
