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

from prefect_scenario.api.endpoints import WebhookEndpoints, check_webhook_url
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
)
from prefect_scenario.api.paths import asset_segment, job_segment, model_path
from prefect_scenario.api.rendering import BULK_CHUNK, RenderingEndpoints
from prefect_scenario.api.uploads import StreamedBody
from prefect_scenario.catalog import TrainingParameters
from prefect_scenario.exceptions import (
    AlreadyTrainingError,
    APIStatusError,
    ConfigurationError,
    ConflictError,
    InvalidInputError,
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


class ScenarioClient(WebhookEndpoints, RenderingEndpoints):
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
        data = await self._request("GET", model_path(model_id), route="GET /models/{id}", idempotent=True)
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
            "PUT", f"{model_path(model_id)}/tags", route="PUT /models/{id}/tags", json=body, idempotent=not strict
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
                "POST",
                f"{model_path(model_id)}/training-images",
                route="POST /models/{id}/training-images",
                body=StreamedBody.data_url_upload(name=name, data=data, mime_type=mime_type),
                idempotent=False,
            )
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
                "POST",
                f"{model_path(model_id)}/training-images",
                route="POST /models/{id}/training-images",
                json={"assetIds": list(asset_ids)},
                idempotent=False,
            )
            images = data.get("trainingImages") or [data["trainingImage"]]
            return [TrainingImage.model_validate(i) for i in images]

        return await self._send_once("POST /models/{id}/training-images", send, reconcile)

    async def delete_training_image(self, model_id: str, training_image_id: str) -> None:
        """``DELETE /models/{id}/training-images/{imageId}``."""
        await self._request(
            "DELETE",
            f"{model_path(model_id)}/training-images/{asset_segment(training_image_id)}",
            route="DELETE /models/{id}/training-images/{imageId}",
            idempotent=True,
        )

    async def update_asset_description(self, asset_id: str, description: str) -> None:
        """``PUT /assets/{assetId}`` with ``description``: an image's caption (SDK ``assets.update``).

        A training image's id is its asset id. Setting the same text twice changes nothing,
        so it is retried like a read.
        """
        path, body = f"/assets/{asset_segment(asset_id)}", {"description": description}
        await self._request("PUT", path, route="PUT /assets/{id}", json=body, idempotent=True)

    async def set_training_pairs(self, model_id: str, pairs: Sequence[Mapping[str, str]]) -> PairsResult:
        """``PUT /models/{id}/training-images/pairs``: replaces all pairs, so it is idempotent."""
        data = await self._request(
            "PUT",
            f"{model_path(model_id)}/training-images/pairs",
            route="PUT /models/{id}/training-images/pairs",
            json=[dict(p) for p in pairs],
            idempotent=True,
        )
        return PairsResult.model_validate(data)

    # -- training ---------------------------------------------------------------------

    async def estimate_training_cost(
        self, model_id: str, parameters: TrainingParameters | None = None, *, training_images_count: int | None = None
    ) -> CostEstimate:
        """``PUT /models/{id}/train?dryRun=true``: the creative units a training would cost (HTTP 269).

        Safe to repeat. ``training_images_count`` prices a model with no images yet as if it held
        that many: the API quotes only an existing model, and ignores the count once images are
        there (scenario-sdk 2.4.0, ``scenario_sdk/resources/models/train.py:92-99, 120-121``).
        """
        params: dict[str, str] = {"dryRun": "true"}
        if training_images_count is not None:
            if training_images_count < 1:
                raise InvalidInputError(f"training_images_count must be at least 1, got {training_images_count}")
            params["trainingImagesCount"] = str(training_images_count)
        data = await self._request(
            "PUT",
            f"{model_path(model_id)}/train",
            route="PUT /models/{id}/train?dryRun",
            json=_train_body(parameters),
            params=params,
            idempotent=True,
        )
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
                    "PUT",
                    f"{model_path(model_id)}/train",
                    route="PUT /models/{id}/train",
                    json=_train_body(parameters),
                    idempotent=False,
                )
            except ConflictError as exc:
                raise AlreadyTrainingError(exc.message, **_fields(exc)) from None
            return TrainResult.model_validate(data)

        return await self._send_once("PUT /models/{id}/train", send, reconcile)

    async def cancel_training(self, model_id: str) -> Model:
        """``POST /models/{id}/train/action`` with ``cancel``; cancelling twice changes nothing."""
        data = await self._request(
            "POST",
            f"{model_path(model_id)}/train/action",
            route="POST /models/{id}/train/action",
            json={"action": "cancel"},
            idempotent=True,
        )
        return Model.model_validate(data["model"])

    async def get_job(self, job_id: str) -> Job:
        """``GET /jobs/{id}``."""
        data = await self._request("GET", f"/jobs/{job_segment(job_id)}", route="GET /jobs/{id}", idempotent=True)
        return Job.model_validate(data["job"])

    async def get_dataset_score(self, model_id: str) -> DatasetScore:
        """``GET /models/{id}/scores/training-dataset``."""
        data = await self._request(
            "GET",
            f"{model_path(model_id)}/scores/training-dataset",
            route="GET /models/{id}/scores/training-dataset",
            idempotent=True,
        )
        return DatasetScore.model_validate(data)


def _train_body(parameters: TrainingParameters | None) -> dict[str, Any]:
    if parameters is not None and (wire := parameters.to_wire()):
        return {"parameters": wire}
    return {}


def _fields(error: APIStatusError) -> dict[str, Any]:
    keys = ("method", "path", "status_code", "request_id", "trace_id", "should_retry", "body")
    return {k: getattr(error, k) for k in keys}
