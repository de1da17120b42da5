"""Render routes: ``POST /generate/custom/{modelId}``, ``POST /generate/quality-gate``, get-bulk of assets.

What the emulator answers, and why, is in :mod:`scenario_emulator.generation`. Choices
where Scenario is silent:

- a LoRA that is not ``trained`` is refused with 400 ``Model … is not trained``;
- ``modelId`` (the single-LoRA shortcut) joins ``loras`` at scale 0.8, a strength
  nobody chose (blender-plugin ``trained_routes.py``);
- a dry run is validated like a real render and answers 269 with the cost fields only;
- the render's outputs get seeds ``seed``, ``seed + 1``, ...; without ``seed`` a random one;
- ``POST /generate/quality-gate`` scores an output of a render with its own score; any
  other asset of the project scores like a base model's output.
"""

from __future__ import annotations

import random
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scenario_emulator.config import Emulator
from scenario_emulator.errors import ApiError
from scenario_emulator.generation import (
    BASE_MODELS,
    BASE_QUALITY,
    SCORE_DELAY_SECONDS,
    GenerationJob,
    image_score,
    render_cost,
    true_quality,
    verdict_for,
)
from scenario_emulator.limits import plan_limit_error
from scenario_emulator.records import ModelRecord, iso, new_id
from scenario_emulator.views import AUTHOR_ID, asset_json, files_url, model_status
from scenario_emulator.wire import emulator_of, get_str, get_str_list, ok, project_id, read_object, root_url

__all__ = ["asset_of", "base_model", "generation_job", "model_quality", "routes"]

DRY_RUN_STATUS = 269


def model_quality(emulator: Emulator, model: ModelRecord) -> tuple[float, tuple[str, ...], int]:
    """A LoRA's true quality, the content hashes of its dataset, and its epochs."""
    store = emulator.store
    ids = [i.asset_id for i in model.training_images] + [a for p in model.pairs for a in (p.source_id, p.target_id)]
    dataset = tuple(sorted(store.assets[a].sha256 for a in dict.fromkeys(ids) if a in store.assets))
    training = store.latest_training(model)
    epochs = training.nb_epochs if training is not None else 0
    return true_quality(dataset, epochs), dataset, epochs


def base_model(model_id: str) -> dict[str, Any] | None:
    """A base model's record (``GET /models/{id}`` of a public base), if ``model_id`` is one."""
    return BASE_MODELS.get(model_id)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_scalar(spec: dict[str, Any], value: Any) -> None:
    name, kind = spec["name"], spec["type"]
    if kind == "string":
        if not isinstance(value, str):
            raise ApiError(400, f"Input {name} must be a string")
        if "maxLength" in spec and len(value) > spec["maxLength"]:
            raise ApiError(400, f"Input {name} must be at most {spec['maxLength']} characters long")
    elif kind == "number":
        if not _number(value):
            raise ApiError(400, f"Input {name} must be a number")
        if "max" in spec and value > spec["max"]:
            raise ApiError(400, f"Input {name} must be at most {spec['max']:g}")
        if "min" in spec and value < spec["min"]:
            raise ApiError(400, f"Input {name} must be at least {spec['min']:g}")


def _check_loras(emulator: Emulator, project: str, spec: dict[str, Any], ids: list[Any]) -> list[str]:
    name = spec["name"]
    if len(ids) > spec.get("maxLength", 6):
        raise ApiError(400, f"Input {name} must be at most {spec.get('maxLength', 6)} items long")
    wrong = []
    for lora in ids:
        model = emulator.store.model(project, lora) if isinstance(lora, str) else None
        if model is None:
            raise ApiError(404, f"Model {lora} not found")
        if model.type not in spec["modelTypes"]:
            wrong.append(lora)
        elif model_status(emulator.store.latest_training(model), emulator.now()) != "trained":
            raise ApiError(400, f"Model {lora} is not trained")
    if wrong:
        allowed = ", ".join(spec["modelTypes"])
        raise ApiError(400, f"Invalid model(s): {', '.join(wrong)}.\nAllowed model types: {allowed}")
    return [str(i) for i in ids]


