"""Every Python block of docs/evaluation.md runs against the emulator, as a reader would run it."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from PIL import Image

from prefect_scenario import ScenarioCredentials
from scenario_emulator import EmulatorServer
from tests.flow_fixtures import KEY, SECRET

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "evaluation.md").read_text(), flags=re.S)


def test_the_page_has_a_python_block() -> None:
    assert BLOCKS


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("number", range(len(BLOCKS)), ids=lambda n: f"block-{n + 1}")
def test_every_block_runs(
    number: int, fast_emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ScenarioCredentials(api_key=KEY, api_secret=SECRET, project_id="docs", base_url=fast_emulator.base_url).save(
        "scenario", overwrite=True
    )
    (tmp_path / "hero").mkdir()
    for i in range(1, 6):
        Image.new("RGB", (64, 64), (40 * i, 90, 120)).save(tmp_path / "hero" / f"{i:02d}.png", "PNG")
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(BLOCKS[number], f"docs/evaluation.md block {number + 1}", "exec"), {"__name__": "__main__"})
    assert "production: model_" in printed.getvalue() and "trained" in printed.getvalue()
