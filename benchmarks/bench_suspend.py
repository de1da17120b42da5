"""Suspend: what a training holds while Scenario trains, how soon it comes back, what the watcher costs.

**Worker-seconds held while Scenario trains.** ``wait="suspend"`` against ``wait="poll"``, 20
trainings of 60 s each, both batches at once (the same machine load) on the real engine
(``tests/e2e/engine.py``: PostgreSQL, ``prefect server``, a process pool, two ``prefect
worker`` processes) with the watcher running. A run holds its worker slot (its process; in
production its pod) while it is ``PENDING`` (the process starting) or ``RUNNING``. The first
row counts those seconds between the accepted trigger and the training's end (the emulator's
request log and ``trainingStats.endedAt``): what waiting costs, the thing ``suspend`` removes.
Goal: suspend ≤ 0.05× poll. The second row counts every held second of the run, preparation,
upload and the finish included: ``suspend`` pays a second process start there, which on a
busy 2-core machine takes far longer than on a pod with a core of its own, so for trainings
as short as 60 s it measures mostly the machine (no goal: reported for honesty).

**Resume lag.** From the training's end (the emulator's ``trainingStats.endedAt``) to the
resume (the state that follows the run's ``PAUSED`` state, written by the watcher's
``resume_flow_run``), median over the 20 suspended runs. Goal: ≤ the watcher's interval + 1 s
(one Prefect API call): the watcher is one long-lived process, no process start per cycle.

**Watcher flow runs per idle hour.** An hour of service cycles with nothing waiting (the clock
moved): flow runs created. Goal 0 (the old watcher deployment created one per cycle).

**Resume lag, webhook.** The same lag for runs resumed by Scenario's webhook deliveries alone, no
watcher running: on the engine, with ``prefect-scenario webhooks register`` and
``prefect-scenario webhook-receiver`` as a process (``tests/e2e/webhook_receiver.py``), 20
suspended runs whose trainings end in real time one after another (the emulator's clock first
jumps to just before the first end, so every run is suspended before any ends); the emulator's
dispatcher POSTs each end to the receiver, whose hint (``HintSettler``: the watcher's code with
its clients open and the suspended runs indexed) re-reads the model and resumes the run. Median
(goal ≤ 1 s) and 95th percentile (goal ≤ 1.5 s).

**Watcher requests per cycle.** One ``watch_once()`` over 100 suspended runs (one model each,
still training): every request it sends Scenario, against one status read per waiting model
(what 100 polling runs send in one round). Goal: ≤ 2.

Smoke mode starts no engine (it takes ~40 s): the held seconds are measured in Prefect's
harness, with ``wait=False`` standing in for the part a suspended run holds (prepare and
trigger), the lag on a suspended stand-in run resumed by ``watch_once()`` in this process, the
webhook lag on one resumed by the receiver served in this process, the emulator delivering.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks._common import (
    KEY,
    POLL_POLICY,
    SECRET,
    SMOKE,
    TRAINING_TYPE,
    Row,
    WaitRecord,
    credentials,
    median,
    noisy_pngs,
    p95,
    pick,
    run_alone,
    running_emulator,
    train_lora,
    watch_once,
)
from benchmarks._idle import idle_watcher_runs

BASELINE = "the same trainings with wait='poll' (held seconds); one status read per waiting model (requests)"
REPETITIONS = 1
TRAININGS: int = pick(20, 1)
TRAINING_SECONDS: float = pick(60.0, 0.2)
WAITING_MODELS: int = pick(100, 10)
WATCH_INTERVAL: float = pick(5.0, 0.2)
HELD_STATES = frozenset({"PENDING", "RUNNING"})
RUNNING = frozenset({"RUNNING"})


# -- reading Prefect's record -----------------------------------------------------------------


def _when(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def held_seconds(states: list[dict[str, Any]], held: frozenset[str] = HELD_STATES) -> float:
    """Seconds a run spent ``PENDING`` or ``RUNNING`` (its process alive), from its state history.

    ``held=RUNNING`` counts only the time the flow ran, not its process starting.

    >>> held_seconds([{"type": "PENDING", "timestamp": "2026-01-01T00:00:00Z"},
    ...               {"type": "RUNNING", "timestamp": "2026-01-01T00:00:02Z"},
    ...               {"type": "PAUSED", "timestamp": "2026-01-01T00:00:05Z"},
    ...               {"type": "SCHEDULED", "timestamp": "2026-01-01T00:01:05Z"},
    ...               {"type": "PENDING", "timestamp": "2026-01-01T00:01:06Z"},
    ...               {"type": "RUNNING", "timestamp": "2026-01-01T00:01:08Z"},
    ...               {"type": "COMPLETED", "timestamp": "2026-01-01T00:01:09Z"}])
    8.0
    """
    ordered = sorted(states, key=lambda s: _when(s["timestamp"]))
    return sum(
        _when(b["timestamp"]) - _when(a["timestamp"]) for a, b in itertools.pairwise(ordered) if a["type"] in held
    )


def held_during(states: list[dict[str, Any]], start: float, end: float) -> float:
    """Seconds a run held its process (``PENDING`` or ``RUNNING``) between ``start`` and ``end``.

    The same history as above; the training ran from 00:00:04 to 00:01:04, the run suspended
    at 00:00:05 and was resumed after the end: one second held while Scenario trained.

    >>> held_during([{"type": "PENDING", "timestamp": "2026-01-01T00:00:00Z"},
    ...              {"type": "RUNNING", "timestamp": "2026-01-01T00:00:02Z"},
    ...              {"type": "PAUSED", "timestamp": "2026-01-01T00:00:05Z"},
    ...              {"type": "SCHEDULED", "timestamp": "2026-01-01T00:01:05Z"},
    ...              {"type": "PENDING", "timestamp": "2026-01-01T00:01:06Z"},
    ...              {"type": "COMPLETED", "timestamp": "2026-01-01T00:01:09Z"}],
    ...             _when("2026-01-01T00:00:04Z"), _when("2026-01-01T00:01:04Z"))
    1.0
    """
    ordered = sorted(states, key=lambda s: _when(s["timestamp"]))
    held = 0.0
    for a, b in itertools.pairwise(ordered):
        if a["type"] in HELD_STATES:
            held += max(0.0, min(end, _when(b["timestamp"])) - max(start, _when(a["timestamp"])))
    return held


def triggered_at(requests: list[dict[str, Any]]) -> dict[str, float]:
    """When the emulator accepted each model's training trigger (not a dry run), by model id."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.e2e.engine import is_trigger, model_of

    return {model_of(r): float(r["time"]) for r in requests if is_trigger(r)}


