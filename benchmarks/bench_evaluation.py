"""Evaluation: 50 emulated retrains with known true quality, judged by ``evaluate`` against production.

Each trial trains a production LoRA and a candidate on the same dataset with different
``nbEpochs`` (the emulator's true quality peaks at a dataset-dependent epoch and then
falls), evaluates production (it becomes production) and then the candidate, and reads
the truth from ``GET /_emulator/models/{id}/quality``. Everything runs in process on the
emulator's manual clock, so the numbers are exact and repeat from run to run.

Rows: worse models promoted (goal 0); truly better models promoted, among those better
by at least twice the margin (goal ≥ 95 %); the default suite's render cost as a share of
the training's dry-run cost (goal ≤ 10 %); renders paid twice (goal 0); rollback requests
(goal ≤ 2); and the emulated time to evaluate 8 renders at the plan's concurrency against
one render at a time. A margin sweep, computed from the same measured gains with the
pure decision, shows why the default margin is what it is.
"""

from __future__ import annotations

import asyncio
import base64
import io
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image

from benchmarks._common import Row, median, pick, run_alone
from prefect_scenario.api.client import ScenarioClient
from prefect_scenario.evaluation import DEFAULT_MARGIN, EvaluationOptions, EvaluationSuite, evaluate
from prefect_scenario.evaluation.decision import decide
from prefect_scenario.evaluation.promotion import MemoryStore, rollback
from prefect_scenario.evaluation.render import render_lora
from scenario_emulator import EmulatorApp, EmulatorConfig, ManualClock, create_app

BASELINE = "worse/better promoted: the true quality; wall time: the same 8 renders one at a time"
TRIALS: int = pick(50, 3)
IMAGES = 10
MARGINS = (0.0, 2.0, DEFAULT_MARGIN, 8.0)
KEY, SECRET, PROJECT = "bench-key", "bench-secret", "proj_bench_eval"


@dataclass
class Trial:
    true_gain: float
    measured_gain: float
    promoted: bool
    cost: float
    training_cost: float


def _png_data_url(n: int) -> str:
    """A tiny PNG of its own colour, as a data URL (the dataset's contents decide its true quality)."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (n % 256, n // 256 % 256, 7)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class World:
    """One in-process emulator on a manual clock, a client, and helpers that move its time."""

    def __init__(self) -> None:
        self.clock = ManualClock()
        config = EmulatorConfig(api_key=KEY, api_secret=SECRET, clock=self.clock, queue_seconds=1, start_seconds=1,
                                train_seconds=5)  # fmt: skip
        self.app: EmulatorApp = create_app(config)
        transport = httpx.ASGITransport(app=self.app)
        self.raw = httpx.AsyncClient(transport=transport, base_url="http://emulator/v1", auth=(KEY, SECRET),
                                     params={"projectId": PROJECT})  # fmt: skip
        self.client = ScenarioClient(api_key=KEY, api_secret=SECRET, project_id=PROJECT, transport=transport,
                                     base_url="http://127.0.0.1/v1")  # fmt: skip

    async def sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)

    async def train(self, first: int, epochs: int) -> tuple[str, float]:
        """A trained LoRA on images ``first``..``first + IMAGES``; its training's dry-run cost."""
        model_id = (await self.raw.post("/models", json={"name": "b", "type": "flux.2-dev-lora"})).json()["model"]["id"]
        for n in range(first, first + IMAGES):
            body = {"name": f"{n}.png", "data": _png_data_url(n)}
            await self.raw.post(f"/models/{model_id}/training-images", json=body)
        parameters = {"parameters": {"nbEpochs": epochs}}
        quote = await self.raw.put(f"/models/{model_id}/train", params={"dryRun": "true"}, json=parameters)
        await self.raw.put(f"/models/{model_id}/train", json=parameters)
        self.clock.advance(60)
        return str(model_id), float(quote.json()["creativeUnitsCost"])

    async def truth(self, model_id: str) -> float:
        return float((await self.raw.get(f"http://emulator/_emulator/models/{model_id}/quality")).json()["trueQuality"])


async def trial(world: World, number: int, rng: random.Random) -> Trial:
    first = number * IMAGES
    champion, _ = await world.train(first, rng.randint(2, 30))
    candidate, training_cost = await world.train(first, rng.randint(2, 30))
    store, dataset = MemoryStore(), f"bench-{number}"
    common: dict[str, Any] = {"store": store, "trigger_word": "HERO", "sleep": world.sleep, "clock": world.clock}
    await evaluate(world.client, champion, dataset, **common)
    result = await evaluate(world.client, candidate, dataset, **common)
    true_gain = await world.truth(candidate) - await world.truth(champion)
    return Trial(true_gain, result.mean_gain or 0.0, result.promoted, result.cost, training_cost)


