"""Model routes: create, retrieve, update, list, delete, tags, get-bulk.

Choices where Scenario (its SDK, docs and clients) is silent (each safe rather than permissive):

- ``POST /models`` without ``type`` is refused (400): ``type`` is required in every
  Model the API returns, so the emulator cannot represent a model without one.
- Unknown body fields are ignored, as the SDK's ``extra_body`` allows sending them.
- ``DELETE`` of a model that is training cancels the training; a deleted model is
  404 everywhere but ``GET /models?status=deleted`` (for 30 days, per the SDK).
- ``GET /models`` pages by an opaque cursor: ``nextPaginationToken`` is base64 of
  ``{"offset":N,"limit":M}``, as Scenario's blender plugin captured. Its rows carry
  ``"trainingProgress": {}`` and ``"parameters": {}`` (see :mod:`..views`).
- ``GET /models`` sorts newest first by default; ``sortBy=score`` sorts like
  ``createdAt`` (private models carry no score). ``privacy=public``/``unlisted``
  lists nothing: every emulated model is private, and the ``tags``/``type``/
  ``types`` filters, documented for public models only, are ignored.
- ``PUT /models/{id}/tags`` with ``strict=true`` answers 400 for a tag to add that
  exists or a tag to delete that does not.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from prefect_scenario.catalog import get_training_type, validate_parameters
from prefect_scenario.exceptions import InvalidInputError
from scenario_emulator.errors import ApiError, conflict
from scenario_emulator.records import ModelRecord, new_id
from scenario_emulator.routes.generate import base_model
from scenario_emulator.state_machine import epochs_of, training_view
from scenario_emulator.views import effective_updated_at, model_json, model_status
from scenario_emulator.wire import (
    emulator_of,
    get_bool,
    get_str,
    get_str_list,
    ok,
    project_id,
    query_bool,
    query_int,
    read_object,
    root_url,
)

__all__ = ["decode_token", "encode_token", "public_parameters", "render_model", "require_model", "routes"]

DELETED_RETENTION_SECONDS = 30 * 24 * 3600
LIST_STATUSES = {"new", "training", "trained", "failed", "deleted"}
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 100, 500  # SDK: pageSize default 100, max 500


def require_model(request: Request) -> ModelRecord:
    """The model named by the path in the request's project (404 if none)."""
    model_id = request.path_params["model_id"]
    model = emulator_of(request).store.model(project_id(request), model_id)
    if model is None:
        raise ApiError(404, f"Model {model_id} not found")
    return model


def render_model(
    request: Request, model: ModelRecord, *, all_images: bool = True, list_row: bool = False
) -> dict[str, Any]:
    """The model's JSON as of now."""
    emulator = emulator_of(request)
    store = emulator.store
    captions = store.captions([i.asset_id for i in model.training_images])
    training = store.latest_training(model)
    root = root_url(request)
    return model_json(
        model, training, emulator.now(), root, all_images=all_images, captions=captions, list_row=list_row
    )


def public_parameters(model_type: str, raw: Any) -> dict[str, Any]:
    """Validate training parameters with the catalog and return their wire form (400 if invalid)."""
    if not isinstance(raw, dict):
        raise ApiError(400, "parameters must be a JSON object")
    try:
        return validate_parameters(model_type, raw).to_wire()
    except InvalidInputError as exc:
        raise ApiError(400, str(exc)) from None


def _check_type(value: str) -> str:
    try:
        return get_training_type(value).id
    except InvalidInputError as exc:
        raise ApiError(400, str(exc)) from None


