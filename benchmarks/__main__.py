"""``make bench``: run every benchmark, print each ratio with its target, write the results.

``python -m benchmarks`` runs all of them in one Prefect harness and writes
``benchmarks/results/latest.json`` (for regression checks) and
``benchmarks/results/latest.md`` (the table the README shows).
``python -m benchmarks sensor memory`` runs only those (``end_to_end``, ``overhead``,
``fleet``, ``sensor``, ``memory``) and writes ``partial.json`` and ``partial.md``.
``BENCH_REPS`` and ``BENCH_LATENCY`` change the repetitions and the added latency.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import time
import traceback
from importlib.metadata import version
from pathlib import Path
from typing import Any

from benchmarks._common import LATENCY, REPS, TIMINGS, mark, prefect_harness, print_rows, timestamp
from benchmarks.bench_fleet import FLEET_REPS
from benchmarks.bench_memory import MEMORY_REPS

BENCHMARKS = ("end_to_end", "overhead", "fleet", "sensor", "memory")
RESULTS = Path(__file__).resolve().parent / "results"
# What the "baseline" column holds, per benchmark.
BASELINES = {
    "end_to_end": "the official `scenario-sdk` as the product doc shows it: sequential inline uploads, `GET` every 1 s",
    "overhead": "the same API calls as a plain asyncio script with `ScenarioClient` (no Prefect)",
    "fleet": "one `train_lora` of the same size (the polling row has no baseline)",
    "sensor": "`list` mode (the contender is `notifications` mode)",
    "memory": "a child process that only imports `prefect_scenario.training.flows`",
}


def machine() -> dict[str, Any]:
    return {
        "date": timestamp(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "prefect": version("prefect"),
        "scenario-sdk": version("scenario-sdk"),
        "latency_seconds": LATENCY,
        "training_seconds": TIMINGS,
        "repetitions": {"default": REPS, "fleet": FLEET_REPS, "memory": MEMORY_REPS},
    }


def _cell(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def markdown(info: dict[str, Any], rows: list[dict[str, Any]], errors: dict[str, str]) -> str:
    timings, reps = info["training_seconds"], info["repetitions"]
    lines = [
        f"Measured {info['date']} on {info['cores']} cores, Python {info['python']}, {info['platform']}; "
        f"prefect {info['prefect']}, scenario-sdk {info['scenario-sdk']}. "
        f"Emulator: {info['latency_seconds'] * 1000:g} ms added to every request; a training spends "
        f"{timings['queue_seconds']:g} s queued, {timings['start_seconds']:g} s starting and "
        f"{timings['train_seconds']:g} s running. Medians of {reps['default']} alternating repetitions "
        f"(fleet {reps['fleet']}, memory {reps['memory']}); took {info['seconds']:.0f} s.",
        "",
        "| Benchmark | Case | Metric | prefect-scenario | Baseline | Ratio | Target | Result | Note |",
        "|---|---|---|--:|--:|--:|---|---|---|",
    ]
    for row in rows:
        ratio = f"{row['ratio']:.2f}×" if row["ratio"] is not None else "–"
        unit = f" {row['unit']}"
        lines.append(
            f"| {row['bench']} | {row['case']} | {row['metric']} | {_cell(row['contender'])}{unit} | "
            f"{_cell(row['baseline'])}{unit if row['baseline'] is not None else ''} | {ratio} | "
            f"{row['target'] or '–'} | {mark(row['passed']) or '–'} | {row['note']} |"
        )
    lines += ["", "Baselines:"]
    lines += [f"- **{name}**: {text}" for name, text in BASELINES.items()]
    lines += [f"- **{name}** did not run: {error}" for name, error in errors.items()]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(BENCHMARKS)} (default: all)")
    names = parser.parse_args().names or list(BENCHMARKS)
    if unknown := sorted(set(names) - set(BENCHMARKS)):
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    skipped: list[str] = []  # a benchmark whose subject is missing from this version
    with prefect_harness():
        for name in names:
            print(f"{name}:", flush=True)
            begun = time.monotonic()
            try:
                found = importlib.import_module(f"benchmarks.bench_{name}").run()
            except Exception as exc:
                traceback.print_exc()
                errors[name] = f"{type(exc).__name__}: {exc}"
                continue
            if not found:
                skipped.append(name)
            print_rows(found)
            print(f"  ({time.monotonic() - begun:.0f} s)", flush=True)
            rows += found
    info = {**machine(), "seconds": round(time.monotonic() - started, 1)}
    # Only a full run replaces the table the README shows.
    stem = "latest" if names == list(BENCHMARKS) else "partial"
    RESULTS.mkdir(exist_ok=True)
    document = {"machine": info, "rows": rows, "errors": errors, "skipped": skipped}
    (RESULTS / f"{stem}.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(info, rows, {**errors, **dict.fromkeys(skipped, "skipped")}))
    targets = [r for r in rows if r["passed"] is not None]
    print(f"\nTargets: {sum(r['passed'] for r in targets)} of {len(targets)} met ({info['seconds']:.0f} s)")
    print_rows(targets)
    print(f"Wrote {RESULTS / stem}.json and .md")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
