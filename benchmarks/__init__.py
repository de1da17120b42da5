"""Benchmarks: `make bench` runs them all (see benchmarks/__main__.py).

Importing this package is cheap (no Prefect): the registry below is read by the smoke test too.
"""

from __future__ import annotations

import pkgutil
from pathlib import Path

__all__ = ["RESULTS", "discover"]

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def discover() -> list[str]:
    """The benchmarks, by name: every ``benchmarks/bench_<name>.py``, sorted.

    This is the only registry: a new benchmark file is run by ``make bench`` and
    smoke-tested by ``make test`` as soon as it exists.
    """
    modules = pkgutil.iter_modules([str(HERE)])
    return sorted(m.name.removeprefix("bench_") for m in modules if m.name.startswith("bench_"))
