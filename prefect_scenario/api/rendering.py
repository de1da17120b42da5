"""Rendering with a trained LoRA, Quality Gate scoring and collections: the endpoints behind evaluation.

A trained LoRA never runs by its own id; it runs through a base model
(``POST /generate/custom/{baseModelId}``, SDK ``client.generate.run_model``,
``resources/generate.py:840``). A render spends credits and the API has no idempotency
key, so it is sent once (Scenario's blender plugin submits with ``max_retries=0``,
``docs/SDK_ADOPTION.md``). Ids are percent-encoded in paths.

Example:
    >>> RenderingEndpoints(api_key="k", api_secret="s", project_id="p").project_id
    'p'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prefect_scenario.api.http import HttpSeam, Reconcile
from prefect_scenario.api.models import (
    BaseModelRecord,
    Collection,
    CostEstimate,
    Model,
    ModelPage,
    QualityGateResult,
    RenderAsset,
    RenderResult,
)
from prefect_scenario.api.paths import model_path, opaque_segment
from prefect_scenario.exceptions import NotFoundError

__all__ = ["BULK_CHUNK", "RenderingEndpoints"]

# No limit is documented; Scenario's blender-plugin sends at most 50 ids per get-bulk.
BULK_CHUNK = 50


class RenderingEndpoints(HttpSeam):
    """Render, read outputs, score and group models; a part of :class:`~prefect_scenario.api.client.ScenarioClient`.

    Example:
        >>> RenderingEndpoints(api_key="k", api_secret="s", project_id="p").project_id
        'p'
    """

    # -- rendering with a trained LoRA, scoring, collections ------------------------------

    async def get_base_model(self, model_id: str) -> BaseModelRecord:
        """``GET /models/{id}`` of a runnable base: its ``inputs`` and ``uiConfig`` (detail records only)."""
        data = await self._request("GET", model_path(model_id), route="GET /models/{id}", idempotent=True)
        return BaseModelRecord.model_validate(data["model"])

    async def estimate_render(self, base_model_id: str, body: Mapping[str, Any]) -> CostEstimate:
        """``POST /generate/custom/{id}?dryRun=true``: the cost of a render (HTTP 269); nothing runs."""
        data = await self._request(
            "POST",
            f"/generate/custom/{opaque_segment('base_model_id', base_model_id)}",
            route="POST /generate/custom/{id}?dryRun",
            json=dict(body),
            params={"dryRun": "true"},
            idempotent=True,
        )
        return CostEstimate.model_validate(data)

    async def render(
        self, base_model_id: str, body: Mapping[str, Any], *, reconcile: Reconcile[RenderResult] | None = None
    ) -> RenderResult:
        """``POST /generate/custom/{id}``: start a render (paid; sent once: the API has no idempotency key).

        Raises:
            PlanLimitError: past the plan's render jobs in flight (``parallel-custom-jobs``).
        """

        async def send() -> RenderResult:
            data = await self._request(
                "POST",
                f"/generate/custom/{opaque_segment('base_model_id', base_model_id)}",
                route="POST /generate/custom/{id}",
                json=dict(body),
                idempotent=False,
            )
            return RenderResult.model_validate(data)

        return await self._send_once("POST /generate/custom/{id}", send, reconcile)

    async def get_assets(self, asset_ids: Iterable[str], *, chunk: int = BULK_CHUNK) -> list[RenderAsset]:
        """``POST /assets/get-bulk``, ``chunk`` ids a request; unknown ids are left out."""
        ids = list(dict.fromkeys(asset_ids))
        found: list[RenderAsset] = []
        for start in range(0, len(ids), max(1, chunk)):
            data = await self._request(
                "POST",
                "/assets/get-bulk",
                route="POST /assets/get-bulk",
                json={"assetIds": ids[start : start + max(1, chunk)]},
                idempotent=True,
            )
            found += [RenderAsset.model_validate(a) for a in data.get("assets", [])]
        return found

    async def quality_gate(self, asset_id: str, *, sensitivity: str | None = None) -> QualityGateResult:
        """``POST /generate/quality-gate``: score one image now (billed; a failure is not resent blindly)."""
        body: dict[str, Any] = {"image": asset_id}
        if sensitivity is not None:
            body["sensitivity"] = sensitivity

        async def send() -> QualityGateResult:
            data = await self._request(
                "POST", "/generate/quality-gate", route="POST /generate/quality-gate", json=body, idempotent=False
            )
            return QualityGateResult.model_validate(data)

        return await self._send_once("POST /generate/quality-gate", send, None)

    async def list_collections(self) -> list[Collection]:
        """``GET /collections``, every page (cursor guarded as in :meth:`list_models`)."""
        found: dict[str, Collection] = {}
        token: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, str | int] = {"pageSize": 100, **({"paginationToken": token} if token else {})}
            data = await self._request("GET", "/collections", route="GET /collections", params=params, idempotent=True)
            for raw in data.get("collections", []):
                found.setdefault(raw["id"], Collection.model_validate(raw))
            token = data.get("nextPaginationToken")
            if not token or token in seen:
                return list(found.values())
            seen.add(token)

    async def create_collection(self, name: str, *, reconcile: Reconcile[Collection] | None = None) -> Collection:
        """``POST /collections``. Sent once."""

        async def send() -> Collection:
            data = await self._request(
                "POST", "/collections", route="POST /collections", json={"name": name}, idempotent=False
            )
            return Collection.model_validate(data["collection"])

        return await self._send_once("POST /collections", send, reconcile)

    async def add_to_collection(self, collection_id: str, model_ids: Sequence[str]) -> Collection:
        """``PUT /collections/{id}/models``: a membership, the same after a repeat, so retried."""
        data = await self._request(
            "PUT",
            _collection_models(collection_id),
            route="PUT /collections/{id}/models",
            json={"modelIds": list(model_ids)},
            idempotent=True,
        )
        return Collection.model_validate(data["collection"])

    async def remove_from_collection(self, collection_id: str, model_ids: Sequence[str]) -> Collection:
        """``DELETE /collections/{id}/models`` (a JSON body on a DELETE)."""
        data = await self._request(
            "DELETE",
            _collection_models(collection_id),
            route="DELETE /collections/{id}/models",
            json={"modelIds": list(model_ids)},
            idempotent=True,
        )
        return Collection.model_validate(data["collection"])

    async def list_collection_models(self, collection_id: str) -> list[Model]:
        """``GET /models?collectionId=``: the private models in a collection, every page."""
        found: dict[str, Model] = {}
        token: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, str | int] = {"collectionId": collection_id, "pageSize": 100}
            if token:
                params["paginationToken"] = token
            page = ModelPage.model_validate(
                await self._request("GET", "/models", route="GET /models", params=params, idempotent=True)
            )
            for model in page.models:
                found.setdefault(model.id, model)
            token = page.next_pagination_token
            if not token or token in seen:
                return list(found.values())
            seen.add(token)

    async def get_project_brief(self) -> dict[str, Any] | None:
        """``GET /projects/{projectId}/brief``: the project's brief, or None when it has none (404)."""
        try:
            data = await self._request(
                "GET", self._brief_path(), route="GET /projects/{projectId}/brief", idempotent=True
            )
        except NotFoundError:
            return None
        brief = data.get("brief") if isinstance(data, dict) else None
        return dict(brief) if isinstance(brief, dict) else None

    async def set_project_brief(
        self, body: str, *, reference_asset_ids: Sequence[str] = (), sensitivity: str | None = None
    ) -> dict[str, Any]:
        """``PUT /projects/{projectId}/brief``: replaces the brief, so a repeat changes nothing more."""
        payload: dict[str, Any] = {"body": body, "enabled": True, "referenceAssetIds": list(reference_asset_ids)}
        if sensitivity is not None:
            payload["sensitivity"] = sensitivity
        data = await self._request(
            "PUT", self._brief_path(), route="PUT /projects/{projectId}/brief", json=payload, idempotent=True
        )
        return dict(data.get("brief") or {})

    def _brief_path(self) -> str:
        return f"/projects/{opaque_segment('project_id', self.project_id)}/brief"


def _collection_models(collection_id: str) -> str:
    return f"/collections/{opaque_segment('collection_id', collection_id)}/models"
