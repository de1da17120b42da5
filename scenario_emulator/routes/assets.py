"""Asset and training-image routes: upload, update (captions), training images (three modes), pairs.

Every image is decoded with Pillow: a body that is not an image is a 400, and the
asset's size, format, dimensions, content hash and mean colour (for the dataset
score) come from the decoded image.

Choices where Scenario (its SDK, docs and clients) is silent:

- ``image`` (assets) and ``data`` (training images) take a data URL or raw base64.
- A training image's id is its asset id, so a model holds an asset at most once.
  Re-adding one answers 400 ``The provided assetId is already a training image of
  this model``, and more than 10 ``assetIds`` answer 400 ``Too many assetIds provided
  in a single request``: the texts Scenario's ``skills`` quote from the REST server
  (``skills/scenario-model-training/SKILL.md``). An inline ``data`` upload always makes
  a new asset, so a retried inline add duplicates, as it may on the real API.
- The 50-image cap (product doc) is checked before anything is added: a batch that
  would cross it adds nothing (400). So is the team's plan cap, when set (429
  ``PlanLimitReachedError`` naming ``add-training-image``, see :mod:`..limits`).
- ``PUT /assets/{id}`` takes ``description`` (the caption training reads) and ``name``
  (SDK ``assets.update``); other fields of that call (canvas, locks) are ignored.
- Training images and pairs cannot change while the model is training (409).
- Pair ids must be assets of the project: uploaded with ``POST /assets`` or added
  as training images. ``instruction`` defaults to ``""``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from typing import Any

from PIL import Image, ImageStat, UnidentifiedImageError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from prefect_scenario.catalog import MAX_IMAGES
from scenario_emulator.errors import ApiError, conflict
from scenario_emulator.limits import team_image_error
from scenario_emulator.records import AssetRecord, ModelRecord, PairRecord, TrainingImageRecord, new_id
from scenario_emulator.routes.generate import asset_of
from scenario_emulator.routes.models import require_model
from scenario_emulator.views import asset_json, model_status, training_image_json
from scenario_emulator.wire import (
    emulator_of,
    get_str,
    get_str_list,
    ok,
    project_id,
    read_json,
    read_object,
    root_url,
)

__all__ = ["ALREADY_A_TRAINING_IMAGE", "TOO_MANY_ASSET_IDS", "decode_image", "routes"]

MAX_BATCH = 10  # SDK and the product doc: "up to 10 asset IDs"
TOO_MANY_ASSET_IDS = "Too many assetIds provided in a single request"
ALREADY_A_TRAINING_IMAGE = "The provided assetId is already a training image of this model"
# Image limits are not stated. A few compressed bytes can declare a gigapixel image;
# refusing past 50 MP (e.g. 8000×6000 fits) keeps one upload from eating the host's memory.
MAX_PIXELS = 50_000_000


def decode_image(payload: str, *, project: str, name: str, now: float) -> tuple[AssetRecord, bytes]:
    """An asset record and its bytes from a data URL or raw base64 (400 if not an image)."""
    text = payload.strip()
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if ";base64" not in header:
            raise ApiError(400, "the data URL must be base64-encoded")
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "the image is not valid base64") from None
    try:
        with Image.open(io.BytesIO(raw)) as image:
            if image.size[0] * image.size[1] > MAX_PIXELS:
                raise ApiError(400, f"the image is larger than {MAX_PIXELS} pixels")
            image.load()
            fmt = (image.format or "").upper()
            width, height = image.size
            small = image.convert("RGB")
            small.thumbnail((64, 64))
            mean = ImageStat.Stat(small).mean
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise ApiError(400, "the data is not a readable image") from None
    asset = AssetRecord(
        id=new_id("asset"),
        project_id=project,
        name=name,
        mime_type=Image.MIME.get(fmt, "application/octet-stream"),
        format=fmt.lower(),
        width=width,
        height=height,
        size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        mean_color=(mean[0] / 255, mean[1] / 255, mean[2] / 255),
        created_at=now,
    )
    return asset, raw


async def upload_asset(request: Request) -> Response:
    """``POST /assets`` → ``{asset}``."""
    emulator = emulator_of(request)
    body = await read_object(request, emulator.config.max_body_bytes)
    name = get_str(body, "name", required=True) or ""
    image = get_str(body, "image")
    if image is None:
        raise ApiError(400, "image is required (the emulator does not take canvases)")
    asset, raw = decode_image(image, project=project_id(request), name=name, now=emulator.now())
    emulator.store.put_asset(asset, raw)
    return ok({"asset": asset_json(asset, root_url(request))})


def _require_asset(request: Request) -> AssetRecord:
    asset = emulator_of(request).store.asset(project_id(request), request.path_params["asset_id"])
    if asset is None:
        raise ApiError(404, f"Asset {request.path_params['asset_id']} not found")
    return asset


async def retrieve_asset(request: Request) -> Response:
    """``GET /assets/{id}`` → ``{asset}`` (a render's output too)."""
    emulator, asset_id = emulator_of(request), request.path_params["asset_id"]
    if (output := asset_of(emulator, project_id(request), asset_id, root_url(request))) is not None:
        return ok({"asset": output})
    return ok({"asset": asset_json(_require_asset(request), root_url(request))})


async def update_asset(request: Request) -> Response:
    """``PUT /assets/{id}`` with ``description`` and/or ``name`` → ``{asset}``."""
    emulator = emulator_of(request)
    body = await read_object(request, emulator.config.max_body_bytes)
    description, name = get_str(body, "description"), get_str(body, "name")
    with emulator.store.transaction() as store:
        asset = _require_asset(request)
        if description is not None:
            asset.description = description
        if name is not None:
            asset.name = name
        asset.updated_at = emulator.now()
        store.put_asset(asset)
    return ok({"asset": asset_json(asset, root_url(request))})


def _editable(request: Request, model: ModelRecord) -> None:
    emulator = emulator_of(request)
    status = model_status(emulator.store.latest_training(model), emulator.now())
    if status == "training":
        raise conflict("the training images cannot change while the model is training")


Upload = tuple[AssetRecord, bytes]


def _resolve(
    request: Request, body: dict[str, Any], *, batch_allowed: bool
) -> tuple[list[tuple[str, str | None]], list[Upload]]:
    """The (asset id, file name) pairs a training-image body names, and inline data to upload.

    Inline data is decoded here but saved by the caller, once every check has passed.
    """
    emulator = emulator_of(request)
    project = project_id(request)
    ids = get_str_list(body, "assetIds")
    if ids is not None:
        if not batch_allowed:
            raise ApiError(400, "assetIds is for adding training images in batch")
        if any(k in body for k in ("assetId", "data", "name")):
            raise ApiError(400, "assetIds cannot be used with assetId, data or name")
        if len(ids) > MAX_BATCH:
            raise ApiError(400, TOO_MANY_ASSET_IDS)
        if not ids:
            raise ApiError(400, f"assetIds takes 1 to {MAX_BATCH} asset ids, got none")
        unique = list(dict.fromkeys(ids))
    elif (asset_id := get_str(body, "assetId")) is not None:
        unique = [asset_id]  # "If provided, data and name will be ignored."
    elif (data := get_str(body, "data")) is not None:
        name = get_str(body, "name") or "training-image"
        asset, raw = decode_image(data, project=project, name=name, now=emulator.now())
        return [(asset.id, name)], [(asset, raw)]
    else:
        raise ApiError(400, "give name and data, assetId, or assetIds")
    out: list[tuple[str, str | None]] = []
    for asset_id in unique:
        known = emulator.store.asset(project, asset_id)
        if known is None:
            raise ApiError(400, f"{asset_id!r} is not an asset of this project")
        out.append((asset_id, known.name))
    return out, []


async def add_training_images(request: Request) -> Response:
    """``POST /models/{id}/training-images`` → ``{trainingImage}`` (plus ``trainingImages`` for a batch)."""
    emulator = emulator_of(request)
    body = await read_object(request, emulator.config.max_body_bytes)
    with emulator.store.transaction() as store:
        model = require_model(request)
        _editable(request, model)
        named, uploads = _resolve(request, body, batch_allowed=True)
        existing = {i.asset_id: i for i in model.training_images}
        if any(a in existing for a, _ in named):
            raise ApiError(400, ALREADY_A_TRAINING_IMAGE)
        fresh = named
        if len(model.training_images) + len(fresh) > MAX_IMAGES:
            raise ApiError(
                400, f"a model takes at most {MAX_IMAGES} training images; it has {len(model.training_images)}"
            )
        refused = team_image_error(emulator.limits, current=store.team_training_images(), adding=len(fresh))
        if refused is not None:
            raise refused
        now = emulator.now()
        for asset, raw in uploads:
            store.put_asset(asset, raw)
        for asset_id, name in fresh:
            existing[asset_id] = TrainingImageRecord(asset_id, name or asset_id, now)
            model.training_images.append(existing[asset_id])
        model.updated_at = now
        store.put_model(model)
    captions = emulator.store.captions([a for a, _ in named])
    images = [training_image_json(existing[a], root_url(request), captions.get(a)) for a, _ in named]
    answer: dict[str, Any] = {"trainingImage": images[0]}
    if "assetIds" in body:
        # The SDK types a batch answer as one trainingImage; the whole batch rides along.
        answer["trainingImages"] = images
    return ok(answer)


async def replace_training_image(request: Request) -> Response:
    """``PUT /models/{id}/training-images/{trainingImageId}`` → ``{trainingImage}``."""
    emulator = emulator_of(request)
    body = await read_object(request, emulator.config.max_body_bytes)
    old_id = request.path_params["image_id"]
    with emulator.store.transaction() as store:
        model = require_model(request)
        _editable(request, model)
        index = next((n for n, i in enumerate(model.training_images) if i.asset_id == old_id), None)
        if index is None:
            raise ApiError(404, f"training image {old_id!r} not found")
        [(asset_id, name)], uploads = _resolve(request, body, batch_allowed=False)
        if asset_id != old_id and any(i.asset_id == asset_id for i in model.training_images):
            raise ApiError(400, ALREADY_A_TRAINING_IMAGE)
        now = emulator.now()
        for asset, raw in uploads:
            store.put_asset(asset, raw)
        model.training_images[index] = TrainingImageRecord(asset_id, name or asset_id, now)
        model.updated_at = now
        store.put_model(model)
    image = model.training_images[index]
    caption = emulator.store.captions([image.asset_id]).get(image.asset_id)
    return ok({"trainingImage": training_image_json(image, root_url(request), caption)})


async def delete_training_image(request: Request) -> Response:
    """``DELETE /models/{id}/training-images/{trainingImageId}`` → ``{}``."""
    emulator = emulator_of(request)
    image_id = request.path_params["image_id"]
    with emulator.store.transaction() as store:
        model = require_model(request)
        _editable(request, model)
        kept = [i for i in model.training_images if i.asset_id != image_id]
        if len(kept) == len(model.training_images):
            raise ApiError(404, f"training image {image_id!r} not found")
        model.training_images = kept
        model.updated_at = emulator.now()
        store.put_model(model)
    return ok({})


async def replace_pairs(request: Request) -> Response:
    """``PUT /models/{id}/training-images/pairs`` (a JSON array) → ``{count, pairs}``."""
    emulator = emulator_of(request)
    body = await read_json(request, emulator.config.max_body_bytes)
    if not isinstance(body, list):
        raise ApiError(400, "the body must be a JSON array of {sourceId, targetId, instruction}")
    project = project_id(request)
    with emulator.store.transaction() as store:
        model = require_model(request)
        _editable(request, model)
        pairs = []
        for n, item in enumerate(body):
            if not isinstance(item, dict):
                raise ApiError(400, f"pair {n} must be an object")
            source = get_str(item, "sourceId", required=True) or ""
            target = get_str(item, "targetId", required=True) or ""
            for asset_id in (source, target):
                if store.asset(project, asset_id) is None:
                    raise ApiError(400, f"pair {n}: {asset_id!r} is not an asset of this project")
            pairs.append(PairRecord(source, target, get_str(item, "instruction") or ""))
        model.pairs = pairs
        model.updated_at = emulator.now()
        store.put_model(model)
    wire = [{"sourceId": p.source_id, "targetId": p.target_id, "instruction": p.instruction} for p in pairs]
    return ok({"count": len(wire), "pairs": wire})


def routes() -> list[Route]:
    """The asset and training-image routes, relative to ``/v1``."""
    return [
        Route("/assets", upload_asset, methods=["POST"]),
        Route("/assets/{asset_id}", retrieve_asset, methods=["GET"]),
        Route("/assets/{asset_id}", update_asset, methods=["PUT"]),
        Route("/models/{model_id}/training-images", add_training_images, methods=["POST"]),
        Route("/models/{model_id}/training-images/pairs", replace_pairs, methods=["PUT"]),
        Route("/models/{model_id}/training-images/{image_id}", replace_training_image, methods=["PUT"]),
        Route("/models/{model_id}/training-images/{image_id}", delete_training_image, methods=["DELETE"]),
    ]
