"""Under CPU load, the sensor `prefect-scenario serve` deploys never piles up.

A real Prefect server, moto's S3 server with two small curated datasets, the emulator,
and `prefect-scenario serve --interval 2` beside two CPU-bound busy processes: a cycle
takes longer than the interval, so the next one falls due while it runs. The deployment's
limit of one with ``CANCEL_NEW`` cancels that one instead of starting another process.
From the sensor runs' state histories: never two cycles RUNNING at once, every collision
CANCELLED without running; the serving process tree's summed RSS stays bounded (the old
pile-up, a process per late cycle, reached ~4 GB).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from scenario_emulator import EmulatorConfig, EmulatorServer
from tests.e2e.engine import wait_until
from tests.e2e.prefect_server import BIN, PrefectServer, running, start_process
from tests.e2e.test_retraining_e2e import KEY, SECRET, save_blocks
from tests.s3_fixtures import make_bucket, put_png

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "studio-assets"
SENSOR = "s3-curated-images-sensor"
LIMIT_REACHED = "Deployment concurrency limit reached."
WINDOW_SECONDS = 60.0
PEAK_RSS_BOUND_MB = 1000


class PeakTreeRss(threading.Thread):
    """Samples the summed RSS of a process and all its descendants every 0.5 s; keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_mb, self.peak_processes = pid, 0.0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(self.pid)
                total, count = 0, 0
                for process in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total, count = total + process.memory_info().rss, count + 1
                self.peak_mb = max(self.peak_mb, total / 2**20)
                self.peak_processes = max(self.peak_processes, count)


def sensor_deployment(server: PrefectServer) -> dict[str, Any] | None:
    found = server.post("/deployments/filter", {"deployments": {"name": {"any_": [SENSOR]}}})
    return found[0] if found else None


def sensor_runs(server: PrefectServer, deployment_id: str) -> list[dict[str, Any]]:
    """The sensor's runs that left SCHEDULED (the scheduler creates many ahead of time)."""
    runs: list[dict[str, Any]] = []
    body: dict[str, Any] = {
        "flow_runs": {"deployment_id": {"any_": [deployment_id]}, "state": {"type": {"not_any_": ["SCHEDULED"]}}},
        "limit": 200,
    }
    while page := server.post("/flow_runs/filter", {**body, "offset": len(runs)}):
        runs.extend(page)
    return runs


