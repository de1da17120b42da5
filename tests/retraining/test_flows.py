"""The sensor and retrain flows in Prefect's ephemeral mode, on moto's S3 server and the emulator."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import pytest
from PIL import Image
from prefect_aws import AwsClientParameters, AwsCredentials

from prefect_scenario.exceptions import ConfigurationError
from prefect_scenario.retraining.flows import retrain_changed_datasets, retrain_from_s3, s3_curated_images_sensor
from scenario_emulator import EmulatorServer
from tests.flow_fixtures import FAST_POLL, credentials_for
from tests.s3_fixtures import REGION, make_bucket

pytestmark = pytest.mark.usefixtures("prefect_harness")


def image(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), ((seed * 53) % 256, (seed * 101) % 256, 77)).save(buffer, "PNG")
    return buffer.getvalue()


def aws_for(endpoint: str) -> AwsCredentials:
    return AwsCredentials(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name=REGION,
        aws_client_parameters=AwsClientParameters(endpoint_url=endpoint),
    )


def put_images(s3: Any, bucket: str, prefix: str, seeds: range) -> None:
    for seed in seeds:
        s3.put_object(Bucket=bucket, Key=f"{prefix}img-{seed:03d}.png", Body=image(seed))


async def cycle(aws: AwsCredentials, **kw: Any) -> list[dict[str, Any]]:
    options: dict[str, Any] = {
        "bucket": "studio-assets",
        "prefix": "curated/",
        "aws_credentials": aws,
        "retrain_deployment": None,
        "quiet_period_seconds": 0,
        "min_images": 5,
        **kw,
    }
    result: list[dict[str, Any]] = await s3_curated_images_sensor(**options)
    return result


async def test_sensor_decides_once_and_retrain_trains_the_dataset(
    s3_client: Any, moto_endpoint: str, fast_emulator: EmulatorServer
) -> None:
    make_bucket(s3_client)
    aws = aws_for(moto_endpoint)
    put_images(s3_client, "studio-assets", "curated/hero/", range(6))
    put_images(s3_client, "studio-assets", "curated/villain/", range(100, 102))  # below min images
    first = await cycle(aws)
    ready = [d for d in first if d["kind"] == "ready"]
    assert [d["dataset"] for d in ready] == ["s3://studio-assets/curated/hero/"]
    assert {d["dataset"]: d["kind"] for d in first}["s3://studio-assets/curated/villain/"] == "waiting"
    # Nothing changed: no second decision for the same content.
    assert [d for d in await cycle(aws) if d["kind"] == "ready"] == []

    creds = credentials_for(fast_emulator)
    kw = {"aws_credentials": aws, "credentials": creds, "poll_policy": FAST_POLL, "training_type": "flux.2-dev-lora"}
    result = await retrain_from_s3(ready[0]["dataset"], **kw)
    assert result.status == "trained" and result.images == 6 and result.name == "hero"
    again = await retrain_from_s3(ready[0]["dataset"], **kw)
    assert again.reused and again.model_id == result.model_id

    put_images(s3_client, "studio-assets", "curated/hero/", range(6, 8))
    second = [d for d in await cycle(aws) if d["kind"] == "ready"]
    assert [(d["dataset"], d["images"]) for d in second] == [("s3://studio-assets/curated/hero/", 8)]
    newer = await retrain_from_s3(ready[0]["dataset"], **kw)
    assert newer.images == 8 and newer.model_id != result.model_id
    # The cron job finds nothing left to do.
    assert await retrain_changed_datasets("studio-assets", "curated/", aws, creds, "flux.2-dev-lora") == []


async def test_a_dataset_over_the_limit_is_reported_not_trained(s3_client: Any, moto_endpoint: str) -> None:
    make_bucket(s3_client)
    aws = aws_for(moto_endpoint)
    put_images(s3_client, "studio-assets", "curated/crowd/", range(51))
    decisions = await cycle(aws)
    assert [d["kind"] for d in decisions] == ["invalid"]
    assert "50" in decisions[0]["message"]
    assert await cycle(aws) == []  # reported once per content


async def test_sidecar_sets_type_name_and_parameters(
    s3_client: Any, moto_endpoint: str, fast_emulator: EmulatorServer
) -> None:
    make_bucket(s3_client)
    aws = aws_for(moto_endpoint)
    put_images(s3_client, "studio-assets", "curated/style/", range(5))
    sidecar = {"type": "zimage-turbo-lora", "name": "Ink Style", "parameters": {"nbEpochs": 2}}
    s3_client.put_object(Bucket="studio-assets", Key="curated/style/scenario.json", Body=json.dumps(sidecar))
    result = await retrain_from_s3(
        "s3://studio-assets/curated/style/", aws_credentials=aws, credentials=credentials_for(fast_emulator),
        poll_policy=FAST_POLL,
    )  # fmt: skip
    assert (result.name, result.training_type, len(result.epochs)) == ("Ink Style", "zimage-turbo-lora", 2)


async def test_notifications_mode_sees_what_was_there_and_what_arrives(
    s3_client: Any, sqs_client: Any, moto_endpoint: str
) -> None:
    from tests.s3_fixtures import notify_queue

    make_bucket(s3_client)
    aws = aws_for(moto_endpoint)
    put_images(s3_client, "studio-assets", "curated/before-queue/", range(5))  # before the queue existed
    queue = notify_queue(s3_client, sqs_client, "studio-assets", prefix="curated/")
    put_images(s3_client, "studio-assets", "curated/from events/", range(200, 206))  # a space in the prefix
    decided = await cycle(aws, mode="notifications", queue_url=queue)
    assert sorted(d["dataset"] for d in decided if d["kind"] == "ready") == [
        "s3://studio-assets/curated/before-queue/",
        "s3://studio-assets/curated/from events/",
    ]
    assert await cycle(aws, mode="notifications", queue_url=queue) == []
    put_images(s3_client, "studio-assets", "curated/from events/", range(206, 207))
    again = await cycle(aws, mode="notifications", queue_url=queue)
    assert [(d["dataset"], d["images"]) for d in again if d["kind"] == "ready"] == [
        ("s3://studio-assets/curated/from events/", 7)
    ]


@pytest.mark.parametrize("ignore_sidecar_edits", [False, True], ids=["sidecar-counts", "sidecar-ignored"])
async def test_the_sensor_and_the_retrain_flow_use_the_same_key(
    ignore_sidecar_edits: bool, s3_client: Any, moto_endpoint: str, fast_emulator: EmulatorServer
) -> None:
    make_bucket(s3_client)
    aws = aws_for(moto_endpoint)
    seeds = range(300, 305) if ignore_sidecar_edits else range(310, 315)
    put_images(s3_client, "studio-assets", "curated/keyed/", seeds)
    sidecar = json.dumps({"type": "flux.2-dev-lora", "name": f"Keyed {ignore_sidecar_edits}"})
    s3_client.put_object(Bucket="studio-assets", Key="curated/keyed/scenario.json", Body=sidecar)
    (ready,) = [d for d in await cycle(aws, ignore_sidecar_edits=ignore_sidecar_edits) if d["kind"] == "ready"]
    result = await retrain_from_s3(
        ready["dataset"], aws_credentials=aws, credentials=credentials_for(fast_emulator), poll_policy=FAST_POLL,
        ignore_sidecar_edits=ignore_sidecar_edits,
    )  # fmt: skip
    assert result.idempotency_key == ready["idempotency_key"]
    # The cron flow computes it too, and finds this content trained.
    creds = credentials_for(fast_emulator)
    assert await retrain_changed_datasets(
        "studio-assets", "curated/", aws, creds, ignore_sidecar_edits=ignore_sidecar_edits
    ) == []  # fmt: skip


def test_the_flows_run_from_sync_code(s3_client: Any, moto_endpoint: str) -> None:
    make_bucket(s3_client)
    put_images(s3_client, "studio-assets", "curated/sync/", range(400, 403))  # below min images
    decided = s3_curated_images_sensor(
        bucket="studio-assets", prefix="curated/", aws_credentials=aws_for(moto_endpoint), retrain_deployment=None,
        emit_ready_event=False, quiet_period_seconds=0,
    )  # fmt: skip
    assert [(d["dataset"], d["kind"]) for d in decided] == [("s3://studio-assets/curated/sync/", "waiting")]


def test_block_parameters_are_typed_for_the_run_form() -> None:
    for flow in (s3_curated_images_sensor, retrain_from_s3, retrain_changed_datasets):
        properties = flow.parameters.model_dump()["properties"]
        assert "$ref" in str(properties["aws_credentials"]), flow.name
        assert flow.name.startswith("scenario-")
    for flow in (retrain_from_s3, retrain_changed_datasets):
        assert "ScenarioCredentials" in str(flow.parameters.model_dump()["properties"]["credentials"])


def test_a_saved_block_is_passed_by_reference() -> None:
    from prefect_scenario.retraining.deployments import ServeConfig, build_deployments

    sensor, retrain, cron = build_deployments(
        ServeConfig(bucket="b", aws_block="moto", scenario_block="emu", wait="suspend")
    )
    assert retrain.parameters["wait"] == "suspend"
    assert sensor.parameters["aws_credentials"] == {"$ref": {"block_document_slug": "aws-credentials/moto"}}
    assert retrain.parameters["credentials"] == {"$ref": {"block_document_slug": "scenario-credentials/emu"}}
    assert cron.parameters["credentials"] == retrain.parameters["credentials"]
    assert sensor.parameters["retrain_deployment"] == "scenario-retrain-from-s3/retrain-from-s3"


def test_no_watcher_deployment_is_served_it_runs_in_the_serving_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect_scenario.retraining import deployments as module
    from prefect_scenario.retraining.deployments import ServeConfig, build_deployments, serve_all

    with_bucket = build_deployments(ServeConfig(bucket="b", watch_interval_seconds=2))
    assert "scenario-training-watcher" not in {d.flow_name for d in with_bucket}
    assert build_deployments(ServeConfig(watch_interval_seconds=2)) == []
    threads: list[tuple[object, float]] = []
    served: list[object] = []

    class Thread:
        def join(self) -> None:
            served.append("joined")

    def start(credentials: object, *, interval: float) -> Thread:
        threads.append((credentials, interval))
        return Thread()

    async def resolve(block: str | None) -> str:
        return f"credentials {block}"

    monkeypatch.setattr(module, "start_watch_thread", start)
    monkeypatch.setattr(module, "resolve_credentials", resolve)
    serve_all(ServeConfig(watch_interval_seconds=2, scenario_block=None), serve=lambda *d: served.append(d))
    assert [interval for _, interval in threads] == [2] and served == ["joined"]  # no bucket: the watcher alone
    serve_all(ServeConfig(bucket="b", watch_interval_seconds=5), serve=lambda *d: served.append(len(d)))
    assert [interval for _, interval in threads] == [2, 5] and served[-1] == 3
    with pytest.raises(ConfigurationError, match="nothing to serve"):
        serve_all(ServeConfig(watch_interval_seconds=0), serve=lambda *d: served.append(d))


async def test_s3_captions_and_sidecar_captions_become_descriptions(
    s3_client: Any, moto_endpoint: str, fast_emulator: EmulatorServer
) -> None:
    make_bucket(s3_client)
    aws = aws_for(moto_endpoint)
    put_images(s3_client, "studio-assets", "curated/kael/", range(5))
    for seed in range(5):
        s3_client.put_object(Bucket="studio-assets", Key=f"curated/kael/img-{seed:03d}.txt", Body=f"pose {seed}")
    sidecar = {"type": "flux.2-dev-lora", "captions": {"img-001.png": "KAEL_07 in the rain"}}
    s3_client.put_object(Bucket="studio-assets", Key="curated/kael/scenario.json", Body=json.dumps(sidecar))
    creds = credentials_for(fast_emulator)
    result = await retrain_from_s3(
        "s3://studio-assets/curated/kael/", aws_credentials=aws, credentials=creds, poll_policy=FAST_POLL
    )
    assert result.images == 5  # the .txt files are captions, not images
    async with creds.get_client() as client:
        trained = (await client.get_models_bulk([result.model_id], all_training_images=True))[0].training_images
    captions = {(i.name or "").split("_", 1)[1]: i.description for i in trained}
    assert captions["img-001.png"] == "KAEL_07 in the rain"  # the sidecar wins over img-001.txt
    assert captions["img-003.png"] == "pose 3"


@pytest.mark.e2e  # four trainings with renders and judging (~50 s): `make test` runs it, `make check` not
async def test_retrain_with_promote_keeps_a_worse_lora_out_and_promotes_a_better_one(
    s3_client: Any, moto_endpoint: str, fast_emulator: EmulatorServer
) -> None:
    from prefect_scenario.evaluation import ScenarioLoRA
    from scenario_emulator.generation import true_quality

    make_bucket(s3_client)
    aws, uri, seeds = aws_for(moto_endpoint), "s3://studio-assets/curated/judged/", range(300, 305)
    put_images(s3_client, "studio-assets", "curated/judged/", seeds)
    # The emulator's hidden quality of a LoRA of these images peaks at one epoch, then falls.
    dataset = tuple(sorted(hashlib.sha256(image(seed)).hexdigest() for seed in seeds))
    best = max(range(1, 40), key=lambda n: true_quality(dataset, n))
    worse = next(n for n in range(best + 1, 60) if true_quality(dataset, n) <= true_quality(dataset, best) - 15)
    kw = {"aws_credentials": aws, "credentials": credentials_for(fast_emulator), "poll_policy": FAST_POLL}

    async def retrain(epochs: int) -> Any:
        sidecar = {"type": "flux.2-dev-lora", "name": "judged", "parameters": {"nbEpochs": epochs}}
        s3_client.put_object(Bucket="studio-assets", Key="curated/judged/scenario.json", Body=json.dumps(sidecar))
        return await retrain_from_s3(uri, promote=True, **kw)

    first, better, overcooked = await retrain(worse), await retrain(best), await retrain(worse + 2)
    assert [r.evaluation.outcome for r in (first, better, overcooked)] == ["promoted", "promoted", "rejected"]
    assert better.evaluation.production_model_id == first.model_id
    assert overcooked.evaluation.production_model_id == better.model_id
    production = await ScenarioLoRA.aload(ScenarioLoRA.name_for(uri))
    assert production.model_id == better.model_id and production.previous_model_ids == [first.model_id]
    # The lineage names the manifest each LoRA was trained on.
    assert next(h.get("manifest_digest") for h in production.history if h.get("model_id") == better.model_id)


async def test_retrain_refuses_promote_without_a_wait_before_reading_s3(fast_emulator: EmulatorServer) -> None:
    with pytest.raises(ConfigurationError, match="promote needs the training's end"):
        await retrain_from_s3("s3://nowhere/x/", promote=True, wait=False, credentials=credentials_for(fast_emulator))
    assert fast_emulator.requests() == []
