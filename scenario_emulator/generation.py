"""Rendering with a trained LoRA: base models, validation, cost, jobs, outputs, Quality Gate scores.

A trained LoRA never runs by its own id: it runs through a base model, listed in the
base's ``model_array`` input (the one ``uiConfig.lorasComponent.modelInput`` names),
with one scale per LoRA in its ``number_array`` input (Scenario's blender plugin,
``scenario/core/api/trained_routes.py``, and its live captures under
``tests/fixtures/models/trained/``). The emulator serves four such bases, with the
inputs those captures recorded.

Everything here is pure or a plain record, so tests move a clock:

- :func:`validate_render` gives the 400/404 answers the captures show (``Input
  lorasScale must be at most 2``, ``Input loras must be at most 6 items long``,
  ``Invalid model(s): …\\nAllowed model types: …``); a negative scale is accepted, as
  captured; a bare string where an array is expected is dropped silently, so the image
  renders without the LoRA (Scenario's skills, ``skills/scenario/SKILL.md``);
- :func:`render_cost`: ``custom-generation`` 3.5 creative units per output at the
  base's default steps (scaled by steps), plus a ``quality-gate`` add-on of 0.5 per
  output; the dry run answers it with HTTP 269, as captured;
- :func:`true_quality`: each LoRA's hidden quality, from its dataset (the contents of
  its training images) and ``nbEpochs``: it rises to a peak epoch and then falls
  (overcooking). :func:`image_score` adds a per prompt-and-seed difficulty shared by
  every model and a per-image noise, so two models compared on the same prompts and
  seeds differ by their true quality plus noise;
- :class:`GenerationJob`: ``queued`` for 1 s, ``in-progress`` for 4 s, then
  ``success``; the outputs' Quality Gate scores appear 3 s after that.

Example:
    >>> q = [true_quality(("a", "b"), n) for n in (2, 8, 30)]
    >>> q[0] < q[1] and q[2] < q[1]
    True
    >>> render_cost({"numOutputs": 1, "numInferenceSteps": 28}, BASE_MODELS["model_bfl-flux-2-dev"])["costDetails"]
    {'custom-generation': 3.5, 'quality-gate': 0.5}
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BASE_MODELS",
    "QUEUE_SECONDS",
    "RUN_SECONDS",
    "SCORE_DELAY_SECONDS",
    "GenerationJob",
    "GenerationState",
    "image_score",
    "render_cost",
    "true_quality",
    "verdict_for",
]

QUEUE_SECONDS, RUN_SECONDS, SCORE_DELAY_SECONDS = 1.0, 4.0, 3.0
BASE_QUALITY = 40.0  # what a base model scores without a LoRA


def _inputs(types: list[str], *, max_loras: int, outputs_default: int, extra: list[dict[str, Any]]) -> list[Any]:
    return [
        {"name": "prompt", "type": "string", "required": {"always": True}, "maxLength": 2048},
        {"name": "modelId", "type": "model", "default": "", "modelTypes": types},
        {"name": "loras", "type": "model_array", "default": [], "maxLength": max_loras, "modelTypes": types},
        {"name": "lorasScale", "type": "number_array", "min": 0, "max": 2, "step": 0.05},
        {"name": "numOutputs", "type": "number", "min": 1, "max": 4, "default": outputs_default, "step": 1,
         "costImpact": True},
        {"name": "numInferenceSteps", "type": "number", "min": 1, "max": 100, "default": 28, "costImpact": True},
        {"name": "width", "type": "number", "min": 128, "max": 2048, "step": 16},
        {"name": "height", "type": "number", "min": 128, "max": 2048, "step": 16},
        {"name": "seed", "type": "number", "min": 0, "max": 2147483647},
        *extra,
    ]  # fmt: skip


def _base(model_id: str, name: str, inputs: list[Any]) -> dict[str, Any]:
    return {
        "id": model_id, "name": name, "type": "custom", "custom": True, "privacy": "public", "status": "trained",
        "source": "scenario", "tags": ["sc:third-party"], "collectionIds": [], "trainingImagesNumber": 0,
        "createdAt": "2025-01-01T00:00:00.000Z", "updatedAt": "2025-01-01T00:00:00.000Z", "capabilities": ["txt2img"],
        "exampleAssetIds": [], "inputs": inputs,
        "uiConfig": {"lorasComponent": {"label": "LoRAs", "modelInput": "loras", "scaleInput": "lorasScale",
                                        "modelIdInput": "modelId"}},
    }  # fmt: skip


_REFERENCES = {"name": "referenceImages", "type": "file_array", "maxLength": 5, "parent": True}
BASE_MODELS: dict[str, dict[str, Any]] = {
    "model_bfl-flux-2-dev": _base("model_bfl-flux-2-dev", "FLUX.2 Dev", _inputs(
        ["flux.2-dev-lora", "flux.2-dev-edit-lora"], max_loras=6, outputs_default=1, extra=[_REFERENCES])),
    "model_z-image": _base("model_z-image", "Z-Image", _inputs(
        ["zimage-lora", "zimage-turbo-lora", "zimage-de-turbo-lora"], max_loras=6, outputs_default=4,
        extra=[{"name": "negativePrompt", "type": "string", "maxLength": 2048}])),
    "model_qwen-image-edit-2511": _base("model_qwen-image-edit-2511", "Qwen Image Edit 2511", _inputs(
        ["qwen-image-edit-2511-lora"], max_loras=6, outputs_default=1,
        extra=[{**_REFERENCES, "required": {"always": True}, "costImpact": True}])),
    "model_bfl-flux-1-dev": _base("model_bfl-flux-1-dev", "FLUX.1 Dev", _inputs(
        ["flux.1-lora", "flux.1-composition"], max_loras=6, outputs_default=1, extra=[])),
}  # fmt: skip


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from ``parts``."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def true_quality(dataset: tuple[str, ...], nb_epochs: int) -> float:
    """A LoRA's hidden quality (0-100): a dataset-dependent peak, falling past its best epoch.

    ``dataset`` is the content hashes of its training images (order ignored). The peak
    height is 60-85 and the best epoch 6-16; each epoch away costs 0.5 × distance².
    """
    key = ",".join(sorted(dataset))
    peak, best = 60 + 25 * _unit("peak", key), 6 + round(10 * _unit("best", key))
    return round(max(0.0, peak - 0.5 * (nb_epochs - best) ** 2), 4)


def image_score(quality: float, prompt: str, seed: int, model_id: str, noise: float = 3.0) -> float:
    """The Quality Gate score of one output: quality, a difficulty shared per prompt and seed, and noise."""
    shared = random.Random(f"difficulty\x1f{prompt}\x1f{seed}").gauss(0, 6)
    own = random.Random(f"noise\x1f{model_id}\x1f{prompt}\x1f{seed}").gauss(0, noise)
    return round(min(100.0, max(0.0, quality + shared + own)), 2)


def verdict_for(score: float, sensitivity: str = "medium") -> str:
    """``pass`` / ``warn`` / ``fail`` for a score read against a sensitivity."""
    passing, warning = {"low": (60, 40), "medium": (70, 50), "high": (80, 60)}.get(sensitivity, (70, 50))
    return "pass" if score >= passing else "warn" if score >= warning else "fail"


def _input(base: dict[str, Any], name: str) -> dict[str, Any]:
    return next((i for i in base["inputs"] if i["name"] == name), {})


def render_cost(body: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The cost fields of a render (see the module docstring); ``costDetails`` sums to the cost."""
    outputs = int(body.get("numOutputs", _input(base, "numOutputs").get("default", 1)))
    steps = int(body.get("numInferenceSteps", _input(base, "numInferenceSteps").get("default", 28)))
    generation = math.ceil(3.5 * outputs * steps / 28 * 4) / 4
    gate = 0.5 * outputs
    return {"creativeUnitsCost": generation + gate, "creativeUnitsDiscount": 0,
            "costDetails": {"custom-generation": generation, "quality-gate": gate}}  # fmt: skip