def running_intervals(states: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """From each RUNNING state to the state after it (no later state: still running)."""
    ordered = sorted(states, key=lambda s: datetime.fromisoformat(s["timestamp"]))
    times = [datetime.fromisoformat(s["timestamp"]).timestamp() for s in ordered] + [float("inf")]
    return [(times[i], times[i + 1]) for i, s in enumerate(ordered) if s["type"] == "RUNNING"]


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    # An end sorts before a start at the same instant: a handover is not an overlap.
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = peak = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def stop_serving(process: subprocess.Popen[bytes]) -> None:
    """SIGINT to its process group, then SIGKILL to whatever of the group is left (its flow-run processes)."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)


def serve_command() -> list[str]:
    return [
        *(str(BIN / "prefect-scenario"), "serve", "--bucket", BUCKET, "--prefix", "curated/"),
        *("--aws-block", "moto", "--scenario-block", "emulator", "--interval", "2", "--quiet-period", "0"),
        *("--min-images", "5", "--training-type", "flux.2-dev-lora", "--cron", "", "--watch-interval", "0"),
    ]


def measure(server: PrefectServer, serving: subprocess.Popen[bytes], tail: Callable[[], str]) -> str:
    """Wait for the first cycle, then at least the window and three completed cycles; the sensor's id."""

    def wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
        def alive_then() -> Any:
            assert serving.poll() is None, f"serve exited ({serving.returncode}):\n{tail()}"
            return check()

        try:
            return wait_until(alive_then, timeout=timeout, what=what, every=1.0)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{tail()}") from exc

    did = str(wait(lambda: sensor_deployment(server), 300, "the sensor deployment")["id"])

    def cycles(*types: str) -> int:
        return sum(r["state_type"] in types for r in sensor_runs(server, did))

    wait(lambda: cycles("RUNNING", "COMPLETED"), 300, "a first sensor cycle")
    started = time.monotonic()

    def done() -> bool:
        return time.monotonic() - started >= WINDOW_SECONDS and cycles("COMPLETED") >= 3

    wait(done, 480, f"{WINDOW_SECONDS:.0f}s and three completed sensor cycles")
    return did


@pytest.mark.timeout(900)
def test_the_served_sensor_never_piles_up_under_cpu_load(s3_client: Any, tmp_path: Path) -> None:
    make_bucket(s3_client, BUCKET)
    for dataset in ("hero", "villain"):
        for i in range(5):
            put_png(s3_client, BUCKET, f"curated/{dataset}/{i}.png", seed=len(dataset) * 10 + i)
    log = tmp_path / "serve.log"
    (home := tmp_path / "prefect-home").mkdir()

    def tail() -> str:
        return log.read_text(errors="replace")[-3000:] if log.exists() else "(no serve log)"

    config = EmulatorConfig(api_key=KEY, api_secret=SECRET, queue_seconds=0.2, start_seconds=0.1, train_seconds=1.0)
    with running(home) as server, EmulatorServer(config) as emulator:
        save_blocks(server, s3_client.meta.endpoint_url, emulator)
        busy: list[subprocess.Popen[bytes]] = []
        serving: subprocess.Popen[bytes] | None = None
        sampler: PeakTreeRss | None = None
        try:
            busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
            # PYTHONPATH: this checkout's code in serve and its flow runs, not another editable install's.
            env = server.env(PREFECT_RUNNER_POLL_FREQUENCY="1", PYTHONPATH=str(ROOT))
            serving = start_process(serve_command(), env, log)
            (sampler := PeakTreeRss(serving.pid)).start()
            deployment_id = measure(server, serving, tail)
        finally:
            if sampler is not None:
                sampler.done.set()
            if serving is not None:
                stop_serving(serving)
            for process in busy:
                process.kill()
                process.wait(timeout=30)
        check_runs(server, deployment_id, sampler, tail())


def check_runs(server: PrefectServer, deployment_id: str, sampler: PeakTreeRss, tail: str) -> None:
    deployment = server.get(f"/deployments/{deployment_id}")
    runs = sensor_runs(server, deployment_id)
    histories = {r["id"]: server.get(f"/flow_run_states/?flow_run_id={r['id']}") for r in runs}
    intervals = {run_id: running_intervals(states) for run_id, states in histories.items()}
    ran = [run_id for run_id, spans in intervals.items() if spans]
    collided = [i for i, states in histories.items() if any(s["message"] == LIMIT_REACHED for s in states)]
    queued = [i for i, states in histories.items() if any(s["name"] == "AwaitingConcurrencySlot" for s in states)]
    at_once = most_at_once([span for spans in intervals.values() for span in spans])
    report = (
        f"{len(ran)} cycles ran, {len(collided)} collided (cancelled), at most {at_once} running at once; "
        f"peak RSS {sampler.peak_mb:.0f} MB, at most {sampler.peak_processes} processes; deployment limit "
        f"{(deployment.get('global_concurrency_limit') or {}).get('limit')}, {deployment.get('concurrency_options')}"
        f"\n{tail}"
    )
    print(report)
    assert len(ran) >= 3, report
    assert at_once == 1, report
    # Each cycle takes longer than the 2 s interval here: without a collision the limit was never tested.
    assert collided and not queued and not set(collided) & set(ran), report
    assert all(r["state_type"] == "CANCELLED" for r in runs if r["id"] in collided), report
    assert sampler.peak_mb < PEAK_RSS_BOUND_MB, report
