"""Collections of models (``/v1/collections``) and the admin routes of rendering (``/_emulator``).

Collections are the only server-side filter that works on private models
(``GET /models?collectionId=``, SDK ``types/model_list_params.py``). Bodies and answers
are the SDK's (``resources/collections/``): ``PUT`` and ``DELETE /collections/{id}/models``
take ``{"modelIds": [...]}`` (at most 49), the delete with a JSON body. Choices where
Scenario is silent: re-adding a model already in the collection, or removing one that is
not in it, changes nothing and succeeds; an unknown model id is 404.

Admin (no auth, not logged):

- ``GET /_emulator/models/{modelId}/quality``: ``{"trueQuality", "nbEpochs", "dataset"}``,
  the hidden truth of :func:`scenario_emulator.generation.true_quality`;
- ``PUT /_emulator/generation``: ``{"parallelJobs"?: int|null, "noise"?: float}``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scenario_emulator.errors import ApiError
from scenario_emulator.generation import CollectionRecord
from scenario_emulator.records import iso, new_id
from scenario_emulator.routes.generate import model_quality
from scenario_emulator.routes.models import decode_token, encode_token
from scenario_emulator.wire import emulator_of, get_str, get_str_list, ok, project_id, query_int, read_object

__all__ = ["admin_routes", "routes"]

MAX_MODELS_AT_ONCE = 49


def _json(request: Request, collection: CollectionRecord) -> dict[str, Any]:
    models = emulator_of(request).store.project_models(collection.project_id)
    count = sum(1 for m in models if collection.id in m.collection_ids and m.deleted_at is None)
    return {"id": collection.id, "name": collection.name, "ownerId": collection.project_id, "assetCount": 0,
            "itemCount": count, "modelCount": count, "createdAt": iso(collection.created_at),
            "updatedAt": iso(collection.updated_at)}  # fmt: skip


def _require(request: Request) -> CollectionRecord:
    collection_id = request.path_params["collectionId"]
    found = emulator_of(request).store.generation.collections.get(collection_id)
    if found is None or found.project_id != project_id(request):
        raise ApiError(404, f"Collection {collection_id} not found")
    return found


async def create(request: Request) -> Response:
    """``POST /collections`` ``{"name"}`` → ``{"collection"}``."""
    emulator = emulator_of(request)
    body = await read_object(request, emulator.config.max_body_bytes)
    name = get_str(body, "name", required=True) or ""
    if not name.strip():
        raise ApiError(400, "name must not be empty")
    now = emulator.now()
    collection = CollectionRecord(new_id("collection"), project_id(request), name, now, now)
    emulator.store.generation.collections[collection.id] = collection
    return ok({"collection": _json(request, collection)})


async def list_collections(request: Request) -> Response:
    """``GET /collections``: ``pageSize`` (default 10, max 100), ``paginationToken``."""
    emulator = emulator_of(request)
    size = query_int(request, "pageSize", 10, 1, 100) or 10
    token = request.query_params.get("paginationToken")
    offset = decode_token(token)[0] if token else 0
    project = project_id(request)
    rows = sorted((c for c in emulator.store.generation.collections.values() if c.project_id == project),
                  key=lambda c: (c.created_at, c.id))  # fmt: skip
    body: dict[str, Any] = {"collections": [_json(request, c) for c in rows[offset : offset + size]]}
    if offset + size < len(rows):
        body["nextPaginationToken"] = encode_token(offset + size, size)
    return ok(body)


async def retrieve(request: Request) -> Response:
    """``GET /collections/{id}``."""
    return ok({"collection": _json(request, _require(request))})


async def delete(request: Request) -> Response:
    """``DELETE /collections/{id}``: the models leave it."""
    emulator = emulator_of(request)
    with emulator.store.transaction() as store:
        collection = _require(request)
        for model in store.project_models(collection.project_id):
            if collection.id in model.collection_ids:
                model.collection_ids = [c for c in model.collection_ids if c != collection.id]
                store.put_model(model)
        del store.generation.collections[collection.id]
    return ok({})


async def _members(request: Request, *, add: bool) -> Response:
    emulator = emulator_of(request)
    body = await read_object(request, emulator.config.max_body_bytes)
    ids = get_str_list(body, "modelIds")
    if not ids or len(ids) > MAX_MODELS_AT_ONCE:
        raise ApiError(400, f"modelIds must hold 1 to {MAX_MODELS_AT_ONCE} model ids")
    with emulator.store.transaction() as store:
        collection = _require(request)
        models = [store.model(collection.project_id, i) for i in ids]
        missing = [i for i, m in zip(ids, models, strict=True) if m is None]
        if missing:
            raise ApiError(404, f"Model {missing[0]} not found")
        for model in models:
            assert model is not None
            kept = [c for c in model.collection_ids if c != collection.id]
            model.collection_ids = [*kept, collection.id] if add else kept
            store.put_model(model)
        collection.updated_at = emulator.now()
    return ok({"collection": _json(request, collection)})


async def add_models(request: Request) -> Response:
    """``PUT /collections/{id}/models`` ``{"modelIds"}``."""
    return await _members(request, add=True)


async def remove_models(request: Request) -> Response:
    """``DELETE /collections/{id}/models`` ``{"modelIds"}`` (a JSON body on a DELETE)."""
    return await _members(request, add=False)


def routes() -> list[Route]:
    """The collection routes, relative to ``/v1``."""
    return [
        Route("/collections", create, methods=["POST"]),
        Route("/collections", list_collections, methods=["GET"]),
        Route("/collections/{collectionId}", retrieve, methods=["GET"]),
        Route("/collections/{collectionId}", delete, methods=["DELETE"]),
        Route("/collections/{collectionId}/models", add_models, methods=["PUT"]),
        Route("/collections/{collectionId}/models", remove_models, methods=["DELETE"]),
    ]


async def quality(request: Request) -> Response:
    """``GET /_emulator/models/{modelId}/quality``: a LoRA's hidden true quality."""
    emulator = emulator_of(request)
    model = emulator.store.models.get(request.path_params["model_id"])
    if model is None:
        raise ApiError(404, f"Model {request.path_params['model_id']} not found")
    true, dataset, epochs = model_quality(emulator, model)
    return ok({"modelId": model.id, "trueQuality": true, "nbEpochs": epochs, "dataset": list(dataset)})


async def generation_settings(request: Request) -> Response:
    """``PUT /_emulator/generation``: the render plan ceiling and the image noise."""
    emulator = emulator_of(request)
    body = await read_object(request, 1024 * 1024)
    state = emulator.store.generation
    if "parallelJobs" in body:
        value = body["parallelJobs"]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ApiError(400, "parallelJobs must be a non-negative integer or null")
        state.parallel_jobs = value
    if "noise" in body:
        if not isinstance(body["noise"], int | float) or isinstance(body["noise"], bool) or body["noise"] < 0:
            raise ApiError(400, "noise must be a non-negative number")
        state.noise = float(body["noise"])
    return ok({"parallelJobs": state.parallel_jobs, "noise": state.noise})


def admin_routes() -> list[Route]:
    """The rendering admin routes, relative to ``/_emulator``."""
    return [
        Route("/models/{model_id}/quality", quality, methods=["GET"]),
        Route("/generation", generation_settings, methods=["PUT"]),
    ]
