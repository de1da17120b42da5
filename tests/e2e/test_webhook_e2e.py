"""Twenty suspended trainings on the real engine, resumed by Scenario's webhooks alone (no watcher).

Issue 12, item 4, "the same through the webhook receiver (the emulator posts the
deliveries)", on ``tests/e2e/engine.py`` (PostgreSQL, ``prefect server``, a process pool with
two ``prefect worker`` processes, the emulator) and ``tests/e2e/webhook_receiver.py``: the
endpoint registered with ``prefect-scenario webhooks register`` and
``prefect-scenario webhook-receiver`` running as a process, both with the engine's environment.

- 20 ``train_lora`` runs with ``wait="suspend"`` suspend; none of them keeps a process.
- No watcher runs, so only a delivery can resume a run. The emulator's clock moves an hour:
  the trainings end, the emulator's dispatcher (a timer, not our reads) POSTs
  ``model.training.completed`` for each, and the receiver's hint (the watcher's
  ``settle_model``) re-reads the model and resumes its run.
- All 20 end ``COMPLETED`` and trained, each suspended once and resumed once (state history),
  the receiver's log names each run as resumed by the hint for its own model, the emulator
  records each delivery as a success, and the emulator's log shows no create, upload, dry run
  or trigger after the runs suspended.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.conftest import TRAINING_SECONDS
from tests.e2e.engine import Engine, is_create, is_dry_run, is_trigger, is_upload, model_of, resumes, wait_until
from tests.e2e.webhook_receiver import COMPLETED, webhook_receiver

TRAININGS = 20
STARTED = "model.training.started"


@pytest.mark.timeout(2400)
def test_twenty_suspended_trainings_are_resumed_by_webhook_deliveries_alone(engine: Engine, tmp_path: Path) -> None:
    started = time.monotonic()
    with webhook_receiver(engine, tmp_path) as receiver:
        logged = len(engine.emulator_requests())
        runs = [engine.start_training(f"webhook-{i:02d}", wait="suspend") for i in range(TRAININGS)]

        # 1. Every run creates, uploads, triggers, then suspends: its process ends.
        engine.wait_suspended(runs)
        suspended_after = time.monotonic() - started
        first_phase = engine.emulator_requests()[logged:]
        triggered = [model_of(e) for e in first_phase if is_trigger(e)]
        assert len(triggered) == len(set(triggered)) == TRAININGS
        model_of_run = engine.run_models(runs)
        assert set(model_of_run.values()) == set(triggered)

        # 2. While they train: each start was delivered (and is not worth a hint), no end was,
        # nothing was resumed, and still no process is alive.
        wait_until(
            lambda: set(triggered) <= {d.payload["data"]["modelId"] for d in receiver.deliveries(STARTED)},
            timeout=300,
            what="the emulator to deliver every model.training.started",
        )
        assert not set(receiver.completed_models()) & set(triggered)
        assert not receiver.resumed() and engine.all_suspended(runs) and not engine.alive(runs)

        # 3. The trainings end (no watcher runs): the emulator delivers, the receiver resumes.
        engine.emulator.advance_clock(TRAINING_SECONDS + 60)
        final = engine.wait_final(runs, timeout=900)
        took = time.monotonic() - started

        def hints_logged() -> dict[str, list[str]] | None:
            resumed = receiver.resumed()
            return resumed if set(triggered) <= set(resumed) else None

        # The hint logs its outcome after the resume it made: give the last lines a moment.
        resumed_by_hint = wait_until(hints_logged, timeout=120, what=f"the hints' log lines\n{receiver.log_text()}")
        ours = [d for d in receiver.deliveries(COMPLETED) if d.payload["data"]["modelId"] in set(triggered)]
        wait_until(lambda: all(d.done.is_set() for d in ours), timeout=60, what="the deliveries to be recorded")
        receiver_log = receiver.log_text()
        endpoint = engine.emulator.app.store.webhook_endpoints[receiver.endpoint_id]

    # 4. All trained, each suspended once and resumed once, by the hint for its own model.
    assert {r["state_type"] for r in final} == {"COMPLETED"}, engine.log_tail()
    histories = {run: engine.states(run) for run in runs}
    assert {run: sum(s["type"] == "PAUSED" for s in states) for run, states in histories.items()} == dict.fromkeys(
        runs, 1
    )
    assert {run: resumes(states) for run, states in histories.items()} == dict.fromkeys(runs, 1)
    assert {model: resumed_by_hint[model] for model in triggered} == {m: [r] for r, m in model_of_run.items()}
    for run in final:
        assert "scenario-waiting" not in run["tags"], run["tags"]

    # 5. One completed delivery per model, each accepted by the receiver.
    assert Counter(d.payload["data"]["modelId"] for d in ours) == Counter(dict.fromkeys(triggered, 1))
    assert {(d.status, d.response_status) for d in ours} == {("success", 202)}, [d.error for d in ours]
    assert receiver_log.count("says the training started: nothing to resume") >= TRAININGS
    assert "dropped" not in receiver_log, receiver_log[-3000:]
    # The receiver's log never shows the path token (the delivery URL's secret) or the signing secret.
    token = endpoint.url.rpartition("/")[2]
    assert len(token) >= 43 and token not in receiver_log
    assert endpoint.secret and endpoint.secret not in receiver_log

    # 6. The emulator saw one create, one upload set, one dry run and one trigger per model, none after.
    log = engine.emulator_requests()[logged:]
    assert sum(map(is_create, log)) == TRAININGS
    assert Counter(model_of(e) for e in log if is_trigger(e)) == Counter(dict.fromkeys(triggered, 1))
    assert Counter(model_of(e) for e in log if is_dry_run(e)) == Counter(dict.fromkeys(triggered, 1))
    after = log[len(first_phase) :]
    assert not [e for e in after if is_create(e) or is_upload(e) or is_trigger(e) or is_dry_run(e)], after
    statuses = engine.models(triggered)
    assert set(statuses.values()) == {"trained"}, statuses
    print(
        f"{TRAININGS} suspended trainings resumed by webhook deliveries: all suspended after "
        f"{suspended_after:.0f}s, done in {took:.0f}s"
    )
