"""Every Python block of the README and of ``docs/*.md`` runs, against the emulator, as a reader would run it.

The README's Quick start runs as a plain script in a child process (``python train.py``) with
only the credentials filled in; every other block, in the README or any page of ``docs/``, runs
in this process, with a saved ``scenario`` credentials block and the image folders they name.
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
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _blocks(document: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", document.read_text(), flags=re.S)


BLOCKS = _blocks(ROOT / "README.md")
# Every block but the Quick start: (where it is, its code).
OTHER_BLOCKS = [
    (f"{document.relative_to(ROOT).as_posix()} block {number + 1}", code)
    for document in DOCUMENTS
    for number, code in enumerate(_blocks(document))
    if (document.name, number) != ("README.md", 0)
]


def _images(folder: Path, names: dict[str, int]) -> None:
    for directory, count in names.items():
        (folder / directory).mkdir(parents=True, exist_ok=True)
        for i in range(1, count + 1):
            color = (sum(map(ord, directory)) % 200 + i * 7, i * 40 % 256, 90)
            Image.new("RGB", (64, 64), color).save(folder / directory / f"{i:02d}.png", "PNG")


def test_the_readme_and_the_docs_have_the_blocks_this_test_expects() -> None:
    assert len(BLOCKS) >= 2 and "YOUR_API_KEY" in BLOCKS[0]
    where = {name.split(" block ")[0] for name, _ in OTHER_BLOCKS}
    assert {"README.md", "docs/usage.md", "docs/budget.md"} <= where
    assert len(OTHER_BLOCKS) >= 7


@pytest.mark.e2e  # a child process that starts its own Prefect server (`make check` skips it)
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


def _judges(code: str) -> bool:
    return "promote=True" in code or "evaluate_and_promote(" in code


# A block that judges retrains trains and renders several LoRAs (~40 s): `make test` runs it, `make check` not.
@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize(
    ("where", "code"),
    [
        pytest.param(where, code, id=where, marks=[pytest.mark.e2e] if _judges(code) else [])
        for where, code in OTHER_BLOCKS
    ],
)
def test_every_other_block_runs(
    where: str, code: str, fast_emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ScenarioCredentials(api_key=KEY, api_secret=SECRET, project_id="readme", base_url=fast_emulator.base_url).save(
        "scenario", overwrite=True
    )
    _images(tmp_path, {"hero": 5, "villain": 1, "sidekick": 1, "before": 2, "after": 2})
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, where, "exec"), {"__name__": "__main__"})
    assert "trained" in printed.getvalue()
    if "promote=True" in code:  # the judging example: the first LoRA is promoted, the overcooked one kept out
        assert "10 trained promoted" in printed.getvalue() and "60 trained rejected" in printed.getvalue()
    if "ScenarioLoRA.load(" in code:  # downstream flows read production from the block
        assert "production: model_" in printed.getvalue()
