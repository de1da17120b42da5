"""`make demo` as a new user runs it: `prefect-scenario demo` in a fresh Prefect home.

It starts its own Prefect server, the emulator and moto, trains three LoRAs and stops. The
whole of its output is read: exit 0, the story in a few lines, and no line a user would read as
a failure (no traceback, no ERROR, no access log).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def test_the_demo_passes_and_its_whole_output_reads_as_a_success(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SCENARIO_"))}
    env["PREFECT_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [str(BIN / "prefect-scenario"), "demo"], env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    lines = output.splitlines()
    assert "Done: the emulator served" in output, output
    for bad in ("Traceback", "ERROR", "failed to process", '" 200', '" 404'):
        assert not [line for line in lines if bad in line], f"{bad!r} in the demo's output:\n{output}"
    assert len(lines) <= 25, output
