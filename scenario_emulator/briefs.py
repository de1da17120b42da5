"""Project briefs (``/v1/projects/{projectId}/brief``): what makes the Quality Gate a reference-based judge.

SDK ``projects.brief``: ``PUT`` takes ``body`` (required free text), ``enabled``,
``referenceAssetIds`` (at most 10 asset ids) and ``sensitivity``, and answers
``{"brief": Brief}``; ``GET`` answers the same; ``DELETE`` removes it. Choices where
Scenario is silent: ``GET`` of a project without a brief is 404; reference ids must be
assets of the project. An enabled brief adds ``briefCompliance`` to Quality Gate answers.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scenario_emulator.errors import ApiError
from scenario_emulator.records import iso
from scenario_emulator.views import AUTHOR_ID
from scenario_emulator.wire import emulator_of, get_bool, get_str, get_str_list, ok, read_object

__all__ = ["routes"]

MAX_REFERENCES = 10


def _project(request: Request) -> str:
    project = str(request.path_params["projectId"])
    if not project.strip():
        raise ApiError(400, "projectId must not be empty")
    return project


async def retrieve(request: Request) -> Response:
    """``GET /projects/{projectId}/brief``."""
    brief = emulator_of(request).store.generation.briefs.get(_project(request))
    if brief is None:
        raise ApiError(404, "Brief not found")
    return ok({"brief": brief})


async def update(request: Request) -> Response:
    """``PUT /projects/{projectId}/brief`` → ``{"brief"}``."""
    emulator = emulator_of(request)
    project = _project(request)
    body = await read_object(request, emulator.config.max_body_bytes)
    text = get_str(body, "body", required=True) or ""
    references = get_str_list(body, "referenceAssetIds") or []
    if len(references) > MAX_REFERENCES:
        raise ApiError(400, f"referenceAssetIds takes at most {MAX_REFERENCES} asset ids")
    for asset_id in references:
        if emulator.store.asset(project, asset_id) is None:
            raise ApiError(404, f"Asset {asset_id} not found")
    sensitivity = get_str(body, "sensitivity")
    if sensitivity not in (None, "low", "medium", "high"):
        raise ApiError(400, "sensitivity must be one of low, medium, high")
    now = iso(emulator.now())
    previous: dict[str, Any] = emulator.store.generation.briefs.get(project) or {"createdAt": now}
    brief = {"id": f"brief_project_{project}", "body": text, "enabled": get_bool(body, "enabled", True),
             "level": "project", "referenceAssetIds": references, "scopeId": project, "createdBy": AUTHOR_ID,
             "createdAt": previous["createdAt"], "updatedAt": now}  # fmt: skip
    if sensitivity is not None:
        brief["sensitivity"] = sensitivity
    emulator.store.generation.briefs[project] = brief
    return ok({"brief": brief})


async def delete(request: Request) -> Response:
    """``DELETE /projects/{projectId}/brief`` → ``{}``."""
    emulator_of(request).store.generation.briefs.pop(_project(request), None)
    return ok({})


def routes() -> list[Route]:
    """The brief routes, relative to ``/v1``."""
    return [
        Route("/projects/{projectId}/brief", retrieve, methods=["GET"]),
        Route("/projects/{projectId}/brief", update, methods=["PUT"]),
        Route("/projects/{projectId}/brief", delete, methods=["DELETE"]),
    ]
