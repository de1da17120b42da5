"""No key, no secret, no ``Authorization`` token in anything a run leaves behind.

The flows run (standard, edit, one that fails, one refused with 401; by block
object and by saved block name; and the CLI) with a distinctive key, secret and
W&B key. Then everything they left is read back and searched:

- log records captured in this process at DEBUG (ours, Prefect's, httpx's);
- the Prefect API: logs, flow runs and their states, task runs and their states,
  artifacts, events, block documents (as the UI reads them, without secrets);
- the Prefect database file itself, byte for byte (SQLite and its WAL);
- the raised exceptions: ``str``, ``repr``, traceback, pickle;
- reprs and dumps of the credentials block, the client and its headers, the results;
- the CLI's stdout and stderr.

Needles: the key, the secret, ``base64(key:secret)`` (the ``Authorization`` value),
a wrong secret and its token, and the W&B key. Expected occurrences: 0.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import pickle
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler
from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

from prefect_scenario import exceptions as exc
from prefect_scenario.cli import main
from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.training.flows import train_edit_lora, train_lora
from scenario_emulator import EmulatorConfig, EmulatorServer
from tests.flow_fixtures import FAST_POLL
from tests.reliability._support import PROJECT, seeded_pngs

pytestmark = pytest.mark.usefixtures("prefect_harness")

KEY = "psc-leak-key-Q7Z9K2"
SECRET = "psc-leak-secret-X4T8W2M6"
WRONG = "psc-leak-wrong-J3R5V1"
WANDB = "psc-leak-wandb-N8P2L4C7"


def _token(key: str, secret: str) -> str:
    return base64.b64encode(f"{key}:{secret}".encode()).decode()


NEEDLES = {
    "key": KEY,
    "secret": SECRET,
    "basic token": _token(KEY, SECRET),
    "wrong secret": WRONG,
    "wrong token": _token(KEY, WRONG),
    "wandb key": WANDB,
}
FOUND: dict[str, int] = {}  # source → occurrences, over the whole module


def scan(source: str, haystack: str | bytes) -> list[str]:
    """The needles found in ``haystack`` (recorded under ``source``)."""
    text = haystack if isinstance(haystack, bytes) else haystack.encode("utf-8", "backslashreplace")
    hits = [name for name, needle in NEEDLES.items() if needle.encode() in text]
    FOUND[source] = FOUND.get(source, 0) + sum(text.count(NEEDLES[h].encode()) for h in hits)
    return hits


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    config = EmulatorConfig(
        api_key=KEY, api_secret=SECRET, queue_seconds=0.05, start_seconds=0.05, train_seconds=0.2,
        queue_position=1, fail_names=("doomed",), fail_reason="out of memory at epoch 3",
    )  # fmt: skip
    with EmulatorServer(config) as server:
        yield server


def credentials(server: EmulatorServer, secret: str = SECRET) -> ScenarioCredentials:
    return ScenarioCredentials(
        api_key=KEY,  # type: ignore[arg-type]
        api_secret=secret,  # type: ignore[arg-type]
        project_id=PROJECT,
        base_url=server.base_url,
        timeout=5.0,
    )


def _images(tmp: Path, seed: int, n: int) -> list[str]:
    paths = []
    for i, data in enumerate(seeded_pngs(seed, n)):
        path = tmp / f"{seed}-{i}.png"
        path.write_bytes(data)
        paths.append(str(path))
    return paths


async def test_the_cli_prints_no_secret(
    emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SCENARIO_API_KEY", KEY)
    monkeypatch.setenv("SCENARIO_API_SECRET", SECRET)
    monkeypatch.setenv("SCENARIO_PROJECT_ID", PROJECT)
    monkeypatch.setenv("SCENARIO_BASE_URL", emulator.base_url)
    images = _images(tmp_path, 31, 2)
    # The CLI runs its own event loop: give it a thread, as a terminal would give it a process.
    train = ["train", "--type", "flux.2-klein-4b-lora", "--name", "leak-cli", "--param", f"wandbKey={WANDB}", *images]
    assert await asyncio.to_thread(main, train) == 0
    out = capsys.readouterr().out
    model_id = next(line.split('"')[3] for line in out.splitlines() if '"model_id"' in line)
    assert await asyncio.to_thread(main, ["status", model_id]) == 0
    assert await asyncio.to_thread(main, ["cancel", model_id]) == 0
    monkeypatch.setenv("SCENARIO_API_SECRET", WRONG)
    assert await asyncio.to_thread(main, ["status", model_id]) == 1
    assert await asyncio.to_thread(main, [*train, "--force"]) == 1
    printed = capsys.readouterr()
    assert "HTTP 401" in printed.err
    assert scan("cli stdout", out + printed.out) == []
    assert scan("cli stderr", printed.err) == []
    assert scan("log records (cli)", "\n".join(_format(r) for r in caplog.records)) == []


def _format(record: logging.LogRecord) -> str:
    text = f"{record.name} {record.levelname} {record.getMessage()} {record.args!r}"
    if record.exc_info and record.exc_info[1] is not None:
        text += "".join(traceback.format_exception(record.exc_info[1]))
    return text


async def test_a_run_leaves_no_secret_behind(
    emulator: EmulatorServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    creds = credentials(emulator)
    await creds.save("psc-leak-credentials", overwrite=True)
    pairs = [(a, b, "make it snowy") for a, b in zip(*[iter(_images(tmp_path, 32, 4))] * 2, strict=True)]
    states = [
        await train_lora(
            name="leak-standard", training_type="flux.2-klein-4b-lora", images=_images(tmp_path, 33, 3),
            credentials=creds, parameters={"nbEpochs": 2, "wandbKey": WANDB}, poll_policy=FAST_POLL,
            return_state=True,
        ),
        await train_edit_lora(
            name="leak-edit", training_type="qwen-image-edit-2511-lora", pairs=pairs,
            credentials=await ScenarioCredentials.aload("psc-leak-credentials"), poll_policy=FAST_POLL,
            return_state=True,
        ),
        await train_lora(
            name="doomed", training_type="flux.2-klein-4b-lora", images=_images(tmp_path, 34, 2),
            credentials=creds, poll_policy=FAST_POLL, return_state=True,
        ),
        await train_lora(
            name="leak-401", training_type="flux.2-klein-4b-lora", images=_images(tmp_path, 35, 2),
            credentials=credentials(emulator, WRONG), poll_policy=FAST_POLL, return_state=True,
        ),
    ]  # fmt: skip
    assert [s.type.value for s in states] == ["COMPLETED", "COMPLETED", "FAILED", "FAILED"]
    results = [await s.result(raise_on_failure=False) for s in states]
    assert isinstance(results[2], exc.TrainingFailed) and isinstance(results[3], exc.AuthenticationError)
    with pytest.raises(exc.AuthenticationError) as raised:
        await train_lora(
            name="leak-401", training_type="flux.2-klein-4b-lora", images=_images(tmp_path, 35, 2),
            credentials=credentials(emulator, WRONG),
        )  # fmt: skip
    run_ids = [UUID(str(s.state_details.flow_run_id)) for s in states]
    await APILogHandler.aflush()

    found: dict[str, list[str]] = {}

    def check(source: str, haystack: str | bytes) -> None:
        if hits := scan(source, haystack):
            found[source] = hits

    # -- in this process ------------------------------------------------------------------------------
    check("log records", "\n".join(_format(r) for r in caplog.records))
    for number, error in enumerate([results[2], results[3], raised.value]):
        check(f"exception {number} str/repr", f"{error}\n{error!r}\n{vars(error)!r}")
        check(f"exception {number} traceback", "".join(traceback.format_exception(error)))
        check(f"exception {number} pickle", pickle.dumps(error))
        check(f"exception {number} unpickled", repr(vars(pickle.loads(pickle.dumps(error)))))
    client = creds.get_client()
    check("block repr/str/dump", f"{creds!r}\n{creds}\n{creds.model_dump()!r}\n{creds.model_dump_json()}")
    check("block vars", repr(vars(creds)))
    check("client repr", f"{client!r}\n{client._http!r}\n{client._http.headers!r}\n{client._http.auth!r}")
    await client.aclose()
    for result in results[:2]:
        check("results", f"{result!r}\n{result.model_dump_json()}")

    # -- the Prefect API -----------------------------------------------------------------------------
    async with get_client() as prefect:
        logs = await prefect.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids)), limit=200)
        assert any("training started" in log.message for log in logs), "the flows' own logs were read back"
        check("prefect logs", "\n".join(log.model_dump_json() for log in logs))
        runs = await prefect.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)))
        check("flow runs (parameters, tags, state)", "\n".join(r.model_dump_json() for r in runs))
        standard = next(r for r in runs if r.id == run_ids[0])
        assert standard.parameters["parameters"] == {"nbEpochs": 2, "wandbKey": "**********"}
        for run_id in run_ids:
            states_text = "\n".join(s.model_dump_json() for s in await prefect.read_flow_run_states(run_id))
            check("flow run states", states_text)
            task_runs = await prefect.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
            check("task runs", "\n".join(t.model_dump_json() for t in task_runs))
            for task_run in task_runs:
                task_states = await prefect.read_task_run_states(task_run.id)
                check("task run states", "\n".join(s.model_dump_json() for s in task_states))
        artifacts = await prefect.read_artifacts()
        assert artifacts, "the flows published artifacts"
        check("artifacts", "\n".join(a.model_dump_json() for a in artifacts))
        events = await _events(prefect)
        check("events", events)
        blocks = await prefect.read_block_documents(include_secrets=False)
        check("block documents", "\n".join(b.model_dump_json() for b in blocks))
        # Positive control: the scan finds a secret where one is meant to be (a block read with its secrets).
        revealed = await prefect.read_block_documents(include_secrets=True)
        assert SECRET in "\n".join(str(b.data) for b in revealed)

    # -- the database file, byte for byte --------------------------------------------------------------
    url = str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value())
    database = Path(url.split("///", 1)[1])
    files = {path.name: path.read_bytes() for path in sorted(database.parent.glob(database.name + "*"))}
    assert any(b"train-lora-leak-standard" in data for data in files.values()), "this is the database the runs used"
    for name, data in files.items():
        check(f"database file {name}", data)

    assert found == {}, f"secrets found: {found}"
    assert sum(FOUND.values()) == 0


async def _events(prefect: Any) -> str:
    """Every event the server has persisted so far, as JSON (waits for ours to land)."""
    for _ in range(50):
        page = await prefect.read_events(limit=50)
        texts = [e.model_dump_json() for e in page.events]
        while page.next_page is not None and len(texts) < 5000:
            page = await prefect.read_events_page(str(page.next_page))
            texts += [e.model_dump_json() for e in page.events]
        if any("scenario.training.completed" in t for t in texts):
            return "\n".join(texts)
        await asyncio.sleep(0.2)
    pytest.fail("the training events never reached the Prefect server")
