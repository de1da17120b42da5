"""The README's deployment recipe, copied from the README and run as written on a fresh Prefect
server, with the emulator's printed variables; the trained run's artifacts are read back.

Two substitutions only: a free port for the emulator's 8787, and the test's own image folder
for ``images/``. Background commands (``&``) are started and stopped by the test. The recipe's
``prefect-scenario watch`` service (no flow runs) resumes the suspended run.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.e2e.prefect_server import BIN, PrefectServer, running, start_process, stop_process
from tests.e2e.test_retraining_e2e import wait_for

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- recipe: local-deployments -->"


def recipe() -> list[str]:
    """The README's recipe block, one command per entry (continuation lines joined)."""
    text = (ROOT / "README.md").read_text()
    block = text.split(MARKER, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    joined = block.replace("\\\n", " ")
    return [re.sub(r"\s+#.*$", "", line).strip() for line in joined.splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def artifacts_of(server: PrefectServer, flow_run_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = server.post(
        "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}
    )
    return found


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_the_readme_recipe_trains_one_lora_through_the_suspended_deployment(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for i in (1, 2):
        Image.new("RGB", (64, 64), (i * 90, 40, 120)).save(images / f"hero-{i}.png", "PNG")
    port = str(free_port())
    (home := tmp_path / "prefect-home").mkdir()
    with running(home) as server:
        env = server.env(PREFECT_WORKER_QUERY_SECONDS="2", PREFECT_WORKER_PREFETCH_SECONDS="5")
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # as in an activated virtualenv
        exports = ""
        background: list[subprocess.Popen[bytes]] = []
        try:
            for number, command in enumerate(recipe()):
                command = command.replace("8787", port).replace("images/", f"{images}/")
                if command.endswith("&"):
                    script = f"{exports}exec {command[:-1]}"
                    background.append(start_process(["bash", "-c", script], env, tmp_path / f"bg-{number}.log"))
                    continue
                if command.startswith("eval "):
                    wait_for(lambda: port_open(int(port)), timeout=60, what="the emulator")
                    exports += command + "\n"
                done = subprocess.run(["bash", "-c", exports + command], env=env, cwd=ROOT, capture_output=True,
                                      text=True, timeout=240, check=False)  # fmt: skip
                assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
            run = only_train_lora_run(server)
            state = wait_for(lambda: finished(server, run), timeout=420, what="the suspended run to finish")
            assert state == "COMPLETED", state
            artifacts = artifacts_of(server, run)
            kinds = {a["type"] for a in artifacts}
            assert {"progress", "markdown"} <= kinds, artifacts
            (progress,) = [a for a in artifacts if a["type"] == "progress"]
            assert progress["data"] == 100.0
            # The run's own log in the UI: a normal suspension reads INFO, and nothing reads ERROR.
            logs = server.post("/logs/filter", {"logs": {"flow_run_id": {"any_": [run]}}, "limit": 200})
            assert not [entry["message"] for entry in logs if entry["level"] >= 40], logs
            suspended = [e for e in logs if e["message"].startswith("Finished in state Suspended")]
            assert suspended and {e["level"] for e in suspended} == {20}, logs
        finally:
            for process in background:
                stop_process(process, grace=15)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def only_train_lora_run(server: PrefectServer) -> str:
    (deployment,) = [d for d in server.post("/deployments/filter", {}) if d["name"] == "local-train-lora"]
    body = {"flow_runs": {"deployment_id": {"any_": [deployment["id"]]}}}
    (run,) = server.post("/flow_runs/filter", body)
    return str(run["id"])


def finished(server: PrefectServer, run_id: str) -> str | None:
    state = server.get(f"/flow_runs/{run_id}")["state"]["type"]
    return state if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None
