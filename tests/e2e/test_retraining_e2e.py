"""End to end on real servers: prefect server, moto's S3 server, the emulator, `prefect-scenario serve`.

Curated images land in S3 → the served sensor notices, waits out the quiet period and
creates exactly one retrain run → the model trains on exactly those images. More images →
exactly one more retrain. No change → no run. The serving process killed and restarted
in the middle → still exactly once.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from scenario_emulator import EmulatorConfig, EmulatorServer
from tests.e2e.prefect_server import BIN, PrefectServer, running, start_process, stop_process
from tests.s3_fixtures import REGION, aws_client

KEY, SECRET = "e2e-key", "e2e-secret-5b9d"
BUCKET = "studio-assets"


def image(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 48), ((seed * 67) % 256, (seed * 29) % 256, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def wait_for(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with running(tmp_path_factory.mktemp("prefect-home")) as server:
        yield server


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    config = EmulatorConfig(api_key=KEY, api_secret=SECRET, queue_seconds=0.2, start_seconds=0.1, train_seconds=1.0)
    with EmulatorServer(config) as server:
        yield server


def save_blocks(server: PrefectServer, moto_endpoint: str, emulator: EmulatorServer) -> None:
    script = f"""
from prefect_aws import AwsClientParameters, AwsCredentials
from prefect_scenario import ScenarioCredentials
AwsCredentials(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="{REGION}",
               aws_client_parameters=AwsClientParameters(endpoint_url="{moto_endpoint}")).save("moto", overwrite=True)
ScenarioCredentials(api_key="{KEY}", api_secret="{SECRET}", project_id="proj_e2e",
                    base_url="{emulator.base_url}").save("emulator", overwrite=True)
"""
    subprocess.run([sys.executable, "-c", script], env=server.env(), check=True, timeout=120)


def retrain_runs(server: PrefectServer) -> list[dict[str, Any]]:
    deployment = server.get("/deployments/name/scenario-retrain-from-s3/retrain-from-s3")
    runs: list[dict[str, Any]] = server.post(
        "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [deployment["id"]]}}, "limit": 50}
    )
    return runs


def completed(server: PrefectServer) -> list[dict[str, Any]]:
    return [r for r in retrain_runs(server) if r["state_type"] == "COMPLETED"]


def serve(server: PrefectServer, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    args = [
        str(BIN / "prefect-scenario"), "serve", "--bucket", BUCKET, "--prefix", "curated/",
        "--aws-block", "moto", "--scenario-block", "emulator", "--interval", "8", "--quiet-period", "2",
        "--min-images", "5", "--training-type", "flux.2-dev-lora", "--cron", "", *extra,
    ]  # fmt: skip
    return start_process(args, server.env(PREFECT_RUNNER_POLL_FREQUENCY="1"), log)


def trained_models(emulator: EmulatorServer) -> dict[int, int]:
    """Trained models by their number of training images."""
    import asyncio

    from prefect_scenario.api.client import ScenarioClient

    async def read() -> dict[int, int]:
        async with ScenarioClient(
            api_key=KEY, api_secret=SECRET, project_id="proj_e2e", base_url=emulator.base_url
        ) as c:
            models = [m async for m in c.list_models()]
        counts: dict[int, int] = {}
        for m in models:
            if m.status == "trained":
                counts[m.training_images_number] = counts.get(m.training_images_number, 0) + 1
        return counts

    return asyncio.run(read())


@pytest.mark.timeout(1500)
def test_new_curated_images_retrain_exactly_once(
    prefect_server: PrefectServer, moto_endpoint: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    s3 = aws_client("s3", moto_endpoint)
    s3.create_bucket(Bucket=BUCKET)
    save_blocks(prefect_server, moto_endpoint, emulator)
    serving = serve(prefect_server, tmp_path / "serve-1.log")
    try:
        wait_for(
            lambda: any(d["name"] == "retrain-from-s3" for d in prefect_server.post("/deployments/filter", {})),
            timeout=240,  # a `prefect-scenario serve` process start, on a busy machine
            what="the served deployments",
        )
        for i in range(6):
            s3.put_object(Bucket=BUCKET, Key=f"curated/hero-character/{i:02d}.png", Body=image(i))
        wait_for(lambda: len(completed(prefect_server)) == 1, timeout=600, what="the first retrain")
        assert trained_models(emulator) == {6: 1}

        # Two more images, and the serving process killed right after they land: a restart
        # still gives exactly one more retrain.
        for i in range(6, 8):
            s3.put_object(Bucket=BUCKET, Key=f"curated/hero-character/{i:02d}.png", Body=image(i))
        stop_process(serving, kill=True)
        serving = serve(prefect_server, tmp_path / "serve-2.log")
        wait_for(lambda: len(completed(prefect_server)) == 2, timeout=600, what="the second retrain")
        assert trained_models(emulator) == {6: 1, 8: 1}

        # Several quiet sensor cycles: no new run.
        sensor = prefect_server.get("/deployments/name/scenario-s3-curated-images-sensor/s3-curated-images-sensor")

        def sensor_runs() -> int:
            runs = prefect_server.post(
                "/flow_runs/filter",
                {"flow_runs": {"deployment_id": {"any_": [sensor["id"]]}, "state": {"type": {"any_": ["COMPLETED"]}}}},
            )
            return len(runs)

        before = sensor_runs()
        wait_for(lambda: sensor_runs() >= before + 2, timeout=240, what="two quiet sensor cycles")
        assert len(retrain_runs(prefect_server)) == 2
    finally:
        stop_process(serving)
        logs = "".join(p.read_text(errors="replace")[-3000:] for p in sorted(tmp_path.glob("serve-*.log")))
        print(logs)


@pytest.mark.timeout(600)
def test_event_driven_setup_retrains_from_the_ready_event(
    prefect_server: PrefectServer, moto_endpoint: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    s3 = aws_client("s3", moto_endpoint)
    s3.create_bucket(Bucket=BUCKET)
    save_blocks(prefect_server, moto_endpoint, emulator)
    before = {r["id"] for r in completed(prefect_server)} if _deployed(prefect_server) else set()
    serving = serve(prefect_server, tmp_path / "serve-events.log", "--event-driven")
    try:
        for i in range(5):
            s3.put_object(Bucket=BUCKET, Key=f"curated/villain/{i:02d}.png", Body=image(100 + i))
        # The sensor only emits scenario.dataset.ready; the deployment trigger creates the run.
        wait_for(
            lambda: [r for r in completed(prefect_server) if r["id"] not in before],
            timeout=300,
            what="the event-triggered retrain",
        )
        assert trained_models(emulator) == {5: 1}
    finally:
        stop_process(serving)
        print((tmp_path / "serve-events.log").read_text(errors="replace")[-3000:])


def _deployed(server: PrefectServer) -> bool:
    return any(d["name"] == "retrain-from-s3" for d in server.post("/deployments/filter", {}))
