"""Orchestration overhead: the ``train_lora`` flow against the same work as a plain asyncio script.

The script makes the API calls the flow makes, in the same order and with the same
helpers, without Prefect: find the run's model by its tag, create and tag it, upload
8 at a time (streamed from the checked files; a fresh model is neither read before
nor checked for duplicates after), read the dataset score, check the status, trigger,
and wait with ``wait_until_terminal`` under the default poll policy.
Both make the same number of API requests (a row shows it), so the time difference
is what Prefect adds: flow and task runs, states, events and artifacts.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks._common import (
    POLL_POLICY,
    REPS,
    TRAINING_TYPE,
    Row,
    TrainingParameters,
    credentials,
    derive_idempotency_key,
    find_run_model,
    idempotency_tag,
    median,
    noisy_pngs,
    pick,
    prepare_images,
    run_alone,
    running_emulator,
    train_lora,
    wait_until_terminal,
)

BASELINE = "the same API calls as a plain asyncio script with `ScenarioClient` (no Prefect)"
IMAGES: int = pick(15, 3)
IMAGE_BYTES: int = pick(300_000, 20_000)
CONCURRENCY = 8


async def plain_script(creds: Any, images: list[Path], name: str) -> None:
    """The flow's API calls, as a script."""
    prepared = await prepare_images([str(p) for p in images], concurrency=CONCURRENCY)
    key = derive_idempotency_key(
        name=name,
        training_type=TRAINING_TYPE,
        items=sorted(str(i.sha256) for i in prepared),
        parameters=TrainingParameters(),
    )
    tag = idempotency_tag(key)
    async with creds.get_client() as client:
        await find_run_model(client, key=key, name=name, training_type=TRAINING_TYPE)
        model = await client.create_model(name=name, training_type=TRAINING_TYPE)
        await client.update_tags(model.id, add=[tag])
        limit = asyncio.Semaphore(CONCURRENCY)

        async def add(image: Any) -> None:
            async with limit:
                # As the flow does: the caller's bytes, or the checked file streamed by the client.
                data = image.data if image.data is not None else image.path
                await client.add_training_image(
                    model.id, name=image.wire_name, data=data, mime_type=image.mime_type or "image/png"
                )

        await asyncio.gather(*(add(i) for i in prepared))
        await client.get_dataset_score(model.id)
        await client.get_model(model.id)
        await client.train(model.id)
        await wait_until_terminal(client, model.id, timeout_seconds=600, policy=POLL_POLICY)


async def flow(creds: Any, images: list[Path], name: str) -> None:
    await train_lora(
        name=name,
        training_type=TRAINING_TYPE,
        images=[str(p) for p in images],
        credentials=creds,
        upload_concurrency=CONCURRENCY,
        poll_policy=POLL_POLICY,
    )


def run() -> list[dict[str, Any]]:
    images = noisy_pngs(IMAGES, IMAGE_BYTES)
    runs: dict[str, list[tuple[float, int]]] = {"flow": [], "plain": []}
    with running_emulator() as emulator:
        for rep in range(REPS):
            order = ("flow", "plain") if rep % 2 == 0 else ("plain", "flow")
            for who in order:
                emulator.clear()
                creds = credentials(emulator, f"proj_{uuid.uuid4().hex[:10]}")
                started = time.monotonic()
                asyncio.run((flow if who == "flow" else plain_script)(creds, images, f"overhead-{who}-{rep}"))
                runs[who].append((time.monotonic() - started, len(emulator.requests())))
    flow_wall = [w for w, _ in runs["flow"]]
    plain_wall = [w for w, _ in runs["plain"]]
    # Paired differences: each repetition's flow against the script run next to it.
    added = median([f - p for f, p in zip(flow_wall, plain_wall, strict=True)])
    case = f"{IMAGES} images"
    rows = [
        Row("overhead", case, "wall time", "s", median(flow_wall), median(plain_wall), 1.25),
        Row("overhead", case, "time Prefect adds (median of pairs)", "s", added, None, 1.0, on_ratio=False),
        Row(
            "overhead",
            case,
            "HTTP requests (Scenario API)",
            "req",
            median([n for _, n in runs["flow"]]),
            median([n for _, n in runs["plain"]]),
        ),
    ]
    return [r.to_dict() for r in rows]


if __name__ == "__main__":
    run_alone(run)
