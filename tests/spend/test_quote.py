"""A dataset is quoted before its first image is sent: a dry run with ``trainingImagesCount``
on the empty model, priced by the emulator as ``50 + 10 × images + 2 × epochs``."""

from __future__ import annotations

import pytest

from prefect_scenario.catalog import TrainingParameters
from prefect_scenario.spend.gate import estimate_scenario_training_cost
from scenario_emulator import EmulatorServer, training_cost
from tests.flow_fixtures import credentials_for


async def _empty_model(server: EmulatorServer, training_type: str = "flux.2-dev-lora") -> str:
    async with credentials_for(server).get_client() as client:
        return (await client.create_model(name="quoted", training_type=training_type)).id


@pytest.mark.parametrize(
    ("training_type", "count", "expected"),
    [
        pytest.param("flux.2-dev-lora", 6, training_cost(images=6, pairs=0, nb_epochs=2), id="standard"),
        pytest.param("qwen-image-edit-lora", 3, training_cost(images=0, pairs=3, nb_epochs=2), id="edit-pairs"),
    ],
)
async def test_an_empty_model_is_quoted_for_the_dataset_it_will_hold(
    fast_emulator: EmulatorServer, training_type: str, count: int, expected: float
) -> None:
    model_id = await _empty_model(fast_emulator, training_type)
    params = TrainingParameters.model_validate({"nbEpochs": 2})
    estimate = await estimate_scenario_training_cost.fn(
        credentials_for(fast_emulator), model_id, params, training_images_count=count
    )
    assert estimate.creative_units_cost == expected
    sent = [r for r in fast_emulator.requests() if r["method"] == "PUT"]
    assert [r["status"] for r in sent] == [269]
    assert f"trainingImagesCount={count}" in str(sent[0]["query"])
    assert not [r for r in fast_emulator.requests() if "training-images" in r["path"]]
    async with credentials_for(fast_emulator).get_client() as client:
        assert (await client.get_model(model_id)).status == "new"


async def test_without_a_count_the_query_is_unchanged(fast_emulator: EmulatorServer) -> None:
    model_id = await _empty_model(fast_emulator)
    async with credentials_for(fast_emulator).get_client() as client:
        await client.add_training_image(model_id, name="0.png", data=_png(), mime_type="image/png")
    estimate = await estimate_scenario_training_cost.fn(credentials_for(fast_emulator), model_id)
    assert estimate.creative_units_cost == training_cost(images=1, pairs=0, nb_epochs=10)
    assert "trainingImagesCount" not in str([r["query"] for r in fast_emulator.requests()])


@pytest.mark.parametrize("count", [0, -3])
async def test_a_count_below_one_is_refused_before_any_request(fast_emulator: EmulatorServer, count: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await estimate_scenario_training_cost.fn(credentials_for(fast_emulator), "model_x", training_images_count=count)
    assert fast_emulator.requests() == []


def _png() -> bytes:
    from tests.emulator_fixtures import png_bytes

    return png_bytes((10, 20, 30))
