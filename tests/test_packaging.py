"""The runtime install stays lean: what the wheel declares, what the package imports, and the hint without the extra.

``pip install prefect-scenario`` must not bring the emulator's server stack, moto or
the test tools: they are the ``emulator`` and ``dev`` extras. Prefect itself depends
on starlette and uvicorn (its own server), so those are in any Prefect environment;
what this checks is that *prefect_scenario* never asks for them. ``moto`` is what a
runtime install really lacks, so the missing-extra hint is checked with it missing.
"""

from __future__ import annotations

import ast
import email.parser
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
# Never in the runtime requirements, nor imported by prefect_scenario.
TEST_AND_EMULATOR_ONLY = ("starlette", "uvicorn", "moto", "pytest", "respx", "schemathesis")
HINT = 'pip install "prefect-scenario[emulator]"'

# A child process in which the given top-level packages cannot be imported.
BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, Blocker())
"""

IMPORT_EVERY_MODULE = """
import importlib, pkgutil
import prefect_scenario
names = ["prefect_scenario"]
for found in pkgutil.walk_packages(prefect_scenario.__path__, "prefect_scenario."):
    importlib.import_module(found.name)
    names.append(found.name)
print(len(names), "modules imported")
"""

RUN_CLI = """
from prefect_scenario.cli import main
raise SystemExit(main(sys.argv[2:]))
"""


def _can_build_without_isolation() -> bool:
    """setuptools in this venv builds wheels itself (>= 70.1) or with the ``wheel`` package."""
    import setuptools

    major, minor = (int(p) for p in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Without isolation when the venv can (seconds, offline); else pip fetches the build
    # backend pyproject.toml names, as `pip install -e .` did when the venv was made.
    flags = ["--no-build-isolation"] if _can_build_without_isolation() else []
    done = subprocess.run(
        [*PIP, "wheel", "-q", "--no-deps", *flags, "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = out.glob("prefect_scenario-*.whl")
    return built


def _metadata(wheel: Path) -> Any:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode())


def test_runtime_requirements_leave_out_the_emulator_and_test_tools(wheel: Path) -> None:
    requirements = [Requirement(r) for r in _metadata(wheel).get_all("Requires-Dist") or []]
    runtime = {r.name.lower() for r in requirements if r.marker is None}
    assert runtime, "the wheel declares no runtime requirement at all"
    assert {"prefect", "httpx", "pydantic"} <= runtime
    assert not runtime & set(TEST_AND_EMULATOR_ONLY), f"runtime requirements: {sorted(runtime)}"
    for requirement in requirements:
        if requirement.name.lower() in TEST_AND_EMULATOR_ONLY:
            marker = str(requirement.marker)
            assert marker in ('extra == "emulator"', 'extra == "dev"'), f"{requirement}: {marker}"
    assert {"emulator", "dev"} <= set(_metadata(wheel).get_all("Provides-Extra") or [])


def test_the_wheel_holds_both_packages_and_their_data(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for package in ("prefect_scenario", "scenario_emulator"):
        sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / package).rglob("*.py")}
        assert sources and sources <= names, sorted(sources - names)
        data = {p.relative_to(ROOT).as_posix() for p in (ROOT / package).rglob("*.json")}
        assert data <= names, f"package data missing from the wheel: {sorted(data - names)}"
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]


def test_prefect_scenario_never_imports_the_emulator_stack() -> None:
    """Statically, every import in the package, lazy ones included (Prefect loads starlette anyway)."""
    offenders = []
    for path in sorted((ROOT / "prefect_scenario").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                where = path.relative_to(ROOT).as_posix()
                # `webhook-receiver` serves with uvicorn, lazily: Prefect itself requires uvicorn
                # (its server runs on it), so a runtime install has it; the emulator stack stays out.
                if (where, module) == ("prefect_scenario/webhooks/commands.py", "uvicorn"):
                    continue
                if module.partition(".")[0] in (*TEST_AND_EMULATOR_ONLY, "scenario_emulator"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {module}")
    assert offenders == []


def _blocked(blocked: tuple[str, ...], code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + code, ",".join(blocked), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.timeout(240)
def test_every_module_imports_without_the_emulator_stack() -> None:
    # starlette stays importable: `import prefect` needs it (fastapi, Prefect's server).
    blocked = ("uvicorn", "moto", "pytest", "respx", "schemathesis", "scenario_emulator")
    done = _blocked(blocked, IMPORT_EVERY_MODULE)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "modules imported" in done.stdout


@pytest.mark.timeout(240)
def test_demo_without_the_extra_prints_the_install_hint() -> None:
    # Not starlette: without it `import prefect` fails before the CLI can say anything,
    # and no environment with Prefect lacks it.
    done = _blocked(("uvicorn", "moto", "pytest"), RUN_CLI, "demo")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and HINT in lines[0], done.stderr[-3000:]


@pytest.mark.timeout(240)
def test_demo_with_only_moto_missing_prints_the_install_hint() -> None:
    """A real runtime install: starlette and uvicorn came with Prefect, only moto is missing."""
    done = _blocked(("moto",), RUN_CLI, "demo")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and HINT in lines[0], done.stderr[-3000:]
