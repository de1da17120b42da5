"""The command line under hostile input, as a user runs it: a subprocess.

Each row is an attack: the whole of stderr must be one line, the exit code 2, the
emulator's request log empty (nothing sent, nothing spent), no Prefect server started,
and the child's peak memory bounded (three sparse 1 GiB files cost nothing to refuse).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scenario_emulator import EmulatorServer
from tests.flow_fixtures import KEY, SECRET
from tests.reliability._support import png

PEAK_RSS_LIMIT_MB = 300


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five good images and three sparse 1 GiB files; a text file named .png; a deep params file."""
    root = tmp_path_factory.mktemp("hostile")
    for i in range(5):
        (root / f"good{i}.png").write_bytes(png(900 + i))
    for i in range(3):
        with (root / f"huge{i}.png").open("wb") as handle:
            handle.truncate(1 << 30)
    (root / "text.png").write_text("not an image")
    (root / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (root / "nul.png").write_bytes(png(950))
    (root / "nul.txt").write_bytes(b"a caption\x00\x1b[2J")
    return root


def good(root: Path) -> list[str]:
    return [str(root / f"good{i}.png") for i in range(5)]


TRAIN = ["train", "--type", "flux.2-dev-lora"]
ATTACKS = {
    "sparse-huge-files": lambda r: [*TRAIN, "--name", "x", *good(r), *(str(r / f"huge{i}.png") for i in range(3))],
    "params-dev-zero": lambda r: [*TRAIN, "--name", "x", "--params-file", "/dev/zero", *good(r)],
    "params-etc-passwd": lambda r: [*TRAIN, "--name", "x", "--params-file", "/etc/passwd", *good(r)],
    "params-deeply-nested": lambda r: [*TRAIN, "--name", "x", "--params-file", str(r / "deep.json"), *good(r)],
    "timeout-nan": lambda r: [*TRAIN, "--name", "x", "--timeout", "nan", *good(r)],
    "min-score-nan": lambda r: [*TRAIN, "--name", "x", "--min-dataset-score", "nan", *good(r)],
    "epochs-true": lambda r: [*TRAIN, "--name", "x", "--param", "nbEpochs=true", *good(r)],
    "param-without-value": lambda r: [*TRAIN, "--name", "x", "--param", "rank", *good(r)],
    "rank-500": lambda r: [*TRAIN, "--name", "x", "--param", "rank=500", *good(r)],
    "empty-name": lambda r: [*TRAIN, "--name", "   ", *good(r)],
    "name-with-ansi": lambda r: [*TRAIN, "--name", "x\x1b[2J\nFAKE: ok", *good(r)],
    "caption-with-nul": lambda r: [*TRAIN, "--name", "x", str(r / "nul.png"), *good(r)],
    "text-file-as-png": lambda r: [*TRAIN, "--name", "x", str(r / "text.png"), *good(r)],
    "51-images": lambda r: [*TRAIN, "--name", "x", *(good(r) * 11)[:51]],
    "unknown-type": lambda r: ["train", "--type", "nosuch", "--name", "x", *good(r)],
    "abbreviated-flag": lambda r: ["train", "--typ", "flux.2-dev-lora", "--name", "x", *good(r)],
    "units-nan": lambda r: [*TRAIN, "--name", "x", "--max-creative-units", "nan", *good(r)],
    "status-dot-dot": lambda r: ["status", "../../teams/x"],
    "cancel-query": lambda r: ["cancel", "model_x?projectId=other&"],
    "status-100k-id": lambda r: ["status", "model_" + "x" * 100_000],
}


# The CLI run as `python -m prefect_scenario.cli`, writing its peak resident memory (VmHWM, in
# KiB) when it exits. Not ru_maxrss: a forked child starts with its parent's resident pages
# (this pytest process, hundreds of MiB late in a run), and the kernel keeps that peak across exec.
LAUNCH = """
import atexit, os, runpy
def peak():
    with open("/proc/self/status") as status, open(os.environ["PEAK_FILE"], "w") as out:
        out.write(next(line for line in status if line.startswith("VmHWM:")).split()[1])
atexit.register(peak)
runpy.run_module("prefect_scenario.cli", run_name="__main__")
"""


def run_cli(argv: list[str], emulator: EmulatorServer, home: Path) -> tuple[int, str, float, str]:
    """Run the CLI; answer its exit code, its whole stderr, its own peak resident memory in MiB, its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SCENARIO_"))}
    env.update(SCENARIO_API_KEY=KEY, SCENARIO_API_SECRET=SECRET, SCENARIO_PROJECT_ID="proj_cli",
               SCENARIO_BASE_URL=emulator.base_url, PREFECT_HOME=str(home), PEAK_FILE=str(home / "peak"))  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", LAUNCH, *argv], env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return done.returncode, done.stderr, int((home / "peak").read_text()) / 1024, done.stdout


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_bad_input_is_one_line_exit_2_and_no_request(
    fast_emulator: EmulatorServer, dataset: Path, tmp_path: Path, attack: str
) -> None:
    code, stderr, peak_mb, _ = run_cli(ATTACKS[attack](dataset), fast_emulator, tmp_path)
    assert code == 2, stderr[-2000:]
    lines = stderr.splitlines()
    assert len(lines) == 1 and "error" in lines[0], stderr[-2000:]
    assert "\x1b" not in stderr and "Traceback" not in stderr
    assert fast_emulator.requests() == []
    assert "temporary server" not in stderr.lower()
    assert peak_mb < PEAK_RSS_LIMIT_MB


def test_preflight_of_a_folder_with_three_sparse_gigabyte_files_refuses_them_unread(
    fast_emulator: EmulatorServer, dataset: Path, tmp_path: Path
) -> None:
    code, stderr, peak_mb, report = run_cli(["preflight", str(dataset)], fast_emulator, tmp_path)
    refused = [line for line in report.splitlines() if line.startswith("refuse") and "over the 20.0 MiB limit" in line]
    assert code == 1 and len(refused) == 3, report + stderr
    assert fast_emulator.requests() == [] and "Traceback" not in stderr
    assert peak_mb < PEAK_RSS_LIMIT_MB
