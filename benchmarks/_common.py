"""What every benchmark shares: settings, the package under test, servers, Prefect's harness, rows.

Import this module before ``prefect``: it sets the environment Prefect reads at import.

Every name a benchmark takes from ``prefect_scenario`` is imported in the section "the
package under test" below, and nowhere else: when the package's API changes, this is the
one place to adapt (``python -m benchmarks --smoke`` then tells whether it worked).

``BENCH_SMOKE=1`` (``python -m benchmarks --smoke``) runs every benchmark once with tiny
sizes and fast trainings: it proves the benchmarks still run, it measures nothing.
"""

from __future__ import annotations

import os

# Telemetry can lock the harness's SQLite database; INFO logs would drown the tables.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import atexit
import base64
import contextlib
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect_scenario.api.client import ScenarioClient
from prefect_scenario.catalog import TrainingParameters
from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.dataset.images import prepare_images
from prefect_scenario.retraining.decisions import SensorState, decide
from prefect_scenario.retraining.discovery import ListingDiscovery, NotificationDiscovery

# -- the package under test: every prefect_scenario name the benchmarks use ---------------
from prefect_scenario.tags import idempotency_tag
from prefect_scenario.training.fleet import train_lora_fleet
from prefect_scenario.training.flows import train_lora
from prefect_scenario.training.pipeline import derive_idempotency_key
from prefect_scenario.training.reconcile import find_run_model
from prefect_scenario.waiting.polling import DEFAULT_POLICY, PollPolicy
from prefect_scenario.waiting.suspension import WaitRecord
from prefect_scenario.waiting.wait import wait_until_terminal
from prefect_scenario.waiting.watcher import watch_once
from prefect_scenario.webhooks import build_receiver, register_webhook

# The emulator's command line, run in a child process (the `emulator` extra).
EMULATOR_MAIN = "import sys; from scenario_emulator.server import main; sys.exit(main())"

__all__ = [
    "CACHE",
    "EMULATOR_MAIN",
    "KEY",
    "LATENCY",
    "POLL_POLICY",
    "REGION",
    "REPS",
    "SECRET",
    "SMOKE",
    "TIMINGS",
    "TRAINING_TYPE",
    "Emulator",
    "ListingDiscovery",
    "NotificationDiscovery",
    "PollPolicy",
    "Row",
    "ScenarioClient",
    "ScenarioCredentials",
    "SensorState",
    "TrainingParameters",
    "WaitRecord",
    "aws_client",
    "build_receiver",
    "credentials",
    "decide",
    "derive_idempotency_key",
    "ended_at",
    "find_run_model",
    "idempotency_tag",
    "is_poll",
    "mark",
    "median",
    "moto_server",
    "noisy_pngs",
    "pick",
    "prefect_harness",
    "prepare_images",
    "print_rows",
    "register_webhook",
    "run_alone",
    "running_emulator",
    "timestamp",
    "train_lora",
    "train_lora_fleet",
    "wait_phase",
    "wait_until_terminal",
    "watch_once",
]

KEY, SECRET = "bench-key", "bench-secret-5f1e"
TRAINING_TYPE = "flux.2-dev-lora"
# Smoke mode: every benchmark once, tiny sizes, no targets (see the module docstring).
SMOKE = os.environ.get("BENCH_SMOKE", "") not in ("", "0")


def pick(full: Any, smoke: Any) -> Any:
    """``full`` in a measuring run, ``smoke`` in smoke mode."""
    return smoke if SMOKE else full


# Repetitions per contender; each benchmark alternates contender and baseline.
REPS: int = pick(int(os.environ.get("BENCH_REPS", "3")), 1)
# Added to every API request: the emulator is local, the real API is not.
LATENCY: float = pick(float(os.environ.get("BENCH_LATENCY", "0.05")), 0.0)
# Short enough for a few-minute run, long enough that the polling strategy shows.
# The default poll policy first looks again 5 s after seeing a queued training: the
# training must outlast that, or the benchmark would measure this shortcut, not polling.
TIMINGS: dict[str, float] = pick(
    {"queue_seconds": 1.0, "start_seconds": 0.5, "train_seconds": 4.5},
    {"queue_seconds": 0.05, "start_seconds": 0.05, "train_seconds": 0.2},
)
REGION = "us-east-1"
# The policy a user gets; in smoke mode one that keeps up with the short trainings.
POLL_POLICY: PollPolicy = pick(
    DEFAULT_POLICY,
    PollPolicy(minimum=0.02, near_end=0.05, near_end_window=0.2, queued=0.05, starting=0.05, unknown=0.05),
)
# Generated images, shared by concurrent runs (each file is written once, atomically).
CACHE = Path(os.environ.get("BENCH_CACHE") or Path(tempfile.gettempdir()) / "prefect-scenario-bench")


# -- the emulator, in its own process ------------------------------------------------------


