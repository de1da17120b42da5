"""The training flows: create → upload → train → wait, for standard and edit LoRA types.

Both run from a plain script or a sync flow (they return the :class:`TrainingResult`)
and from async code (``await train_lora(...)``). Everything is checked before the first
request; every run has an idempotency key recorded on its model, so a re-run after a
crash continues the same model (:mod:`prefect_scenario.training.pipeline`). Cancelling
the flow run cancels the remote training too
(:mod:`prefect_scenario.training.cancellation`). With ``wait="suspend"`` a deployment's run
holds no process while Scenario trains (:mod:`prefect_scenario.waiting.suspension`).
"""

from __future__ import annotations

from typing import Any

from prefect_aws import AwsCredentials

from prefect_scenario._dispatch import scenario_flow
from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.dataset.images import ImageSource, PairSource
from prefect_scenario.training.cancellation import run_hooks
from prefect_scenario.training.options import build_options, option_parameters
from prefect_scenario.training.pipeline import TrainingRequest, TrainingResult, run_training

__all__ = ["TrainingResult", "train_edit_lora", "train_lora"]


@scenario_flow(name="scenario-train-lora", flow_run_name="scenario-train-lora-{name}", **run_hooks())
@option_parameters()
async def train_lora(
    name: str,
    training_type: str,
    images: list[ImageSource],
    credentials: ScenarioCredentials | None = None,
    aws_credentials: AwsCredentials | None = None,
    **options: Any,
) -> TrainingResult:
    """Train a standard LoRA: create the model, upload the images, train, wait.

    Everything is checked before the first request: the type, the parameters, the
    number of images, every image (readable PNG/JPEG/WebP, extension matching the
    content, not empty or oversized, no exact duplicates) and every caption (UTF-8,
    not empty, at most 2,000 characters).

    Args:
        name: the model name (also the flow run name, ``scenario-train-lora-{name}``).
        training_type: a standard LoRA type, e.g. ``flux.2-dev-lora``.
        images: local paths, bytes, ``s3://bucket/key`` URIs or existing ``asset_…`` ids.
        credentials: a ``ScenarioCredentials`` block, or None for the ``SCENARIO_*``
            environment variables.
        aws_credentials: a prefect-aws ``AwsCredentials`` block, for ``s3://`` images.
        {options}

    Returns:
        The :class:`TrainingResult`.

    Raises:
        InvalidInputError: bad input, before any request.
        DatasetPreflightError: the dataset preflight refused it, before any request.
        TrainingFailed: the training failed (with the server's reason).
        TrainingTimeout: it did not end in time (it was cancelled).
        DatasetRejected: the dataset score was below ``min_dataset_score``.
        BudgetExceeded: ``max_creative_units`` or the budget refused the training (or a
            pause for a decision skipped it); nothing was triggered.

    Example:
        From a plain script or a sync flow (``credentials`` and ``hero_images`` come
        from the doctest set-up: the emulator and five generated PNGs):

        >>> result = train_lora(name="hero", training_type="flux.2-dev-lora", images=hero_images,
        ...                     credentials=credentials)
        >>> result.status
        'trained'

        From async code, the same call is awaited:

        >>> import asyncio
        >>> async def main() -> str:
        ...     result = await train_lora(name="hero", training_type="flux.2-dev-lora", images=hero_images,
        ...                               credentials=credentials)
        ...     return result.status
        >>> asyncio.run(main())
        'trained'
    """
    request = TrainingRequest(
        name,
        training_type,
        build_options(**options),
        credentials=credentials,
        images=images,
        aws_credentials=aws_credentials,
    )
    return await run_training(request)


@scenario_flow(name="scenario-train-edit-lora", flow_run_name="scenario-train-edit-lora-{name}", **run_hooks())
@option_parameters(exclude=frozenset({"captions", "caption_prefix"}))
async def train_edit_lora(
    name: str,
    training_type: str,
    pairs: list[PairSource | dict[str, Any]],
    credentials: ScenarioCredentials | None = None,
    aws_credentials: AwsCredentials | None = None,
    **options: Any,
) -> TrainingResult:
    """Train an edit LoRA from before/after pairs, each with an instruction.

    Args:
        name: the model name (flow run ``scenario-train-edit-lora-{name}``).
        training_type: an edit type, e.g. ``qwen-image-edit-2511-lora``.
        pairs: ``(before, after, instruction)`` triples or mappings with those keys;
            images as for :func:`train_lora`. At least 2.
        credentials: as for :func:`train_lora`.
        aws_credentials: as for :func:`train_lora`.
        {options}

    Returns and raises as :func:`train_lora`.

    Example:
        >>> pairs = [(before, after, "make the background a snowy forest") for before, after in hero_pairs]
        >>> train_edit_lora(name="snowy", training_type="qwen-image-edit-2511-lora", pairs=pairs,
        ...                 credentials=credentials).pairs
        3
    """
    request = TrainingRequest(
        name,
        training_type,
        build_options(**options),
        credentials=credentials,
        pairs=pairs,
        aws_credentials=aws_credentials,
    )
    return await run_training(request)
