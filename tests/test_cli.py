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


def pngs(tmp_path: Path, seed: int, count: int = 3) -> list[str]:
    paths = []
    for i in range(count):
        path = tmp_path / f"{seed}-{i}.png"
        path.write_bytes(png(seed + i))
        paths.append(str(path))
    return paths


def train_puts(server: EmulatorServer, status: int) -> int:
    """Triggers (200) or dry runs (269) the emulator answered."""
    return sum(1 for r in server.requests() if r["method"] == "PUT" and r["path"].endswith("/train")
               and r["status"] == status)  # fmt: skip


def test_train_with_max_creative_units_and_a_saved_budget(
    scenario_env: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio
    import uuid

    from prefect_scenario.spend.block import ScenarioBudget
    from prefect_scenario.spend.gate import today_utc
    from prefect_scenario.spend.ledger import read_entries

    # 3 images at nbEpochs=2: the emulator estimates 50 + 10 × 3 + 2 × 2 = 84 creative units.
    base = ["train", "--type", "zimage-turbo-lora", "--param", "nbEpochs=2"]
    assert main([*base, "--name", "cli-capped", "--max-creative-units", "80", *pngs(tmp_path, 800)]) == 1
    assert "the estimate of 84 creative units is above max_creative_units=80" in capsys.readouterr().err
    assert (train_puts(scenario_env, 269), train_puts(scenario_env, 200)) == (1, 0)

    budget = f"cli-budget-{uuid.uuid4().hex[:8]}"
    ScenarioBudget(per_dataset=100).save(budget)
    dataset = f"cli-budgeted-{uuid.uuid4().hex[:6]}"
    argv = [*base, "--name", dataset, "--max-creative-units", "90", "--budget", budget]
    assert main([*argv, *pngs(tmp_path, 810)]) == 0
    assert json.loads((out := capsys.readouterr().out)[out.index("{\n") :])["creative_units_cost"] == 84
    # The budget is applied, not only loaded: the dataset's second training today (84 + 84 > 100) is refused.
    assert main([*argv, *pngs(tmp_path, 820)]) == 1
    assert "per_dataset=100" in capsys.readouterr().err
    assert (train_puts(scenario_env, 269), train_puts(scenario_env, 200)) == (3, 1)
    mine = [e for e in asyncio.run(read_entries("proj_cli", today_utc())) if e.dataset == dataset]
    assert [(e.status, e.actual) for e in mine] == [("spent", 84.0)]


def pairs_file(tmp_path: Path) -> str:
    """A valid two-pair file: the blocks are read after the server-free checks, which it passes."""
    lines = []
    for i in range(2):
        (tmp_path / f"b{i}.png").write_bytes(png(840 + i))
        (tmp_path / f"a{i}.png").write_bytes(png(850 + i))
        lines.append(json.dumps({"before": f"b{i}.png", "after": f"a{i}.png", "instruction": "add snow"}))
    (tmp_path / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    return str(tmp_path / "pairs.jsonl")


BAD_SPEND_OPTIONS = [
    pytest.param(["--max-creative-units", "0"], "--max-creative-units must be a positive number", id="zero-units"),
    pytest.param(["--max-creative-units", "-5"], "--max-creative-units must be a positive number", id="negative"),
    pytest.param(["--max-creative-units", "nan"], "--max-creative-units must be a positive number", id="nan"),
    pytest.param(["--max-creative-units", "inf"], "--max-creative-units must be a positive number", id="infinite"),
    pytest.param(["--budget", "no-such-budget"], "--budget: no ScenarioBudget block named 'no-such-budget'",
                 id="missing-budget-block"),
    pytest.param(["--budget", " "], "--budget needs the name of a saved ScenarioBudget block", id="empty-name"),
]  # fmt: skip


@pytest.mark.parametrize("command", ["train", "train-edit"])
@pytest.mark.parametrize(("options", "message"), BAD_SPEND_OPTIONS)
def test_bad_spend_options_exit_2_before_any_request(
    scenario_env: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str,
    options: list[str], message: str,
) -> None:  # fmt: skip
    dataset = pngs(tmp_path, 830, 1) if command == "train" else [pairs_file(tmp_path)]
    kind = "zimage-turbo-lora" if command == "train" else "qwen-image-edit-2511-lora"
    assert main([command, "--type", kind, "--name", "bad-spend", *options, *dataset]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert scenario_env.requests() == []


def test_a_max_creative_units_that_is_not_a_number_is_a_usage_error(
    scenario_env: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["train", "--type", "zimage-turbo-lora", "--name", "x", "--max-creative-units", "lots", "a.png"])
    assert usage.value.code == 2 and "invalid float value: 'lots'" in capsys.readouterr().err
    assert scenario_env.requests() == []
