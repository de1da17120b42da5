"""``prefect-scenario setup``: what ``deployments/prefect.yaml`` needs on a Prefect server, in one command.

- the ``scenario-local`` process work pool (skipped with ``--no-pool``, or if it exists);
- the ``ScenarioCredentials`` block ``scenario``, from ``SCENARIO_API_KEY``,
  ``SCENARIO_API_SECRET``, ``SCENARIO_PROJECT_ID`` and ``SCENARIO_BASE_URL``;
- the prefect-aws ``AwsCredentials`` block ``curated-s3``, from the AWS environment
  (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, and
  ``AWS_ENDPOINT_URL`` for a local S3 such as moto), or with no keys (the worker's own
  AWS identity, e.g. an instance role).

Running it again overwrites the two blocks and keeps the pool. No secret is printed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["AWS_BLOCK", "POOL", "SCENARIO_BLOCK", "SetupDone", "setup"]

POOL = "scenario-local"
SCENARIO_BLOCK = "scenario"
AWS_BLOCK = "curated-s3"


@dataclass(frozen=True)
class SetupDone:
    """What :func:`setup` created or updated."""

    pool_created: bool | None
    scenario_block: str
    aws_block: str

    def lines(self) -> list[str]:
        pool = {True: "created", False: "already there", None: "not asked for"}[self.pool_created]
        return [
            f"work pool {POOL!r} (process): {pool}",
            f"ScenarioCredentials block {self.scenario_block!r}: saved",
            f"AwsCredentials block {self.aws_block!r}: saved",
            "next: prefect --no-prompt deploy --all --prefect-file deployments/prefect.yaml",
        ]


async def _ensure_pool() -> bool:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async with get_client() as client:
        try:
            await client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
        except ObjectAlreadyExists:
            return False
    return True


async def setup(*, pool: bool = True, env: Mapping[str, str] | None = None) -> SetupDone:
    """Create the pool and save the two blocks the local deployments name.

    Raises:
        ConfigurationError: the ``SCENARIO_*`` variables are missing.
    """
    from prefect_aws import AwsClientParameters, AwsCredentials

    from prefect_scenario.credentials import ScenarioCredentials

    values = dict(os.environ if env is None else env)
    credentials = ScenarioCredentials.from_env(values)
    created = await _ensure_pool() if pool else None
    await credentials.save(SCENARIO_BLOCK, overwrite=True)
    endpoint = values.get("AWS_ENDPOINT_URL_S3") or values.get("AWS_ENDPOINT_URL")
    aws = AwsCredentials(
        aws_access_key_id=values.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=values.get("AWS_SECRET_ACCESS_KEY"),
        region_name=values.get("AWS_DEFAULT_REGION") or values.get("AWS_REGION"),
        aws_client_parameters=AwsClientParameters(endpoint_url=endpoint) if endpoint else AwsClientParameters(),
    )
    await aws.save(AWS_BLOCK, overwrite=True)
    return SetupDone(pool_created=created, scenario_block=SCENARIO_BLOCK, aws_block=AWS_BLOCK)
