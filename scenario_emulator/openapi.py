"""The emulator's own OpenAPI 3.0 description of the ``/v1`` routes it serves.

Served at ``GET /_emulator/openapi.json``. It describes what *the emulator*
accepts and answers, status codes included, so that a schema-driven fuzzer
(schemathesis, in the reliability tests) can check that every answer is one the
description allows and that none is a 500. It is not the real API's schema:
where the reference is silent the emulator's own choices are written down
(see the route modules' docstrings).

An empty body reads as ``{}``. Fields the emulator reads as absent when they
are ``null`` (lists, ``concepts``, ``parameters``) are marked ``nullable``. Every
``/v1`` operation needs Basic auth and may answer 401; every operation that reads
a JSON body may answer 413 (too large), 415 (not JSON) and 400 (malformed).
Injected faults (429, 5xx, dropped connections) are not part of the description:
fuzz with faults off.

Example:
    >>> spec = openapi_schema()
    >>> spec["openapi"], "/models/{modelId}/train" in spec["paths"]
    ('3.0.3', True)
"""

from __future__ import annotations

import copy
from typing import Any

from prefect_scenario.catalog import MAX_SAMPLE_PROMPTS, TRAINING_TYPES

__all__ = ["openapi_schema"]

Schema = dict[str, Any]

_ERROR: Schema = {
    "type": "object",
    "required": ["error", "status"],
    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
}
_OBJECT: Schema = {"type": "object"}

_DESCRIPTIONS = {
    "200": "OK.",
    "269": "Dry run: the estimated cost; nothing was started.",
    "400": "Invalid request: a parameter, field or body the emulator refuses.",
    "401": "Missing or invalid Basic credentials.",
    "404": "No such model, asset, training image or job in the project.",
    "409": "The model's state does not allow this (e.g. it is training).",
    "413": "The request body is larger than the emulator accepts.",
    "415": "The request body is not JSON.",
}

_MODEL_ID = {"name": "modelId", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
_PROJECT_ID = {
    "name": "projectId",
    "in": "query",
    "required": False,
    "description": "The project; the emulator's default project when absent.",
    "schema": {"type": "string", "minLength": 1},
}

_CONCEPTS: Schema = {
    "type": "array",
    "nullable": True,
    "items": {
        "type": "object",
        "required": ["modelId", "scale"],
        "properties": {"modelId": {"type": "string"}, "scale": {"type": "number"}},
    },
}

_PARAMETERS: Schema = {
    "type": "object",
    "nullable": True,
    "description": "Training parameters (see prefect_scenario.catalog.TrainingParameters for the limits).",
    "properties": {
        "learningRate": {"type": "number", "minimum": 0.00001, "maximum": 0.001},
        "rank": {"type": "integer", "minimum": 2, "maximum": 128},
        "batchSize": {"type": "integer", "minimum": 1, "maximum": 8},
        "nbEpochs": {"type": "integer", "minimum": 1, "maximum": 100},
        "nbRepeats": {"type": "integer", "minimum": 1, "maximum": 100},
        "maxTrainSteps": {"type": "integer", "minimum": 0, "maximum": 10000},
        "learningRateTextEncoder": {"type": "number", "minimum": 0.000001, "maximum": 0.001},
        "seed": {"type": "integer", "minimum": 0},
        "conceptPrompt": {"type": "string"},
        "optimizeFor": {"type": "string", "enum": ["likeness", "all", "none"]},
        "samplePrompts": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_SAMPLE_PROMPTS},
        "sampleSourceImages": {"type": "array", "items": {"type": "string"}},
        "wandbKey": {"type": "string", "maxLength": 40},
    },
    "additionalProperties": False,
}


def _body(schema: Schema, *, required: bool = False) -> Schema:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _responses(ok: Schema | None, *codes: str, body: bool = False) -> Schema:
    responses: Schema = {}
    if ok is not None:
        responses["200"] = {"description": _DESCRIPTIONS["200"], "content": {"application/json": {"schema": ok}}}
    extra = ["400", "401", *codes] + (["413", "415"] if body else [])
    for code in dict.fromkeys(extra):
        responses[code] = {
            "description": _DESCRIPTIONS[code],
            "content": {"application/json": {"schema": copy.deepcopy(_ERROR)}},
        }
    return responses


def _wrapped(key: str) -> Schema:
    return {"type": "object", "required": [key], "properties": {key: _OBJECT}}


