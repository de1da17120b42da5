"""Polite polling and finding a run's model: requests and detection lag on a moved clock.

**Polling.** Emulated trainings of 5 and 30 minutes run on the emulator's manual clock
(in process); the wait loop's sleeps move that clock, so a 30-minute training costs
milliseconds. The contender is the package's wait loop with the default ``PollPolicy``
(never under 2 s, aimed at ``remainingTimeMs``); the baseline is Scenario's product-doc
recipe, ``GET /models/{id}`` every 10 s. Each case runs trainings whose lengths differ by
a few seconds, so the end falls at different points of the baseline's 10 s grid.

**Finding a run's model.** A project of 100,000 models is served by a small in-memory
transport (pages of 500, newest first). The contender is ``find_run_model`` outside a
flow run (no Prefect record to ask, so the bounded fallback: the newest pages only); the
baseline is the first wave's full scan of the project. Inside a flow run, Prefect's
record of earlier runs answers with no listing at all (``tests/training``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from benchmarks._common import (
    DEFAULT_POLICY,
    Row,
    ScenarioClient,
    find_run_model,
    median,
    pick,
    run_alone,
    wait_until_terminal,
)
from scenario_emulator import EmulatorConfig, ManualClock, create_app

BASELINE = "Scenario's product-doc recipe (GET every 10 s); for the lookup, a scan of the whole project"
MINUTES: tuple[int, ...] = pick((5, 30), (1,))
TRAININGS: int = pick(7, 2)
PROJECT_MODELS: int = pick(100_000, 2_000)
SDK_INTERVAL = 10.0


async def _train_and_wait(minutes: int, offset: float, recipe: bool) -> tuple[int, float]:
    """(GET requests while waiting, detection lag in seconds) for one emulated training."""
    clock = ManualClock(1_700_000_000.0)
    seconds = minutes * 60 + offset
    config = EmulatorConfig(
        api_key="k", api_secret="s", queue_seconds=0.0, start_seconds=0.0, train_seconds=seconds,
        queue_position=0, clock=clock,
    )  # fmt: skip
    app = create_app(config)

    async def advance(delay: float) -> None:
        clock.advance(delay)

    async with ScenarioClient(
        api_key="k", api_secret="s", project_id="p", base_url="http://127.0.0.1/v1",
        transport=httpx.ASGITransport(app=app), sleep=advance,
    ) as client:  # fmt: skip
        model = await client.create_model(name="poll", training_type="flux.2-dev-lora")
        await client.add_training_image(model.id, name="a.png", data=_PNG, mime_type="image/png")
        await client.train(model.id)
        started, before = clock(), client.request_count
        if recipe:
            while not (await client.get_model(model.id)).is_terminal:
                await advance(SDK_INTERVAL)
        else:
            await wait_until_terminal(
                client, model.id, timeout_seconds=4 * 3600, policy=DEFAULT_POLICY, clock=clock, sleep=advance
            )
        requests, lag = client.request_count - before, clock() - (started + seconds)
    app.store.close()
    return requests, lag


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, "PNG")
    return buffer.getvalue()


_PNG = _png()


def _polling_rows(minutes: int) -> list[Row]:
    offsets = [1.7 * i for i in range(TRAININGS)]
    ours = [asyncio.run(_train_and_wait(minutes, o, recipe=False)) for o in offsets]
    sdk = [asyncio.run(_train_and_wait(minutes, o, recipe=True)) for o in offsets]
    case = f"{minutes}-minute training"
    return [
        Row("polling", case, "requests per training", "req", median([r for r, _ in ours]),
            median([r for r, _ in sdk]), limit=0.2),
        Row("polling", case, "detection lag (median)", "s", median([lag for _, lag in ours]),
            median([lag for _, lag in sdk]), limit=1.5, on_ratio=False),
    ]  # fmt: skip


class _Project(httpx.AsyncBaseTransport):
    """``GET /models`` over a project of ``size`` models, newest first, 500 a page; counts the pages."""

    def __init__(self, size: int) -> None:
        self.size, self.pages = size, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        query = parse_qs(urlsplit(str(request.url)).query)
        page = min(int(query.get("pageSize", ["100"])[0]), 500)
        start = int(query.get("paginationToken", ["0"])[0])
        self.pages += 1
        rows = [
            {"id": f"model_{n:06d}", "name": f"m{n}", "type": "flux.2-dev-lora", "status": "trained", "tags": []}
            for n in range(start, min(start + page, self.size))
        ]
        body: dict[str, Any] = {"models": rows}
        if start + page < self.size:
            body["nextPaginationToken"] = str(start + page)
        return httpx.Response(200, content=json.dumps(body).encode(), headers={"content-type": "application/json"})


async def _lookup(full_scan: bool) -> int:
    transport = _Project(PROJECT_MODELS)
    async with ScenarioClient(
        api_key="k", api_secret="s", project_id="p", base_url="http://127.0.0.1/v1", transport=transport
    ) as client:
        if full_scan:
            [m async for m in client.list_models(page_size=500)]
        else:
            await find_run_model(client, key="resume-me", name="hero", training_type="flux.2-dev-lora")
    return transport.pages


def run() -> list[dict[str, Any]]:
    rows = [row for minutes in MINUTES for row in _polling_rows(minutes)]
    rows.append(
        Row("polling", f"lookup, {PROJECT_MODELS:,} models", "list requests to find a run's model", "req",
            asyncio.run(_lookup(False)), asyncio.run(_lookup(True)), limit=2, on_ratio=False,
            note="outside a flow run; inside one, 0")
    )  # fmt: skip
    return [r.to_dict() for r in rows]


if __name__ == "__main__":
    run_alone(run)
