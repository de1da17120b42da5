"""The whole loop on the in-process emulator: worse retrains are kept out, better ones promoted, review, errors."""

from __future__ import annotations

import httpx
import pytest

from prefect_scenario.evaluation import EvaluationOptions, evaluate
from prefect_scenario.evaluation.decision import Decision
from prefect_scenario.evaluation.promotion import MemoryStore
from prefect_scenario.exceptions import ProductionClaimError
from scenario_emulator import EmulatorApp, ManualClock
from scenario_emulator.generation import true_quality
from tests.evaluation.helpers import client_for, clock_sleep, train

DATASET = "hero"
pytestmark = pytest.mark.usefixtures("prefect_harness")


async def _epochs(raw: httpx.AsyncClient, clock: ManualClock) -> tuple[int, int]:
    """(best epoch, an epoch at least 15 points worse) for the dataset of images 0-2."""
    probe = await train(raw, clock, epochs=1)
    dataset = tuple((await raw.get(f"http://emulator/_emulator/models/{probe}/quality")).json()["dataset"])
    best = max(range(1, 40), key=lambda n: true_quality(dataset, n))
    worse = next(n for n in range(best + 1, 60) if true_quality(dataset, n) <= true_quality(dataset, best) - 15)
    return best, worse


async def _loop(app: EmulatorApp, raw: httpx.AsyncClient, clock: ManualClock, first: int, second: int,
                **options: object) -> tuple[str, str, object, MemoryStore]:  # fmt: skip
    production = await train(raw, clock, epochs=first)
    candidate = await train(raw, clock, epochs=second)
    store = MemoryStore()
    kwargs = {"store": store, "trigger_word": "HERO", "sleep": clock_sleep(clock), "clock": clock,
              "options": EvaluationOptions(**options)}  # type: ignore[arg-type]  # fmt: skip
    async with client_for(app) as client:
        await evaluate(client, production, DATASET, **kwargs)  # type: ignore[arg-type]
        result = await evaluate(client, candidate, DATASET, **kwargs)  # type: ignore[arg-type]
    return production, candidate, result, store


async def test_a_better_retrain_is_promoted_and_production_renders_come_from_the_cache(
    emulator_app: EmulatorApp, emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    best, worse = await _epochs(emulator_client, emulator_clock)
    production, candidate, result, store = await _loop(emulator_app, emulator_client, emulator_clock, worse, best)
    assert result.outcome == "promoted" and result.production_model_id == production  # type: ignore[attr-defined]
    assert result.renders_paid == 4  # type: ignore[attr-defined]  # production's 4 were cached
    handle = await store.load(DATASET)
    assert handle.model_id == candidate and handle.previous_model_ids == [production]
    assert [m.id for m in emulator_app.store.models.values() if m.collection_ids] == [candidate]


async def test_a_worse_retrain_is_rejected_and_production_kept(
    emulator_app: EmulatorApp, emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    best, worse = await _epochs(emulator_client, emulator_clock)
    production, candidate, result, store = await _loop(emulator_app, emulator_client, emulator_clock, best, worse)
    assert result.outcome == "rejected" and result.decision == "reject"  # type: ignore[attr-defined]
    assert (await store.load(DATASET)).model_id == production
    assert "psc-rejected" in emulator_app.store.models[candidate].tags


@pytest.mark.parametrize(("answer", "outcome"), [("promote", "promoted"), ("reject", "rejected"),
                                                 ("timeout", "rejected")])  # fmt: skip
async def test_review_always_asks_and_no_answer_never_promotes(
    emulator_app: EmulatorApp, emulator_client: httpx.AsyncClient, emulator_clock: ManualClock, answer: str,
    outcome: str,
) -> None:  # fmt: skip
    best, _ = await _epochs(emulator_client, emulator_clock)
    production = await train(emulator_client, emulator_clock, epochs=best)
    candidate = await train(emulator_client, emulator_clock, epochs=best, first=1)
    store, asked = MemoryStore(), []

    async def reviewer(sheet: str, decision: Decision, wait_seconds: float) -> str:
        asked.append(sheet)
        return answer

    async with client_for(emulator_app) as client:
        common = {"store": store, "trigger_word": "HERO", "sleep": clock_sleep(emulator_clock), "clock": emulator_clock}
        await evaluate(client, production, DATASET, **common)  # type: ignore[arg-type]
        result = await evaluate(client, candidate, DATASET, options=EvaluationOptions(review="always"),
                                reviewer=reviewer, **common)  # type: ignore[arg-type]  # fmt: skip
    assert result.outcome == outcome and result.review == answer
    assert asked and candidate in asked[0] and production in asked[0]


async def test_two_production_claims_are_refused_before_any_credit(
    emulator_app: EmulatorApp, emulator_client: httpx.AsyncClient, emulator_clock: ManualClock
) -> None:
    a, b, c = [await train(emulator_client, emulator_clock, first=n) for n in (0, 5, 10)]
    store = MemoryStore()
    async with client_for(emulator_app) as client:
        common = {"store": store, "trigger_word": "HERO", "sleep": clock_sleep(emulator_clock), "clock": emulator_clock}
        await evaluate(client, a, DATASET, **common)  # type: ignore[arg-type]
        collection = (await store.load(DATASET)).collection_id
        assert collection is not None
        await client.add_to_collection(collection, [b])
        emulator_app.clear_requests()
        with pytest.raises(ProductionClaimError, match="2 production claims"):
            await evaluate(client, c, DATASET, **common)  # type: ignore[arg-type]
    assert not [r for r in emulator_app.requests() if "generate" in r["path"]]


async def test_events_name_the_model_and_the_dataset_and_no_secret_leaks(
    emulator_app: EmulatorApp, emulator_client: httpx.AsyncClient, emulator_clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    import logging

    from tests.emulator_fixtures import EMULATOR_SECRET

    emitted: list[dict[str, object]] = []
    monkeypatch.setattr("prefect.events.emit_event", lambda event, **kw: emitted.append({"event": event, **kw}))
    caplog.set_level(logging.DEBUG)
    best, worse = await _epochs(emulator_client, emulator_clock)
    _, candidate, result, _ = await _loop(emulator_app, emulator_client, emulator_clock, worse, best)
    names = [e["event"] for e in emitted]
    assert names.count("scenario.lora.evaluated") == 2 and names.count("scenario.lora.promoted") == 2
    last = emitted[-1]
    assert last["resource"] == {
        "prefect.resource.id": f"scenario.model.{candidate}",
        "prefect.resource.name": candidate,
    }
    assert last["related"][0]["prefect.resource.role"] == "dataset"  # type: ignore[index]
    visible = caplog.text + repr(emitted) + result.model_dump_json()  # type: ignore[attr-defined]
    assert EMULATOR_SECRET not in visible
