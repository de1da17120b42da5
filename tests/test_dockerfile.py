"""The production image's ``Dockerfile``, parsed and checked without a docker daemon.

What it must do (issue 12, item 6): start from ``python:3.11-slim``; install the package
from its wheel with the pinned runtime dependencies only (``pyproject.toml``'s
``dependencies``, pinned by ``requirements.lock`` used as constraints); no emulator extra,
no test or dev tool, no source tree; run as a non-root user. ``.dockerignore`` keeps the
build context to the files the ``COPY`` lines name.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BASE_IMAGE = "python:3.11-slim"


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse(text: str) -> list[Stage]:
    """The stages of a Dockerfile: ``FROM`` lines and the instructions under each (continuations joined)."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=words[0], name=name))
        else:
            assert stages, f"{keyword} before any FROM"
            stages[-1].instructions.append((keyword, args))
    return stages


def commands(run: str) -> list[list[str]]:
    """The shell commands of a ``RUN`` line (split on ``&&``, ``;``), each as words."""
    return [shlex.split(part) for part in re.split(r"&&|;", run) if part.strip()]


def pip_installs(stage: Stage) -> list[list[str]]:
    found = []
    for run in stage.all("RUN"):
        for words in commands(run):
            rest = words[2:] if words[:2] in (["python", "-m"], ["python3", "-m"]) else words
            if rest[:2] in (["pip", "install"], ["pip3", "install"]):
                found.append(rest[2:])
    return found


def lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse((ROOT / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def test_every_stage_starts_from_python_3_11_slim(stages: list[Stage]) -> None:
    assert [s.image for s in stages] == [BASE_IMAGE] * len(stages)
    # The image's Python is the one the lock was resolved with.
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"


def test_the_image_runs_as_a_non_root_user(final: Stage) -> None:
    users = final.all("USER")
    assert users, "the final stage sets no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # Numeric, so Kubernetes can check `runAsNonRoot`; and created in the image.
    assert user.isdigit()
    created = [words for run in final.all("RUN") for words in commands(run) if words[:1] == ["useradd"]]
    assert any(w[w.index("--uid") + 1] == user for w in created if "--uid" in w), created
    # Nothing runs as root after the switch.
    last_user = max(i for i, (kw, _) in enumerate(final.instructions) if kw == "USER")
    assert not [kw for kw, _ in final.instructions[last_user:] if kw == "RUN"]


def test_the_image_installs_the_wheel_with_the_lock_as_constraints_only(stages: list[Stage], final: Stage) -> None:
    (install,) = pip_installs(final)
    flags = {w for w in install if w.startswith("-")}
    # `-r requirements.lock` would install the dev and emulator tools the lock also pins.
    assert not flags & {"-r", "--requirement", "-e", "--editable"}, install
    assert "--constraint" in install or "-c" in install
    flag = "--constraint" if "--constraint" in install else "-c"
    assert install[install.index(flag) + 1].endswith("requirements.lock")
    targets = [w for i, w in enumerate(install) if not w.startswith("-") and install[i - 1] != flag]
    # One target: the package's wheel, without extras (no `[emulator]`, no `[dev]`).
    assert len(targets) == 1 and re.fullmatch(r"\S*/prefect_scenario-\*\.whl", targets[0]), targets
    # The wheel is built in the build stage, without pulling dependencies in there.
    (build,) = [s for s in stages[:-1] if s.name and any(s.name in c for c in final.all("COPY"))]
    wheels = [w for run in build.all("RUN") for w in commands(run) if w[:2] == ["pip", "wheel"]]
    assert wheels and all("--no-deps" in w for w in wheels)
    assert not pip_installs(build)


def test_nothing_the_runtime_does_not_need_is_installed(stages: list[Stage]) -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    runtime = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["project"]["dependencies"]}
    not_needed = {canonicalize_name(Requirement(r).name) for group in extras.values() for r in group} - runtime
    assert {"moto", "pytest", "ruff", "mypy", "scenario-sdk"} <= not_needed
    words = [canonicalize_name(re.split(r"[\[=<>!~ ]", w)[0]) for s in stages for i in pip_installs(s) for w in i]
    assert not set(words) & not_needed, words
    text = (ROOT / "Dockerfile").read_text()
    assert "[emulator]" not in text and "[dev]" not in text
    # No apt packages (a compiler, git, curl): every dependency has a manylinux wheel.
    assert "apt-get" not in text


def test_the_lock_pins_every_runtime_dependency_within_its_range() -> None:
    pins = lock()
    for spec in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is a runtime dependency but requirements.lock does not pin it"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {requirement.specifier}"
    # The Prefect the image gets is the one the deployments are written for.
    declared = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())["prefect-version"]
    assert pins["prefect"] == declared


def test_only_the_package_files_are_copied_and_in_the_build_context(stages: list[Stage]) -> None:
    sources: set[str] = set()
    for stage in stages:
        for copy in stage.all("COPY"):
            words = copy.split()
            if any(w.startswith("--from=") for w in words):
                continue
            sources.update(w.rstrip("/") for w in words[:-1] if not w.startswith("--"))
    assert sources == {"pyproject.toml", "README.md", "requirements.lock", "prefect_scenario", "scenario_emulator"}
    assert all((ROOT / s).exists() for s in sources)
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    # A whitelist: everything out, then exactly the copied files back in.
    assert rules[0] == "*"
    assert {r[1:] for r in rules if r.startswith("!")} == sources
