"""Records rendered as the API's JSON objects, with every field the SDK marks required.

Field names and required fields are the SDK's (``scenario_sdk.types``). Values
Scenario does not state are chosen to be valid and unsurprising: ``capabilities``
(``txt2img``/``img2img`` for standard LoRAs, ``img2img`` for edit LoRAs),
``source: "scenario"``, ``privacy: "private"``, empty ``editCapabilities``, an empty
``automaticCaptioning`` (the emulator does not caption). A training image's
``description`` is its asset's description (Scenario's ``skills``,
``references/dataset-curation.md``: training reads it as the caption), ``""`` when
unset. A ``wandbKey`` is never echoed back. URLs point at the emulator's plain file
route ``/_emulator/files/{assetId}`` (a stand-in for the API's signed URLs).

Model list rows carry ``"trainingProgress": {}`` and ``"parameters": {}``, even on
trained models, as Scenario's blender plugin captured from ``GET /models``
(``tests/fixtures/models_list_page1.json``); ``GET /models/{id}`` keeps the full ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect_scenario.catalog import get_training_type
from scenario_emulator.records import AssetRecord, ModelRecord, TrainingImageRecord, iso
from scenario_emulator.state_machine import TrainingRecord, epochs_of, job_type_for, training_view

__all__ = [
    "AUTHOR_ID",
    "asset_json",
    "effective_updated_at",
    "files_url",
    "job_json",
    "model_json",
    "model_status",
    "training_image_json",
]

AUTHOR_ID = "user_emulator"
# How many training images a model carries outside GET /models/{id} (SDK docstring: "the first 3").
PREVIEW_IMAGES = 3


def files_url(root: str, asset_id: str) -> str:
    """The URL the emulator serves an asset's bytes at."""
    return f"{root}/_emulator/files/{asset_id}"


def training_image_json(image: TrainingImageRecord, root: str, caption: str | None = None) -> dict[str, Any]:
    """A ``TrainingImage``; ``caption`` is its asset's description."""
    return {
        "id": image.asset_id,
        "name": image.name,
        "createdAt": iso(image.created_at),
        "downloadUrl": files_url(root, image.asset_id),
        "description": caption or "",
        "automaticCaptioning": "",
    }


def asset_json(asset: AssetRecord, root: str) -> dict[str, Any]:
    """An ``Asset``; ``description`` only once a client has set one."""
    out: dict[str, Any] = {
        "id": asset.id,
        "authorId": AUTHOR_ID,
        "ownerId": asset.project_id,
        "collectionIds": [],
        "createdAt": iso(asset.created_at),
        "updatedAt": iso(asset.updated_at or asset.created_at),
        "editCapabilities": [],
        "kind": "image",
        "metadata": {"kind": "image", "type": "uploaded"},
        "mimeType": asset.mime_type,
        "privacy": "private",
        "properties": {"size": asset.size, "width": asset.width, "height": asset.height, "format": asset.format},
        "source": "uploaded",
        "status": "success",
        "tags": [],
        "url": files_url(root, asset.id),
    }
    if asset.description is not None:
        out["description"] = asset.description
    return out


def model_status(training: TrainingRecord | None, now: float) -> str:
    """The model's status: ``new`` until its first training, then that of its latest one."""
    return "new" if training is None else training_view(training, now).model_status


def effective_updated_at(model: ModelRecord, training: TrainingRecord | None, now: float) -> float:
    """When the model last changed, counting its training's progress (epoch seconds)."""
    if training is None:
        return model.updated_at
    return max(model.updated_at, training_view(training, now).updated_at)


def _public_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in parameters.items() if k != "wandbKey"}


def job_json(training: TrainingRecord, now: float) -> dict[str, Any]:
    """A training ``Job`` at time ``now``."""
    view = training_view(training, now)
    metadata: dict[str, Any] = {
        "input": {"modelId": training.model_id, "parameters": _public_parameters(training.parameters)}
    }
    if view.error is not None:
        metadata["error"] = view.error
    if view.job_status == "success":
        samples = [a for _, assets in epochs_of(training) for a in assets]
        if samples:
            metadata["assetIds"] = samples
    return {
        "jobId": training.job_id,
        "jobType": job_type_for(training.model_type),
        "status": view.job_status,
        "progress": round(view.job_progress, 6),
        "metadata": metadata,
        "statusHistory": [{"date": iso(t), "status": s} for t, s in view.history],
        "createdAt": iso(training.created_at),
        "updatedAt": iso(view.updated_at),
        "authorId": AUTHOR_ID,
        "ownerId": training.project_id,
        "billing": {"cuCost": training.cost, "cuDiscount": 0},
    }