@dataclass
class GenerationJob:
    """A render job and its outputs (asset ids, prompt, seeds, the LoRAs it consumed)."""

    job_id: str
    project_id: str
    base_id: str
    created_at: float
    input: dict[str, Any]
    loras: list[tuple[str, float]]
    asset_ids: list[str]
    seeds: list[int]
    scores: list[float]
    cost: float
    sensitivity: str = "medium"

    def status(self, now: float) -> str:
        """The SDK job status at ``now``."""
        age = now - self.created_at
        return "queued" if age < QUEUE_SECONDS else "in-progress" if age < QUEUE_SECONDS + RUN_SECONDS else "success"

    def done_at(self) -> float:
        return self.created_at + QUEUE_SECONDS + RUN_SECONDS

    def history(self, now: float) -> list[tuple[float, str]]:
        steps = [(self.created_at, "queued"), (self.created_at + QUEUE_SECONDS, "in-progress"),
                 (self.done_at(), "success")]  # fmt: skip
        return [(t, s) for t, s in steps if t <= now]


@dataclass
class CollectionRecord:
    """A collection of models."""

    id: str
    project_id: str
    name: str
    created_at: float
    updated_at: float


@dataclass
class GenerationState:
    """The emulator's render jobs, their assets and the collections (in memory, not persisted).

    ``parallel_jobs`` is the plan's ceiling of render jobs in flight (``None``: no ceiling);
    past it a render answers 429 ``PlanLimitReachedError`` naming ``parallel-custom-jobs``.
    ``true_qualities`` records each LoRA's hidden quality for the admin route.
    """

    jobs: dict[str, GenerationJob] = field(default_factory=dict)
    asset_jobs: dict[str, str] = field(default_factory=dict)
    collections: dict[str, CollectionRecord] = field(default_factory=dict)
    parallel_jobs: int | None = 4
    noise: float = 3.0
    briefs: dict[str, dict[str, Any]] = field(default_factory=dict)  # project id -> brief

    def running(self, project_id: str, now: float) -> int:
        return sum(1 for j in self.jobs.values() if j.project_id == project_id and j.status(now) != "success")

    def reset(self) -> None:
        self.jobs.clear()
        self.asset_jobs.clear()
        self.collections.clear()
        self.briefs.clear()
        self.parallel_jobs, self.noise = 4, 3.0
