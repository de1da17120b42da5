"""Scenario's LoRA training endpoints, one method each, returning pydantic models.

The request machinery (auth, retries, error mapping) is :mod:`prefect_scenario.api.http`.

Example:
    >>> client = ScenarioClient(api_key="k", api_secret="s", project_id="p")
    >>> client
    ScenarioClient(base_url='https://api.cloud.scenario.com/v1', project_id='p')
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from prefect_scenario.api.http import DEFAULT_BASE_URL, Reconcile, check_base_url
from prefect_scenario.api.models import (
    CostEstimate,
    DatasetScore,
    Job,
    Model,
    ModelPage,
    PairsResult,
    TagsUpdate,
    TrainingImage,
    TrainResult,
    WebhookEndpoint,
)
from prefect_scenario.api.rendering import RenderingEndpoints
from prefect_scenario.api.uploads import StreamedBody
from prefect_scenario.catalog import TrainingParameters
from prefect_scenario.exceptions import (
    AlreadyTrainingError,
    APIStatusError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
)

__all__ = [
    "BULK_CHUNK",
    "DEFAULT_BASE_URL",
    "MAX_BATCH_ASSET_IDS",
    "ScenarioClient",
    "check_base_url",
    "check_webhook_url",
]

MAX_BATCH_ASSET_IDS = 10  # "Too many assetIds provided in a single request" past 10 (Scenario's skills repo)
# No limit is documented; Scenario's blender-plugin sends at most 50 ids per get-bulk.
BULK_CHUNK = 50


class ScenarioClient(RenderingEndpoints):
    """Async client for Scenario's LoRA training endpoints (arguments: :class:`HttpSeam`).

    Use it as an async context manager; every method returns a pydantic model.

    Example:
        >>> ScenarioClient(api_key="k", api_secret="s", project_id="p").project_id
        'p'
    """

    # -- models --------------------------------------------------------------------

    async def create_model(self, *, name: str, training_type: str, reconcile: Reconcile[Model] | None = None) -> Model:
        """``POST /models``: a new model of ``training_type``, status ``new``. Sent once.

        Args:
            name: the model name.
            training_type: the LoRA type.
            reconcile: finds the model a failed attempt created (see :meth:`_send_once`).
        """

        async def send() -> Model:
            body = {"name": name, "type": training_type}
            data = await self._request("POST", "/models", route="POST /models", json=body, idempotent=False)
            return Model.model_validate(data["model"])

        return await self._send_once("POST /models", send, reconcile)

    async def get_model(self, model_id: str) -> Model:
        """``GET /models/{id}``."""
        data = await self._request("GET", f"/models/{model_id}", route="GET /models/{id}", idempotent=True)
        return Model.model_validate(data["model"])

    async def list_models_page(
        self, *, page_size: int = 100, pagination_token: str | None = None, created_after: str | None = None
    ) -> ModelPage:
        """One page of ``GET /models`` (private models of the project), newest first."""
        params: dict[str, str | int] = {"pageSize": page_size, "sortBy": "createdAt", "sortDirection": "desc"}
        if created_after:
            params["createdAfter"] = created_after
        if pagination_token:
            params["paginationToken"] = pagination_token
        data = await self._request("GET", "/models", route="GET /models", params=params, idempotent=True)
        return ModelPage.model_validate(data)

    async def list_models(self, *, page_size: int = 100, created_after: str | None = None) -> AsyncIterator[Model]:
        """Private models of the project, newest first, following ``nextPaginationToken``.

        Stops on an empty token and on a token seen before, and yields each id once:
        the cursor is opaque and can repeat (both Scenario clients guard against it:
        blender-plugin ``sdk_adapter.py``, Scenario-Unity ``jobs.cs``).
        """
        token: str | None = None
        seen_tokens: set[str] = set()
        seen_ids: set[str] = set()
        while True:
            page = await self.list_models_page(page_size=page_size, pagination_token=token, created_after=created_after)
            for model in page.models:
                if model.id not in seen_ids:
                    seen_ids.add(model.id)
                    yield model
            token = page.next_pagination_token
            if not token or token in seen_tokens:
                return
            seen_tokens.add(token)

    async def update_tags(
        self, model_id: str, *, add: Sequence[str] = (), delete: Sequence[str] = (), strict: bool = False
    ) -> TagsUpdate:
        """``PUT /models/{id}/tags``; with ``strict=False`` it is idempotent."""
        body: dict[str, Any] = {"strict": strict}
        if add:
            body["add"] = list(add)
        if delete:
            body["delete"] = list(delete)
        data = await self._request(
            "PUT", f"/models/{model_id}/tags", route="PUT /models/{id}/tags", json=body, idempotent=not strict
        )
        return TagsUpdate.model_validate(data)

    async def get_models_bulk(
        self, model_ids: Iterable[str], *, all_training_images: bool = False, chunk: int = BULK_CHUNK
    ) -> list[Model]:
        """``POST /models/get-bulk``: many models, ``chunk`` ids a request (read-only, so retried)."""
        ids = list(dict.fromkeys(model_ids))
        models: list[Model] = []
        for start in range(0, len(ids), max(1, chunk)):
            body = {"modelIds": ids[start : start + max(1, chunk)], "allTrainingImages": all_training_images}
            data = await self._request(
                "POST", "/models/get-bulk", route="POST /models/get-bulk", json=body, idempotent=True
            )
            models += [Model.model_validate(m) for m in data.get("models", [])]
        return models

    # -- training images -----------------------------------------------------------------

    async def add_training_image(
        self,
        model_id: str,
        *,
        name: str,
        data: bytes | Path,
        mime_type: str,
        reconcile: Reconcile[TrainingImage] | None = None,
    ) -> TrainingImage:
        """``POST /models/{id}/training-images`` with the image inline as a data URL. Sent once.

        The JSON body is streamed (:mod:`prefect_scenario.api.uploads`): an upload holds
        a few MB in memory, not several copies of the image.
        """

        async def send() -> TrainingImage:
            response = await self._request(
                "POST", f"/models/{model_id}/training-images", route="POST /models/{id}/training-images",
                body=StreamedBody.data_url_upload(name=name, data=data, mime_type=mime_type), idempotent=False,
            )  # fmt: skip
            return TrainingImage.model_validate(response["trainingImage"])

        return await self._send_once("POST /models/{id}/training-images", send, reconcile)

    async def add_training_image_assets(
        self, model_id: str, asset_ids: Sequence[str], *, reconcile: Reconcile[list[TrainingImage]] | None = None
    ) -> list[TrainingImage]:
        """``POST /models/{id}/training-images`` with a batch of up to 10 asset ids. Sent once.

        The SDK types the answer as one ``trainingImage``; a ``trainingImages`` list is
        read when the API sends one.
        """
        if not 1 <= len(asset_ids) <= MAX_BATCH_ASSET_IDS:
            raise ConfigurationError(f"a batch takes 1 to {MAX_BATCH_ASSET_IDS} asset ids, got {len(asset_ids)}")

        async def send() -> list[TrainingImage]:
            data = await self._request(
                "POST", f"/models/{model_id}/training-images", route="POST /models/{id}/training-images",
                json={"assetIds": list(asset_ids)}, idempotent=False,
            )  # fmt: skip
            images = data.get("trainingImages") or [data["trainingImage"]]
            return [TrainingImage.model_validate(i) for i in images]

        return await self._send_once("POST /models/{id}/training-images", send, reconcile)

    async def delete_training_image(self, model_id: str, training_image_id: str) -> None:
        """``DELETE /models/{id}/training-images/{imageId}``."""
        await self._request(
            "DELETE",
            f"/models/{model_id}/training-images/{training_image_id}",
            route="DELETE /models/{id}/training-images/{imageId}",
            idempotent=True,
        )

    async def update_asset_description(self, asset_id: str, description: str) -> None:
        """``PUT /assets/{assetId}`` with ``description``: an image's caption (SDK ``assets.update``).

        A training image's id is its asset id. Setting the same text twice changes nothing,
        so it is retried like a read.
        """
        await self._request(
            "PUT", f"/assets/{asset_id}", route="PUT /assets/{id}", json={"description": description}, idempotent=True
        )

    async def set_training_pairs(self, model_id: str, pairs: Sequence[Mapping[str, str]]) -> PairsResult:
        """``PUT /models/{id}/training-images/pairs``: replaces all pairs, so it is idempotent."""
        data = await self._request(
            "PUT",
            f"/models/{model_id}/training-images/pairs",
            route="PUT /models/{id}/training-images/pairs",
            json=[dict(p) for p in pairs],
            idempotent=True,
        )
        return PairsResult.model_validate(data)

    # -- training ---------------------------------------------------------------------

    async def estimate_training_cost(self, model_id: str, parameters: TrainingParameters | None = None) -> CostEstimate:
        """``PUT /models/{id}/train?dryRun=true``: the creative units a training would cost (HTTP 269).

        Safe to repeat: nothing is started or spent.
        """
        data = await self._request(
            "PUT", f"/models/{model_id}/train", route="PUT /models/{id}/train?dryRun", json=_train_body(parameters),
            params={"dryRun": "true"}, idempotent=True,
        )  # fmt: skip
        return CostEstimate.model_validate(data)

    async def train(
        self,
        model_id: str,
        parameters: TrainingParameters | None = None,
        *,
        reconcile: Reconcile[TrainResult] | None = None,
    ) -> TrainResult:
        """``PUT /models/{id}/train``: start the training (paid; sent once).

        Raises:
            AlreadyTrainingError: the model is training already (400 ``Model is already
                training``, or a 409).
            PlanLimitError: a plan ceiling (e.g. ``parallel-training``) refused it.
        """

        async def send() -> TrainResult:
            try:
                data = await self._request(
                    "PUT", f"/models/{model_id}/train", route="PUT /models/{id}/train",
                    json=_train_body(parameters), idempotent=False,
                )  # fmt: skip
            except ConflictError as exc:
                raise AlreadyTrainingError(exc.message, **_fields(exc)) from None
            return TrainResult.model_validate(data)

        return await self._send_once("PUT /models/{id}/train", send, reconcile)

    async def cancel_training(self, model_id: str) -> Model:
        """``POST /models/{id}/train/action`` with ``cancel``; cancelling twice changes nothing."""
        data = await self._request(
            "POST",
            f"/models/{model_id}/train/action",
            route="POST /models/{id}/train/action",
            json={"action": "cancel"},
            idempotent=True,
        )
        return Model.model_validate(data["model"])

    async def get_job(self, job_id: str) -> Job:
        """``GET /jobs/{id}``."""
        data = await self._request("GET", f"/jobs/{job_id}", route="GET /jobs/{id}", idempotent=True)
        return Job.model_validate(data["job"])

    # -- webhook endpoints (SDK ``projects.webhook_endpoints``) ---------------------------

    async def create_webhook_endpoint(
        self,
        url: str,
        enabled_events: Sequence[str],
        description: str | None = None,
        *,
        reconcile: Reconcile[WebhookEndpoint] | None = None,
    ) -> WebhookEndpoint:
        """``POST /projects/{projectId}/webhook-endpoints``: a project endpoint. Sent once.

        The answer is the only one that carries the endpoint's ``secret`` (a ``SecretStr``).

        Args:
            url: where Scenario delivers (an absolute http(s) URL, checked before any request).
            enabled_events: the event names, e.g. ``["model.training.completed"]``, or ``["*"]``.
            description: a note shown with the endpoint.
            reconcile: finds the endpoint a failed attempt created (e.g. by listing by url).

        Raises:
            ConfigurationError: a bad url, or no events.
        """
        check_webhook_url(url)
        events = [e for e in enabled_events if isinstance(e, str) and e.strip()]
        if not events or len(events) != len(enabled_events):
            raise ConfigurationError("enabled_events must be one or more event names (or ['*'])")
        body: dict[str, Any] = {"url": url, "enabledEvents": events}
        if description is not None:
            body["description"] = description
        route = "POST /projects/{projectId}/webhook-endpoints"

        async def send() -> WebhookEndpoint:
            data = await self._request("POST", self._endpoints_path(), route=route, json=body, idempotent=False)
            return WebhookEndpoint.model_validate(_endpoint_of(data))

        return await self._send_once(route, send, reconcile)

    async def list_webhook_endpoints(self) -> list[WebhookEndpoint]:
        """``GET /projects/{projectId}/webhook-endpoints``, every page (cursor guarded as in :meth:`list_models`)."""
        endpoints: dict[str, WebhookEndpoint] = {}
        token: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, str | int] = {"paginationToken": token} if token else {}
            data = await self._request(
                "GET", self._endpoints_path(), route="GET /projects/{projectId}/webhook-endpoints",
                params=params, idempotent=True,
            )  # fmt: skip
            for raw in _endpoints_of(data):
                endpoint = WebhookEndpoint.model_validate(raw)
                endpoints.setdefault(endpoint.id, endpoint)
            token = data.get("nextPaginationToken") if isinstance(data, dict) else None
            if not token or token in seen:
                return list(endpoints.values())
            seen.add(token)

    async def delete_webhook_endpoint(self, endpoint_id: str) -> bool:
        """``DELETE /projects/{projectId}/webhook-endpoints/{endpointId}``.

        Returns:
            True if it was deleted now, False if it was gone already (a 404: a retried
            delete whose first attempt landed sees one too, so it is not an error).
        """
        if not endpoint_id or "/" in endpoint_id:
            raise ConfigurationError("endpoint_id must be an endpoint id")
        try:
            await self._request(
                "DELETE", f"{self._endpoints_path()}/{endpoint_id}",
                route="DELETE /projects/{projectId}/webhook-endpoints/{endpointId}", idempotent=True,
            )  # fmt: skip
        except NotFoundError:
            return False
        return True

    def _endpoints_path(self) -> str:
        return f"/projects/{quote(self.project_id, safe='')}/webhook-endpoints"

    async def get_dataset_score(self, model_id: str) -> DatasetScore:
        """``GET /models/{id}/scores/training-dataset``."""
        data = await self._request(
            "GET",
            f"/models/{model_id}/scores/training-dataset",
            route="GET /models/{id}/scores/training-dataset",
            idempotent=True,
        )
        return DatasetScore.model_validate(data)


def check_webhook_url(url: str) -> str:
    """Return ``url`` if Scenario can deliver webhooks to it: an absolute http(s) URL with a host.

    Scenario's SDK says the ``url`` "must be an absolute http(s) URL". The message never
    repeats the URL: a receiver's URL ends in its secret path token.

    Raises:
        ConfigurationError: not an absolute http(s) URL, or it has a query, fragment or credentials.

    Example:
        >>> check_webhook_url("https://hooks.example.com/scenario/abc")
        'https://hooks.example.com/scenario/abc'
    """
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        parts, port_ok = None, False
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ConfigurationError("the webhook url must be an absolute http(s) URL with a host")
    if parts.username or parts.password or parts.query or parts.fragment or any(c.isspace() for c in url):
        raise ConfigurationError("the webhook url must not carry credentials, a query, a fragment or spaces")
    return url


def _endpoints_of(data: Any) -> list[Any]:
    # The list answer's shape is not stated (§14): a bare list, or the list under a likely key.
    if isinstance(data, list):
        return data
    for key in ("webhookEndpoints", "endpoints", "items", "data", "results"):
        if isinstance(data, dict) and isinstance(data.get(key), list):
            return list(data[key])
    return []


def _endpoint_of(data: Any) -> Any:
    for key in ("webhookEndpoint", "endpoint", "data"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            return data[key]
    return data


def _train_body(parameters: TrainingParameters | None) -> dict[str, Any]:
    if parameters is not None and (wire := parameters.to_wire()):
        return {"parameters": wire}
    return {}


def _fields(error: APIStatusError) -> dict[str, Any]:
    keys = ("method", "path", "status_code", "request_id", "trace_id", "should_retry", "body")
    return {k: getattr(error, k) for k in keys}
