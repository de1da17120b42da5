"""Deployments on a real Prefect server: block registration, `prefect deploy`, and cancelling a served run."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from prefect_scenario.api.client import ScenarioClient
from scenario_emulator import EmulatorConfig, EmulatorServer
from tests.e2e.prefect_server import BIN, PrefectServer, running, start_process, stop_process
from tests.e2e.test_retraining_e2e import wait_for

ROOT = Path(__file__).resolve().parents[2]
KEY, SECRET = "cancel-key", "cancel-secret-17c0"


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with running(tmp_path_factory.mktemp("prefect-home")) as server:
        yield server


def run(args: list[str], server: PrefectServer, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=server.env(), capture_output=True, text=True, timeout=180, check=False, **kw)


def test_block_registration_and_prefect_deploy(prefect_server: PrefectServer) -> None:
    registered = run([str(BIN / "prefect"), "block", "register", "-m", "prefect_scenario"], prefect_server)
    assert registered.returncode == 0, registered.stdout + registered.stderr
    assert any(t["slug"] == "scenario-credentials" for t in prefect_server.post("/block_types/filter", {}))
    for name, kind in (("scenario-local", "process"), ("scenario-kubernetes", "kubernetes")):
        # A kubernetes pool needs no prefect-kubernetes here: the server has its job template.
        pool = run([str(BIN / "prefect"), "work-pool", "create", name, "--type", kind], prefect_server)
        assert pool.returncode == 0, pool.stdout + pool.stderr
    for yaml_file in ("deployments/prefect.yaml", "deployments/kubernetes.yaml"):
        deployed = run(
            [str(BIN / "prefect"), "--no-prompt", "deploy", "--all", "--prefect-file", yaml_file],
            prefect_server,
            cwd=ROOT,
        )
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    deployments = {d["name"]: d for d in prefect_server.post("/deployments/filter", {})}
    local = {"local-s3-sensor", "local-retrain-from-s3", "local-retrain-changed-datasets", "local-train-lora"}
    assert local <= set(deployments)
    assert deployments["local-train-lora"]["parameters"]["wait"] == "suspend"
    assert all(d["work_pool_name"] == "scenario-local" for n, d in deployments.items() if n in local)
    # The watcher is a service (`prefect-scenario watch`), never a scheduled flow run per cycle.
    assert "training-watcher" not in deployments
    for cycle in ("local-s3-sensor", "local-retrain-changed-datasets"):  # one cycle at a time, never a pile
        # Prefect 3.9 answers the limit as the deployment's global concurrency limit.
        limit = deployments[cycle]["concurrency_limit"] or (deployments[cycle]["global_concurrency_limit"] or {})
        assert limit == 1 or limit.get("limit") == 1, deployments[cycle]
        assert deployments[cycle]["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    check_kubernetes_deployments(deployments)


def check_kubernetes_deployments(deployments: dict[str, Any]) -> None:
    """The production entries: on the Kubernetes pool, from the image, suspending while they train."""
    on_kubernetes = {n: d for n, d in deployments.items() if d["work_pool_name"] == "scenario-kubernetes"}
    assert {"train-lora-k8s", "train-lora-fleet-k8s"} <= set(on_kubernetes)
    for deployment in on_kubernetes.values():
        # The package is installed in the image: a module entrypoint, nothing to pull.
        assert deployment["pull_steps"] == [] and ".py" not in deployment["entrypoint"], deployment
        assert deployment["job_variables"]["image"].endswith("/prefect-scenario:0.2.0")
        assert deployment["parameters"]["wait"] == "suspend"
        assert "$ref" in deployment["parameters"]["credentials"]


def check_parameter_schemas(deployments: dict[str, Any]) -> None:
    """The run form offers a block picker for ``credentials`` and a typed form for fleet jobs."""
    single = deployments["train-lora"]["parameter_openapi_schema"]
    credentials = single["properties"]["credentials"]
    refs = [c.get("$ref", "") for c in credentials.get("anyOf", [credentials])]
    (ref,) = [r for r in refs if r]
    definition = single["definitions"][ref.rsplit("/", 1)[-1]]
    assert definition["block_type_slug"] == "scenario-credentials"
    aws = single["properties"]["aws_credentials"]
    assert any("AwsCredentials" in c.get("$ref", "") for c in aws.get("anyOf", [aws]))
    fleet = deployments["train-lora-fleet"]["parameter_openapi_schema"]
    assert fleet["properties"]["jobs"]["items"]["$ref"].endswith("/TrainingJob")
    assert {"name", "training_type", "images"} <= set(fleet["definitions"]["TrainingJob"]["required"])


def model_status(base_url: str, model_id: str) -> str:
    async def read() -> str:
        async with ScenarioClient(api_key=KEY, api_secret=SECRET, project_id="proj_cancel", base_url=base_url) as c:
            return (await c.get_model(model_id)).status

    return asyncio.run(read())


@pytest.mark.timeout(200)
def test_cancelling_the_flow_run_cancels_the_remote_training(prefect_server: PrefectServer, tmp_path: Path) -> None:
    config = EmulatorConfig(api_key=KEY, api_secret=SECRET, queue_seconds=0.1, start_seconds=0.1, train_seconds=600)
    with EmulatorServer(config) as emulator:
        script = f"""
from prefect_scenario import ScenarioCredentials
ScenarioCredentials(api_key="{KEY}", api_secret="{SECRET}", project_id="proj_cancel",
                    base_url="{emulator.base_url}").save("cancel-emulator", overwrite=True)
"""
        subprocess.run([sys.executable, "-c", script], env=prefect_server.env(), check=True, timeout=120)
        images = []
        for i in range(3):
            path = tmp_path / f"{i}.png"
            Image.new("RGB", (40, 40), (i * 70, 30, 90)).save(path, "PNG")
            images.append(str(path))
        serving = start_process(
            [sys.executable, "-m", "tests.e2e.serve_train_lora"],
            prefect_server.env(PREFECT_RUNNER_POLL_FREQUENCY="1"),
            tmp_path / "serve.log",
        )
        try:
            deployments = wait_for(
                lambda: (
                    found
                    if {"train-lora", "train-lora-fleet"}
                    <= set(found := {d["name"]: d for d in prefect_server.post("/deployments/filter", {})})
                    else None
                ),
                timeout=60,
                what="the train-lora and train-lora-fleet deployments",
            )
            check_parameter_schemas(deployments)
            (block,) = [b for b in prefect_server.post("/block_documents/filter", {}) if b["name"] == "cancel-emulator"]
            # A block parameter is passed as a reference to the saved block, as the UI's block picker does.
            flow_run = prefect_server.post(
                f"/deployments/{deployments['train-lora']['id']}/create_flow_run",
                {"parameters": {"name": "to-cancel", "training_type": "flux.2-dev-lora", "images": images,
                                "credentials": {"$ref": {"block_document_id": block["id"]}}}},
            )  # fmt: skip

            def training_model() -> str | None:
                for request in emulator.requests():
                    if request["method"] == "PUT" and request["path"].endswith("/train") and request["status"] == 200:
                        return str(request["path"].split("/")[3])
                return None

            model_id = wait_for(training_model, timeout=90, what="the training to start")
            prefect_server.post(
                f"/flow_runs/{flow_run['id']}/set_state", {"state": {"type": "CANCELLING"}, "force": True}
            )
            wait_for(
                lambda: model_status(emulator.base_url, model_id) == "training-canceled",
                timeout=60,
                what="the remote training to be cancelled",
            )
        finally:
            stop_process(serving)
            print((tmp_path / "serve.log").read_text(errors="replace")[-3000:])
