"""A training's knobs, stated once: :class:`TrainingOptions`.

The flows (``train_lora``, ``train_edit_lora``), a fleet's :class:`~prefect_scenario.TrainingJob`,
the :class:`~prefect_scenario.ScenarioTraining` block, ``retrain_from_s3`` and the CLI all build a
``TrainingOptions``. The flows get one parameter per option from it
(:func:`option_parameters`), so Prefect's UI shows each one in its form, and a test checks
that every flow parameter, job field, block field and CLI option agrees with the model (as
prefect-dbt's ``TriggerJobRunOptions`` and prefect-aws's ``ECSVariables`` state a job's
settings in one model).

Everything here is checked when the options are built, before any request: a non-finite or
non-positive timeout, a NaN score threshold, a zero limit, an unknown wait mode.

Example:
    >>> options = TrainingOptions(wait="suspend", max_creative_units=150)
    >>> options.mode, options.timeout_seconds == DEFAULT_TIMEOUT_SECONDS
    ('suspend', True)
    >>> build_options(timeout_seconds=float("nan"))
    Traceback (most recent call last):
    ...
    prefect_scenario.exceptions.ConfigurationError: timeout_seconds must be a finite number, got nan
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from prefect_scenario.catalog import TrainingParameters
from prefect_scenario.evaluation.options import EvaluationOptions
from prefect_scenario.exceptions import ConfigurationError, InvalidInputError
from prefect_scenario.spend.block import ScenarioBudget, check_units
from prefect_scenario.validation import check_text, clean_name, optional_finite, positive_int, positive_seconds
from prefect_scenario.waiting.polling import DEFAULT_POLICY, DEFAULT_TIMEOUT_SECONDS, PollPolicy
from prefect_scenario.waiting.suspension import WaitMode, parse_wait

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "JOB_FIELDS",
    "RUN_FIELDS",
    "TrainingOptions",
    "build_options",
    "option_field",
    "option_parameters",
]

MAX_UPLOAD_CONCURRENCY = 16
# Not stated by the API; a trigger word and a few style words fit many times over.
MAX_PREFIX_LENGTH = 500


class TrainingOptions(BaseModel):
    """How one training runs: everything but its name, type, dataset and credentials.

    Example:
        >>> TrainingOptions(caption_prefix="KAEL_07, ", force=True).force
        True
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    # The dataset and how it is checked.
    parameters: TrainingParameters | dict[str, Any] | None = Field(
        None, description="Training parameters, by wire or snake_case name (e.g. nbEpochs, learningRate)."
    )
    captions: dict[str, str] | None = Field(
        None,
        description="Captions by image (the source as given, or its file name); an image not in it is "
        "captioned by the UTF-8 <stem>.txt beside it, if any, else Scenario captions it. Standard types only.",
    )
    caption_prefix: str | None = Field(
        None, description='Put at the start of every caption, e.g. a trigger word "KAEL_07, ". Standard types only.'
    )
    strict_preflight: bool = Field(
        False,
        description="Refuse on every preflight warning too (near-duplicates, small images, outlying aspect "
        "ratios, partial captions, size advice).",
    )
    min_dataset_score: float | None = Field(
        None, description="Refuse to train below this training-dataset score (without it the score is advisory)."
    )
    upload_concurrency: int = Field(4, description="Images uploaded (and held in memory) at once.")
    # Waiting.
    wait: WaitMode = Field(
        "poll",
        description='"poll" (or True) waits in this process; "suspend" frees the process of a deployment run '
        "until the watcher or a Scenario webhook resumes it; False returns once the training started.",
    )
    timeout_seconds: float = Field(
        DEFAULT_TIMEOUT_SECONDS, description="How long to wait for the training; then it is cancelled."
    )
    poll_policy: PollPolicy = Field(DEFAULT_POLICY, description="The wait loop's poll delay bounds.")
    # Idempotency.
    idempotency_key: str | None = Field(
        None, description="The run's key; derived from the name, type, dataset content and parameters if unset."
    )
    force: bool = Field(False, description="Train again even if an identical dataset already trained.")
    # Spend.
    max_creative_units: float | None = Field(
        None, description="Refuse the training, before its trigger, if its dry run estimates more creative units."
    )
    budget: ScenarioBudget | str | None = Field(
        None,
        description="A ScenarioBudget block (or its saved name): limits per dataset, project and fleet run, "
        "checked against the ledger before the trigger.",
    )
    dataset: str | None = Field(
        None, description="The dataset label the budget's per-dataset limit and the ledger use (default: the name)."
    )
    # After the training.
    promote: bool | EvaluationOptions = Field(
        False,
        description="Judge the trained LoRA against the dataset's production LoRA (same prompts and seeds, "
        "scored by Scenario's Quality Gate) and make it production only if it scores better by the margin; "
        "True for the default EvaluationOptions. Needs a wait that sees the training end.",
    )

    # Raw values ("before"), through the checks every entry point shares: a boolean is not a
    # number, NaN and infinities are refused (NaN would switch the deadline or the score gate off).
    @field_validator("timeout_seconds", mode="before")
    @classmethod
    def _timeout(cls, value: object) -> float:
        return positive_seconds("timeout_seconds", value)

    @field_validator("min_dataset_score", mode="before")
    @classmethod
    def _score(cls, value: object) -> float | None:
        # Scenario's training-dataset score is a fraction (0-1: scenario-sdk's DatasetScore).
        return optional_finite("min_dataset_score", value, minimum=0, maximum=1)

    @field_validator("upload_concurrency", mode="before")
    @classmethod
    def _concurrency(cls, value: object) -> int:
        # Each upload holds one image (up to 20 MiB) in memory: 16 bounds a worker's peak.
        return positive_int("upload_concurrency", value, maximum=MAX_UPLOAD_CONCURRENCY)

    @field_validator("max_creative_units", mode="before")
    @classmethod
    def _units(cls, value: object) -> float | None:
        return check_units("max_creative_units", value)  # type: ignore[arg-type]

    @field_validator("caption_prefix", mode="before")
    @classmethod
    def _prefix(cls, value: object) -> str | None:
        if value is not None:  # checked, but kept as given: its trailing ", " joins it to the caption
            check_text("caption_prefix", value, max_length=MAX_PREFIX_LENGTH)
        return value  # type: ignore[return-value]

    @field_validator("idempotency_key", "dataset", mode="before")
    @classmethod
    def _label(cls, value: object, info: ValidationInfo) -> str | None:
        return None if value is None else clean_name(str(info.field_name), value)

    @field_validator("wait", mode="before")
    @classmethod
    def _wait(cls, value: Any) -> Any:
        parse_wait(value)  # its message names the three modes; pydantic's would name the type's parts
        return value

    @model_validator(mode="after")
    def _promote_needs_the_end(self) -> TrainingOptions:
        if self.promote is not False and self.mode == "none":
            raise ConfigurationError('promote needs the training\'s end: use wait="poll" or "suspend", not False')
        return self

    @property
    def mode(self) -> Literal["poll", "suspend", "none"]:
        """The wait mode, parsed: ``"poll"``, ``"suspend"`` or ``"none"``."""
        return parse_wait(self.wait)


