"""Helpers shared by the reliability tests: seeded images, and what the emulator really holds.

Every check reads the emulator from the outside (its API and request log) or its
store (the ground truth a client cannot see, e.g. trainings whose answer was lost).
"""

from __future__ import annotations

import hashlib
import io
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image

from prefect_scenario.api.client import ScenarioClient
from scenario_emulator import EmulatorServer
from tests.flow_fixtures import KEY, SECRET

__all__ = ["PROJECT", "Holdings", "faulted", "holdings_of", "png", "seeded_pngs", "sha", "train_triggers"]

PROJECT = "proj_flows"  # what tests.flow_fixtures.credentials_for uses


def png(seed: int, size: int = 32) -> bytes:
    """A small PNG whose pixels (and so whose hash) depend on ``seed``."""
    rng = random.Random(seed)
    image = Image.new("RGB", (size, size), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    image.putpixel((rng.randrange(size), rng.randrange(size)), (seed % 256, (seed >> 8) % 256, 7))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def seeded_pngs(seed: int, count: int) -> list[bytes]:
    """``count`` distinct PNGs for run ``seed``."""
    return [png(seed * 1000 + i) for i in range(count)]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def train_triggers(server: EmulatorServer, model_id: str) -> dict[str, int]:
    """What the request log says about ``PUT /models/{id}/train``: by outcome."""
    counts: Counter[str] = Counter()
    for entry in server.requests():
        if entry["method"] == "PUT" and entry["path"] == f"/v1/models/{model_id}/train":
            if "dryRun" in (entry["query"] or ""):
                counts["dry_run"] += 1
            elif entry["status"] == 200:
                counts["ok"] += 1
            elif entry["fault"] == "drop_after":
                counts["dropped_after_work"] += 1
            else:
                counts[f"status_{entry['status']}"] += 1
    return dict(counts)


@dataclass
class Holdings:
    """What the emulator holds for one run's model name."""

    model_ids: list[str]  # every live model with that name (orphans included)
    status: str | None
    image_hashes: list[str]  # sha256 of each training image's bytes, as downloaded
    trainings: int  # training records (jobs) the emulator started for the model
    tags: list[str]


async def holdings_of(server: EmulatorServer, name: str) -> Holdings:
    """Read back, with faults off, everything the emulator holds for models called ``name``."""
    async with ScenarioClient(api_key=KEY, api_secret=SECRET, project_id=PROJECT, base_url=server.base_url) as client:
        ids = [m.id async for m in client.list_models() if m.name == name]
        if len(ids) != 1:
            return Holdings(ids, None, [], -1, [])
        (model,) = await client.get_models_bulk(ids, all_training_images=True)
        hashes = []
        async with httpx.AsyncClient(timeout=10) as http:
            for image in model.training_images:
                assert image.download_url, "the emulator gives every training image a download URL"
                response = await http.get(image.download_url)
                response.raise_for_status()
                hashes.append(sha(response.content))
    with server.app.store.lock:
        trainings = sum(1 for t in server.app.store.trainings.values() if t.model_id == ids[0])
    return Holdings(ids, model.status, sorted(hashes), trainings, list(model.tags))


def faulted(entries: list[dict[str, Any]]) -> int:
    """Requests that met a fault: injected, delayed, or answered with an error status."""
    return sum(1 for e in entries if e["fault"] is not None or (e["status"] or 0) >= 400 or e.get("delaySeconds"))
