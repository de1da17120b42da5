"""The command line against the emulator: train, train-edit, status, cancel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefect_scenario.cli import main
from scenario_emulator import EmulatorServer
from tests.flow_fixtures import KEY, SECRET
from tests.training.test_flows import png

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def scenario_env(fast_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    monkeypatch.setenv("SCENARIO_API_KEY", KEY)
    monkeypatch.setenv("SCENARIO_API_SECRET", SECRET)
    monkeypatch.setenv("SCENARIO_PROJECT_ID", "proj_cli")
    monkeypatch.setenv("SCENARIO_BASE_URL", fast_emulator.base_url)
    return fast_emulator


def test_train_then_status_and_cancel(
    scenario_env: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = []
    for i in range(3):
        path = tmp_path / f"{i}.png"
        path.write_bytes(png(500 + i))
        paths.append(str(path))
    assert main(["train", "--type", "zimage-turbo-lora", "--name", "cli", "--param", "nbEpochs=2", *paths]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{\n") :])  # the result JSON is the last thing printed
    assert result["status"] == "trained" and result["images"] == 3 and len(result["epochs"]) == 2
    models = [r for r in scenario_env.requests() if r["method"] == "POST" and r["path"] == "/v1/models"]
    assert len(models) == 1
    model_id = next(r["path"].split("/")[3] for r in scenario_env.requests() if r["path"].endswith("/train"))
    assert main(["status", model_id]) == 0
    assert "trained" in capsys.readouterr().out
    assert main(["cancel", model_id]) == 0  # already trained: nothing to cancel, says so
    assert f"{model_id}: trained" in capsys.readouterr().out


def test_train_edit_reads_a_pairs_file(scenario_env: EmulatorServer, tmp_path: Path) -> None:
    lines = []
    for i in range(2):
        (tmp_path / f"b{i}.png").write_bytes(png(600 + i))
        (tmp_path / f"a{i}.png").write_bytes(png(700 + i))
        lines.append(json.dumps({"before": f"b{i}.png", "after": f"a{i}.png", "instruction": "add snow"}))
    (tmp_path / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    argv = ["train-edit", "--type", "qwen-image-edit-2511-lora", "--name", "snow", str(tmp_path / "pairs.jsonl")]
    assert main(argv) == 0
    assert [r for r in scenario_env.requests() if r["path"].endswith("/training-images/pairs")]


def test_bad_input_is_one_clear_line_and_exit_2(
    scenario_env: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--type", "flux.2-dev-lora", "--name", "x", "--param", "rank=1", "/nope.png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "rank" in err
    assert scenario_env.requests() == []


def test_serve_with_nothing_to_serve_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--watch-interval", "0"]) == 2
    assert "nothing to serve" in capsys.readouterr().err
