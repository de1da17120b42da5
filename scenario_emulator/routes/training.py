"""Training routes: trigger (and dry run), cancel, jobs, dataset score.

Validation at trigger, in this order, all with the catalog's own checks:

1. a model already ``training`` → 400 ``Model is already training`` (Scenario's
   ``skills``, ``skills/scenario-model-training/SKILL.md``: "one launch at a time");
2. parameters out of range, unknown, or ``sampleSourceImages`` on a standard type
   → 400; sample source images that are not assets of the project → 400;
3. the dataset size for the type (no images, too many, an edit type with fewer
   than 2 pairs, a standard type with pairs) → 400;
4. a real trigger only, the plan limits of :mod:`..limits`: within the cooldown of
   the team's previous launch → 429 ``{"reason", "traceId", "remainingSeconds"}``;
   as many models training as ``parallel_trainings`` → 429 ``PlanLimitReachedError``
   naming ``parallel-training``.

Choices where Scenario is silent:

- Retraining a ``trained``, ``failed`` or ``training-canceled`` model is allowed
  and starts a new job; the model shows its latest training.
- The body's ``parameters`` replace the model's stored ones (``PUT /models``); no
  ``parameters`` in the body trains with the stored ones.
- A dry run (``dryRun=true|api``) validates like a real trigger (steps 1-3), changes
  nothing and answers **269** with the cost fields only, ``{creativeUnitsCost,
  creativeUnitsDiscount, costDetails}``, the shape Scenario's blender plugin captured
  for dry runs. With no training images, ``trainingImagesCount`` stands in for their
  number (pairs on an edit type), so a dataset is quoted before any upload. The cost
  is :func:`..pricing.training_cost`, the same as the real trigger's ``creativeUnitsCost``
  and its job's ``billing.cuCost``.
- Cancelling a model that is not training: already ``training-canceled`` → 200
  (idempotent), anything else → 409.
- A model without ``name``/``shortDescription`` gets generated ones when training
  starts, as the create docstring says.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from prefect_scenario.catalog import check_dataset_size, get_training_type
from prefect_scenario.exceptions import InvalidInputError
from scenario_emulator.config import Emulator, EmulatorConfig
from scenario_emulator.errors import ApiError, conflict
from scenario_emulator.limits import cooldown_error, parallel_training_error
from scenario_emulator.pricing import cost_fields, training_cost
from scenario_emulator.records import ModelRecord, new_id
from scenario_emulator.routes.generate import generation_job
from scenario_emulator.routes.models import public_parameters, render_model, require_model
from scenario_emulator.scoring import ScoredAsset, score_dataset
from scenario_emulator.state_machine import DEFAULT_NB_EPOCHS, TrainingRecord, training_view
from scenario_emulator.store import EmulatorStore
from scenario_emulator.views import job_json
from scenario_emulator.wire import emulator_of, get_str, ok, project_id, query_int, read_object

__all__ = ["ALREADY_TRAINING", "DRY_RUN_STATUS", "routes"]

DRY_RUN_STATUS = 269
ALREADY_TRAINING = "Model is already training"


def _validated(request: Request, store: EmulatorStore, model: ModelRecord, body: dict[str, Any]) -> dict[str, Any]:
    """The training parameters the trigger asks for, checked against the catalog and the project."""
    raw = body.get("parameters", model.parameters or {})
    parameters = public_parameters(model.type, raw if raw is not None else {})
    for asset_id in parameters.get("sampleSourceImages", []):
        if store.asset(project_id(request), asset_id) is None:
            raise ApiError(400, f"sampleSourceImages: {asset_id!r} is not an asset of this project")
    return parameters


def _dataset_size(model: ModelRecord, simulated: int | None) -> tuple[int, int]:
    """The (images, pairs) a training of ``model`` would use (400 if the type refuses them).

    ``simulated`` is a dry run's ``trainingImagesCount``: "Simulate the number of training
    images, used for dryRun purpose. Ignored if the model already has training images."
    (scenario-sdk 2.4.0, ``scenario_sdk/resources/models/train.py:120-121``). It quotes an
    empty model as if it held that many images; on an edit type, that many pairs (each pair
    is one training image with its source, the only kind an edit type takes).
    """
    images, pairs = len(model.loose_image_ids()), len(model.pairs)
    if not model.training_images and not model.pairs and simulated is not None:
        if get_training_type(model.type).edit:
            pairs = simulated
        else:
            images = simulated
    try:
        check_dataset_size(model.type, images=images, pairs=pairs)
    except InvalidInputError as exc:
        raise ApiError(400, str(exc)) from None
    return images, pairs


def _check_plan(emulator: Emulator, now: float) -> None:
    """The 429s of the plan limits, the cooldown first."""
    store = emulator.store
    for refused in (
        cooldown_error(emulator.limits, last_launch=store.last_launch(), now=now),
        parallel_training_error(emulator.limits, running=store.running_trainings(now)),
    ):
        if refused is not None:
            raise refused


async def trigger(request: Request) -> Response:
    """``PUT /models/{id}/train``: start a training, or estimate it (``dryRun``, HTTP 269)."""
    emulator = emulator_of(request)
    dry_run = request.query_params.get("dryRun")
    if dry_run not in (None, "true", "api", "false"):
        raise ApiError(400, "dryRun must be 'true' or 'api'")
    dry = dry_run in ("true", "api")
    counted = query_int(request, "trainingImagesCount", None, 0, 10_000)
    simulated = counted if dry else None  # "used for dryRun purpose" (SDK)
    body = await read_object(request, emulator.config.max_body_bytes)
    with emulator.store.transaction() as store:
        model = require_model(request)
        now = emulator.now()
        latest = store.latest_training(model)
        if latest is not None and training_view(latest, now).model_status == "training":
            raise ApiError(400, ALREADY_TRAINING)
        parameters = _validated(request, store, model, body)
        images, pairs = _dataset_size(model, simulated)
        nb_epochs = int(parameters.get("nbEpochs", DEFAULT_NB_EPOCHS))
        costs = cost_fields(training_cost(images=images, pairs=pairs, nb_epochs=nb_epochs))
        if dry:
            return ok(costs, status=DRY_RUN_STATUS)
        _check_plan(emulator, now)
        cost = costs["creativeUnitsCost"]
        training = _start(emulator.config, store.pending_fails, model, parameters, nb_epochs, cost, now)
        store.put_training(training)
        model.job_id = training.job_id
        model.parameters = parameters
        model.epoch = None
        model.updated_at = now
        store.put_model(model)
    emulator.webhooks.wake()  # model.training.started, without waiting for the next look
    return ok({"model": render_model(request, model), "job": job_json(training, now), **costs})


def _start(
    config: EmulatorConfig,
    pending_fails: dict[str, str],
    model: ModelRecord,
    parameters: dict[str, Any],
    nb_epochs: int,
    cost: float,
    now: float,
) -> TrainingRecord:
    label = get_training_type(model.type).label
    model.name = model.name or f"{label} LoRA {model.id[-6:]}"
    model.short_description = model.short_description or f"A {label} LoRA trained with the Scenario emulator."
    reason = pending_fails.pop(model.id, None) or (pending_fails.pop(model.name, None) if model.name else None)
    if reason is None and model.name in set(config.fail_names):
        reason = config.fail_reason
    training = TrainingRecord(
        job_id=new_id("job"),
        model_id=model.id,
        project_id=model.project_id,
        model_type=model.type,
        created_at=now,
        queue_seconds=config.queue_seconds,
        start_seconds=config.start_seconds,
        train_seconds=config.train_seconds,
        queue_position=config.queue_position,
        nb_epochs=nb_epochs,
        sample_prompts=list(parameters.get("samplePrompts", [])),
        parameters={k: v for k, v in parameters.items() if k != "wandbKey"},
        cost=cost,
    )
    if reason is not None:
        # A doomed training fails halfway through running-train, with its progress.
        training.fail_reason = reason
        training.fail_at = training.running_at + config.train_seconds / 2
    return training


async def action(request: Request) -> Response:
    """``POST /models/{id}/train/action`` with ``{"action": "cancel"}`` → ``{model}``."""
    emulator = emulator_of(request)
    body = await read_object(request, emulator.config.max_body_bytes)
    if get_str(body, "action", required=True) != "cancel":
        raise ApiError(400, "action must be 'cancel'")
    with emulator.store.transaction() as store:
        model = require_model(request)
        now = emulator.now()
        training = store.latest_training(model)
        status = "new" if training is None else training_view(training, now).model_status
        if training is not None and status == "training":
            training.canceled_at = now
            store.put_training(training)
        elif status != "training-canceled":
            raise conflict(f"the model is not training (it is {status!r}); nothing to cancel")
    emulator.webhooks.wake()
    return ok({"model": render_model(request, model)})


async def retrieve_job(request: Request) -> Response:
    """``GET /jobs/{jobId}`` → ``{job}``."""
    emulator = emulator_of(request)
    training = emulator.store.training(project_id(request), request.path_params["job_id"])
    render = emulator.store.generation.jobs.get(request.path_params["job_id"])
    if training is None and render is not None and render.project_id == project_id(request):
        return ok({"job": generation_job(render, emulator.now())})
    if training is None:
        raise ApiError(404, f"job {request.path_params['job_id']!r} not found")
    return ok({"job": job_json(training, emulator.now())})


async def dataset_score(request: Request) -> Response:
    """``GET /models/{id}/scores/training-dataset``: see :mod:`.scoring` for the formula."""
    emulator = emulator_of(request)
    if not emulator.config.dataset_score_available:
        raise ApiError(404, "Training dataset score is not available for this model")
    project = project_id(request)
    with emulator.store.transaction() as store:
        model = require_model(request)
        ids = [i.asset_id for i in model.training_images]
        ids += [a for p in model.pairs for a in (p.source_id, p.target_id)]
        scored = []
        for asset_id in dict.fromkeys(ids):
            asset = store.asset(project, asset_id)
            if asset is not None:
                color, caption = asset.mean_color, asset.description
                scored.append(ScoredAsset(asset.id, asset.width, asset.height, asset.sha256, color, caption))
        try:
            check_dataset_size(model.type, images=len(model.loose_image_ids()), pairs=len(model.pairs))
            complete = True
        except InvalidInputError:
            complete = False
    return ok(score_dataset(model.id, scored, complete=complete).to_wire())


def routes() -> list[Route]:
    """The training routes, relative to ``/v1``."""
    return [
        Route("/models/{model_id}/train", trigger, methods=["PUT"]),
        Route("/models/{model_id}/train/action", action, methods=["POST"]),
        Route("/models/{model_id}/scores/training-dataset", dataset_score, methods=["GET"]),
        Route("/jobs/{job_id}", retrieve_job, methods=["GET"]),
    ]
