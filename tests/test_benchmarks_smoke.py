"""The benchmarks still run: ``python -m benchmarks --smoke`` in a subprocess, every benchmark once.

Tiny sizes and one repetition: this proves each ``benchmarks/bench_*.py`` still runs
against the package and produces its rows, not that a target is met (``make bench``
measures). The subprocess uses this session's Prefect harness instead of starting its
own, and writes its results and images under ``tmp_path``, never over
``benchmarks/results/latest.*``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import RESULTS, discover

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_the_registry_is_the_bench_files() -> None:
    files = {p.stem.removeprefix("bench_") for p in (ROOT / "benchmarks").glob("bench_*.py")}
    assert set(discover()) == files
    assert len(files) >= 5


def test_a_full_run_replaces_only_the_table_between_the_markers_of_the_docs(tmp_path: Path) -> None:
    from benchmarks.__main__ import END, START, write_docs

    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"# Benchmarks\n\nProse before.\n\n{START}\nthe old table\n{END}\n\nProse after.\n")
    write_docs("| the | newest table |\n", docs)
    text = docs.read_text()
    assert text.startswith("# Benchmarks\n\nProse before.\n\n" + START + "\n| the | newest table |\n")
    assert text.endswith(f"{END}\n\nProse after.\n") and "old table" not in text
    assert "Load average when the run ended" in text
    docs.write_text("no markers\n")
    with pytest.raises(ValueError, match="bench:start"):
        write_docs("| x |\n", docs)


@pytest.mark.e2e  # emulator and moto server processes, every benchmark once: about a minute or more
@pytest.mark.timeout(420)
def test_every_benchmark_runs_in_smoke_mode(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    out = tmp_path / "results"
    latest = {p: p.stat().st_mtime_ns for p in [*RESULTS.glob("latest.*"), ROOT / "docs" / "benchmarks.md"]}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "BENCH_"))},
        "BENCH_PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "BENCH_CACHE": str(tmp_path / "cache"),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    took = time.monotonic() - started
    output = f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert done.returncode == 0, f"exit {done.returncode} after {took:.0f} s\n{output}"

    document = json.loads((out / "smoke.json").read_text())
    assert document["machine"]["smoke"] is True
    assert document["errors"] == {}
    rows = document["rows"]
    by_bench: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        by_bench.setdefault(str(row["bench"]), []).append(row)
    # Every benchmark file produced rows, under its own name, each with a measured value.
    assert set(by_bench) == set(discover()), done.stdout[-4000:]
    for row in rows:
        contender = row["contender"]
        assert isinstance(contender, int | float) and math.isfinite(contender), row
        assert row["passed"] is None and row["target"] == "", f"smoke mode judged a target: {row}"
    assert set(document["baselines"]) == set(discover())
    assert all(document["baselines"].values()), "every benchmark says what its baseline is (BASELINE)"
    assert "Smoke run" in (out / "smoke.md").read_text()
    # The measured results, and the table in docs/benchmarks.md, are left alone.
    assert {p: p.stat().st_mtime_ns for p in [*RESULTS.glob("latest.*"), ROOT / "docs" / "benchmarks.md"]} == latest
    print(f"benchmark smoke run: {len(rows)} rows in {took:.1f} s")
