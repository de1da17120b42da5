"""A real ``prefect server start`` process for end-to-end tests (SQLite in a temporary directory, or a given URL)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.prefect_api import request

__all__ = ["PrefectServer", "prefect_env", "running", "start_process", "stop_process"]

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prefect_env(
    home: Path, api_url: str | None = None, *, database_url: str | None = None, **extra: str
) -> dict[str, str]:
    """The environment of a process that talks to (or is) the test server.

    ``database_url`` is the server's database (default: SQLite in ``home``), e.g.
    ``postgresql+asyncpg://…`` (see ``tests/e2e/engine.py``).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_API_DATABASE_CONNECTION_URL=database_url or f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_LOGGING_LEVEL="INFO",
        **extra,
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def start_process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    # A new session, so stopping it stops its children (flow run subprocesses) too.
    return subprocess.Popen(args, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(process: subprocess.Popen[Any], *, grace: float = 10.0, kill: bool = False) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        # `prefect worker`/runners may ignore SIGTERM for a while (PREFECT-NOTES): don't wait forever.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)


class PrefectServer:
    """``prefect server start`` on a free port; ``api_url`` once healthy.

    ``database_url``: the server's database (default: SQLite in ``home``); ``settings``:
    more ``PREFECT_*`` settings of the server process.
    """

    def __init__(self, home: Path, *, database_url: str | None = None, settings: dict[str, str] | None = None) -> None:
        self.home = home
        self.database_url = database_url
        self.settings = dict(settings or {})
        self.port = _free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.log = home / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def env(self, **extra: str) -> dict[str, str]:
        return prefect_env(self.home, self.api_url, database_url=self.database_url, **extra)

    def start(self, timeout: float = 180.0) -> None:
        """Start the server and wait until it is healthy.

        The port is free when picked but may be taken before the server binds it (another
        test run on the machine): then the server is started again on a new port. The
        timeout is generous: ~16 s on a quiet 2-core machine, over 90 s at a load of 18.
        """
        for _ in range(3):
            if self._start_once(timeout):
                return
            self.port = _free_port()
            self.api_url = f"http://127.0.0.1:{self.port}/api"
        raise RuntimeError(f"prefect server could not bind a port: {self.log.read_text()[-2000:]}")

    def _start_once(self, timeout: float) -> bool:
        env = prefect_env(
            self.home,
            database_url=self.database_url,
            # Schedules and the runner's polling are tuned for a test: seconds, not minutes.
            PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="1",
            PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED="false",
            PREFECT_UI_ENABLED="false",
        )
        env.update(self.settings)
        logged = self.log.stat().st_size if self.log.exists() else 0
        self.process = start_process(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env,
            self.log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.log.read_text(errors="replace")[logged:]
                if "address already in use" in output.lower():
                    return False
                raise RuntimeError(f"prefect server exited: {output[-2000:]}")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass  # not up yet: the loop is this call's retry
            time.sleep(0.5)
        stop_process(self.process)
        raise TimeoutError(f"prefect server not healthy after {timeout}s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def post(self, path: str, body: Any) -> Any:
        """``POST`` to the API, retried on 429/502/503 and dropped connections as Prefect's client does."""
        return request("POST", f"{self.api_url}{path}", json=body).json()

    def get(self, path: str) -> Any:
        """``GET`` from the API, retried like :meth:`post`."""
        return request("GET", f"{self.api_url}{path}").json()


@contextmanager
def running(home: Path) -> Iterator[PrefectServer]:
    server = PrefectServer(home)
    try:
        server.start()
        yield server
    finally:
        server.stop()
