"""Fixtures and helpers for driving the emulator: in process (ASGI) or on a real socket."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from PIL import Image

from scenario_emulator import EmulatorApp, EmulatorConfig, EmulatorServer, ManualClock, create_app

# Only the fixtures are star-exported to conftest; helpers are imported by name.
__all__ = ["emulator_app", "emulator_client", "emulator_clock", "emulator_config", "emulator_server"]

EMULATOR_KEY = "test-key"
EMULATOR_SECRET = "test-secret-do-not-leak"


def png_bytes(color: tuple[int, int, int] = (120, 120, 120), size: tuple[int, int] = (1024, 1024)) -> bytes:
    """A solid-colour PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    """``data:<mime>;base64,...``."""
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


@pytest.fixture
def emulator_clock() -> ManualClock:
    """A clock tests move by hand."""
    return ManualClock(1_700_000_000.0)


@pytest.fixture
def emulator_config(emulator_clock: ManualClock) -> EmulatorConfig:
    """Tiny timings on the manual clock: 3 s queued (position 2), 2 s starting, 10 s running."""
    return EmulatorConfig(
        api_key=EMULATOR_KEY,
        api_secret=EMULATOR_SECRET,
        queue_seconds=3,
        start_seconds=2,
        train_seconds=10,
        queue_position=2,
        clock=emulator_clock,
        fail_names=("doomed",),
    )


@pytest.fixture
def emulator_app(emulator_config: EmulatorConfig) -> Iterator[EmulatorApp]:
    """An emulator app, driven in process."""
    app = create_app(emulator_config)
    yield app
    app.close()


@pytest.fixture
async def emulator_client(emulator_app: EmulatorApp) -> AsyncIterator[httpx.AsyncClient]:
    """An authenticated client on ``http://emulator/v1`` over ``httpx.ASGITransport``."""
    transport = httpx.ASGITransport(app=emulator_app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://emulator/v1", auth=(EMULATOR_KEY, EMULATOR_SECRET)
    ) as client:
        yield client


@pytest.fixture
def emulator_server(emulator_config: EmulatorConfig) -> Iterator[EmulatorServer]:
    """The emulator on a real socket (127.0.0.1, a free port)."""
    with EmulatorServer(emulator_config) as server:
        yield server
