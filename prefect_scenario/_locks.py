"""The one-slot Prefect global concurrency limits the project uses as locks.

A per-dataset limit keeps two retrains of one LoRA apart (:mod:`prefect_scenario.retraining`);
a per-project limit serialises budget decisions (:mod:`prefect_scenario.spend.ledger`). Both
are created on first use.
"""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from prefect_scenario._logging import run_logger

__all__ = ["ensure_concurrency_limit"]


async def ensure_concurrency_limit(name: str) -> None:
    """Create the global concurrency limit ``name`` (1 slot) the first time it is needed."""
    async with get_client() as prefect:
        try:
            await prefect.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                await prefect.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:
                # A concurrent first run created it: that is the goal.
                run_logger().debug("concurrency limit %s was created by another run", name)
