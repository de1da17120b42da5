"""The Prefect server ``prefect-scenario demo`` talks to, and the demo's quiet logging.

The demo starts its own ``prefect server start`` on a free port and waits up to 10 minutes
for it, saying so after 20 s: Prefect's ephemeral server gives up after 20 s by default
(``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS``), which a busy 2-core machine can
exceed. ``PREFECT_UI_API_URL`` is set, since the UI of a server off port 4200 otherwise
calls port 4200; with ``--ui`` the server stays up after the flows so their artifacts
can be seen.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

__all__ = ["STARTUP_TIMEOUT_SECONDS", "DemoError", "LocalPrefectServer", "quiet_prefect"]

STARTUP_TIMEOUT_SECONDS = 600.0
_SLOW_AFTER_SECONDS = 20.0


class DemoError(Exception):
    """A demo step failed; the message is the one line the user sees, with what to do."""


@contextmanager
def quiet_prefect(api_url: str) -> Iterator[None]:
    """Prefect pointed at ``api_url``, its terminal output at WARNING, run logs still sent to the UI.

    The demo tells its story in its own lines: Prefect's console handler (flow and task state
    lines, hooks such as ``forget_run``), uvicorn's and moto's access logs stay quiet. Prefect
    reads its settings at import, so they are set through ``temporary_settings``.
    """
    import prefect.main  # noqa: F401 - configures Prefect's logging, which is then adjusted
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        temporary_settings,
    )

    for name in ("werkzeug", "uvicorn.access", "botocore", "moto", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in ("", "uvicorn", "prefect"):
        for handler in logging.getLogger(name).handlers:
            if not type(handler).__name__.startswith("APILog"):
                handler.setLevel(logging.WARNING)
    updates = {PREFECT_API_URL: api_url, PREFECT_SERVER_ANALYTICS_ENABLED: False,
               PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}  # fmt: skip
    with temporary_settings(updates=updates):
        yield


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPrefectServer:
    """``prefect server start`` on a free loopback port, its database and logs in ``home``."""

    def __init__(self, home: Path, *, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        self.home = home
        self.port = _free_port()
        self.timeout = timeout
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api"
        self.log = home / "prefect-server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait (bounded) until it answers ``/api/health``.

        Raises:
            DemoError: it exited, or did not answer within the timeout.
        """
        env = {**os.environ, "PREFECT_HOME": str(self.home), "PREFECT_UI_API_URL": self.api_url,
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # fmt: skip
        env.pop("PREFECT_API_URL", None)
        prefect = str(Path(sys.executable).parent / "prefect")
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        started = time.monotonic()
        warned = False
        while (elapsed := time.monotonic() - started) < self.timeout:
            if self._process is not None and self._process.poll() is not None:
                raise DemoError(f"the Prefect server exited at startup: see {self.log}, then run the demo again")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if not warned and elapsed > _SLOW_AFTER_SECONDS:
                print(f"Prefect is still starting ({elapsed:.0f} s; up to {self.timeout:.0f} s on a busy machine)...")
                warned = True
            time.sleep(0.5)
        raise DemoError(
            f"the Prefect server did not answer within {self.timeout:.0f} s (busy machine?): "
            f"see {self.log}, then run the demo again"
        )

    def stop(self) -> None:
        """Stop the server and its children."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)

    def run_url(self, flow_run_id: object) -> str:
        """The UI page of a flow run."""
        return f"{self.url}/runs/flow-run/{flow_run_id}"
