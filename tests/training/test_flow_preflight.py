"""The dataset preflight inside the training flows: logged, published, refusing before any request."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from prefect_scenario import exceptions as exc
from prefect_scenario.training.flows import train_lora
from scenario_emulator import EmulatorServer
from tests.flow_fixtures import FAST_POLL, credentials_for

pytestmark = pytest.mark.usefixtures("prefect_harness")


def png(i: int, size: int) -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").rotate(i * 40).resize((size, size)).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


async def test_small_images_train_with_warnings_and_a_preflight_artifact(fast_emulator: EmulatorServer) -> None:
    result = await train_lora(
        name="Tiny Hero", training_type="flux.2-dev-lora", images=[png(i, 64) for i in range(3)],
        credentials=credentials_for(fast_emulator), poll_policy=FAST_POLL,
    )  # fmt: skip
    assert result.status == "trained"
    async with get_client() as prefect:
        found = await prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["scenario-preflight-tiny-hero"]))
        )
    assert found and found[0].type == "table"
    assert "resolution" in str(found[0].data) and "refuse" not in str(found[0].data)


async def test_strict_preflight_refuses_small_images_before_any_request(fast_emulator: EmulatorServer) -> None:
    with pytest.raises(exc.DatasetPreflightError, match="256 px floor") as raised:
        await train_lora(
            name="tiny", training_type="flux.2-dev-lora", images=[png(i, 64) for i in range(5)],
            credentials=credentials_for(fast_emulator), strict_preflight=True,
        )  # fmt: skip
    assert any(f["check"] == "resolution" for f in raised.value.findings)
    assert fast_emulator.requests() == []
