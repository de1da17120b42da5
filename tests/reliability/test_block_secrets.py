"""A training's secret parameters stay secret in its block: stored and served masked, used unmasked.

A real Prefect API (the test harness's server): the ``ScenarioTraining`` block is saved,
then read back as ``prefect block inspect`` and ``/block_documents/filter`` read it
(without secrets), and loaded as a flow would load it.
"""

from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client

from prefect_scenario.catalog import TrainingParameters
from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.training.job_block import ScenarioTraining

pytestmark = pytest.mark.usefixtures("prefect_harness")

WANDB = "psc-block-wandb-Q7R2Z9X4"


async def test_the_wandb_key_is_masked_in_every_block_read() -> None:
    credentials = ScenarioCredentials(api_key="k", api_secret="s", project_id="p")
    training = ScenarioTraining(
        credentials=credentials, name="hero", training_type="flux.2-dev-lora", images=["asset_1"],
        parameters={"wandbKey": WANDB, "nbEpochs": 2},  # type: ignore[arg-type]
    )  # fmt: skip
    assert WANDB not in f"{training!r}{training}{training.model_dump_json()}"
    await training.save("leak-check", overwrite=True)

    async with get_client() as prefect:
        inspected = await prefect.read_block_document_by_name(
            "leak-check", block_type_slug="scenario-training", include_secrets=False
        )
        listed = await prefect.read_block_documents(include_secrets=False)
        schema = inspected.block_schema
    served = inspected.model_dump_json() + "".join(b.model_dump_json() for b in listed)
    assert WANDB not in served
    assert schema is not None and any("wandb" in field for field in schema.fields.get("secret_fields", []))

    loaded = await ScenarioTraining.aload("leak-check")
    assert isinstance(loaded.parameters, TrainingParameters)
    assert loaded.parameters.to_wire() == {"nbEpochs": 2, "wandbKey": WANDB}  # unwrapped only for the wire