def resumed_at(states: list[dict[str, Any]]) -> float | None:
    """When the run left its (first) ``PAUSED`` state: the resume."""
    ordered = sorted(states, key=lambda s: _when(s["timestamp"]))
    for a, b in itertools.pairwise(ordered):
        if a["type"] == "PAUSED" and b["type"] != "PAUSED":
            return _when(b["timestamp"])
    return None


def _ended_at(base_url: str, key: str, secret: str, project: str, model_id: str) -> float:
    token = base64.b64encode(f"{key}:{secret}".encode()).decode()
    request = urllib.request.Request(
        f"{base_url}/models/{model_id}?projectId={project}", headers={"Authorization": f"Basic {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        stats = json.loads(response.read())["model"]["trainingStats"]
    return _when(str(stats["endedAt"]))


def _wait_ended(base_url: str, project: str, model_id: str, timeout: float = 60.0) -> float:
    """``_ended_at`` once the training has ended (a ``wait=False`` run returns before)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(KeyError):
            return _ended_at(base_url, KEY, SECRET, project, model_id)
        if time.monotonic() > deadline:
            raise RuntimeError(f"the training of {model_id} never ended")
        time.sleep(0.1)


def _model_of(tags: Iterable[str]) -> str:
    from prefect_scenario.tags import MODEL_TAG_PREFIX, tag_values

    (model,) = tag_values(tags, MODEL_TAG_PREFIX)
    return model


# -- full mode: the real engine --------------------------------------------------------------


@contextlib.contextmanager
def _engine_training_for(train_seconds: float, prefix: str) -> Iterator[tuple[Any, Path]]:
    """The real engine (``tests/e2e/engine.py``) whose emulator trains for ``train_seconds``; and its home."""
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from scenario_emulator import EmulatorConfig
    from tests.e2e.engine import KEY as ENGINE_KEY
    from tests.e2e.engine import SECRET as ENGINE_SECRET
    from tests.e2e.engine import running_engine

    config = EmulatorConfig(
        api_key=ENGINE_KEY, api_secret=ENGINE_SECRET, queue_seconds=1.0, start_seconds=0.5,
        train_seconds=train_seconds,
    )  # fmt: skip
    home = Path(tempfile.mkdtemp(prefix=prefix))
    with running_engine(home, config=config) as engine:
        yield engine, home


@contextlib.contextmanager
def _engine() -> Iterator[Any]:
    """The engine with the watcher running (``tests/e2e/watch_loop.py``)."""
    from tests.e2e.prefect_server import start_process, stop_process

    with _engine_training_for(TRAINING_SECONDS, "bench-suspend-") as (engine, home):
        watcher = start_process(
            [sys.executable, "-m", "tests.e2e.watch_loop", "--interval", str(WATCH_INTERVAL)],
            engine.env(),
            home / "watcher.log",
        )
        try:
            yield engine
        finally:
            stop_process(watcher, kill=True)


def _batches(engine: Any, rep: str) -> dict[str, list[dict[str, Any]]]:
    """Both batches at once, interleaved: the same machine load for suspend and poll.

    One batch after the other measured the load of the moment: on a shared 2-core machine a
    flow-run process took 30 s to 2 min to start, which swamped the difference.
    """
    runs = {
        wait: [engine.start_training(f"{wait}-{rep}-{i:02d}", wait=wait) for i in range(TRAININGS)]
        for wait in ("suspend", "poll")
    }
    final = engine.wait_final([*runs["suspend"], *runs["poll"]], timeout=1500)
    bad = [r["name"] for r in final if r["state_type"] != "COMPLETED"]
    if bad:
        raise RuntimeError(f"runs did not complete: {bad}\n{engine.log_tail()}")
    by_id = {r["id"]: r for r in final}
    return {wait: [{"run": by_id[i], "states": engine.states(i)} for i in ids] for wait, ids in runs.items()}


def _on_engine() -> dict[str, Any]:
    from tests.e2e.engine import KEY as ENGINE_KEY
    from tests.e2e.engine import PROJECT
    from tests.e2e.engine import SECRET as ENGINE_SECRET

    with _engine() as engine:
        rep = uuid.uuid4().hex[:6]
        batches = _batches(engine, rep)
        suspended, polled = batches["suspend"], batches["poll"]
        triggers = triggered_at(engine.emulator_requests())
        lags = []
        waiting: dict[str, list[float]] = {"suspend": [], "poll": []}
        for wait, batch in batches.items():
            for done in batch:
                model = _model_of(done["run"]["tags"])
                ended = _ended_at(engine.emulator.base_url, ENGINE_KEY, ENGINE_SECRET, PROJECT, model)
                waiting[wait].append(held_during(done["states"], triggers[model], ended))
                if wait == "suspend":
                    resumed = resumed_at(done["states"])
                    if resumed is None:
                        raise RuntimeError(f"{done['run']['name']} was never suspended and resumed")
                    lags.append(resumed - ended)
    return {
        "suspend_waiting": median(waiting["suspend"]),
        "poll_waiting": median(waiting["poll"]),
        "suspend": median([held_seconds(d["states"]) for d in suspended]),
        "poll": median([held_seconds(d["states"]) for d in polled]),
        "suspend_running": median([held_seconds(d["states"], RUNNING) for d in suspended]),
        "poll_running": median([held_seconds(d["states"], RUNNING) for d in polled]),
        "lag": median(lags),
    }


# -- smoke mode: Prefect's harness -----------------------------------------------------------


async def _suspended_stand_in(record: WaitRecord) -> str:
    """A deployment's run in Prefect's ``Suspended`` state carrying ``record``: what ``wait="suspend"`` leaves."""
    from prefect.client.orchestration import get_client
    from prefect.states import Suspended

    async with get_client() as prefect:
        flow_id = await prefect.create_flow_from_name("bench-suspend-stand-in")
        deployment_id = await prefect.create_deployment(flow_id=flow_id, name="stand-in", entrypoint="x.py:stand_in")
        run = await prefect.create_flow_run_from_deployment(deployment_id, tags=record.tags())
        await prefect.set_flow_run_state(run.id, Suspended(timeout_seconds=3600, pause_key="bench"), force=True)
        return str(run.id)


async def _run_named(name: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    async with get_client() as prefect:
        (found,) = await prefect.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
    return str(found.id)


async def _states(run_id: str) -> list[dict[str, Any]]:
    from prefect.client.orchestration import get_client

    async with get_client() as prefect:
        found = await prefect.read_flow_run_states(uuid.UUID(run_id))
    return [{"type": s.type.value, "timestamp": s.timestamp.isoformat()} for s in found]


def _in_harness() -> dict[str, Any]:
    paths = noisy_pngs(2, 20_000, seed=7)
    images, contents = [str(p) for p in paths], [p.read_bytes() for p in paths]
    held: dict[str, float] = {}
    with running_emulator() as emulator:
        creds = credentials(emulator, f"proj_{uuid.uuid4().hex[:10]}")
        for wait in ("poll", False):
            name = f"smoke-{wait or 'none'}-{uuid.uuid4().hex[:6]}"
            result = train_lora(
                name=name, training_type=TRAINING_TYPE, images=images, credentials=creds, wait=wait,
                poll_policy=POLL_POLICY,
            )  # fmt: skip
            run_id = asyncio.run(_run_named(f"scenario-train-lora-{name}"))
            states = asyncio.run(_states(run_id))
            mode = "poll" if wait else "suspend"
            held[mode] = held_seconds(states)
            held[f"{mode}_running"] = held_seconds(states, RUNNING)
            ended = _wait_ended(emulator.base_url, creds.project_id, result.model_id)
            triggered = triggered_at(emulator.requests())[result.model_id]
            held[f"{mode}_waiting"] = held_during(states, triggered, ended)

        async def lag() -> float:
            async with creds.get_client() as client:
                model = await client.create_model(name="smoke-lag", training_type=TRAINING_TYPE)
                for i, data in enumerate(contents):
                    await client.add_training_image(model.id, name=f"{i}.png", data=data, mime_type="image/png")
                await client.train(model.id, None)
            record = WaitRecord(model_ids=(model.id,), keys=(), deadline=time.time() + 600)
            run_id = await _suspended_stand_in(record)
            deadline = time.monotonic() + 60
            while not (await watch_once(creds)).resumed:
                if time.monotonic() > deadline:
                    raise RuntimeError("the stand-in run was never resumed")
                await asyncio.sleep(WATCH_INTERVAL)
            resumed = resumed_at(await _states(run_id))
            assert resumed is not None
            return resumed - _ended_at(emulator.base_url, KEY, SECRET, creds.project_id, model.id)

        held["lag"] = asyncio.run(lag())
    return held


# -- the webhook receiver's resume lag -----------------------------------------------------------

# Full mode: the trainings last an hour of emulator time, so all runs are suspended before any
# ends (a delivery for a run not yet suspended would find nothing to resume, and no watcher
# runs); then the clock jumps to WEBHOOK_LEAD seconds before the first end, and each training
# ends in real time, as it would on Scenario, one after another.
WEBHOOK_HOLD_SECONDS = 3600.0
WEBHOOK_LEAD = 5.0


def _emulator_offset(now: float) -> float:
    """The emulator's clock minus the wall clock: ``trainingStats.endedAt`` minus this is wall time."""
    return now - time.time()


def _webhook_lag_on_engine() -> list[float]:
    """The resume lags of suspended runs resumed by webhook deliveries alone, on the real engine.

    The engine (``tests/e2e/engine.py``) without a watcher, the endpoint registered and
    ``prefect-scenario webhook-receiver`` running as a process (``tests/e2e/webhook_receiver.py``).
    """
    with _engine_training_for(WEBHOOK_HOLD_SECONDS, "bench-webhook-") as (engine, home):
        from tests.e2e.engine import KEY as ENGINE_KEY
        from tests.e2e.engine import PROJECT
        from tests.e2e.engine import SECRET as ENGINE_SECRET
        from tests.e2e.webhook_receiver import webhook_receiver

        with webhook_receiver(engine, home) as receiver:
            return _webhook_lags(engine, receiver, ENGINE_KEY, ENGINE_SECRET, PROJECT)


def _webhook_lags(engine: Any, receiver: Any, key: str, secret: str, project: str) -> list[float]:
    """Suspend ``TRAININGS`` runs, let their trainings end in real time; each run's webhook lag."""
    rep = uuid.uuid4().hex[:6]
    runs = [engine.start_training(f"webhook-{rep}-{i:02d}", wait="suspend") for i in range(TRAININGS)]
    engine.wait_suspended(runs, timeout=1500)
    models = engine.run_models(runs)
    app = engine.emulator.app
    with app.store.lock:
        ends = [t.ends_at for t in app.store.trainings.values() if t.model_id in set(models.values())]
    engine.emulator.advance_clock(max(0.0, min(ends) - app.now() - WEBHOOK_LEAD))
    final = engine.wait_final(runs, timeout=1500)
    bad = [r["name"] for r in final if r["state_type"] != "COMPLETED"]
    if bad:
        raise RuntimeError(f"runs did not complete: {bad}\n{receiver.log_text()[-3000:]}")
    offset = _emulator_offset(app.now())
    lags = []
    for run, model in models.items():
        resumed = resumed_at(engine.states(run))
        if resumed is None:
            raise RuntimeError(f"run {run} was never suspended and resumed")
        ended = _ended_at(engine.emulator.base_url, key, secret, project, model) - offset
        lags.append(resumed - ended)
    hinted = receiver.resumed()
    if sorted(r for runs_ in hinted.values() for r in runs_) != sorted(models):
        raise RuntimeError(f"the receiver did not resume each run once: {hinted}")
    return lags


def _webhook_lag_in_harness() -> list[float]:
    """The lag of one suspended stand-in run resumed by the receiver (in this process) from an emulator delivery."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks._common import build_receiver, register_webhook
    from scenario_emulator.server import _bind
    from tests.webhooks.servers import serve

    contents = [p.read_bytes() for p in noisy_pngs(2, 20_000, seed=7)]
    with running_emulator() as emulator:
        creds = credentials(emulator, f"proj_{uuid.uuid4().hex[:10]}")
        sock = _bind("127.0.0.1", 0)
        public_url = f"http://127.0.0.1:{sock.getsockname()[1]}/scenario"
        registration = asyncio.run(
            register_webhook(public_url, credentials=creds, block_name=f"bench-webhook-{uuid.uuid4().hex[:8]}")
        )

        async def lag() -> float:
            async with creds.get_client() as client:
                model = await client.create_model(name="smoke-webhook-lag", training_type=TRAINING_TYPE)
                for i, data in enumerate(contents):
                    await client.add_training_image(model.id, name=f"{i}.png", data=data, mime_type="image/png")
                # Suspended before the trigger: the end's delivery must find the run waiting.
                record = WaitRecord(model_ids=(model.id,), keys=(), deadline=time.time() + 600)
                run_id = await _suspended_stand_in(record)
                await client.train(model.id, None)
                # A generous bound for a busy machine; the lag is read from Prefect's states, not
                # from this loop. (A CI run's miss here was the receiver's thread not seeing
                # Prefect's temporary settings: fixed in tests/webhooks/servers.serve.)
                deadline = time.monotonic() + 180
                while (resumed := resumed_at(await _states(run_id))) is None:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the stand-in run was never resumed by a webhook delivery")
                    await asyncio.sleep(0.2)
                await client.delete_webhook_endpoint(registration.webhook.endpoint_id)
            ended = _ended_at(emulator.base_url, KEY, SECRET, creds.project_id, model.id)
            return resumed - (ended - _emulator_offset(emulator.now()))

        with serve(build_receiver(registration.webhook, creds), sock):
            return [asyncio.run(lag())]


# -- requests per watcher cycle ----------------------------------------------------------------


def _requests_per_cycle() -> tuple[float, float]:
    """(requests one ``watch_once`` sends for ``WAITING_MODELS`` suspended runs, the per-model baseline)."""
    with running_emulator() as emulator:
        creds = credentials(emulator, f"proj_{uuid.uuid4().hex[:10]}")

        async def cycle() -> tuple[float, float]:
            async with creds.get_client() as client:
                models = [
                    (await client.create_model(name=f"wait-{i}", training_type=TRAINING_TYPE)).id
                    for i in range(WAITING_MODELS)
                ]
            deadline = time.time() + 3600
            for model in models:
                await _suspended_stand_in(WaitRecord(model_ids=(model,), keys=(), deadline=deadline))
            emulator.clear()
            report = await watch_once(creds)
            sent = len(emulator.requests())
            if report.waiting < WAITING_MODELS or report.resumed:
                raise RuntimeError(f"the cycle saw {report.waiting} waiting runs and resumed {report.resumed}")
            return float(sent), float(len(models))

        return asyncio.run(cycle())


def run() -> list[dict[str, Any]]:
    measured = _in_harness() if SMOKE else _on_engine()
    webhook_lags = _webhook_lag_in_harness() if SMOKE else _webhook_lag_on_engine()
    idle_runs, per_cycle_runs = idle_watcher_runs()
    sent, per_model = _requests_per_cycle()
    case = f"{TRAININGS} × {TRAINING_SECONDS:g} s"
    webhook_case = pick(f"{TRAININGS} suspended runs", "1 stand-in run")
    stand_in = "smoke: wait=False stands in for suspend, no engine" if SMOKE else "real engine, 2 process workers"
    rows = [
        Row("suspend", case, "worker-seconds held while Scenario trains", "s", measured["suspend_waiting"],
            measured["poll_waiting"], 0.05, note=f"{stand_in}; from the accepted trigger to the training's end"),
        Row("suspend", case, "worker-seconds held per training, all of it", "s", measured["suspend"],
            measured["poll"], None, note="prepare, upload, two process starts and the finish included; no goal"),
        Row("suspend", case, "seconds RUNNING per training", "s", measured["suspend_running"],
            measured["poll_running"], None, note="the flow running, its process's start left out; no goal"),
        Row("suspend", "nothing waiting, 1 h at 30 s", "watcher flow runs created per idle hour", "runs", idle_runs,
            per_cycle_runs, 0.0, on_ratio=False,
            note="the watcher service (prefect-scenario watch); baseline: the old flow run per cycle"),
        Row("suspend", case, "resume lag after the end (watcher)", "s", measured["lag"], None, WATCH_INTERVAL + 1.0,
            on_ratio=False, note=f"median; service every {WATCH_INTERVAL:g} s, goal ≤ interval + 1 s (one call)"),
        Row("suspend", webhook_case, "resume lag after the end (webhook)", "s", median(webhook_lags), None, 1.0,
            on_ratio=False,
            note="median; the emulator's delivery, the receiver's hint (HintSettler), no watcher"),
        Row("suspend", webhook_case, "resume lag after the end (webhook), p95", "s", p95(webhook_lags), None, 1.5,
            on_ratio=False, note="95th percentile of the same runs"),
        Row("suspend", f"{WAITING_MODELS} waiting models", "watcher requests per cycle", "req", sent, per_model, 2.0,
            on_ratio=False, note="baseline: one status read per waiting model"),
    ]  # fmt: skip
    return [r.to_dict() for r in rows]


if __name__ == "__main__":
    run_alone(run)
