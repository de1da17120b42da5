"""``prefect-scenario serve`` and the yaml files never register the same deployment name."""

from __future__ import annotations

from pathlib import Path

import yaml

from prefect_scenario.retraining.deployments import ServeConfig, build_deployments

ROOT = Path(__file__).resolve().parents[1]


def yaml_names(name: str) -> set[str]:
    return {d["name"] for d in yaml.safe_load((ROOT / "deployments" / name).read_text())["deployments"]}


def test_the_local_yaml_has_no_kubernetes_pool_and_a_suspending_train_lora() -> None:
    text = (ROOT / "deployments" / "prefect.yaml").read_text()
    assert "kubernetes" not in yaml.safe_load(text).get("definitions", {}).get("work_pool", {}).get("name", "")
    deployments = {d["name"]: d for d in yaml.safe_load(text)["deployments"]}
    assert deployments["local-train-lora"]["parameters"]["wait"] == "suspend"
    assert all(d["work_pool"]["name"] == "scenario-local" for d in deployments.values())
    kubernetes = yaml.safe_load((ROOT / "deployments" / "kubernetes.yaml").read_text())["deployments"]
    assert {d["work_pool"]["name"] for d in kubernetes} == {"scenario-kubernetes"}


def test_serve_and_the_yaml_files_share_no_deployment_name() -> None:
    config = ServeConfig(bucket="studio-assets", watch_interval_seconds=0)
    served = {d.name for d in build_deployments(config)}
    assert served and not served & (yaml_names("prefect.yaml") | yaml_names("kubernetes.yaml"))