def _training_fields(model: ModelRecord, training: TrainingRecord, now: float, root: str) -> dict[str, Any]:
    view = training_view(training, now)
    out: dict[str, Any] = {"jobId": training.job_id}
    if view.stage is not None:
        progress: dict[str, Any] = {"stage": view.stage, "updatedAt": round(view.updated_at * 1000)}
        if view.position is not None:
            progress["position"] = view.position
        if view.progress is not None:
            progress["progress"] = round(view.progress, 6)
        if view.remaining_ms is not None:
            progress["remainingTimeMs"] = round(view.remaining_ms)
        if view.running_since is not None:
            progress["startedAt"] = round(view.running_since * 1000)
        out["trainingProgress"] = progress
    stats: dict[str, Any] = {}
    if view.running_since is not None:
        stats["startedAt"] = iso(view.running_since)
        stats["queueDuration"] = round(view.running_since - training.created_at, 3)
        stats["trainDuration"] = round((view.ended_at or now) - view.running_since, 3)
    if view.ended_at is not None:
        stats["endedAt"] = iso(view.ended_at)
    if stats:
        out["trainingStats"] = stats
    if view.model_status == "trained":
        epochs = epochs_of(training)
        out["epochs"] = [
            {"epoch": name, "assets": [{"assetId": a, "url": files_url(root, a)} for a in assets]}
            if assets
            else {"epoch": name}
            for name, assets in epochs
        ]
        out["epoch"] = model.epoch or epochs[-1][0]
    if view.model_status == "failed":
        # Not a documented field: the failure reason is documented on the job
        # (metadata.error); the model carries it too so a poller sees it at once.
        out["trainingError"] = view.error or "Training failed"
    return out


def model_json(
    model: ModelRecord,
    training: TrainingRecord | None,
    now: float,
    root: str,
    *,
    all_images: bool = True,
    captions: Mapping[str, str] | None = None,
    list_row: bool = False,
) -> dict[str, Any]:
    """A ``Model`` at time ``now``.

    Args:
        model: The model.
        training: Its latest training, if any.
        now: The current time, epoch seconds.
        root: The emulator's root URL, for file URLs.
        all_images: All training images (``GET /models/{id}``), or only the first 3.
        captions: The description of each training image's asset that has one.
        list_row: A ``GET /models`` row: empty ``trainingProgress`` and ``parameters``.
    """
    captions = captions or {}
    edit = get_training_type(model.type).edit
    images = model.training_images if all_images else model.training_images[:PREVIEW_IMAGES]
    out: dict[str, Any] = {
        "id": model.id,
        "capabilities": ["img2img"] if edit else ["txt2img", "img2img"],
        "collectionIds": list(model.collection_ids),
        "createdAt": iso(model.created_at),
        "custom": False,
        "exampleAssetIds": [],
        "privacy": "private",
        "source": "scenario",
        "status": model_status(training, now),
        "tags": list(model.tags),
        "trainingImagesNumber": len(model.training_images),
        "type": model.type,
        "updatedAt": iso(effective_updated_at(model, training, now)),
        "ownerId": model.project_id,
        "authorId": AUTHOR_ID,
        "trainingImages": [training_image_json(i, root, captions.get(i.asset_id)) for i in images],
        "trainingImagePairs": [
            {"sourceId": p.source_id, "targetId": p.target_id, "instruction": p.instruction} for p in model.pairs
        ],
    }
    optional = {"name": model.name, "shortDescription": model.short_description}
    out.update({k: v for k, v in optional.items() if v is not None})
    if model.concepts:
        out["concepts"] = [dict(c) for c in model.concepts]
    if model.parameters is not None:
        out["parameters"] = _public_parameters(model.parameters)
    if model.thumbnail_asset_id is not None:
        out["thumbnail"] = {"assetId": model.thumbnail_asset_id, "url": files_url(root, model.thumbnail_asset_id)}
    if model.deleted_at is not None:
        out["deletedAt"] = iso(model.deleted_at)
    if training is not None:
        out.update(_training_fields(model, training, now, root))
    if list_row:
        out.update(trainingProgress={}, parameters={})
    return out
