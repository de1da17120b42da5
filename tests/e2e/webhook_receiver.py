"""The webhook fast path on the engine: a registered endpoint and ``prefect-scenario webhook-receiver`` as a process.

What production runs, through the project's own commands with the engine's environment
(``engine.env()``: the Prefect server's URL and the ``SCENARIO_*`` variables):

1. ``prefect-scenario webhooks register --url http://127.0.0.1:PORT/scenario --block NAME``
   creates the emulator's project endpoint and saves the ``ScenarioWebhook`` block on the
   engine's Prefect server;
2. ``prefect-scenario webhook-receiver --host 127.0.0.1 --port PORT --block NAME`` serves it,
   its log in a file (one line per delivery hinted, refused or done);
3. the emulator's dispatcher delivers each training's ``model.training.*`` events to it when
   the training starts and when it ends (its clock moving counts), never because of a read.

Used by ``tests/e2e/test_webhook_e2e.py`` and the full mode of ``benchmarks/bench_suspend.py``.
On the way out the endpoint is deleted, so the engine's other tests get no deliveries to a
port nobody listens on.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from scenario_emulator.webhooks import DeliveryRecord
from tests.e2e.engine import KEY, PROJECT, ROOT, SECRET, Engine, wait_until
from tests.e2e.prefect_server import BIN, _free_port, start_process, stop_process

__all__ = ["Receiver", "webhook_receiver"]

COMPLETED = "model.training.completed"
# The receiver's line once a hint ran: the watcher's WatchReport, whose `resumed` lists flow-run ids.
_DONE = re.compile(r"webhook hint for (model_[\w-]+) done: (.*)$", re.MULTILINE)
_RESUMED = re.compile(r"resumed=\[([^\]]*)\]")


@dataclass
class Receiver:
    """A running receiver process and the endpoint the emulator delivers to."""

    engine: Engine
    endpoint_id: str
    public_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def deliveries(self, event_type: str | None = None) -> list[DeliveryRecord]:
        """The emulator's deliveries to this endpoint (all, or of one event type), oldest first."""
        found = self.engine.emulator.app.webhooks.deliveries(self.endpoint_id)
        return [d for d in found if event_type is None or d.event_type == event_type]

    def completed_models(self) -> list[str]:
        """The model of each ``model.training.completed`` delivered, in order."""
        return [str(d.payload["data"]["modelId"]) for d in self.deliveries(COMPLETED)]

    def resumed(self) -> dict[str, list[str]]:
        """What the receiver's hints resumed, from its log: model id to the flow-run ids resumed."""
        found: dict[str, list[str]] = {}
        for model_id, report in _DONE.findall(self.log_text()):
            match = _RESUMED.search(report)
            runs = re.findall(r"'([0-9a-f-]{36})'", match.group(1)) if match else []
            found.setdefault(model_id, []).extend(runs)
        return found


def _register(engine: Engine, public_url: str, block: str) -> str:
    args = [str(BIN / "prefect-scenario"), "webhooks", "register", "--url", public_url, "--block", block]
    done = subprocess.run(args, env=engine.env(), cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    # "registered: endpoint whep_… -> http://127.0.0.1:PORT/scenario/********** (block '…')"
    match = re.match(r"registered: endpoint (\S+) -> ", done.stdout)
    if done.returncode != 0 or match is None:
        output = f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        raise RuntimeError(f"webhooks register failed ({done.returncode}): {output}")
    return match.group(1)


def _delete_endpoint(engine: Engine, endpoint_id: str) -> None:
    from prefect_scenario.api.client import ScenarioClient

    async def delete() -> None:
        async with ScenarioClient(
            api_key=KEY, api_secret=SECRET, project_id=PROJECT, base_url=engine.emulator.base_url
        ) as client:
            await client.delete_webhook_endpoint(endpoint_id)

    asyncio.run(delete())


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def webhook_receiver(engine: Engine, log_dir: Path, *, startup_timeout: float = 240.0) -> Iterator[Receiver]:
    """Register an endpoint for a receiver on a free loopback port, run the receiver, yield both."""
    port = _free_port()
    root = f"http://127.0.0.1:{port}"
    public_url = f"{root}/scenario"
    block = f"e2e-webhook-{uuid.uuid4().hex[:8]}"
    endpoint_id = _register(engine, public_url, block)
    log = log_dir / f"webhook-receiver-{port}.log"
    args = [str(BIN / "prefect-scenario"), "webhook-receiver", "--host", "127.0.0.1", "--port", str(port)]
    process = start_process([*args, "--block", block], engine.env(), log)
    try:

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the receiver exited ({process.returncode}): {log.read_text()[-2000:]}")
            return _healthy(root)

        wait_until(up, timeout=startup_timeout, what="the webhook receiver to answer /healthz")
        yield Receiver(engine, endpoint_id, public_url, process, log)
    finally:
        stop_process(process)
        _delete_endpoint(engine, endpoint_id)