def _concepts(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    value = body.get("concepts")
    if value is None:
        return None
    valid = isinstance(value, list) and all(
        isinstance(c, dict)
        and isinstance(c.get("modelId"), str)
        and isinstance(c.get("scale"), int | float)
        and not isinstance(c.get("scale"), bool)
        for c in value
    )
    if not valid:
        raise ApiError(400, "concepts must be a list of {modelId, scale} objects")
    return [dict(c) for c in value]


async def create_model(request: Request) -> Response:
    """``POST /models``."""
    emulator = emulator_of(request)
    project = project_id(request)
    body = await read_object(request, emulator.config.max_body_bytes)
    type_ = _check_type(get_str(body, "type", required=True) or "")
    now = emulator.now()
    model = ModelRecord(
        id=new_id("model"),
        project_id=project,
        type=type_,
        created_at=now,
        updated_at=now,
        name=get_str(body, "name"),
        short_description=get_str(body, "shortDescription"),
        class_slug=get_str(body, "classSlug"),
        concepts=_concepts(body) or [],
        collection_ids=get_str_list(body, "collectionIds") or [],
    )
    emulator.store.put_model(model)
    return ok({"model": render_model(request, model)})


async def retrieve_model(request: Request) -> Response:
    """``GET /models/{id}``: with every training image; a public base model's record with its inputs."""
    if (base := base_model(request.path_params["model_id"])) is not None:
        return ok({"model": base})
    return ok({"model": render_model(request, require_model(request))})


async def update_model(request: Request) -> Response:
    """``PUT /models/{id}``."""
    emulator = emulator_of(request)
    body = await read_object(request, emulator.config.max_body_bytes)
    project = project_id(request)
    with emulator.store.transaction() as store:
        model = require_model(request)
        training = store.latest_training(model)
        now = emulator.now()
        status = model_status(training, now)
        for key, attr in (("name", "name"), ("shortDescription", "short_description"), ("classSlug", "class_slug")):
            if key in body:
                setattr(model, attr, get_str(body, key, nullable=True))
        concepts = _concepts(body)
        if concepts is not None:
            model.concepts = concepts
        if "type" in body:
            new_type = _check_type(get_str(body, "type", required=True) or "")
            if new_type != model.type and status != "new":
                raise conflict(f"the type can only be changed while the model is 'new'; it is {status!r}")
            model.type = new_type
        if "parameters" in body:
            model.parameters = None if body["parameters"] is None else public_parameters(model.type, body["parameters"])
        if "epoch" in body:
            epoch = get_str(body, "epoch", required=True)
            if status != "trained" or training is None:
                raise conflict(f"the epoch can only be set on a trained model; it is {status!r}")
            if epoch not in {name for name, _ in epochs_of(training)}:
                raise ApiError(400, f"the model has no epoch {epoch!r}")
            model.epoch = epoch
        if "thumbnail" in body:
            thumbnail = get_str(body, "thumbnail", nullable=True)
            if thumbnail is not None and store.asset(project, thumbnail) is None:
                raise ApiError(400, f"thumbnail {thumbnail!r} is not an asset of this project")
            model.thumbnail_asset_id = thumbnail
        model.updated_at = now
        store.put_model(model)
    return ok({"model": render_model(request, model)})


async def delete_model(request: Request) -> Response:
    """``DELETE /models/{id}`` → ``{}``."""
    emulator = emulator_of(request)
    with emulator.store.transaction() as store:
        model = require_model(request)
        now = emulator.now()
        training = store.latest_training(model)
        if training is not None and training_view(training, now).model_status == "training":
            training.canceled_at = now
            store.put_training(training)
        model.deleted_at = now
        store.put_model(model)
    return ok({})


def _parse_iso(request: Request, name: str) -> float | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ApiError(400, f"{name} must be an ISO date") from None


def _choice(request: Request, name: str, choices: set[str], default: str | None) -> str | None:
    value = request.query_params.get(name, default)
    if value is not None and value not in choices:
        raise ApiError(400, f"{name} must be one of {', '.join(sorted(choices))}")
    return value


def encode_token(offset: int, limit: int) -> str:
    """An opaque cursor: base64 of ``{"offset":N,"limit":M}``."""
    return base64.b64encode(json.dumps({"offset": offset, "limit": limit}, separators=(",", ":")).encode()).decode()


def decode_token(token: str) -> tuple[int, int]:
    """The offset and limit of a cursor (400 if it is not one this emulator made)."""
    try:
        cursor = json.loads(base64.b64decode(token + "=" * (-len(token) % 4), validate=True))
        offset, limit = cursor["offset"], cursor["limit"]
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise ApiError(400, "invalid paginationToken") from None
    whole = all(isinstance(v, int) and not isinstance(v, bool) for v in (offset, limit))
    if not whole or offset < 0 or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ApiError(400, "invalid paginationToken")
    return offset, limit


def _listed(request: Request, status: str | None, collection: str | None) -> list[tuple[float, str, ModelRecord]]:
    """The project's models ``GET /models`` shows, with their sort key, unsorted."""
    emulator = emulator_of(request)
    sort_by = _choice(request, "sortBy", {"createdAt", "updatedAt", "score"}, "createdAt")
    after, before = _parse_iso(request, "createdAfter"), _parse_iso(request, "createdBefore")
    if (after is not None or before is not None) and sort_by != "createdAt":
        raise ApiError(400, "createdAfter/createdBefore need sortBy=createdAt")
    now = emulator.now()
    rows = []
    for model in emulator.store.project_models(project_id(request)):
        training = emulator.store.latest_training(model)
        if model.deleted_at is not None:
            if status != "deleted" or now - model.deleted_at > DELETED_RETENTION_SECONDS:
                continue
        elif status == "deleted" or (status is not None and model_status(training, now) != status):
            continue
        if (after is not None and model.created_at <= after) or (before is not None and model.created_at >= before):
            continue
        if collection is not None and collection not in model.collection_ids:
            continue
        key = effective_updated_at(model, training, now) if sort_by == "updatedAt" else model.created_at
        rows.append((key, model.id, model))
    return rows


async def list_models(request: Request) -> Response:
    """``GET /models``: offset pagination behind an opaque cursor, over the project's private models."""
    emulator = emulator_of(request)
    page_size = query_int(request, "pageSize", None, 1, MAX_PAGE_SIZE)
    privacy = _choice(request, "privacy", {"private", "public", "unlisted"}, "private")
    status = _choice(request, "status", LIST_STATUSES, None)
    descending = _choice(request, "sortDirection", {"asc", "desc"}, "desc") == "desc"
    token = request.query_params.get("paginationToken")
    offset, token_limit = decode_token(token) if token else (0, DEFAULT_PAGE_SIZE)
    limit = page_size or token_limit
    with emulator.store.transaction():
        rows = _listed(request, status, request.query_params.get("collectionId")) if privacy == "private" else []
        rows.sort(key=lambda r: (r[0], r[1]), reverse=descending)
        page = [render_model(request, m, all_images=False, list_row=True) for _, _, m in rows[offset : offset + limit]]
    body: dict[str, Any] = {"models": page}
    if offset + limit < len(rows):
        body["nextPaginationToken"] = encode_token(offset + limit, limit)
    return ok(body)


async def update_tags(request: Request) -> Response:
    """``PUT /models/{id}/tags`` → ``{added, deleted}``."""
    emulator = emulator_of(request)
    body = await read_object(request, emulator.config.max_body_bytes)
    add, delete = get_str_list(body, "add") or [], get_str_list(body, "delete") or []
    strict = get_bool(body, "strict")
    if any(not t.strip() for t in add):
        raise ApiError(400, "tags must not be empty")
    with emulator.store.transaction() as store:
        model = require_model(request)
        if strict:
            existing = [t for t in add if t in model.tags]
            missing = [t for t in delete if t not in model.tags]
            if existing or missing:
                raise ApiError(400, f"strict: tags already present {existing}, tags not found {missing}")
        deleted = [t for t in dict.fromkeys(delete) if t in model.tags]
        kept = [t for t in model.tags if t not in deleted]
        added = [t for t in dict.fromkeys(add) if t not in kept]
        model.tags = kept + added
        model.updated_at = emulator.now()
        store.put_model(model)
    return ok({"added": added, "deleted": deleted})


async def get_bulk(request: Request) -> Response:
    """``POST /models/get-bulk``: unknown ids are left out; 3 training images unless ``allTrainingImages``."""
    emulator = emulator_of(request)
    body = await read_object(request, emulator.config.max_body_bytes)
    ids = get_str_list(body, "modelIds") or []
    all_images = get_bool(body, "allTrainingImages") or query_bool(request, "allTrainingImages")
    project = project_id(request)
    models = []
    with emulator.store.transaction() as store:
        for model_id in dict.fromkeys(ids):
            model = store.model(project, model_id)
            if model is not None:
                models.append(render_model(request, model, all_images=all_images))
    return ok({"models": models})


def routes() -> list[Route]:
    """The model routes, relative to ``/v1``."""
    return [
        Route("/models", create_model, methods=["POST"]),
        Route("/models", list_models, methods=["GET"]),
        Route("/models/get-bulk", get_bulk, methods=["POST"]),
        Route("/models/{model_id}", retrieve_model, methods=["GET"]),
        Route("/models/{model_id}", update_model, methods=["PUT"]),
        Route("/models/{model_id}", delete_model, methods=["DELETE"]),
        Route("/models/{model_id}/tags", update_tags, methods=["PUT"]),
    ]
