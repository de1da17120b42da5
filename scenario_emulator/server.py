"""Running the emulator: a background uvicorn server for tests, and the CLI.

``prefect-scenario emulator`` serves the API on ``http://HOST:PORT/v1``::

    prefect-scenario emulator --port 8787 --api-key KEY --api-secret SECRET \\
        --queue-seconds 2 --train-seconds 20 --db /tmp/emulator.db \\
        --parallel-trainings 1 --team-image-cap 100 --trigger-cooldown 30

The three plan limits (:mod:`.limits`) are off unless given.

Without ``--api-key``/``--api-secret`` (or ``SCENARIO_EMULATOR_API_KEY`` /
``SCENARIO_EMULATOR_API_SECRET``) it accepts the documented default pair
``emulator-key`` / ``emulator-secret``. It prints the variables that point
``prefect-scenario`` at it, the local test secret included (``--print-env``: only
those lines, then exit, for ``eval``); requests are never logged with it.

The server speaks HTTP/1.1 through :class:`DroppableH11Protocol`, which lets the
fault injector close a connection without an answer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from scenario_emulator.app import EmulatorApp, create_app
from scenario_emulator.config import DEFAULT_API_KEY, DEFAULT_API_SECRET, TRANSPORT_STATE_KEY, EmulatorConfig
from scenario_emulator.faults import FaultConfig
from scenario_emulator.limits import PlanLimits

__all__ = ["DroppableH11Protocol", "EmulatorServer", "build_parser", "config_from_args", "env_lines", "main"]


class DroppableH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with the connection's transport in each request's ``scope["state"]``.

    uvicorn copies ``app_state`` into ``scope["state"]`` for every request. The dict
    is shared by all connections, so each connection takes its own copy before
    adding its transport.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.app_state = {**self.app_state, TRANSPORT_STATE_KEY: transport}
        super().connection_made(transport)


def _uvicorn_config(app: EmulatorApp, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http=DroppableH11Protocol,
        lifespan="off",
        log_level=log_level,
        log_config=None,  # leave the host process's logging (Prefect's) alone
        access_log=False,
        timeout_graceful_shutdown=2,
    )


def _bind(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP, and without it every answer waits ~40 ms on delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class EmulatorServer:
    """The emulator on a real socket, served from a background thread.

    Args:
        config: The emulator's settings.
        host: The address to listen on.
        port: The port; 0 picks a free one.
        log_level: uvicorn's log level.

    Example:
        >>> import httpx
        >>> with EmulatorServer(EmulatorConfig(api_key="k", api_secret="s")) as server:
        ...     httpx.get(f"{server.root_url}/_emulator/health").json()["status"]
        'ok'
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.app = create_app(config)
        self.host = host
        self._requested_port = port
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.port = 0

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT``, where the admin routes live."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``, the SDK's ``base_url``."""
        return f"{self.root_url}/v1"

    def start(self, timeout: float = 10.0) -> Self:
        """Start serving; return once the server accepts connections.

        Raises:
            RuntimeError: the server was stopped before (make a new one), or did not
                start within ``timeout`` seconds.
        """
        if self._stopped:
            raise RuntimeError("a stopped EmulatorServer cannot restart: its store is closed")
        sock = _bind(self.host, self._requested_port)
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(_uvicorn_config(self.app, self._log_level))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="scenario-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving and close the store."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None
        self._stopped = True
        self.app.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- controls, the same as the app's ------------------------------------------------

    def requests(self) -> list[dict[str, Any]]:
        """The request log (see :meth:`EmulatorApp.requests`)."""
        return self.app.requests()

    def set_faults(self, config: FaultConfig | None = None, **changes: Any) -> FaultConfig:
        """Replace the fault settings (see :meth:`EmulatorApp.set_faults`)."""
        return self.app.set_faults(config, **changes)

    def reset(self) -> None:
        """Forget all state and logged requests."""
        self.app.reset()

    def set_limits(self, limits: PlanLimits | None = None, **changes: Any) -> PlanLimits:
        """Replace the plan limits (see :meth:`EmulatorApp.set_limits`)."""
        return self.app.set_limits(limits, **changes)

    def advance_clock(self, seconds: float) -> float:
        """Move the emulator's clock forward."""
        return self.app.advance_clock(seconds)

    def fail_training(
        self, *, model_id: str | None = None, name: str | None = None, reason: str | None = None
    ) -> dict[str, Any]:
        """Make a training fail (see :meth:`EmulatorApp.fail_training`)."""
        return self.app.fail_training(model_id=model_id, name=name, reason=reason)


