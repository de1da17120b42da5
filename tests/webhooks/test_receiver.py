"""The receiver over a real socket: what forged, replayed, oversized and malformed deliveries cost."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from prefect_scenario.webhooks.receiver import WebhookReceiver, event_kind, extract_model_ids
from scenario_emulator import EmulatorServer
from tests.flow_fixtures import credentials_for
from tests.webhooks.hints import CountingHint, model_gets
from tests.webhooks.servers import serve

TOKEN = "tok_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
PATH = f"/scenario/{TOKEN}"
COMPLETED = {"id": "evt_1", "type": "model.training.completed", "data": {"modelId": "model_sentinel"}}


@pytest.fixture
def hint(fast_emulator: EmulatorServer) -> CountingHint:
    return CountingHint(credentials_for(fast_emulator))


@pytest.fixture
def receiver_url(hint: CountingHint) -> Iterator[str]:
    with serve(WebhookReceiver(PATH, hint)) as url:
        yield url


def post(url: str, body: object = COMPLETED, **options: object) -> httpx.Response:
    if "content" not in options:
        options["json"] = body
    return httpx.post(url, timeout=10, **options)  # type: ignore[arg-type]


def assert_only_the_sentinel_is_hinted(url: str, hint: CountingHint, server: EmulatorServer) -> None:
    # Deliveries are hinted in the order they came: once the sentinel's hint ran, any
    # hint of an earlier delivery would have run too.
    assert post(url + PATH).status_code == 202
    assert hint.wait_for("model_sentinel") == ["model_sentinel"]
    assert model_gets(server) == 1


@pytest.mark.parametrize(
    ("payload", "ids"),
    [
        ({"modelId": "model_a"}, ["model_a"]),
        ({"model_id": "model_a"}, ["model_a"]),
        ({"data": {"modelId": "model_a", "jobId": "job_1"}}, ["model_a"]),
        ({"data": {"model": {"id": "model_a"}}}, ["model_a"]),
        ({"payload": {"model_id": "model_a"}}, ["model_a"]),
        ({"x": [{"y": "model_b"}], "data": {"modelId": "model_a"}}, ["model_a", "model_b"]),
        ({"list": [f"model_{n}" for n in range(10)]}, ["model_0", "model_1", "model_2"]),
        ({"modelId": "model_a/../b", "other": "model_ with space", "n": 5}, []),
        ({"modelId": 7, "data": None}, []),
        ([{"modelId": "model_a"}], ["model_a"]),  # the function is tolerant; the receiver refuses arrays
    ],
    ids=["top", "snake", "data", "data-model-id", "payload", "likely-first", "capped", "not-ids", "no-strings", "list"],
)
def test_extract_model_ids(payload: object, ids: list[str]) -> None:
    assert extract_model_ids(payload) == ids


def test_extraction_of_a_deep_or_huge_payload_is_bounded() -> None:
    deep: object = "model_deep"
    for _ in range(500):
        deep = {"a": deep}
    assert extract_model_ids(deep) == []  # past 16 levels nothing is read
    wide = {"k": ["x"] * 100_000 + ["model_late"]}
    assert extract_model_ids(wide) == []  # past 2,000 values nothing is read


def test_event_kind() -> None:
    assert event_kind({"type": "model.training.failed"}) == "model.training.failed"
    assert event_kind({"event": "model.training.cancelled"}) == "model.training.cancelled"
    assert event_kind({"event": {"name": "model.training.started"}}) == "model.training.started"
    assert event_kind({"type": "anything"}) == event_kind([]) == "other"


def test_a_wrong_path_is_404_and_costs_nothing(receiver_url: str, hint: CountingHint, fast_emulator: EmulatorServer):
    for path in ("/", "/scenario", f"/scenario/{TOKEN[:-1]}", f"/scenario/{TOKEN}x", f"/other/{TOKEN}/x", "/healthz/x"):
        assert post(receiver_url + path).status_code == 404, path
    assert httpx.get(receiver_url + PATH).status_code == 405
    assert httpx.get(receiver_url + "/healthz").json() == {"status": "ok"}
    assert_only_the_sentinel_is_hinted(receiver_url, hint, fast_emulator)


def test_the_token_alone_is_accepted_for_a_proxy_that_strips_the_prefix(receiver_url: str, hint: CountingHint):
    assert post(f"{receiver_url}/{TOKEN}").status_code == 202
    assert hint.wait_for("model_sentinel") == ["model_sentinel"]


def test_a_forged_delivery_costs_at_most_one_get(receiver_url: str, hint: CountingHint, fast_emulator: EmulatorServer):
    forged = {"type": "model.training.completed", "data": {"modelId": "model_forged", "status": "trained"},
              "also": ["model_x1", "model_x2", "model_x3"]}  # fmt: skip
    assert post(receiver_url + PATH, forged).status_code == 202
    assert hint.wait_for("model_forged") == ["model_forged"]  # one id per delivery, re-read
    assert model_gets(fast_emulator) == 1
    assert post(receiver_url + PATH, {"data": {"modelId": "not-a-model"}}).json() == {"accepted": True, "hinted": 0}


def test_a_replayed_delivery_costs_one_get(receiver_url: str, hint: CountingHint, fast_emulator: EmulatorServer):
    replay = {**COMPLETED, "data": {"modelId": "model_replayed"}}
    answers = [post(receiver_url + PATH, replay).json()["hinted"] for _ in range(20)]
    assert sum(answers) == 1 and answers[0] == 1
    hint.wait_for("model_replayed")
    assert post(receiver_url + PATH).status_code == 202
    assert hint.wait_for("model_sentinel") == ["model_replayed", "model_sentinel"]
    assert model_gets(fast_emulator) == 2


def test_a_started_delivery_is_not_worth_a_get(receiver_url: str, hint: CountingHint, fast_emulator: EmulatorServer):
    started = {"type": "model.training.started", "data": {"modelId": "model_started"}}
    assert post(receiver_url + PATH, started).json()["hinted"] == 0
    assert_only_the_sentinel_is_hinted(receiver_url, hint, fast_emulator)


def test_oversized_deliveries_are_413_and_cost_nothing(
    receiver_url: str, hint: CountingHint, fast_emulator: EmulatorServer
) -> None:
    big = json.dumps({"modelId": "model_big", "pad": "x" * (1024 * 1024)}).encode()
    assert post(receiver_url + PATH, content=big, headers={"content-type": "application/json"}).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap holds as the body streams
        yield b'{"modelId": "model_big", "pad": "'
        for _ in range(64):
            yield b"x" * 16384
        yield b'"}'

    assert post(receiver_url + PATH, content=chunks()).status_code == 413
    assert_only_the_sentinel_is_hinted(receiver_url, hint, fast_emulator)


async def test_a_lying_or_unreadable_content_length_does_not_get_past_the_cap() -> None:
    # A real client cannot send a body longer than its Content-Length; in process it can.
    hint = CountingHint()
    transport = httpx.ASGITransport(app=WebhookReceiver(PATH, hint))
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        big = json.dumps({"modelId": "model_big", "pad": "x" * (1024 * 1024)}).encode()
        request = client.build_request("POST", PATH, content=big)
        request.headers["content-length"] = "10"
        assert (await client.send(request)).status_code == 413
        request = client.build_request("POST", PATH, content=b"{}")
        request.headers["content-length"] = "abc"
        assert (await client.send(request)).status_code == 413
    assert hint.calls == []


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"modelId": "model_x"', b"[" * 30000 + b"]" * 30000, b'{"a":' * 10000 + b"1" + b"}" * 10000,
     json.dumps([{"modelId": "model_x"}]).encode(), b'"model_x"', b"NaN", b"", b"\xff\xfe"],
    ids=["text", "truncated", "deep-array", "deep-object", "array", "string", "nan", "empty", "binary"],
)  # fmt: skip
def test_malformed_deliveries_are_400_and_cost_nothing(
    receiver_url: str, hint: CountingHint, fast_emulator: EmulatorServer, body: bytes
) -> None:
    assert len(body) <= 64 * 1024
    response = post(receiver_url + PATH, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["reason"]
    assert_only_the_sentinel_is_hinted(receiver_url, hint, fast_emulator)


def test_a_failing_hint_still_answers_202_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    hint = CountingHint(fail=True)
    with caplog.at_level(logging.INFO, "prefect_scenario.webhooks"), serve(WebhookReceiver(PATH, hint)) as url:
        assert post(url + PATH).status_code == 202
        hint.wait_for("model_sentinel")
        assert post(url + "/guess/" + TOKEN[:20]).status_code == 404
    text = caplog.text
    assert "webhook hint for model_sentinel" in text and "RuntimeError" in text
    assert TOKEN not in text and TOKEN[:20] not in text  # neither the secret path nor a guess at it


def test_the_path_must_end_in_a_token() -> None:
    with pytest.raises(ValueError):
        WebhookReceiver("/scenario/short", CountingHint())


class BlockingHint:
    """An ``on_hint`` that holds every hint until released, counting how many run at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = 0
        self.most = 0
        self.done: list[str] = []

    async def __call__(self, model_id: str) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        await self.release.wait()
        self.running -= 1
        self.done.append(model_id)


