"""The retrying raw calls of ``tests/prefect_api.py``, against fake transports (no server, no real waits)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests import prefect_api
from tests.prefect_api import arequest, request, retry_wait

Answer = int | type[httpx.TransportError]


def transport(
    answers: list[Answer], seen: list[str], retry_after: str | None = "0.01"
) -> Callable[[httpx.Request], httpx.Response]:
    """Answer each request with the next status, or raise the next error."""

    def handle(req: httpx.Request) -> httpx.Response:
        seen.append(req.method)
        answer = answers.pop(0)
        if isinstance(answer, int):
            headers = {"Retry-After": retry_after} if retry_after else {}
            return httpx.Response(answer, json={"ok": answer < 400}, headers=headers)
        raise answer("refused", request=req)

    return handle


@pytest.mark.parametrize(
    "answers",
    [
        pytest.param([200], id="first-try"),
        pytest.param([503, 200], id="database-locked-once"),
        pytest.param([503, 502, 429, 200], id="each-transient-status"),
        pytest.param([httpx.ConnectError, httpx.ReadError, 200], id="dropped-connections"),
    ],
)
def test_transient_answers_are_retried(answers: list[Answer]) -> None:
    seen: list[str] = []
    waits: list[float] = []
    expected = len(answers)
    response = request(
        "POST", "http://prefect/api/x", json={}, transport=httpx.MockTransport(transport(answers, seen)),
        sleep=waits.append,
    )  # fmt: skip
    assert response.status_code == 200 and len(seen) == expected and len(waits) == expected - 1


def test_a_client_error_is_not_retried() -> None:
    seen: list[str] = []
    with pytest.raises(httpx.HTTPStatusError):
        request("GET", "http://prefect/api/x", transport=httpx.MockTransport(transport([404, 200], seen)))
    assert seen == ["GET"]


def test_the_budget_bounds_the_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr("tests.prefect_api.time.monotonic", lambda: clock[0])
    seen: list[str] = []

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    always_locked = httpx.MockTransport(transport([503] * 100, seen, retry_after=None))
    with pytest.raises(httpx.HTTPStatusError, match="503"):
        request("GET", "http://prefect/api/x", transport=always_locked, sleep=sleep, budget=30)
    assert clock[0] <= 30 and 3 < len(seen) < 100


def test_waits_grow_and_stay_bounded() -> None:
    waits = [retry_wait(n) for n in range(10)]
    assert all(0 < w <= prefect_api.MAX_WAIT for w in waits)
    assert retry_wait(6) > retry_wait(0) * 4
    assert retry_wait(0, "2") == 2.0 and retry_wait(0, "600") == prefect_api.MAX_WAIT


async def test_the_async_twin_retries_too() -> None:
    seen: list[str] = []
    waits: list[float] = []

    async def handle(req: httpx.Request) -> httpx.Response:
        answers: list[Answer] = [503, 200]
        return transport(answers[len(seen) :], seen)(req)

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    response = await arequest("POST", "http://prefect/api/x", transport=httpx.MockTransport(handle), sleep=sleep)
    assert response.status_code == 200 and seen == ["POST", "POST"] and waits == [0.01]