def paid_twice(app: EmulatorApp) -> int:
    """Renders of the same model, prompt and seed paid more than once."""
    seen = Counter(
        (tuple(j.loras), j.input.get("prompt"), j.input.get("seed")) for j in app.store.generation.jobs.values()
    )
    return sum(n - 1 for n in seen.values())


async def rollback_requests(world: World) -> int:
    a, _ = await world.train(10_000, 10)
    b, _ = await world.train(10_000 + IMAGES, 10)
    store = MemoryStore()
    common: dict[str, Any] = {"store": store, "trigger_word": "HERO", "sleep": world.sleep, "clock": world.clock}
    await evaluate(world.client, a, "bench-rollback", **common)
    from prefect_scenario.evaluation.promotion import promote_model

    await promote_model(world.client, "bench-rollback", b, store=store)
    before = len(world.app.requests())
    await rollback(world.client, "bench-rollback", store=store)
    return len(world.app.requests()) - before


async def render_time(world: World, in_flight: int, seed: int) -> float:
    """Emulated seconds to render 8 images (4 prompts × 2 seeds) with ``in_flight`` jobs at once."""
    model_id, _ = await world.train(20_000 + seed * IMAGES, 10)
    suite = EvaluationSuite(prompts=("a", "b", "c", "d"), seeds=(seed, seed + 1))
    started = world.clock()
    await render_lora(world.client, model_id, suite, EvaluationOptions(max_in_flight=in_flight), sleep=world.sleep,
                      clock=world.clock)  # fmt: skip
    return world.clock() - started


def sweep(trials: list[Trial]) -> list[Row]:
    rows = []
    for margin in MARGINS:
        promoted = [decide({("p", 0): t.measured_gain}, {("p", 0): 0.0}, margin=margin).outcome == "promote"
                    for t in trials]  # fmt: skip
        worse = sum(1 for t, p in zip(trials, promoted, strict=True) if p and t.true_gain < 0)
        better = [p for t, p in zip(trials, promoted, strict=True) if t.true_gain >= 2 * DEFAULT_MARGIN]
        share = 100 * sum(better) / len(better) if better else 100.0
        note = f"margin {margin:g}{' (default)' if margin == DEFAULT_MARGIN else ''}: {share:.0f} % of better promoted"
        rows.append(Row("evaluation", "margin sweep", "worse models promoted", "models", worse, note=note))
    return rows


async def measure() -> list[Row]:
    world, rng = World(), random.Random(21)
    trials = [await trial(world, n, rng) for n in range(TRIALS)]
    worse = sum(1 for t in trials if t.promoted and t.true_gain < 0)
    better = [t.promoted for t in trials if t.true_gain >= 2 * DEFAULT_MARGIN]
    share = 100 * sum(better) / len(better) if better else 100.0
    shares = sorted(100 * t.cost / t.training_cost for t in trials)
    twice, requests = paid_twice(world.app), await rollback_requests(world)
    parallel, serial = await render_time(world, 4, 1), await render_time(world, 1, 5)
    case = f"{TRIALS} retrains"
    return [
        Row("evaluation", case, "worse models promoted", "models", worse, None, 0, on_ratio=False,
            note=f"margin {DEFAULT_MARGIN:g}"),
        Row("evaluation", case, "truly better promoted", "%", share, None, 95, on_ratio=False, at_most=False,
            note=f"{len(better)} retrains better by ≥ {2 * DEFAULT_MARGIN:g} points"),
        Row("evaluation", "default suite (4 renders)", "render cost / training cost", "%", median(shares), None, 10,
            on_ratio=False, note=f"median over the retrains, from dry runs; worst {shares[-1]:.1f} %"),
        Row("evaluation", case, "renders paid twice", "renders", twice, None, 0, on_ratio=False),
        Row("evaluation", "rollback", "API requests", "req", requests, None, 2, on_ratio=False),
        Row("evaluation", "8 renders", "emulated time at 4 in flight", "s", parallel, serial, 0.5,
            note="baseline: one render at a time"),
        *sweep(trials),
    ]  # fmt: skip


def run() -> list[dict[str, Any]]:
    return [r.to_dict() for r in asyncio.run(measure())]


if __name__ == "__main__":
    run_alone(run)
