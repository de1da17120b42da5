"""Scenario's LoRA training types, their families and the rules for their inputs.

Everything here is a pure value or a pure check, shared by the client-side
validation (which must refuse bad input before any credit is spent) and by the
emulator (which must refuse the same input the way the API would).

Sources: the official ``scenario-sdk`` 2.4.0 (its ``train`` and ``models`` resources) and
Scenario's product doc "Training Models". Where the two disagree about a limit, the check
here is permissive within the *union* of the documented limits, so that we never
refuse something the API documents as valid.

Example:
    >>> from prefect_scenario.catalog import get_training_type, TrainingParameters
    >>> get_training_type("zimage-turbo-lora").compatible_inference_models
    ('Z-Image', 'Z-Image Turbo')
    >>> TrainingParameters(rank=32).to_wire()
    {'rank': 32}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
)

from prefect_scenario._titles import wire_field_title
from prefect_scenario.exceptions import InvalidDatasetError, InvalidParametersError, InvalidTrainingTypeError

__all__ = [
    "EDIT_MIN_PAIRS",
    "MAX_IMAGES",
    "MAX_SAMPLE_PROMPTS",
    "MIN_IMAGES",
    "RECOMMENDED_IMAGES",
    "SECRET_PARAMETERS",
    "TRAINING_TYPES",
    "TrainingParameters",
    "TrainingType",
    "check_dataset_size",
    "describe_validation_error",
    "get_training_type",
    "validate_parameters",
]

MIN_IMAGES = 1
MAX_IMAGES = 50  # seed: "Maximum: 50 images."
RECOMMENDED_IMAGES = (5, 15)  # seed: "Recommended: 5–15 images."
EDIT_MIN_PAIRS = 2  # seed: "A minimum of 2 pairs is required."
# Not stated for pairs. Each pair is two training assets, so the image cap of 50
# bounds pairs at 25: the safe choice, refused here rather than by a paid training.
EDIT_MAX_PAIRS = MAX_IMAGES // 2
MAX_SAMPLE_PROMPTS = 4  # seed: "Up to 4 prompts"


@dataclass(frozen=True)
class TrainingType:
    """One LoRA training type and what its LoRA can be used with."""

    id: str
    family: str
    label: str
    edit: bool
    compatible_inference_models: tuple[str, ...]
    default_inference_steps: int | None = None
    default_guidance: float | None = None
    notes: str = ""

    @property
    def dataset_kind(self) -> Literal["images", "pairs"]:
        return "pairs" if self.edit else "images"


def _flux2(
    id_: str, label: str, inference: str, edit: bool, steps: int, guidance: float | None, notes: str
) -> TrainingType:
    return TrainingType(id_, "FLUX.2", label, edit, (inference,), steps, guidance, notes)


_TYPES: tuple[TrainingType, ...] = (
    # FLUX.2 Dev: "High quality; 28 inference steps by default".
    _flux2("flux.2-dev-lora", "FLUX.2 Dev", "FLUX.2 Dev", False, 28, None, "High quality."),
    _flux2("flux.2-dev-edit-lora", "FLUX.2 Dev Edit", "FLUX.2 Dev", True, 28, None, "High quality."),
    # FLUX.2 Klein distilled: "~4 steps at guidance 1.0; fast, lower cost".
    _flux2("flux.2-klein-4b-lora", "FLUX.2 Klein 4B", "FLUX.2 Klein 4B", False, 4, 1.0, "Fast, lower cost."),
    _flux2("flux.2-klein-9b-lora", "FLUX.2 Klein 9B", "FLUX.2 Klein 9B", False, 4, 1.0, "Fast, lower cost."),
    _flux2("flux.2-klein-4b-edit-lora", "FLUX.2 Klein 4B Edit", "FLUX.2 Klein 4B", True, 4, 1.0, "Fast, lower cost."),
    _flux2("flux.2-klein-9b-edit-lora", "FLUX.2 Klein 9B Edit", "FLUX.2 Klein 9B", True, 4, 1.0, "Fast, lower cost."),
    # FLUX.2 Klein base: "~28 steps at guidance 4.0; higher quality".
    _flux2(
        "flux.2-klein-base-4b-lora", "FLUX.2 Klein Base 4B", "FLUX.2 Klein Base 4B", False, 28, 4.0, "Higher quality."
    ),
    _flux2(
        "flux.2-klein-base-9b-lora", "FLUX.2 Klein Base 9B", "FLUX.2 Klein Base 9B", False, 28, 4.0, "Higher quality."
    ),
    _flux2(
        "flux.2-klein-base-4b-edit-lora",
        "FLUX.2 Klein Base 4B Edit",
        "FLUX.2 Klein Base 4B",
        True,
        28,
        4.0,
        "Higher quality.",
    ),
    _flux2(
        "flux.2-klein-base-9b-edit-lora",
        "FLUX.2 Klein Base 9B Edit",
        "FLUX.2 Klein Base 9B",
        True,
        28,
        4.0,
        "Higher quality.",
    ),
    # Qwen Image: "Cost-effective".
    TrainingType("qwen-image-lora", "Qwen Image", "Qwen Image", False, ("Qwen Image",), notes="Cost-effective."),
    TrainingType(
        "qwen-image-2512-lora",
        "Qwen Image",
        "Qwen Image 2512",
        False,
        ("Qwen Image 2512",),
        notes="Updated checkpoint.",
    ),
    TrainingType(
        "qwen-image-edit-lora", "Qwen Image", "Qwen Image Edit", True, ("Qwen Image Edit",), notes="Cost-effective."
    ),
    TrainingType(
        "qwen-image-edit-2509-lora",
        "Qwen Image",
        "Qwen Image Edit 2509",
        True,
        ("Qwen Image Edit 2509",),
        notes="Sept 2025.",
    ),
    TrainingType(
        "qwen-image-edit-2511-lora",
        "Qwen Image",
        "Qwen Image Edit 2511",
        True,
        ("Qwen Image Edit 2511",),
        notes="Nov 2025, latest.",
    ),
    # Z-Image: all three LoRA types work with both Z-Image and Z-Image Turbo (seed).
    TrainingType(
        "zimage-lora",
        "Z-Image",
        "Z-Image",
        False,
        ("Z-Image", "Z-Image Turbo"),
        notes="Highest quality; supports ControlNet at inference.",
    ),
    TrainingType("zimage-turbo-lora", "Z-Image", "Z-Image Turbo", False, ("Z-Image", "Z-Image Turbo"), 9),
    TrainingType("zimage-de-turbo-lora", "Z-Image", "Z-Image De-Turbo", False, ("Z-Image", "Z-Image Turbo")),
    # FLUX.1: in the SDK's enum only, not in the product doc.
    TrainingType("flux.1-lora", "FLUX.1", "FLUX.1 Dev", False, ("FLUX.1 Dev",)),
    TrainingType("flux.1-kontext-lora", "FLUX.1", "FLUX.1 Kontext", False, ("FLUX.1 Kontext Dev",)),
    TrainingType("flux.1-krea-lora", "FLUX.1", "FLUX.1 Krea", False, ("FLUX.1 Krea Dev",)),
)

TRAINING_TYPES: Mapping[str, TrainingType] = {t.id: t for t in _TYPES}


def get_training_type(type_id: str) -> TrainingType:
    """The training type called ``type_id``.

    Raises:
        InvalidTrainingTypeError: ``type_id`` is not a LoRA training type.
    """
    try:
        return TRAINING_TYPES[type_id]
    except (KeyError, TypeError):
        close = [t for t in TRAINING_TYPES if isinstance(type_id, str) and type_id.split("-")[0] in t]
        hint = f" Did you mean one of: {', '.join(close[:4])}?" if close else ""
        raise InvalidTrainingTypeError(
            f"Unknown training type {type_id!r}: it must be one of the {len(TRAINING_TYPES)} LoRA types "
            f"({', '.join(TRAINING_TYPES)}).{hint}"
        ) from None


# -- parameters ------------------------------------------------------------------


_NUMERIC_FIELDS = (
    "learning_rate",
    "rank",
    "batch_size",
    "nb_epochs",
    "nb_repeats",
    "max_train_steps",
    "learning_rate_text_encoder",
    "seed",
)


class TrainingParameters(BaseModel):
    """Training parameters, by their wire names (snake_case names are accepted too).

    Limits are the union of the product doc's table and the SDK's docstrings:
    ``rank`` 2–128 (the doc: 2–128; the SDK: Flux LoRA 2–64, Musubi 2–128; which trainer a
    type uses is not stated, so the wider one is allowed), ``learningRate``
    0.00001–0.001 (the defaults differ, 0.00005 vs 0.0001: we send none unless you do).
    Integer parameters must be whole numbers: the SDK types them as floats, but a
    fractional rank or epoch count is never meaningful, so it is refused here.

    Example:
        >>> TrainingParameters(learning_rate=1e-4, nb_epochs=8, sample_prompts=["a hero"]).to_wire()
        {'learningRate': 0.0001, 'nbEpochs': 8, 'samplePrompts': ['a hero']}
    """

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, frozen=True, field_title_generator=wire_field_title
    )

    learning_rate: float | None = Field(None, alias="learningRate", ge=0.00001, le=0.001, allow_inf_nan=False)
    rank: int | None = Field(None, ge=2, le=128)
    batch_size: int | None = Field(None, alias="batchSize", ge=1, le=8)
    nb_epochs: int | None = Field(None, alias="nbEpochs", ge=1, le=100)
    nb_repeats: int | None = Field(None, alias="nbRepeats", ge=1, le=100)
    max_train_steps: int | None = Field(None, alias="maxTrainSteps", ge=0, le=10000)
    learning_rate_text_encoder: float | None = Field(
        None, alias="learningRateTextEncoder", ge=0.000001, le=0.001, allow_inf_nan=False
    )
    seed: int | None = Field(None, ge=0, description="For reproducibility (deprecated by the SDK, still accepted).")
    concept_prompt: str | None = Field(None, alias="conceptPrompt")
    # The SDK enum has only "likeness"; its docstring also describes "all" and "none".
    optimize_for: Literal["likeness", "all", "none"] | None = Field(None, alias="optimizeFor")
    sample_prompts: list[str] | None = Field(None, alias="samplePrompts", max_length=MAX_SAMPLE_PROMPTS)
    sample_source_images: list[str] | None = Field(None, alias="sampleSourceImages")
    # A Weights & Biases key is a secret: kept masked everywhere but on the wire. Its field is
    # named as on the wire (no alias): Prefect masks a block's nested secrets by field name
    # (``parameters.wandbKey``) in the data it stores by alias, so the two must be the same.
    wandbKey: SecretStr | None = Field(None, validation_alias=AliasChoices("wandbKey", "wandb_key"), max_length=40)

    @field_validator(*_NUMERIC_FIELDS, mode="before")
    @classmethod
    def _not_a_boolean(cls, value: Any) -> Any:
        # Pydantic reads True as 1 in lax mode: `--param nbEpochs=true` would train one epoch.
        if isinstance(value, bool):
            raise ValueError("a boolean is not a number")
        return value

    @field_serializer("wandbKey", when_used="json")
    def _mask(self, value: SecretStr | None) -> str | None:
        return None if value is None else "**********"

    def to_wire(self) -> dict[str, Any]:
        """The JSON ``parameters`` object, wire names, unset fields left out.

        ``wandbKey`` is unwrapped here and only here: this is the body the client sends.
        """
        wire = self.model_dump(by_alias=True, exclude_none=True, mode="python")
        if self.wandbKey is not None:
            wire["wandbKey"] = self.wandbKey.get_secret_value()
        for key, value in wire.items():
            if isinstance(value, float) and not math.isfinite(value):  # pragma: no cover - ge/le refuse these
                raise InvalidParametersError(f"parameter {key!r} must be a finite number")
        return wire


# Parameters that are secrets: SecretStr in TrainingParameters (so in every block, option set and
# flow parameter built from it), masked in JSON, never repeated in an error; unwrapped only by to_wire().
SECRET_PARAMETERS = frozenset({"wandbKey"})


def _is_secret(loc: str) -> bool:
    return any(part in SECRET_PARAMETERS or part == "wandb_key" for part in loc.split("."))


def describe_validation_error(
    error: ValidationError, *, noun: str = "parameter", whole: str = "parameters", show_input: bool = True
) -> str:
    """One line naming every problem pydantic found: the field, what is wrong (and the value)."""
    parts = []
    for item in error.errors():
        loc = ".".join(str(p) for p in item["loc"]) or whole
        if item["type"] == "extra_forbidden":
            parts.append(f"unknown {noun} {loc!r}")
        elif show_input and not _is_secret(loc):
            parts.append(f"{loc}: {item['msg']} (got {item.get('input')!r})")
        else:
            parts.append(f"{loc}: {item['msg']}")
    return "; ".join(parts)


def validate_parameters(
    training_type: str | TrainingType, parameters: TrainingParameters | Mapping[str, Any] | None
) -> TrainingParameters:
    """Check ``parameters`` for ``training_type`` and return them as a model.

    Raises:
        InvalidParametersError: an unknown parameter, a value out of range, or
            ``sampleSourceImages`` where it does not apply.
        InvalidTrainingTypeError: the training type is unknown.
    """
    ttype = training_type if isinstance(training_type, TrainingType) else get_training_type(training_type)
    if parameters is None:
        params = TrainingParameters()
    elif isinstance(parameters, TrainingParameters):
        params = parameters
    else:
        try:
            params = TrainingParameters.model_validate(dict(parameters))
        except ValidationError as exc:
            raise InvalidParametersError(f"Invalid training parameters: {describe_validation_error(exc)}") from None
    if params.sample_source_images is not None:
        if not ttype.edit:
            raise InvalidParametersError(
                f"sampleSourceImages is for edit training types only; {ttype.id!r} is a standard type"
            )
        n_prompts = len(params.sample_prompts or [])
        if len(params.sample_source_images) != n_prompts:
            raise InvalidParametersError(
                f"sampleSourceImages must be the same length as samplePrompts "
                f"({len(params.sample_source_images)} != {n_prompts})"
            )
    return params


# -- dataset size ------------------------------------------------------------------


def check_dataset_size(training_type: str | TrainingType, *, images: int = 0, pairs: int = 0) -> list[str]:
    """Check the dataset size for ``training_type``; return warnings (never fatal).

    Standard types take 1–50 images (5–15 recommended: outside that, a warning);
    edit types take at least 2 pairs and no loose images.

    Raises:
        InvalidDatasetError: the dataset cannot be trained as given.
    """
    ttype = training_type if isinstance(training_type, TrainingType) else get_training_type(training_type)
    if ttype.edit:
        if images:
            raise InvalidDatasetError(
                f"{ttype.id!r} is an edit type: give before/after pairs with an instruction, not {images} loose images"
            )
        if pairs < EDIT_MIN_PAIRS:
            raise InvalidDatasetError(f"{ttype.id!r} needs at least {EDIT_MIN_PAIRS} pairs; got {pairs}")
        if pairs > EDIT_MAX_PAIRS:
            raise InvalidDatasetError(
                f"{ttype.id!r} takes at most {EDIT_MAX_PAIRS} pairs ({MAX_IMAGES} images); got {pairs}"
            )
        return []
    if pairs:
        raise InvalidDatasetError(f"{ttype.id!r} is a standard type: give images, not {pairs} pairs")
    if images < MIN_IMAGES:
        raise InvalidDatasetError(f"{ttype.id!r} needs at least {MIN_IMAGES} training image; got 0")
    if images > MAX_IMAGES:
        raise InvalidDatasetError(f"{ttype.id!r} takes at most {MAX_IMAGES} training images; got {images}")
    low, high = RECOMMENDED_IMAGES
    if not low <= images <= high:
        return [f"{images} training images: {low}–{high} are recommended for a LoRA"]
    return []