def _consumed(emulator: Emulator, project: str, base: dict[str, Any], body: dict[str, Any]) -> list[tuple[str, float]]:
    """Validate ``body`` against the base's inputs; the LoRAs the render consumes, with scales."""
    loras: list[tuple[str, float]] = []
    for spec in base["inputs"]:
        name, kind, value = spec["name"], spec["type"], body.get(spec["name"])
        if value is None:
            if "always" in spec.get("required", {}):
                raise ApiError(400, f"Input {name} is required")
            continue
        if kind in ("string", "number"):
            _check_scalar(spec, value)
        elif kind == "number_array" and isinstance(value, list):
            if not all(_number(v) for v in value):
                raise ApiError(400, f"Input {name} must be an array of numbers")
            if any(v > spec["max"] for v in value):  # the schema's min is not enforced (captured)
                raise ApiError(400, f"Input {name} must be at most {spec['max']:g}")
        elif kind == "model_array" and isinstance(value, list):  # a bare value is dropped silently
            raw = body.get("lorasScale")
            scales = [float(v) if _number(v) else 1.0 for v in raw] if isinstance(raw, list) else []
            ids = _check_loras(emulator, project, spec, value)
            loras += [(m, scales[i] if i < len(scales) else 1.0) for i, m in enumerate(ids)]
        elif kind == "model" and isinstance(value, str) and value:
            loras += [(m, 0.8) for m in _check_loras(emulator, project, {**spec, "maxLength": 1}, [value])]
        elif kind == "file_array" and isinstance(value, list):
            if len(value) > spec.get("maxLength", 5):
                raise ApiError(400, f"Input {name} must be at most {spec.get('maxLength', 5)} items long")
            for asset_id in value:
                if not isinstance(asset_id, str) or emulator.store.asset(project, asset_id) is None:
                    raise ApiError(404, f"Asset {asset_id} not found")
    return loras


def _target(request: Request) -> dict[str, Any]:
    emulator, model_id = emulator_of(request), request.path_params["model_id"]
    base = base_model(model_id)
    if base is not None:
        return base
    if emulator.store.model(project_id(request), model_id) is not None:
        raise ApiError(400, "Custom models only are supported for this endpoint")
    raise ApiError(404, f"Model {model_id} not found")


def _new_job(emulator: Emulator, project: str, base: dict[str, Any], body: dict[str, Any],
             loras: list[tuple[str, float]], cost: float) -> GenerationJob:  # fmt: skip
    outputs = int(body.get("numOutputs") or 1)
    first = int(body["seed"]) if _number(body.get("seed")) else random.randrange(2**31 - outputs)
    seeds = [first + i for i in range(outputs)]
    prompt = str(body.get("prompt", ""))
    quality, key = BASE_QUALITY, "base"
    for lora, scale in loras:
        model = emulator.store.models[lora]
        lora_quality = model_quality(emulator, model)[0]
        # Scale 1 renders the LoRA's own quality (better or worse than the base); away from 1
        # it drifts back toward the base.
        quality = BASE_QUALITY + (lora_quality - BASE_QUALITY) * max(0.0, 1 - abs(scale - 1))
        key = lora
    state = emulator.store.generation
    scores = [image_score(quality, prompt, s, key, state.noise) for s in seeds]
    return GenerationJob(new_id("job"), project, base["id"], emulator.now(), dict(body), loras,
                         [new_id("asset") for _ in seeds], seeds, scores, cost)  # fmt: skip


async def run_model(request: Request) -> Response:
    """``POST /generate/custom/{modelId}``: a render (``job``) or its cost (``dryRun``, HTTP 269)."""
    emulator = emulator_of(request)
    dry_run = request.query_params.get("dryRun")
    if dry_run not in (None, "true", "api", "false"):
        raise ApiError(400, "dryRun must be 'true' or 'api'")
    body = await read_object(request, emulator.config.max_body_bytes)
    project = project_id(request)
    with emulator.store.transaction() as store:
        base = _target(request)
        loras = _consumed(emulator, project, base, body)
        costs = render_cost(body, base)
        if dry_run in ("true", "api"):
            return ok(costs, status=DRY_RUN_STATUS)
        state = store.generation
        if state.parallel_jobs is not None and state.running(project, emulator.now()) >= state.parallel_jobs:
            raise plan_limit_error("parallel-custom-jobs", state.parallel_jobs)
        job = _new_job(emulator, project, base, body, loras, costs["creativeUnitsCost"])
        state.jobs[job.job_id] = job
        state.asset_jobs.update(dict.fromkeys(job.asset_ids, job.job_id))
    return ok({"job": generation_job(job, emulator.now()), **costs})


def generation_job(job: GenerationJob, now: float) -> dict[str, Any]:
    """A render ``Job`` at ``now``: ``metadata.assetIds`` once it succeeded."""
    status = job.status(now)
    metadata: dict[str, Any] = {"input": job.input}
    if status == "success":
        metadata["assetIds"] = list(job.asset_ids)
    details = {"quality-gate": 0.5 * len(job.asset_ids)}  # cuCost is the main action alone (SDK JobBilling)
    return {
        "jobId": job.job_id, "jobType": "custom", "status": status, "progress": 1.0 if status == "success" else 0.0,
        "metadata": metadata, "statusHistory": [{"date": iso(t), "status": s} for t, s in job.history(now)],
        "createdAt": iso(job.created_at), "updatedAt": iso(min(now, job.done_at())), "authorId": AUTHOR_ID,
        "ownerId": job.project_id,
        "billing": {"cuCost": job.cost - details["quality-gate"], "cuDiscount": 0, "cuCostDetails": details},
    }  # fmt: skip