async def _deliver_burst(receiver: WebhookReceiver, count: int) -> list[int]:
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        answers = []
        for i in range(count):
            body = {"type": "model.training.completed", "data": {"modelId": f"model_burst{i}"}}
            answers.append((await client.post(PATH, json=body)).json()["hinted"])
    return answers


async def test_a_burst_of_endings_is_hinted_in_full_a_few_at_a_time() -> None:
    # A fleet's trainings end together: more deliveries than hint slots wait their turn, none is dropped.
    hint = BlockingHint()
    receiver = WebhookReceiver(PATH, hint, max_in_flight=3)
    assert await _deliver_burst(receiver, 20) == [1] * 20
    for _ in range(1000):  # let the first hints reach their slot
        if hint.running == 3:
            break
        await asyncio.sleep(0)
    assert (hint.running, hint.most, hint.done) == (3, 3, [])
    hint.release.set()
    await receiver.drain()
    assert sorted(hint.done) == sorted(f"model_burst{i}" for i in range(20)) and hint.most == 3


async def test_past_the_queue_bound_a_hint_is_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    hint = BlockingHint()
    receiver = WebhookReceiver(PATH, hint, max_in_flight=2, max_queued=5)
    with caplog.at_level(logging.INFO, "prefect_scenario.webhooks"):
        assert await _deliver_burst(receiver, 8) == [1] * 5 + [0] * 3
        hint.release.set()
        await receiver.drain()
    assert sorted(hint.done) == [f"model_burst{i}" for i in range(5)]
    assert caplog.text.count("dropped: 5 hints under way or waiting") == 3
