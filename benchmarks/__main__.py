"""``make bench``: run every benchmark, print each ratio with its target, write the results.

``python -m benchmarks`` runs all of them in one Prefect harness and writes
``benchmarks/results/latest.json`` (for regression checks) and
``benchmarks/results/latest.md``, and puts that table into ``docs/benchmarks.md`` between
its ``<!-- bench:start -->`` and ``<!-- bench:end -->`` markers (the prose around them
stays). Every ratio is the
contender against a baseline measured in the same run, alternating with it.
``python -m benchmarks sensor memory`` runs only those and writes ``partial.json`` and
``partial.md``. ``BENCH_REPS`` and ``BENCH_LATENCY`` change the repetitions and the
added latency.

``python -m benchmarks --smoke`` (or ``BENCH_SMOKE=1``) runs every benchmark once with
tiny sizes and judges no target: it proves the benchmarks still run against the
package (``tests/test_benchmarks_smoke.py`` does it in ``make test``). It writes
``smoke.json`` and ``smoke.md`` to ``--out`` (default: a new temporary directory),
never over the measured results, and leaves ``docs/benchmarks.md`` alone.

The benchmarks are the ``benchmarks/bench_*.py`` files (see :func:`benchmarks.discover`):
a new file with a ``run()`` and a ``BASELINE`` is run, and smoke-tested, without
being registered anywhere else.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import tempfile
import time
import traceback
from importlib.metadata import version
from pathlib import Path
from typing import Any

from benchmarks import RESULTS, discover

DOCS = RESULTS.parents[1] / "docs" / "benchmarks.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def machine(modules: dict[str, Any]) -> dict[str, Any]:
    from benchmarks._common import LATENCY, REPS, SMOKE, TIMINGS, timestamp

    return {
        "date": timestamp(),
        "smoke": SMOKE,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "prefect": version("prefect"),
        "scenario-sdk": version("scenario-sdk"),
        "latency_seconds": LATENCY,
        "training_seconds": TIMINGS,
        "repetitions": {"default": REPS, **{n: m.REPETITIONS for n, m in modules.items() if hasattr(m, "REPETITIONS")}},
    }


def _cell(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def markdown(
    info: dict[str, Any], rows: list[dict[str, Any]], baselines: dict[str, str], errors: dict[str, str]
) -> str:
    from benchmarks._common import mark

    timings, reps = info["training_seconds"], info["repetitions"]
    others = ", ".join(f"{name} {n}" for name, n in reps.items() if name != "default")
    smoke = "**Smoke run: tiny sizes, one repetition, no target judged. These numbers mean nothing.**"
    lines = [
        *([smoke, ""] if info["smoke"] else []),
        f"Measured {info['date']} on {info['cores']} cores, Python {info['python']}, {info['platform']}; "
        f"prefect {info['prefect']}, scenario-sdk {info['scenario-sdk']}. "
        f"Emulator: {info['latency_seconds'] * 1000:g} ms added to every request; a training spends "
        f"{timings['queue_seconds']:g} s queued, {timings['start_seconds']:g} s starting and "
        f"{timings['train_seconds']:g} s running. Medians of {reps['default']} alternating repetitions"
        f"{f' ({others})' if others else ''}; took {info['seconds']:.0f} s.",
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
    lines += [f"- **{name}**: {text}" for name, text in baselines.items()]
    lines += [f"- **{name}** did not run: {error}" for name, error in errors.items()]
    return "\n".join(lines) + "\n"


def between_markers(document: str, table: str) -> str:
    """``document`` with what lies between its bench markers replaced by ``table``.

    >>> between_markers("intro\n<!-- bench:start -->\nold\n<!-- bench:end -->\nafter\n", "new\n")
    'intro\n<!-- bench:start -->\nnew\n<!-- bench:end -->\nafter\n'
    """
    head, start, rest = document.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"{DOCS} has no {START} ... {END} section for the table")
    return f"{head}{START}\n{table}{END}{tail}"


def write_docs(table: str, docs: Path = DOCS) -> None:
    """Put a full run's table into ``docs/benchmarks.md``, with the machine's load average."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    stamped = f"{table}\nLoad average when the run ended (1, 5, 15 min): {load}.\n"
    docs.write_text(between_markers(docs.read_text(), stamped))


def main() -> int:
    available = discover()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(available)} (default: all)")
    parser.add_argument("--smoke", action="store_true", help="every benchmark once, tiny sizes, no targets")
    parser.add_argument("--out", type=Path, help="where to write the results (default: benchmarks/results)")
    args = parser.parse_args()
    names = args.names or available
    if unknown := sorted(set(names) - set(available)):
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    if args.smoke:
        # Before benchmarks._common is imported: its sizes are read at import.
        os.environ["BENCH_SMOKE"] = "1"
    from benchmarks._common import SMOKE, prefect_harness, print_rows

    out = args.out or (Path(tempfile.mkdtemp(prefix="prefect-scenario-smoke-")) if SMOKE else RESULTS)
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    modules: dict[str, Any] = {}
    with prefect_harness():
        for name in names:
            print(f"{name}:", flush=True)
            begun = time.monotonic()
            try:
                modules[name] = importlib.import_module(f"benchmarks.bench_{name}")
                found = modules[name].run()
                if not found:
                    raise RuntimeError("the benchmark produced no rows")
            except Exception as exc:
                traceback.print_exc()
                errors[name] = f"{type(exc).__name__}: {exc}"
                continue
            print_rows(found)
            print(f"  ({time.monotonic() - begun:.1f} s)", flush=True)
            rows += found
    info = {**machine(modules), "seconds": round(time.monotonic() - started, 1)}
    # Only a full measuring run into benchmarks/results replaces latest.* and the table in
    # docs/benchmarks.md; a smoke run (a temporary directory) or a partial run does not.
    stem = "smoke" if SMOKE else "latest" if names == available else "partial"
    out.mkdir(parents=True, exist_ok=True)
    baselines = {n: str(getattr(m, "BASELINE", "")) for n, m in modules.items()}
    document = {"machine": info, "rows": rows, "errors": errors, "baselines": baselines}
    (out / f"{stem}.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    (out / f"{stem}.md").write_text(markdown(info, rows, baselines, errors))
    if stem == "latest" and out == RESULTS:
        write_docs(markdown(info, rows, baselines, errors))
    if SMOKE:
        print(f"\nSmoke: {len(rows)} rows from {len(names) - len(errors)} of {len(names)} benchmarks")
    else:
        targets = [r for r in rows if r["passed"] is not None]
        print(f"\nTargets: {sum(r['passed'] for r in targets)} of {len(targets)} met")
        print_rows(targets)
    for name, error in errors.items():
        print(f"FAILED {name}: {error}")
    print(f"Took {info['seconds']:.1f} s. Wrote {out / stem}.json and .md")
    if stem == "latest" and out == RESULTS:
        print(f"Updated the table in {DOCS}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
