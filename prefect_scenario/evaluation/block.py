"""The Prefect-side production handle: a :class:`ScenarioLoRA` block per dataset.

Downstream flows load it to get the model to use; the promotion keeps it in step with the
Scenario-side collection and records every move in ``history``.

Example:
    >>> block_name("Hero Characters/v2")
    'psc-lora-hero-characters-v2-f7cfc834'
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field

from prefect_scenario._titles import field_title
from prefect_scenario.credentials import DOCUMENTATION_URL, LOGO_URL

__all__ = ["ScenarioLoRA", "block_name", "dataset_slug"]


def dataset_slug(dataset: str) -> str:
    """A name-safe form of ``dataset``: lowercase words and a short hash of the exact label."""
    words = re.sub(r"[^a-z0-9]+", "-", dataset.lower()).strip("-")[:40] or "dataset"
    return f"{words}-{hashlib.sha256(dataset.encode()).hexdigest()[:8]}"


def block_name(dataset: str) -> str:
    """The :class:`ScenarioLoRA` block name of ``dataset``."""
    return f"psc-lora-{dataset_slug(dataset)}"


class ScenarioLoRA(Block):
    """The production LoRA of one dataset: the model id flows should render with.

    Attributes:
        dataset: The dataset label (an S3 dataset URI, or a name).
        model_id: The production model, or None before the first promotion.
        previous_model_ids: Earlier production models, newest last (what a rollback restores).
        collection_id: The Scenario collection that marks production on Scenario's side.
        pending: A promotion under way (``{"model_id", "previous"}``), until it is complete.
        history: Every promotion, rejection and rollback: who, when, scores, suite digest.

    Example:
        Load the production model of a dataset in a downstream flow:

        ```python
        from prefect_scenario.evaluation import ScenarioLoRA

        lora = ScenarioLoRA.load("BLOCK_NAME")  # ScenarioLoRA.name_for(dataset) names it
        print(lora.model_id)
        ```
    """

    _block_type_name = "Scenario LoRA"
    _logo_url = LOGO_URL  # type: ignore[assignment]
    _documentation_url = DOCUMENTATION_URL  # type: ignore[assignment]
    _description = "The production Scenario LoRA of one dataset, kept by evaluate_and_promote."
    model_config = ConfigDict(field_title_generator=field_title)

    dataset: str = Field(description="The dataset label this LoRA is trained from.")
    model_id: str | None = Field(None, description="The production model id, or None before any promotion.")
    previous_model_ids: list[str] = Field(default_factory=list, description="Earlier production models, newest last.")
    collection_id: str | None = Field(None, description="The Scenario collection that marks production.")
    pending: dict[str, Any] | None = Field(None, description="A promotion under way, until it is complete.")
    history: list[dict[str, Any]] = Field(default_factory=list, description="Promotions, rejections and rollbacks.")

    @staticmethod
    def name_for(dataset: str) -> str:
        """The block name that holds ``dataset``'s production LoRA (``ScenarioLoRA.load(name)``).

        Example:
            >>> ScenarioLoRA.name_for("hero")
            'psc-lora-hero-ae6c79d1'
        """
        return block_name(dataset)
