"""Which base model runs a LoRA, and the render bodies checked against that base's schema.

A trained LoRA never runs by its own id: ``POST /generate/custom/{loraId}`` answers 400
"Custom models only are supported for this endpoint" (Scenario's blender plugin, live
capture ``tests/fixtures/models/trained/contracts.json``). It runs through a base model
whose ``uiConfig.lorasComponent.modelInput`` input lists the LoRA's ``type`` in its
``modelTypes`` (SDK ``ModelInput.modelTypes``, ``types/model_retrieve_response.py:241``).
:data:`CANDIDATE_BASES` holds the bases the captures and docs name per type; each one's
schema is read and checked before it is used.

Every value is checked against the schema before any request (``min``, ``max``,
``maxLength``, ``modelTypes``, ``required``): a real render is paid, and an array input
given a bare string renders without the LoRA, silently (Scenario's skills,
``skills/scenario/SKILL.md``), so :func:`render_bodies` only ever builds arrays.

Example:
    >>> candidate_bases("flux.2-dev-lora")
    ('model_bfl-flux-2-dev',)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect_scenario.api.models import BaseModelRecord, Model, ModelInput
from prefect_scenario.evaluation.suite import EvaluationSuite
from prefect_scenario.exceptions import EvaluationInputError, NotFoundError

__all__ = [
    "CANDIDATE_BASES",
    "RenderRequest",
    "candidate_bases",
    "check_lora",
    "lora_inputs",
    "render_bodies",
    "resolve_base",
]

CANDIDATE_BASES: dict[str, tuple[str, ...]] = {
    "flux.2-dev-lora": ("model_bfl-flux-2-dev",),
    "flux.2-dev-edit-lora": ("model_bfl-flux-2-dev",),
    "zimage-lora": ("model_z-image", "model_z-image-turbo"),
    "zimage-turbo-lora": ("model_z-image", "model_z-image-turbo"),
    "zimage-de-turbo-lora": ("model_z-image", "model_z-image-turbo"),
    "qwen-image-edit-2511-lora": ("model_qwen-image-edit-2511",),
    "flux.2-klein-base-4b-lora": ("model_bfl-flux-2-klein-4b-base",),
    "flux.1-lora": ("model_bfl-flux-1-dev",),
    "flux.1-composition": ("model_bfl-flux-1-dev",),
    "flux.1-kontext-lora": ("model_flux-kontext-editing",),
}


@dataclass(frozen=True)
class RenderRequest:
    """One render of a suite: the prompt as sent, its seed and the exact body."""

    prompt: str
    seed: int
    body: dict[str, Any]


def candidate_bases(lora_type: str) -> tuple[str, ...]:
    """The base ids documented for ``lora_type`` (each still checked against its schema)."""
    return CANDIDATE_BASES.get(lora_type, ())


def check_lora(model: Model) -> str:
    """The LoRA's type, if it can be rendered: trained, with a type.

    Raises:
        EvaluationInputError: not trained (renders only run a trained LoRA), or no type.
    """
    if model.status != "trained":
        raise EvaluationInputError(
            f"model {model.id} is {model.status!r}, not 'trained': evaluate it once its training has finished"
        )
    if not model.type:
        raise EvaluationInputError(f"model {model.id} has no type; Scenario did not say which LoRA it is")
    return model.type


def lora_inputs(base: BaseModelRecord) -> tuple[ModelInput, ModelInput]:
    """The base's LoRA list input and scale list input, named by ``uiConfig.lorasComponent``.

    Raises:
        EvaluationInputError: the base takes no LoRAs.
    """
    component = base.ui_config.get("lorasComponent") or {}
    models = base.input(str(component.get("modelInput", "")))
    scales = base.input(str(component.get("scaleInput", "")))
    if models is None or scales is None or models.type != "model_array":
        raise EvaluationInputError(f"base model {base.id} takes no LoRAs (no uiConfig.lorasComponent)")
    return models, scales


async def resolve_base(client: Any, lora_type: str, base_model_id: str | None = None) -> BaseModelRecord:
    """The base model that runs ``lora_type``: ``base_model_id`` if given, else the first documented one that fits.

    Raises:
        EvaluationInputError: no known base runs the type, or the given base does not list it.
    """
    ids = (base_model_id,) if base_model_id else candidate_bases(lora_type)
    if not ids:
        raise EvaluationInputError(
            f"no known base model runs LoRA type {lora_type!r}: pass base_model_id= (a base whose "
            "LoRA input lists this type in its modelTypes)"
        )
    for candidate in ids:
        try:
            base = await client.get_base_model(candidate)
        except NotFoundError:
            continue
        models, _ = lora_inputs(base)
        if lora_type in models.model_types:
            return base  # type: ignore[no-any-return]
    raise EvaluationInputError(
        f"no base model among {', '.join(ids)} lists LoRA type {lora_type!r} in its LoRA input's modelTypes: "
        "pass another base_model_id="
    )


def _bounded(spec: ModelInput | None, name: str, value: float) -> None:
    if spec is None:
        return
    if spec.max is not None and value > spec.max:
        raise EvaluationInputError(f"{name}={value:g} is above the base's maximum {spec.max:g}: lower it")
    if spec.min is not None and value < spec.min:
        raise EvaluationInputError(f"{name}={value:g} is below the base's minimum {spec.min:g}: raise it")


def _check_suite(base: BaseModelRecord, suite: EvaluationSuite, lora_ids: list[str], edit: bool) -> None:
    models, scales = lora_inputs(base)
    if models.max_length is not None and len(lora_ids) > models.max_length:
        raise EvaluationInputError(f"{len(lora_ids)} LoRAs, but base {base.id} takes at most {models.max_length}")
    _bounded(scales, "lora_scale", suite.lora_scale)
    if not 0 <= suite.lora_scale <= 2:  # the schema's min is not enforced server-side (captured): check it here
        raise EvaluationInputError(f"lora_scale={suite.lora_scale:g} is outside 0-2: choose a scale in 0-2")
    prompt = base.input("prompt")
    for text, _ in suite.items():
        if prompt is not None and prompt.max_length is not None and len(text) > prompt.max_length:
            raise EvaluationInputError(
                f"the prompt {text[:40]!r}... is {len(text)} characters; base {base.id} takes at most "
                f"{prompt.max_length}: shorten it"
            )
    for name, value in (("width", suite.width), ("height", suite.height)):
        _bounded(base.input(name), name, value)
    for seed in suite.seeds:
        _bounded(base.input("seed"), "seed", seed)
    _bounded(base.input("numOutputs"), "numOutputs", 1)
    if suite.num_inference_steps is not None:
        _bounded(base.input("numInferenceSteps"), "num_inference_steps", suite.num_inference_steps)
    _check_references(base, suite, edit)


def _check_references(base: BaseModelRecord, suite: EvaluationSuite, edit: bool) -> None:
    references = base.input("referenceImages")
    required = references is not None and "always" in (references.required or {})
    if (edit or required) and not suite.reference_images:
        raise EvaluationInputError(
            "an edit LoRA renders from a source image: give the suite reference_images (asset ids)"
        )
    if suite.reference_images and references is None:
        raise EvaluationInputError(f"base {base.id} takes no reference images: remove reference_images")
    limit = references.max_length if references is not None else None
    if limit is not None and len(suite.reference_images) > limit:
        raise EvaluationInputError(f"base {base.id} takes at most {limit} reference images: give fewer")


def render_bodies(
    base: BaseModelRecord, suite: EvaluationSuite, lora_ids: list[str], *, edit: bool = False
) -> list[RenderRequest]:
    """One checked body per prompt and seed: ``numOutputs`` 1, an explicit seed, arrays for the LoRAs.

    Raises:
        EvaluationInputError: a value outside the base's schema (names what to change).
    """
    _check_suite(base, suite, lora_ids, edit)
    models, scales = lora_inputs(base)
    requests = []
    for text, seed in suite.items():
        body: dict[str, Any] = {
            "prompt": text,
            models.name: list(lora_ids),
            scales.name: [suite.lora_scale] * len(lora_ids),
            "numOutputs": 1,
            "seed": seed,
            "width": suite.width,
            "height": suite.height,
        }
        if suite.num_inference_steps is not None:
            body["numInferenceSteps"] = suite.num_inference_steps
        if suite.reference_images:
            body["referenceImages"] = list(suite.reference_images)
        requests.append(RenderRequest(text, seed, body))
    return requests
