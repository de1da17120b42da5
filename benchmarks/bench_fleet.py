"""Fleet: 20 models training at once with ``train_lora_fleet``, against one ``train_lora``.

The fleet flow starts every training (one ``train_lora`` subflow each, up to the
trigger), then waits for all of them with one ``POST /models/get-bulk`` per polling
cycle. Measured: polling requests per cycle, counted per started block of 100
models (one get-bulk takes up to 100 ids), and the fleet's wall time against a
single training of the same size. And the same fleet on a plan of ``PLAN_SLOTS`` trainings at
once (the emulator refuses a trigger beyond it with a plan-limit 429): its wall time against the
ideal, ``ceil(models / slots)`` rounds of one training's emulated duration, which a fleet only
reaches if it triggers the next job as soon as its own get-bulk sees a training end (the
timed slot re-check is set to an hour here, so waiting for it would show).
``BENCH_PLAN_TRAIN_SECONDS=38.5 python -m benchmarks fleet`` runs that row with 40 s trainings
(1 s queued, 0.5 s starting), the length the waiting issue's bound names; ~7 min a repetition.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks._common import (
    POLL_POLICY,
    REPS,
    TIMINGS,
    TRAINING_TYPE,
    Emulator,
    Row,
    credentials,
    median,
    noisy_pngs,
    pick,
    run_alone,
    running_emulator,
    train_lora,
    train_lora_fleet,
    wait_phase,
)
from prefect_scenario.waiting.polling import PollPolicy

BASELINE = "one `train_lora` of the same size (the polling row has no baseline)"
MODELS: int = pick(20, 2)
IMAGES_PER_MODEL: int = pick(5, 2)
IMAGE_BYTES: int = pick(300_000, 20_000)
CONCURRENCY = 8
REPETITIONS = FLEET_REPS = max(1, REPS - 1)
PLAN_SLOTS: int = pick(2, 1)
PLAN_TIMINGS: dict[str, float] = {
    **TIMINGS,
    "train_seconds": float(os.environ.get("BENCH_PLAN_TRAIN_SECONDS") or TIMINGS["train_seconds"]),
}
# Polls of one cycle are sent back to back; cycles are at least the policy's minimum (0.25 s) apart.
CYCLE_GAP = 0.2


def cycles(polls: list[dict[str, Any]]) -> int:
    """How many polling cycles the status reads form, grouping reads closer than ``CYCLE_GAP``."""
    times = sorted(p["time"] for p in polls)
    return sum(1 for i, t in enumerate(times) if i == 0 or t - times[i - 1] > CYCLE_GAP)


def fleet(
    emulator: Emulator, images: list[Path], project: str, rep: int, policy: PollPolicy = POLL_POLICY
) -> dict[str, float]:
    jobs = [
        {
            "name": f"fleet-{rep}-{n:02d}",
            "training_type": TRAINING_TYPE,
            "images": [str(p) for p in images[n * IMAGES_PER_MODEL : (n + 1) * IMAGES_PER_MODEL]],
        }
        for n in range(MODELS)
    ]
    started = time.monotonic()
    (  # a sync call: the flow returns its result
        train_lora_fleet(
            jobs=jobs,
            credentials=credentials(emulator, project),
            name=f"bench-{rep}",
            upload_concurrency=CONCURRENCY,
            poll_policy=policy,
        )
    )
    wall = time.monotonic() - started
    polls = wait_phase(emulator.requests())
    return {"wall": wall, "per_cycle": len(polls) / max(1, cycles(polls)) / math.ceil(MODELS / 100)}


def single(emulator: Emulator, images: list[Path], project: str, rep: int) -> dict[str, float]:
    started = time.monotonic()
    (  # a sync call: the flow returns its result
        train_lora(
            name=f"single-{rep}",
            training_type=TRAINING_TYPE,
            images=[str(p) for p in images[:IMAGES_PER_MODEL]],
            credentials=credentials(emulator, project),
            upload_concurrency=CONCURRENCY,
            poll_policy=POLL_POLICY,
        )
    )
    return {"wall": time.monotonic() - started}


def on_a_plan(images: list[Path]) -> Row:
    """The fleet on a plan of ``PLAN_SLOTS``: wall time against ``rounds`` × one training."""
    rounds = math.ceil(MODELS / PLAN_SLOTS)
    ideal = rounds * sum(PLAN_TIMINGS.values())
    policy = dataclasses.replace(POLL_POLICY, slot_check=3600.0)
    walls = []
    with running_emulator(parallel_trainings=PLAN_SLOTS, **PLAN_TIMINGS) as emulator:
        for rep in range(FLEET_REPS):
            emulator.clear()
            walls.append(fleet(emulator, images, f"proj_{uuid.uuid4().hex[:10]}", 100 + rep, policy)["wall"])
    case = f"{MODELS} on a plan of {PLAN_SLOTS}"
    note = f"ideal: {rounds} rounds of one {sum(PLAN_TIMINGS.values()):g} s training; slot timer 1 h"
    return Row("fleet", case, "wall time vs the ideal rounds", "s", median(walls), ideal, 1.5, note=note)


def run() -> list[dict[str, Any]]:
    images = noisy_pngs(MODELS * IMAGES_PER_MODEL, IMAGE_BYTES, seed=1)
    runs: dict[str, list[dict[str, float]]] = {"fleet": [], "single": []}
    with running_emulator() as emulator:
        # A fleet run takes ~40 s today (see the report): one repetition fewer than elsewhere.
        for rep in range(FLEET_REPS):
            order = ("fleet", "single") if rep % 2 == 0 else ("single", "fleet")
            for who in order:
                emulator.clear()
                project = f"proj_{uuid.uuid4().hex[:10]}"
                runs[who].append((fleet if who == "fleet" else single)(emulator, images, project, rep))
    case = f"{MODELS} models"
    per_cycle = median([r["per_cycle"] for r in runs["fleet"]])
    walls = {who: median([r["wall"] for r in runs[who]]) for who in runs}
    per_100, size = "per 100 models begun", f"{IMAGES_PER_MODEL} images per model"
    rows = [
        Row("fleet", case, "polling requests per cycle", "req", per_cycle, None, 1.0, on_ratio=False, note=per_100),
        Row("fleet", case, "wall time vs one training", "s", walls["fleet"], walls["single"], 1.5, note=size),
        on_a_plan(images),
    ]
    return [r.to_dict() for r in rows]


if __name__ == "__main__":
    run_alone(run)