def asset_of(emulator: Emulator, project: str, asset_id: str, root: str) -> dict[str, Any] | None:
    """A render output's ``Asset`` as of now, if ``asset_id`` is one (of a finished job of ``project``)."""
    state = emulator.store.generation
    job = state.jobs.get(state.asset_jobs.get(asset_id, ""))
    now = emulator.now()
    if job is None or job.project_id != project or job.status(now) != "success":
        return None
    index = job.asset_ids.index(asset_id)
    metadata = {
        "kind": "image", "type": "inference-txt2img", "prompt": job.input.get("prompt"), "seed": str(job.seeds[index]),
        "numOutputs": len(job.asset_ids), "width": job.input.get("width"), "height": job.input.get("height"),
        "modelId": job.base_id, "baseModelId": job.base_id, "parentJobId": job.job_id,
        "concepts": [{"modelId": m, "scale": s} for m, s in job.loras],
    }  # fmt: skip
    out: dict[str, Any] = {
        "id": asset_id, "authorId": AUTHOR_ID, "ownerId": project, "collectionIds": [], "kind": "image",
        "createdAt": iso(job.done_at()), "updatedAt": iso(job.done_at()), "mimeType": "image/png",
        "metadata": {k: v for k, v in metadata.items() if v is not None}, "outputIndex": index,
        "privacy": "private", "source": "inference-txt", "status": "success", "tags": [],
        "properties": {"size": 0, "width": job.input.get("width") or 1024, "height": job.input.get("height") or 1024,
                       "format": "png"},
        "editCapabilities": [], "url": files_url(root, asset_id),
    }  # fmt: skip
    if now >= job.done_at() + SCORE_DELAY_SECONDS:
        score = job.scores[index]
        out["qualityGate"] = {
            "status": "scored", "overallScore": score, "verdict": verdict_for(score, job.sensitivity),
            "aiQualityScore": score, "computedAt": iso(job.done_at() + SCORE_DELAY_SECONDS), "version": "emulator-1",
        }  # fmt: skip
    return out


async def get_bulk(request: Request) -> Response:
    """``POST /assets/get-bulk`` ``{"assetIds": [...]}`` → ``{"assets": [...]}`` (unknown ids left out, max 200)."""
    emulator = emulator_of(request)
    body = await read_object(request, emulator.config.max_body_bytes)
    ids = get_str_list(body, "assetIds") or []
    if len(ids) > 200:
        raise ApiError(400, "Limit of 200 assets")
    project, root = project_id(request), root_url(request)
    found = (asset_of(emulator, project, a, root) for a in dict.fromkeys(ids))
    return ok({"assets": [a for a in found if a is not None]})


async def quality_gate(request: Request) -> Response:
    """``POST /generate/quality-gate`` ``{"image", "sensitivity"?}``: score one image now."""
    emulator = emulator_of(request)
    body = await read_object(request, emulator.config.max_body_bytes)
    image = get_str(body, "image", required=True) or ""
    sensitivity = get_str(body, "sensitivity") or "medium"
    if sensitivity not in ("low", "medium", "high"):
        raise ApiError(400, "sensitivity must be one of low, medium, high")
    project = project_id(request)
    state = emulator.store.generation
    job = state.jobs.get(state.asset_jobs.get(image, ""))
    output = asset_of(emulator, project, image, root_url(request))
    uploaded = emulator.store.asset(project, image)
    if job is not None and output is not None:
        score, asset = job.scores[job.asset_ids.index(image)], output
    elif uploaded is not None:
        score, asset = (
            image_score(BASE_QUALITY, image, 0, "upload", state.noise),
            asset_json(uploaded, root_url(request)),
        )
    else:
        raise ApiError(404, f"Asset {image} not found")
    verdict = verdict_for(score, sensitivity)
    answer: dict[str, Any] = {
        "overallScore": score, "verdict": verdict, "sensitivity": sensitivity,
        "aiQuality": {"score": score, "reasons": [] if verdict == "pass" else ["emulated: soft details"],
                      "suggestions": []},
        "appliedBriefs": [], "asset": asset, "creativeUnitsCost": 0.5, "creativeUnitsDiscount": 0,
        "costDetails": {"quality-gate": 0.5},
    }  # fmt: skip
    brief = state.briefs.get(project)
    if brief is not None and brief.get("enabled", True):
        answer["briefCompliance"] = {"score": score, "reasons": [], "suggestions": []}
        answer["appliedBriefs"] = [{"id": brief["id"], "level": "project"}]
    return ok(answer)


def routes() -> list[Route]:
    """The render routes, relative to ``/v1``."""
    return [
        Route("/generate/custom/{model_id}", run_model, methods=["POST"]),
        Route("/generate/quality-gate", quality_gate, methods=["POST"]),
        Route("/assets/get-bulk", get_bulk, methods=["POST"]),
    ]