class Emulator:
    """The Scenario emulator served by the CLI in a child process.

    A separate process, like the real API: its request handling (decoding every
    uploaded image) must not compete with the client under test for the GIL.
    """

    def __init__(self, *, latency: float = LATENCY, **timings: float) -> None:
        settings = {**TIMINGS, **timings}
        args = ["--port", "0", "--api-key", KEY, "--api-secret", SECRET, "--latency", str(latency)]
        for name, value in settings.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        self.process = subprocess.Popen(
            [sys.executable, "-c", EMULATOR_MAIN, *args], stdout=subprocess.PIPE, text=True, bufsize=1
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline()  # "Scenario API emulator on http://127.0.0.1:PORT/v1"
        if " on http" not in first:
            self.stop()
            raise RuntimeError(f"the emulator did not start: {first!r}")
        self.base_url = first.split(" on ", 1)[1].strip()
        self.root_url = self.base_url.removesuffix("/v1")
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError):
                self._admin("GET", "health")
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the emulator did not answer /_emulator/health")
            time.sleep(0.05)

    def _admin(self, method: str, path: str) -> Any:
        request = urllib.request.Request(f"{self.root_url}/_emulator/{path}", method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def now(self) -> float:
        """The emulator's clock, epoch seconds (``GET /_emulator/health``)."""
        return float(self._admin("GET", "health")["now"])

    def requests(self) -> list[dict[str, Any]]:
        """The API requests served since the last :meth:`clear` (admin calls are not logged)."""
        return list(self._admin("GET", "requests")["requests"])

    def clear(self) -> None:
        """Forget the logged requests."""
        self._admin("DELETE", "requests")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_SHARED_EMULATORS: dict[tuple[tuple[str, float], ...], Emulator] = {}


@contextlib.contextmanager
def running_emulator(**timings: float) -> Iterator[Emulator]:
    """An emulator for one benchmark; in smoke mode one process serves them all.

    A measuring run starts a fresh one per benchmark. Starting one takes ~4 s on a busy
    2-core machine, most of a smoke run's budget; sharing is safe because every
    repetition clears the request log and uses its own project.
    """
    if not SMOKE:
        with Emulator(**timings) as fresh:
            yield fresh
        return
    key = tuple(sorted(timings.items()))
    if key not in _SHARED_EMULATORS:
        _SHARED_EMULATORS[key] = shared = Emulator(**timings)
        atexit.register(shared.stop)
    yield _SHARED_EMULATORS[key]


def credentials(emulator: Emulator, project_id: str) -> ScenarioCredentials:
    """A ``ScenarioCredentials`` block for the emulator (a fresh project isolates a repetition)."""
    return ScenarioCredentials(
        api_key=KEY,  # type: ignore[arg-type]
        api_secret=SECRET,  # type: ignore[arg-type]
        project_id=project_id,
        base_url=emulator.base_url,
    )


def ended_at(emulator: Emulator, project_id: str, model_id: str) -> float:
    """When the emulator ended the model's training, epoch seconds (its ``trainingStats.endedAt``).

    Read after the request log, so this request is not counted.
    """
    token = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    request = urllib.request.Request(
        f"{emulator.base_url}/models/{model_id}?projectId={project_id}", headers={"Authorization": f"Basic {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        stats = json.loads(response.read())["model"]["trainingStats"]
    return datetime.fromisoformat(str(stats["endedAt"]).replace("Z", "+00:00")).timestamp()


def is_poll(entry: dict[str, Any]) -> bool:
    """A status read: ``GET /models/{id}`` or ``POST /models/get-bulk``."""
    path = entry["path"]
    if entry["method"] == "POST":
        return bool(path == "/v1/models/get-bulk")
    return entry["method"] == "GET" and path.startswith("/v1/models/") and path.count("/") == 3


def wait_phase(log: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The status reads made after the last training was triggered."""
    triggers = [i for i, e in enumerate(log) if e["method"] == "PUT" and e["path"].endswith("/train")]
    return [e for e in log[triggers[-1] + 1 :] if is_poll(e)] if triggers else []


# -- S3 and SQS ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_moto() -> tuple[subprocess.Popen[bytes], int]:
    """Start ``moto.server`` on a free port; another port if the first was taken meanwhile."""
    for _ in range(3):
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while server.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return server, port
            except OSError:
                time.sleep(0.1)
        server.kill()
        server.wait()
    raise RuntimeError("the moto server did not start")


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server (S3, SQS) in a child process on a free loopback port; yields its endpoint.

    Its own process, like the emulator's: with the server in this process, loading
    10,000 objects competes for one GIL with the client (~400 puts/s instead of ~650).
    """
    server, port = _start_moto()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def aws_client(service: str, endpoint: str) -> Any:
    """A boto3 client on the moto server (moto accepts any key pair)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(max_pool_connections=32),  # the loaders use 16 threads
    )


# -- Prefect --------------------------------------------------------------------------------

_HARNESS_DEPTH = 0


@contextlib.contextmanager
def prefect_harness() -> Iterator[None]:
    """Prefect's ephemeral test server, started once per process (nested calls reuse it).

    With ``BENCH_PREFECT_API_URL`` set, the benchmarks use that running server instead
    of starting one (~20-35 s on a busy 2-core machine): the smoke test passes the
    pytest session's harness.
    """
    global _HARNESS_DEPTH
    if _HARNESS_DEPTH:
        _HARNESS_DEPTH += 1
        try:
            yield
        finally:
            _HARNESS_DEPTH -= 1
        return
    if url := os.environ.get("BENCH_PREFECT_API_URL"):
        from prefect.settings import PREFECT_API_URL, temporary_settings

        server: contextlib.AbstractContextManager[Any] = temporary_settings(updates={PREFECT_API_URL: url})
    else:
        from prefect.testing.utilities import prefect_test_harness

        server = prefect_test_harness(server_startup_timeout=90)
    with server:
        _HARNESS_DEPTH = 1
        try:
            yield
        finally:
            _HARNESS_DEPTH = 0


# -- images ---------------------------------------------------------------------------------


def noisy_pngs(count: int, nbytes: int, *, seed: int = 0) -> list[Path]:
    """``count`` distinct PNGs of about ``nbytes`` each, made of noise so PNG cannot shrink them.

    Generated once and cached in :data:`CACHE`. The content depends only on the
    arguments, so concurrent runs may share the cache: each writes its own temporary
    file and renames it into place.
    """
    from PIL import Image

    folder = CACHE / f"png-{count}x{nbytes}-{seed}"
    paths = [folder / f"img-{i:03d}.png" for i in range(count)]
    if all(p.is_file() for p in paths):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    side = int((nbytes / 3) ** 0.5)
    rng = random.Random(seed)
    for path in paths:
        noise = rng.randbytes(side * side * 3)  # drawn even for a cached file: the next ones stay the same
        if path.is_file():
            continue
        image = Image.frombytes("RGB", (side, side), noise)
        partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        # Level 1: noise does not compress anyway, and level 6 would take seconds per 8 MB image.
        image.save(partial, format="PNG", compress_level=1)
        partial.replace(path)
    return paths


# -- results --------------------------------------------------------------------------------


@dataclass
class Row:
    """One measured quantity, contender against baseline, and its target.

    ``limit`` applies to the ratio contender/baseline when ``on_ratio``, else to the
    contender's value; ``at_most`` says which side of the limit passes.
    """

    bench: str
    case: str
    metric: str
    unit: str
    contender: float | None
    baseline: float | None = None
    limit: float | None = None
    on_ratio: bool = True
    at_most: bool = True
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.contender is None or not self.baseline:
            return None
        return self.contender / self.baseline

    @property
    def target(self) -> str:
        if self.limit is None:
            return ""
        sign = "≤" if self.at_most else "≥"
        return f"{sign} {self.limit:g}×" if self.on_ratio else f"{sign} {self.limit:g} {self.unit}"

    @property
    def passed(self) -> bool | None:
        value = self.ratio if self.on_ratio else self.contender
        if self.limit is None or value is None:
            return None
        return value <= self.limit if self.at_most else value >= self.limit

    def to_dict(self) -> dict[str, Any]:
        if SMOKE:  # tiny sizes measure nothing: no target is judged
            return {**asdict(self), "limit": None, "ratio": self.ratio, "target": "", "passed": None}
        return {**asdict(self), "ratio": self.ratio, "target": self.target, "passed": self.passed}


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def p95(values: Sequence[float]) -> float:
    """The 95th percentile (inclusive: within the values measured); the value itself for one.

    >>> p95([float(v) for v in range(1, 21)])
    19.05
    """
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=20, method="inclusive")[18])


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


def mark(passed: bool | None) -> str:
    return {True: "PASS", False: "MISS", None: ""}[passed]


def print_rows(rows: Sequence[dict[str, Any]]) -> None:
    """The rows as an aligned text table, each ratio next to its target."""
    for row in rows:
        ratio = f"{row['ratio']:.2f}×" if row["ratio"] is not None else ""
        print(
            f"  {row['bench']:<11} {row['case']:<18} {row['metric']:<34} "
            f"{_fmt(row['contender']):>8} vs {_fmt(row['baseline']):>8} {row['unit']:<5} "
            f"{ratio:>7}  {row['target']:<10} {mark(row['passed'])}" + (f"  ({row['note']})" if row["note"] else "")
        )
    sys.stdout.flush()


def timestamp() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def run_alone(run: Callable[[], list[dict[str, Any]]]) -> None:
    """``python -m benchmarks.bench_x``: one benchmark in Prefect's harness, its rows printed."""
    with prefect_harness():
        rows = run()
    print_rows(rows)
