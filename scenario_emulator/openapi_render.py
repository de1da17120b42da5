"""The OpenAPI description of the render and collection routes, merged into ``openapi.json``.

Built from the document's own error answers (those of ``PUT /models/{modelId}/train``), so
every route shares one error shape. See :mod:`.routes.generate` and :mod:`.collections`.

Example:
    >>> sorted(render_paths(json_document())["/generate/custom/{modelId}"]["post"]["responses"])
    ['200', '269', '400', '401', '404', '413', '415', '429']
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

__all__ = ["json_document", "render_paths"]

_OBJECT = {"type": "object"}
# (path, method, operationId, summary, path params, has body, extra statuses)
_ROUTES: list[tuple[str, str, str, str, tuple[str, ...], bool, tuple[str, ...]]] = [
    ("/generate/custom/{modelId}", "post", "runModel", "Render with a base model (and LoRAs); dryRun answers 269.",
     ("modelId",), True, ("269", "404", "429")),
    ("/generate/quality-gate", "post", "qualityGate", "Score one image with the Quality Gate.", (), True, ("404",)),
    ("/assets/get-bulk", "post", "getAssetsBulk", "Many assets at once (renders' outputs).", (), True, ()),
    ("/collections", "post", "createCollection", "A new collection.", (), True, ()),
    ("/collections", "get", "listCollections", "The project's collections.", (), False, ()),
    ("/collections/{collectionId}", "get", "getCollection", "A collection.", ("collectionId",), False, ("404",)),
    ("/collections/{collectionId}", "delete", "deleteCollection", "Delete a collection.", ("collectionId",), False,
     ("404",)),
    ("/collections/{collectionId}/models", "put", "addCollectionModels", "Add models to a collection.",
     ("collectionId",), True, ("404",)),
    ("/collections/{collectionId}/models", "delete", "removeCollectionModels", "Remove models from a collection.",
     ("collectionId",), True, ("404",)),
    ("/projects/{projectId}/brief", "get", "getProjectBrief", "The project's brief.", ("projectId",), False, ("404",)),
    ("/projects/{projectId}/brief", "put", "updateProjectBrief", "Set the project's brief.", ("projectId",), True,
     ("404",)),
    ("/projects/{projectId}/brief", "delete", "deleteProjectBrief", "Remove the project's brief.", ("projectId",),
     False, ()),
]  # fmt: skip


def json_document() -> dict[str, Any]:
    """The shipped ``openapi.json``, parsed."""
    text = resources.files("scenario_emulator").joinpath("openapi.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def render_paths(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The path items of the render and collection routes, in ``document``'s style."""
    template = document["paths"]["/models/{modelId}/train"]["put"]
    errors = template["responses"]
    project = next(p for p in template["parameters"] if p["name"] == "projectId")
    paths: dict[str, dict[str, Any]] = {}
    for path, method, op_id, summary, params, body, extra in _ROUTES:
        statuses = ("400", "401", *(("413", "415") if body else ()), *extra)
        responses: dict[str, Any] = {
            "200": {"description": "OK.", "content": {"application/json": {"schema": _OBJECT}}}
        }
        responses.update({s: copy.deepcopy(errors[s]) for s in statuses if s != "269"})
        if "269" in statuses:
            responses["269"] = copy.deepcopy(errors["269"])
        parameters: list[Any] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}} for p in params
        ]
        if path.startswith("/generate/custom"):
            parameters.append(
                {"name": "dryRun", "in": "query", "schema": {"type": "string", "enum": ["true", "api", "false"]}}
            )
        query = [] if "projectId" in params else [project]  # a project in the path takes no projectId query
        operation: dict[str, Any] = {"operationId": op_id, "summary": summary, "parameters": [*parameters, *query],
                                     "responses": responses}  # fmt: skip
        if body:
            operation["requestBody"] = {"required": False, "content": {"application/json": {"schema": _OBJECT}}}
        paths.setdefault(path, {})[method] = operation
    return paths