# A fleet job sets these per job; the fleet sets the others once for all its jobs.
JOB_FIELDS = frozenset(
    {
        "parameters",
        "captions",
        "caption_prefix",
        "strict_preflight",
        "min_dataset_score",
        "idempotency_key",
        "force",
        "max_creative_units",
        "dataset",
    }
)
RUN_FIELDS = frozenset(TrainingOptions.model_fields) - JOB_FIELDS


def option_field(name: str) -> Any:
    """A field declared as the :class:`TrainingOptions` field ``name``: its default and description.

    For the models that carry some of the options under their own names (a fleet's job, the job block).
    """
    field = TrainingOptions.model_fields[name]
    return Field(field.default, description=field.description)


def build_options(**values: Any) -> TrainingOptions:
    """``TrainingOptions`` from keyword values, a validation error as one :class:`ConfigurationError`.

    Example:
        >>> build_options(upload_concurrency=0)
        Traceback (most recent call last):
        ...
        prefect_scenario.exceptions.ConfigurationError: upload_concurrency must be 1 to 16, got 0
    """
    try:
        return TrainingOptions(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        cause = first.get("ctx", {}).get("error")
        if isinstance(cause, ConfigurationError):
            raise cause from None
        if isinstance(cause, InvalidInputError):
            raise ConfigurationError(str(cause)) from None
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigurationError(f"{where}: {first['msg']}") from None


F = TypeVar("F", bound=Callable[..., Any])


def option_parameters(*, exclude: frozenset[str] = frozenset()) -> Callable[[F], F]:
    """Make a flow body's ``**options`` the options' parameters: its signature and ``Args`` lines.

    Prefect reads a flow's parameters from ``inspect.signature``, which honours ``__signature__``
    (Python's docs, ``inspect.signature``): the deployment form, the binding of a call and the
    validation of its values all see one parameter per option, with the model's type, default
    and description, in the model's order after the body's own parameters. So a flow states
    only its dataset and credentials, and the options are declared once, in
    :class:`TrainingOptions`. The descriptions go where the docstring says ``{options}``; Prefect
    reads them for the form.

    Example:
        >>> @option_parameters(exclude=frozenset(TrainingOptions.model_fields) - {"force"})
        ... async def body(name: str, **options: Any) -> None:
        ...     "        {options}"
        >>> inspect.signature(body)
        <Signature (name: str, *, force: bool = False)>
        >>> body.__doc__.strip()
        'force: Train again even if an identical dataset already trained.'
    """

    def decorate(fn: F) -> F:
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.kind is not p.VAR_KEYWORD]
        fields = {name: field for name, field in TrainingOptions.model_fields.items() if name not in exclude}
        options = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=field.default, annotation=field.annotation)
            for name, field in fields.items()
        ]
        fn.__signature__ = inspect.Signature([*own, *options])  # type: ignore[attr-defined]
        lines = [f"        {name}: {field.description}" for name, field in fields.items()]
        fn.__doc__ = (fn.__doc__ or "").replace("        {options}", "\n".join(lines))
        return fn

    return decorate
