"""The emulator under abuse: every bad request gets a 4xx JSON answer, promptly, and never a 500.

Two parts. A bounded, derandomized schemathesis fuzz of every ``/v1`` operation
against the emulator's own OpenAPI description (``GET /_emulator/openapi.json``),
in process, with valid and schema-violating data: no 5xx, every status and body
as described, and every schema-violating request refused. Then hand-written abuse
over a real socket that ``tests/emulator/`` does not already cover: methods
nobody serves (with a correct ``Allow``), form and multipart bodies, bad UTF-8,
numbers JSON cannot hold, bodies too large by header or by stream, paths that
try to escape, abuse of the admin routes, and many of these at once.

``PSC_FUZZ_EXAMPLES`` sets the examples per operation (default 15).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from starlette.routing import Mount, Route

from scenario_emulator import EmulatorConfig, EmulatorServer, create_app
from scenario_emulator.openapi import openapi_schema

KEY, SECRET = "abuse-key", "abuse-secret"
EXAMPLES = int(os.environ.get("PSC_FUZZ_EXAMPLES", "15"))
BODY_LIMIT = 64 * 1024

# -- schemathesis ----------------------------------------------------------------------------------

# No webhook deliveries: the fuzz registers endpoints with made-up URLs.
FUZZED_APP = create_app(EmulatorConfig(api_key=KEY, api_secret=SECRET, webhook_hosts=()))
SCHEMA = schemathesis.openapi.from_asgi("/_emulator/openapi.json", FUZZED_APP)
SCHEMA.config.update(basic_auth=(KEY, SECRET))
SCHEMA.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


# schemathesis draws from `random` inside its strategies; Hypothesis warns about that when another
# test has touched the global random state first. Nothing of ours to fix.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES, deadline=5000, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
def test_fuzzed_requests_get_described_answers_and_never_a_5xx(case: schemathesis.Case) -> None:
    # Every default check (no server error, status codes, content types, response schemas,
    # schema-violating data refused) except "schema-valid data accepted": the emulator
    # refuses valid-looking data on purpose (base64 that is not an image, an unknown cursor).
    case.call_and_validate(excluded_checks=[schemathesis.checks.positive_data_acceptance])


def test_the_fuzz_left_no_5xx_in_the_request_log() -> None:
    statuses = [r["status"] for r in FUZZED_APP.requests()]
    assert statuses, "the fuzz ran"
    assert all(s is not None and s < 500 for s in statuses)


def test_the_schema_describes_every_v1_route_and_no_other() -> None:
    served = set()
    for mount in FUZZED_APP.routes:
        if isinstance(mount, Mount) and mount.path == "/v1":
            for route in mount.routes:
                assert isinstance(route, Route) and route.methods
                served |= {(m.lower(), route.path.replace("{model_id}", "{modelId}")) for m in route.methods - {"HEAD"}}
    described = {(m, p) for p, ops in openapi_schema()["paths"].items() for m in ops}
    normalise = {"{asset_id}": "{assetId}", "{image_id}": "{trainingImageId}", "{job_id}": "{jobId}"}
    for old, new in normalise.items():
        served = {(m, p.replace(old, new)) for m, p in served}
    assert served == described


# -- by hand, over a socket ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(api_key=KEY, api_secret=SECRET, max_body_bytes=BODY_LIMIT)) as running:
        yield running


def assert_json_4xx(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert isinstance(body["reason"], str) and body["reason"]
    assert body["traceId"] == response.headers["x-request-id"]
    return body


def _json(raw: bytes) -> dict[str, Any]:
    return {"content": raw, "headers": {"content-type": "application/json"}}


def _chunks() -> Iterator[bytes]:
    for _ in range(40):  # 160 KiB with no Content-Length: refused while streaming
        yield b" " * 4096


ABUSE = [
    pytest.param("OPTIONS", "/v1/models", {}, 405, "GET, HEAD, POST", id="options"),
    pytest.param("PROPFIND", "/v1/models", {}, 405, "GET, HEAD, POST", id="webdav-method"),
    pytest.param("TRACE", "/v1/models/m1", {}, 405, "DELETE, GET, HEAD, PUT", id="trace"),
    pytest.param("PATCH", "/v1/models/m1/train", {}, 405, "PUT", id="patch-train"),
    pytest.param("GET", "/v1/models/m1/train/action", {}, 405, "POST", id="get-action"),
    pytest.param("POST", "/v1/models", {"data": {"type": "zimage-lora"}}, 415, None, id="form-body"),
    pytest.param("POST", "/v1/models", {"files": {"f": ("a.png", b"123")}}, 415, None, id="multipart-body"),
    pytest.param("POST", "/v1/models", {"content": b"<xml/>", "headers": {"content-type": "application/xml"}}, 415,
                 None, id="xml-body"),
    pytest.param("POST", "/v1/models", _json(b'{"type": "zimage-lora", "name": "\xff\xfe"}'), 400, None,
                 id="invalid-utf8"),
    pytest.param("POST", "/v1/models", _json(b'{"type": "zimage-lora", "x": ' + b"9" * 5000 + b"}"), 400, None,
                 id="5000-digit-int"),
    pytest.param("POST", "/v1/models", _json(b'{"type": 1e999}'), 400, None, id="infinite-number"),
    pytest.param("POST", "/v1/models", _json(b'{"type": "zimage-lora", "type": Infinity}'), 400, None,
                 id="infinity-literal"),
    pytest.param("POST", "/v1/models", _json(b"null"), 400, None, id="json-null-body"),
    pytest.param("POST", "/v1/models", _json(b'"zimage-lora"'), 400, None, id="json-string-body"),
    pytest.param("PUT", "/v1/models/m1/training-images/pairs", _json(b"{}"), 400, None, id="pairs-not-array"),
    pytest.param("POST", "/v1/models", _json(b"{" * 50_000), 400, None, id="deep-nesting"),
    pytest.param("POST", "/v1/models", _json(b" " * (BODY_LIMIT + 1)), 413, None, id="huge-by-length"),
    pytest.param("POST", "/v1/models", {"content": _chunks(), "headers": {"content-type": "application/json"}}, 413,
                 None, id="huge-by-stream"),
    pytest.param("GET", "/v1/" + "a" * 4000, {}, 404, None, id="long-path"),
    pytest.param("GET", "/v1/models/..%2F..%2F_emulator%2Freset", {}, 404, None, id="encoded-traversal"),
    pytest.param("GET", "/v2/models", {}, 404, None, id="unknown-version"),
    pytest.param("GET", "/", {}, 404, None, id="root"),
    pytest.param("GET", "/v1/models?projectId=", {}, 400, None, id="empty-project"),
    pytest.param("PUT", "/v1/models/m1/train?trainingImagesCount=1e3", _json(b"{}"), 400, None, id="float-count"),
    pytest.param("PUT", "/_emulator/faults", {"json": {"error_rate": True}}, 400, None, id="faults-bool-rate"),
    pytest.param("PUT", "/_emulator/faults", {"json": {"seed": 1.5}}, 400, None, id="faults-float-seed"),
    pytest.param("PUT", "/_emulator/faults", {"json": {"limit": "x"}}, 400, None, id="faults-string-limit"),
    pytest.param("PUT", "/_emulator/faults", {"json": {"error_rate": 0.6, "drop_after_rate": 0.6}}, 400, None,
                 id="faults-rates-over-1"),
    pytest.param("POST", "/_emulator/clock", {"json": {"advance": 1e308}}, 400, None, id="clock-to-year-1e300"),
    pytest.param("POST", "/_emulator/fail", {"json": {"modelId": "m", "name": "n"}}, 400, None, id="fail-both"),
    pytest.param("DELETE", "/_emulator/health", {}, 405, "GET, HEAD", id="admin-wrong-method"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "allow"), ABUSE)
def test_abuse_gets_a_json_4xx(
    server: EmulatorServer, method: str, path: str, kwargs: dict[str, Any], status: int, allow: str | None
) -> None:
    with httpx.Client(base_url=server.root_url, auth=(KEY, SECRET), timeout=5) as client:
        response = client.request(method, path, **kwargs)
        assert_json_4xx(response, status)
        if allow is not None:
            assert response.headers["allow"] == allow
        assert client.get("/v1/models").status_code == 200, "the emulator still serves"


def test_a_huge_declared_length_is_refused_without_waiting_for_the_body(server: EmulatorServer) -> None:
    """Headers announce 1 GB and no body follows: a 413 at once, not a wait for bytes that never come."""
    with socket.create_connection((server.host, server.port), timeout=5) as raw:
        raw.sendall(
            b"POST /v1/models HTTP/1.1\r\nHost: emulator\r\nContent-Type: application/json\r\n"
            + b"Authorization: Basic "
            + base64.b64encode(f"{KEY}:{SECRET}".encode())
            + b"\r\nContent-Length: 1000000000\r\n\r\n"
        )
        answer = b""
        while b'"traceId":"req_' not in answer or not answer.endswith(b'"}'):
            chunk = raw.recv(4096)  # the socket's 5 s timeout is the "no hang" bound
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert b"content-type: application/json" in answer.lower() and b'{"reason":"request body is larger' in answer


async def test_abuse_all_at_once_leaves_the_emulator_serving(server: EmulatorServer) -> None:
    async with httpx.AsyncClient(base_url=server.root_url, auth=(KEY, SECRET), timeout=10) as client:
        calls = [client.request(p.values[0], p.values[1], **p.values[2]) for p in ABUSE if "stream" not in p.id] * 3
        answers = await asyncio.gather(*calls)
        assert all(400 <= a.status_code < 500 for a in answers)
        assert (await client.get("/v1/models")).status_code == 200
    assert all(r["status"] is None or r["status"] < 500 for r in server.requests())