def _operation(operation_id: str, summary: str, responses: Schema, **more: Any) -> Schema:
    params = [copy.deepcopy(p) for p in more.pop("parameters", [])] + [copy.deepcopy(_PROJECT_ID)]
    return {"operationId": operation_id, "summary": summary, "parameters": params, "responses": responses, **more}


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI 3.0.3 document of the emulator's ``/v1`` routes, relative to ``/v1``."""
    model = _wrapped("model")
    training_image = {
        "type": "object",
        "required": ["trainingImage"],
        "properties": {"trainingImage": _OBJECT, "trainingImages": {"type": "array", "items": _OBJECT}},
    }
    image_id = {"name": "trainingImageId", "in": "path", "required": True, "schema": {"type": "string"}}
    paths: dict[str, Any] = {
        "/models": {
            "post": _operation(
                "createModel",
                "Create a model of a LoRA training type (status new).",
                _responses(model, body=True),
                requestBody=_body(
                    {
                        "type": "object",
                        "required": ["type"],
                        "properties": {
                            "type": {"type": "string", "enum": sorted(TRAINING_TYPES)},
                            "name": {"type": "string"},
                            "shortDescription": {"type": "string"},
                            "classSlug": {"type": "string"},
                            "concepts": _CONCEPTS,
                            "collectionIds": {"type": "array", "nullable": True, "items": {"type": "string"}},
                        },
                    },
                    required=True,
                ),
            ),
            "get": _operation(
                "listModels",
                "List the project's private models, newest first, with cursor pagination.",
                _responses(
                    {
                        "type": "object",
                        "required": ["models"],
                        "properties": {
                            "models": {"type": "array", "items": _OBJECT},
                            "nextPaginationToken": {"type": "string"},
                        },
                    }
                ),
                parameters=[
                    {"name": "pageSize", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                    {
                        "name": "privacy",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["private", "public", "unlisted"]},
                    },
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["new", "training", "trained", "failed", "deleted"]},
                    },
                    {
                        "name": "sortBy",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["createdAt", "updatedAt", "score"]},
                    },
                    {"name": "sortDirection", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"]}},
                    {"name": "collectionId", "in": "query", "schema": {"type": "string"}},
                    {"name": "paginationToken", "in": "query", "schema": {"type": "string"}},
                ],
            ),
        },
        "/models/get-bulk": {
            "post": _operation(
                "getModelsBulk",
                "Many models in one request; unknown ids are left out.",
                _responses(
                    {"type": "object", "required": ["models"], "properties": {"models": {"type": "array"}}}, body=True
                ),
                requestBody=_body(
                    {
                        "type": "object",
                        "properties": {
                            "modelIds": {"type": "array", "nullable": True, "items": {"type": "string"}},
                            "allTrainingImages": {"type": "boolean"},
                        },
                    },
                    required=False,
                ),
            )
        },
        "/models/{modelId}": {
            "get": _operation(
                "getModel", "A model with every training image.", _responses(model, "404"), parameters=[_MODEL_ID]
            ),
            "put": _operation(
                "updateModel",
                "Update a model's name, description, type (while new), parameters, epoch or thumbnail.",
                _responses(model, "404", "409", body=True),
                parameters=[_MODEL_ID],
                requestBody=_body(
                    {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string", "nullable": True},
                            "shortDescription": {"type": "string", "nullable": True},
                            "classSlug": {"type": "string", "nullable": True},
                            "concepts": _CONCEPTS,
                            "type": {"type": "string", "enum": sorted(TRAINING_TYPES)},
                            "parameters": _PARAMETERS,
                            "epoch": {"type": "string"},
                            "thumbnail": {"type": "string", "nullable": True},
                        },
                    }
                ),
            ),
            "delete": _operation(
                "deleteModel",
                "Delete a model (cancelling its training).",
                _responses({"type": "object"}, "404"),
                parameters=[_MODEL_ID],
            ),
        },
        "/models/{modelId}/tags": {
            "put": _operation(
                "updateModelTags",
                "Add and delete tags; with strict, a tag already present or missing is a 400.",
                _responses(
                    {
                        "type": "object",
                        "required": ["added", "deleted"],
                        "properties": {
                            "added": {"type": "array", "items": {"type": "string"}},
                            "deleted": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                    "404",
                    body=True,
                ),
                parameters=[_MODEL_ID],
                requestBody=_body(
                    {
                        "type": "object",
                        "properties": {
                            "add": {"type": "array", "nullable": True, "items": {"type": "string", "pattern": r"\S"}},
                            "delete": {"type": "array", "nullable": True, "items": {"type": "string"}},
                            "strict": {"type": "boolean"},
                        },
                    },
                    required=False,
                ),
            )
        },
        "/assets": {
            "post": _operation(
                "uploadAsset",
                "Upload an image asset (a data URL or raw base64).",
                _responses(_wrapped("asset"), body=True),
                requestBody=_body(
                    {
                        "type": "object",
                        "required": ["name", "image"],
                        "properties": {"name": {"type": "string"}, "image": {"type": "string"}},
                    },
                    required=True,
                ),
            )
        },
        "/assets/{assetId}": {
            "get": _operation(
                "getAsset",
                "An asset of the project.",
                _responses(_wrapped("asset"), "404"),
                parameters=[{"name": "assetId", "in": "path", "required": True, "schema": {"type": "string"}}],
            )
        },
        "/models/{modelId}/training-images": {
            "post": _operation(
                "addTrainingImages",
                "Add a training image: inline (name and data), one asset id, or a batch of up to 10.",
                _responses(training_image, "404", "409", body=True),
                parameters=[_MODEL_ID],
                requestBody=_body(
                    {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "data": {"type": "string"},
                            "assetId": {"type": "string"},
                            "assetIds": {
                                "type": "array",
                                "nullable": True,
                                "items": {"type": "string"},
                                "minItems": 1,
                                "maxItems": 10,
                            },
                        },
                    },
                    required=True,
                ),
            )
        },
        "/models/{modelId}/training-images/pairs": {
            "put": _operation(
                "setTrainingPairs",
                "Replace the model's before/after pairs.",
                _responses(
                    {
                        "type": "object",
                        "required": ["count", "pairs"],
                        "properties": {"count": {"type": "integer"}, "pairs": {"type": "array"}},
                    },
                    "404",
                    "409",
                    body=True,
                ),
                parameters=[_MODEL_ID],
                requestBody=_body(
                    {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["sourceId", "targetId"],
                            "properties": {
                                "sourceId": {"type": "string"},
                                "targetId": {"type": "string"},
                                "instruction": {"type": "string"},
                            },
                        },
                    },
                    required=True,
                ),
            )
        },
        "/models/{modelId}/training-images/{trainingImageId}": {
            "put": _operation(
                "replaceTrainingImage",
                "Replace one training image (inline or by asset id).",
                _responses(_wrapped("trainingImage"), "404", "409", body=True),
                parameters=[_MODEL_ID, image_id],
                requestBody=_body(
                    {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "data": {"type": "string"},
                            "assetId": {"type": "string"},
                        },
                    },
                    required=True,
                ),
            ),
            "delete": _operation(
                "deleteTrainingImage",
                "Remove one training image.",
                _responses({"type": "object"}, "404", "409"),
                parameters=[_MODEL_ID, image_id],
            ),
        },
        "/models/{modelId}/train": {
            "put": _operation(
                "trainModel",
                "Start a training, or estimate it with dryRun (HTTP 269, nothing started).",
                {
                    **_responses(
                        {
                            "type": "object",
                            "required": ["model", "job"],
                            "properties": {"model": _OBJECT, "job": _OBJECT},
                        },
                        "404",
                        "409",
                        body=True,
                    ),
                    "269": {
                        "description": _DESCRIPTIONS["269"],
                        "content": {"application/json": {"schema": {"type": "object", "required": ["model", "job"]}}},
                    },
                },
                parameters=[
                    _MODEL_ID,
                    {"name": "dryRun", "in": "query", "schema": {"type": "string", "enum": ["true", "api", "false"]}},
                    {
                        "name": "trainingImagesCount",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 10000},
                    },
                ],
                requestBody=_body({"type": "object", "properties": {"parameters": _PARAMETERS}}),
            )
        },
        "/models/{modelId}/train/action": {
            "post": _operation(
                "trainingAction",
                "Cancel the model's training.",
                _responses(model, "404", "409", body=True),
                parameters=[_MODEL_ID],
                requestBody=_body(
                    {
                        "type": "object",
                        "required": ["action"],
                        "properties": {"action": {"type": "string", "enum": ["cancel"]}},
                    },
                    required=True,
                ),
            )
        },
        "/models/{modelId}/scores/training-dataset": {
            "get": _operation(
                "getTrainingDatasetScore",
                "The training-dataset score and its warnings.",
                _responses(
                    {
                        "type": "object",
                        "required": ["modelId", "score", "status"],
                        "properties": {"score": {"type": "number"}},
                    },
                    "404",
                ),
                parameters=[_MODEL_ID],
            )
        },
        "/jobs/{jobId}": {
            "get": _operation(
                "getJob",
                "A training job.",
                _responses(_wrapped("job"), "404"),
                parameters=[{"name": "jobId", "in": "path", "required": True, "schema": {"type": "string"}}],
            )
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Scenario LoRA training API (prefect-scenario emulator)",
            "version": "1",
            "description": "What the local emulator serves under /v1. Not the real API's schema.",
        },
        "servers": [{"url": "/v1"}],
        "security": [{"basic": []}],
        "components": {"securitySchemes": {"basic": {"type": "http", "scheme": "basic"}}},
        "paths": paths,
    }
