"""End to end, one model: ``train_lora`` against the official SDK used the way the product doc shows.

The baseline creates the model, adds every image inline with
``client.models.training_images.add`` one after the other, triggers the training and
reads ``GET /models/{id}`` every second until the status is terminal. The contender
is the ``train_lora`` flow with ``upload_concurrency=8`` and the default poll policy
(what a user gets). Both run against the same emulator, alternating.

Detection lag is the time from the emulator's ``trainingStats.endedAt`` to the
moment the call returns.
"""

from __future__ import annotations

import base64
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks._common import (
    KEY,
    POLL_POLICY,
    REPS,
    SECRET,
    TIMINGS,
    TRAINING_TYPE,
    Emulator,
    Row,
    credentials,
    ended_at,
    median,
    noisy_pngs,
    pick,
    run_alone,
    running_emulator,
    train_lora,
    wait_phase,
)

BASELINE = "the official `scenario-sdk` as the product doc shows it: sequential inline uploads, `GET` every 1 s"
CASES: tuple[int, ...] = pick((15, 50), (3,))
IMAGE_BYTES: int = pick(300_000, 20_000)
CONCURRENCY = 8
SDK_POLL_SECONDS: float = pick(1.0, 0.05)
TERMINAL = ("trained", "failed", "training-canceled")
TRAINING_SECONDS = sum(TIMINGS.values())  # trigger to end in the emulator


def sdk_baseline(emulator: Emulator, images: list[Path], project: str, name: str) -> dict[str, float]:
    """The product doc's script: sequential inline uploads, a poll every second (smoke: faster)."""
    from scenario_sdk import Scenario

    started = time.monotonic()
    client = Scenario(api_key=KEY, api_secret=SECRET, base_url=emulator.base_url)
    model_id = client.models.create(name=name, type=TRAINING_TYPE, project_id=project).model.id
    upload_started = time.monotonic()
    for path in images:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        client.models.training_images.add(
            model_id, name=path.name, data=f"data:image/png;base64,{data}", project_id=project
        )
    upload = time.monotonic() - upload_started
    client.models.train.trigger(model_id, project_id=project)
    while client.models.retrieve(model_id, project_id=project).model.status not in TERMINAL:
        time.sleep(SDK_POLL_SECONDS)
    returned, wall = time.time(), time.monotonic() - started
    client.close()
    return _measure(emulator, project, model_id, wall=wall, returned=returned, upload=upload, prepare=0.0)


def flow_contender(emulator: Emulator, images: list[Path], project: str, name: str) -> dict[str, float]:
    """``train_lora`` with concurrent uploads and the default poll policy."""
    started = time.monotonic()
    result = (  # a sync call: the flow returns its result
        train_lora(
            name=name,
            training_type=TRAINING_TYPE,
            images=[str(p) for p in images],
            credentials=credentials(emulator, project),
            upload_concurrency=CONCURRENCY,
            poll_policy=POLL_POLICY,
        )
    )
    returned, wall = time.time(), time.monotonic() - started
    durations = result.durations
    return _measure(
        emulator,
        project,
        result.model_id,
        wall=wall,
        returned=returned,
        upload=durations["upload"],
        prepare=durations["prepare"],
    )


def _measure(
    emulator: Emulator, project: str, model_id: str, *, wall: float, returned: float, upload: float, prepare: float
) -> dict[str, float]:
    log = emulator.requests()
    return {
        "wall": wall,
        "outside": wall - TRAINING_SECONDS,
        "requests": len(log),
        "upload": upload,
        "prepare": prepare,
        "wait_requests": len(wait_phase(log)),
        "lag": returned - ended_at(emulator, project, model_id),
    }


def run() -> list[dict[str, Any]]:
    rows: list[Row] = []
    with running_emulator() as emulator:
        for count in CASES:
            images = noisy_pngs(count, IMAGE_BYTES)
            runs: dict[str, list[dict[str, float]]] = {"flow": [], "sdk": []}
            for rep in range(REPS):
                order = ("flow", "sdk") if rep % 2 == 0 else ("sdk", "flow")
                for who in order:
                    emulator.clear()
                    project = f"proj_{uuid.uuid4().hex[:10]}"
                    name = f"e2e-{count}-{who}-{rep}"
                    contender = flow_contender if who == "flow" else sdk_baseline
                    runs[who].append(contender(emulator, images, project, name))
            rows += _rows(count, runs["flow"], runs["sdk"])
    return [r.to_dict() for r in rows]


def _rows(count: int, flow: list[dict[str, float]], sdk: list[dict[str, float]]) -> list[Row]:
    big = count == max(CASES)  # the targets on wall and upload time are for 50 images

    def row(metric: str, unit: str, key: str, limit: float | None = None, **options: Any) -> Row:
        values = (median([r[key] for r in flow]), median([r[key] for r in sdk]))
        return Row("end_to_end", f"{count} images", metric, unit, *values, limit, **options)

    checks = f"excludes {median([r['prepare'] for r in flow]):.2f} s of image checks before it"
    return [
        row("wall time", "s", "wall", 0.5 if big else None),
        row("time outside the training", "s", "outside", note=f"wall minus the {TRAINING_SECONDS:g} s training"),
        row("HTTP requests (Scenario API)", "req", "requests"),
        row("upload phase", "s", "upload", 0.2 if big else None, note=checks),
        row("wait-phase requests", "req", "wait_requests", 1.0),
        row("detection lag (median)", "s", "lag", 0.5, on_ratio=False),
    ]


if __name__ == "__main__":
    run_alone(run)
