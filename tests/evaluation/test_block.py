"""The ScenarioLoRA block meets Prefect's block standards and round-trips through the API."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite

from prefect_scenario.evaluation import ScenarioLoRA, evaluate_and_promote, render_scenario_lora
from prefect_scenario.evaluation.block import block_name
from prefect_scenario.evaluation.promotion import BlockStore

ROOT = Path(__file__).resolve().parents[2]


class TestScenarioLoRAStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return ScenarioLoRA

    def test_has_a_valid_image(self, block: type[Block]) -> None:
        # No logo URL until the project has a public home (tests/test_blocks.py checks the file).
        assert block._logo_url is None


def test_flow_and_task_names_say_scenario() -> None:
    assert evaluate_and_promote.name.startswith("scenario-") and render_scenario_lora.name.startswith("scenario-")


@pytest.mark.usefixtures("prefect_harness")
async def test_the_block_store_saves_and_loads_a_handle() -> None:
    store = BlockStore()
    empty = await store.load("s3://bucket/new-dataset/")
    assert empty.model_id is None and empty.history == []
    empty.model_id, empty.collection_id = "model_a", "collection_1"
    await store.save(empty)
    loaded = await ScenarioLoRA.aload(block_name("s3://bucket/new-dataset/"))
    assert isinstance(loaded, ScenarioLoRA) and loaded.model_id == "model_a"
