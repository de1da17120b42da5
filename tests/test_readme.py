"""Every Python block of the README runs, against the emulator, as a reader would run it.

The Quick start runs as a plain script in a child process (``python train.py``) with only the
credentials filled in; the other blocks run in this process, with a saved ``scenario``
credentials block and the image folders they name.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from prefect_scenario import ScenarioCredentials
from scenario_emulator import EmulatorServer
from tests.flow_fixtures import KEY, SECRET

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def _images(folder: Path, names: dict[str, int]) -> None:
    for directory, count in names.items():
        (folder / directory).mkdir(parents=True, exist_ok=True)
        for i in range(1, count + 1):
            color = (sum(map(ord, directory)) % 200 + i * 7, i * 40 % 256, 90)
            Image.new("RGB", (64, 64), color).save(folder / directory / f"{i:02d}.png", "PNG")


def test_the_readme_has_the_blocks_this_test_expects() -> None:
    assert len(BLOCKS) >= 5 and "YOUR_API_KEY" in BLOCKS[0]


def test_the_quick_start_as_a_plain_script_prints_a_trained_model(
    fast_emulator: EmulatorServer, tmp_path: Path
) -> None:
    script = (
        BLOCKS[0]
        .replace('"YOUR_API_KEY"', f'"{KEY}"')
        .replace('"YOUR_API_SECRET"', f'"{SECRET}"')
        .replace('project_id="YOUR_PROJECT_ID",', f'project_id="readme", base_url="{fast_emulator.base_url}",')
    )
    assert "YOUR_" not in script
    (tmp_path / "train.py").write_text(script)
    _images(tmp_path, {"hero": 5})
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    done = subprocess.run(
        [sys.executable, "train.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    model_id, status = done.stdout.strip().splitlines()[-1].split()
    assert model_id.startswith("model_") and status == "trained"


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("number", range(1, len(BLOCKS)), ids=lambda n: f"block-{n + 1}")
def test_every_other_block_runs(
    number: int, fast_emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ScenarioCredentials(api_key=KEY, api_secret=SECRET, project_id="readme", base_url=fast_emulator.base_url).save(
        "scenario", overwrite=True
    )
    _images(tmp_path, {"hero": 5, "villain": 1, "sidekick": 1, "before": 2, "after": 2})
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(BLOCKS[number], f"README.md block {number + 1}", "exec"), {"__name__": "__main__"})
    assert "trained" in printed.getvalue()