# -- the CLI ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``prefect-scenario emulator`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="prefect-scenario emulator",
        description="Serve a local emulator of Scenario's LoRA training API on http://HOST:PORT/v1.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    add("--port", type=int, default=8787, help="port to listen on, 0 for a free one (default: %(default)s)")
    add(
        "--api-key",
        default=os.environ.get("SCENARIO_EMULATOR_API_KEY", DEFAULT_API_KEY),
        help=f"API key to accept (env SCENARIO_EMULATOR_API_KEY; default {DEFAULT_API_KEY!r})",
    )
    add(
        "--api-secret",
        default=os.environ.get("SCENARIO_EMULATOR_API_SECRET", DEFAULT_API_SECRET),
        help=f"API secret to accept (env SCENARIO_EMULATOR_API_SECRET; default {DEFAULT_API_SECRET!r})",
    )
    add("--project-id", default="proj_emulator", help="project used when a request has no projectId")
    add("--queue-seconds", type=float, default=3.0, help="time in queued-for-train (default: %(default)s)")
    add("--start-seconds", type=float, default=2.0, help="time in starting-train (default: %(default)s)")
    add("--train-seconds", type=float, default=15.0, help="time in running-train (default: %(default)s)")
    add("--db", default=None, help="SQLite file that keeps state across restarts (default: in memory)")
    add("--fail-name", action="append", default=[], help="a model name whose trainings fail (repeatable)")
    add("--latency", type=float, default=0.0, help="seconds added to every /v1 request")
    add("--error-rate", type=float, default=0.0, help="probability of a 503 answer")
    add("--rate-limit-rate", type=float, default=0.0, help="probability of a 429 answer")
    add("--drop-before-rate", type=float, default=0.0, help="probability of dropping a request before the work")
    add("--drop-after-rate", type=float, default=0.0, help="probability of dropping the answer after the work")
    add("--slow-rate", type=float, default=0.0, help="probability of a latency spike")
    add("--slow-seconds", type=float, default=0.0, help="length of a latency spike")
    add("--seed", type=int, default=None, help="seed for the fault injector")
    add("--parallel-trainings", type=int, default=None, help="plan limit: models training at once (default: no limit)")
    add("--team-image-cap", type=int, default=None, help="plan limit: training images in the team (default: no limit)")
    add("--trigger-cooldown", type=float, default=0.0, help="plan limit: seconds between launches (default: 0)")
    add("--webhook-host", action="append", default=[], help="a host webhooks may be delivered to, besides loopback")
    add("--log-level", default="warning", help="uvicorn log level (default: %(default)s)")
    add(
        "--print-env",
        action="store_true",
        help='print the export lines for these settings and exit: eval "$(prefect-scenario emulator --print-env)"',
    )
    return parser


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The emulator settings a parsed command line asks for.

    Raises:
        ValueError: an invalid fault setting or plan limit.
    """
    faults = FaultConfig(
        latency_seconds=args.latency,
        error_rate=args.error_rate,
        rate_limit_rate=args.rate_limit_rate,
        drop_before_rate=args.drop_before_rate,
        drop_after_rate=args.drop_after_rate,
        slow_rate=args.slow_rate,
        slow_seconds=args.slow_seconds,
        seed=args.seed,
    )
    config = EmulatorConfig(
        api_key=args.api_key,
        api_secret=args.api_secret,
        default_project_id=args.project_id,
        queue_seconds=args.queue_seconds,
        start_seconds=args.start_seconds,
        train_seconds=args.train_seconds,
        faults=faults,
        fail_names=tuple(args.fail_name),
        db_path=args.db,
        parallel_trainings=args.parallel_trainings,
        team_image_cap=args.team_image_cap,
        trigger_cooldown=args.trigger_cooldown,
        webhook_hosts=("127.0.0.1", "localhost", "::1", *args.webhook_host),
    )
    config.plan_limits()  # validated here, so a bad flag is a usage error
    return config


def env_lines(base_url: str, config: EmulatorConfig) -> list[str]:
    """The ``export`` lines that point this project at the emulator: exactly the variables
    :meth:`prefect_scenario.credentials.ScenarioCredentials.from_env` reads.

    The secret is the emulator's own local test secret, never a user's: printing it is what
    lets ``eval "$(prefect-scenario emulator --print-env)"`` or a copy-paste work.

    Example:
        >>> env_lines("http://127.0.0.1:8787/v1", EmulatorConfig())[0]
        'export SCENARIO_BASE_URL=http://127.0.0.1:8787/v1'
    """
    values = {
        "SCENARIO_BASE_URL": base_url,
        "SCENARIO_API_KEY": config.api_key,
        "SCENARIO_API_SECRET": config.api_secret,
        "SCENARIO_PROJECT_ID": config.default_project_id,
    }
    return [f"export {name}={shlex.quote(value)}" for name, value in values.items()]


def _banner(base_url: str, config: EmulatorConfig) -> str:
    return "\n".join(
        [
            f"Scenario API emulator on {base_url}",
            "Point prefect-scenario at it (a local test key and secret, not a Scenario account's):",
            *(f"  {line}" for line in env_lines(base_url, config)),
            f"Admin: {base_url.removesuffix('/v1')}/_emulator/health, /_emulator/requests, /_emulator/faults,"
            " /_emulator/limits",
        ]
    )


def _serve(app: EmulatorApp, sock: socket.socket, log_level: str) -> None:
    uvicorn.Server(_uvicorn_config(app, log_level)).run(sockets=[sock])


def main(
    argv: Sequence[str] | None = None, *, serve: Callable[[EmulatorApp, socket.socket, str], None] | None = None
) -> int:
    """Run ``prefect-scenario emulator``; blocks until interrupted.

    Args:
        argv: The arguments after ``emulator``.
        serve: Runs the app on the bound socket; default: uvicorn, until interrupted.

    Returns:
        The exit status.
    """
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    if args.print_env:
        if args.port == 0:
            parser.error("--print-env needs the --port the emulator will listen on, not 0")
        print("\n".join(env_lines(f"http://{args.host}:{args.port}/v1", config)))
        return 0
    sock = _bind(args.host, args.port)
    app = create_app(config)
    print(_banner(f"http://{args.host}:{sock.getsockname()[1]}/v1", config))
    sys.stdout.flush()
    try:
        (serve or _serve)(app, sock, args.log_level)
    finally:
        app.close()
        sock.close()
    return 0
