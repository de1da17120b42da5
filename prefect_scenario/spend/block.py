"""The ``ScenarioBudget`` block: how many creative units trainings may spend, and what happens past it.

Limits are in creative units, per dataset per period, per project per period (a UTC
``day`` or ``month``) and per fleet run. Past a limit a training is refused, or, with
``on_exceeded="pause"``, its flow run pauses for a decision in the Prefect UI
(:mod:`prefect_scenario.spend.approval`). Every setting is checked when the block is built
or loaded, before any request.

Example:
    >>> budget = ScenarioBudget(per_dataset=200, per_project=1000)
    >>> budget.limits().per_dataset, budget.on_exceeded
    (200.0, 'refuse')
    >>> ScenarioBudget(per_dataset=0)
    Traceback (most recent call last):
    ...
    prefect_scenario.exceptions.ConfigurationError: per_dataset must be a positive number of creative units, got 0
"""

from __future__ import annotations

import math
from typing import Any, Literal, Self

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, ValidationError

from prefect_scenario._titles import field_title
from prefect_scenario.credentials import DOCUMENTATION_URL, LOGO_URL
from prefect_scenario.exceptions import ConfigurationError, InvalidInputError
from prefect_scenario.spend.decisions import PERIODS, Limits
from prefect_scenario.validation import finite

__all__ = ["ScenarioBudget", "check_units", "resolve_budget"]


def check_units(name: str, value: float | None) -> float | None:
    """``value`` as a float if it is a usable limit (positive, finite) or None.

    Raises:
        ConfigurationError: zero, negative, NaN or infinite.

    Example:
        >>> check_units("max_creative_units", 150)
        150.0
    """
    if value is None:
        return None
    try:
        return finite(name, value, minimum=0, allow_zero=False)
    except InvalidInputError:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        shown = f"{value:g}" if number else repr(value)
        raise ConfigurationError(f"{name} must be a positive number of creative units, got {shown}") from None


def _configuration_error(exc: ValidationError) -> ConfigurationError:
    """The first validation error as a ConfigurationError (its own message when it was one)."""
    first = exc.errors()[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, ConfigurationError):
        return cause
    where = ".".join(str(p) for p in first.get("loc", ()))
    return ConfigurationError(f"invalid ScenarioBudget{f' {where}' if where else ''}: {first.get('msg')}")


class ScenarioBudget(Block):
    """Spend limits for Scenario trainings, enforced before every trigger against a ledger kept in Prefect.

    Each training's cost is estimated by a dry run before it is triggered; the estimate is
    reserved in the project's ledger under a lock, so concurrent runs cannot both pass
    the check, and replaced by the actual cost once the trigger answers.

    Example:
        Load a saved budget and train under it:
        ```python
        from prefect_scenario import ScenarioBudget, train_lora

        budget = ScenarioBudget.load("BLOCK_NAME")
        train_lora(name="hero", training_type="flux.2-dev-lora", images=images, budget=budget)
        ```
    """

    _block_type_name = "Scenario Budget"
    _block_type_slug = "scenario-budget"
    _logo_url = LOGO_URL  # type: ignore[assignment]
    _documentation_url = DOCUMENTATION_URL  # type: ignore[assignment]
    _description = "Creative-unit limits for Scenario trainings per dataset, per project and per fleet run."
    model_config = ConfigDict(field_title_generator=field_title)

    per_dataset: float | None = Field(
        None, description="Creative units one dataset may spend per period; None for no limit."
    )
    per_project: float | None = Field(
        None, description="Creative units the whole project may spend per period; None for no limit."
    )
    per_fleet_run: float | None = Field(None, description="Creative units one fleet run may spend; None for no limit.")
    period: str = Field("day", description="The window of the dataset and project limits: day or month (UTC).")
    on_exceeded: Literal["refuse", "pause"] = Field(
        "refuse", description="Past a limit: refuse the training, or pause the run for a decision in the UI."
    )
    pause_timeout_seconds: float = Field(
        3600.0, description="How long a paused run waits for a decision before it skips the training."
    )
    pause_poll_seconds: float = Field(10.0, description="How often a paused run checks whether it was resumed.")
    project_id: str | None = Field(
        None, description="The project whose ledger the S3 sensor reads; trainings use their credentials' project."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().__init__(*args, **kwargs)
        except ValidationError as exc:
            raise _configuration_error(exc) from None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        # Block.load builds the block with model_validate: the same clear error there.
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise _configuration_error(exc) from None

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        for name in ("per_dataset", "per_project", "per_fleet_run"):
            check_units(name, getattr(self, name))
        if self.period not in PERIODS:
            raise ConfigurationError(f"period must be one of {', '.join(PERIODS)} (UTC); got {self.period!r}")
        for name in ("pause_timeout_seconds", "pause_poll_seconds"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigurationError(f"{name} must be a positive number of seconds, got {value:g}")

    def limits(self) -> Limits:
        """The limits, for :func:`~prefect_scenario.spend.decisions.decide_spend`."""
        return Limits(
            per_dataset=check_units("per_dataset", self.per_dataset),
            per_project=check_units("per_project", self.per_project),
            per_fleet_run=check_units("per_fleet_run", self.per_fleet_run),
            period=self.period,
            on_exceeded=self.on_exceeded,
        )


async def resolve_budget(value: ScenarioBudget | str | None) -> ScenarioBudget | None:
    """A budget given as itself, by saved block name, or None (no budget).

    Raises:
        ConfigurationError: no block of that name, or it is not a ScenarioBudget.

    Example:
        >>> import asyncio
        >>> asyncio.run(resolve_budget(None)) is None
        True
    """
    if value is None or isinstance(value, ScenarioBudget):
        return value
    try:
        loaded = await ScenarioBudget.aload(value)
    except ValueError as exc:
        if isinstance(exc, ConfigurationError):
            raise
        raise ConfigurationError(f"no ScenarioBudget block named {value!r} could be loaded: {exc}") from None
    if not isinstance(loaded, ScenarioBudget):
        raise ConfigurationError(f"block {value!r} is not a ScenarioBudget block")
    return loaded
