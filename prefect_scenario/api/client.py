"""The one place that speaks HTTP to Scenario: an async client for the training API.

Every request goes through :meth:`ScenarioClient._request`, which adds Basic auth
and ``projectId``, applies the timeouts, maps failures onto
:mod:`prefect_scenario.exceptions`, and retries transient failures, but only for
requests that are safe to repeat. A call that starts work or adds data (create a
model, add an image, upload an asset, trigger a training) is sent once: the task
layer retries it only after checking that the first attempt did not take effect.

Example:
    >>> import asyncio
    >>> from scenario_emulator import EmulatorServer
    >>> async def main(base_url: str) -> str:
    ...     async with ScenarioClient(
    ...         api_key="emulator-key", api_secret="emulator-secret", project_id="demo", base_url=base_url
    ...     ) as client:
    ...         model = await client.create_model(name="Hero", training_type="flux.2-dev-lora")
    ...         return model.status
    >>> with EmulatorServer() as server:  # doctest: +SKIP
    ...     asyncio.run(main(server.base_url))
    'new'
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from prefect_scenario.api.models import (
    Asset,
    DatasetScore,
    Job,
    Model,
    ModelPage,
    PairsResult,
    TagsUpdate,
    TrainingImage,
    TrainResult,
)
from prefect_scenario.api.retry_policy import is_transient_status, parse_retry_after, parse_should_retry, retry_delay
from prefect_scenario.catalog import TrainingParameters
from prefect_scenario.exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ConfigurationError,
    RateLimitError,
    error_for_status,
)

__all__ = ["DEFAULT_BASE_URL", "MAX_BATCH_ASSET_IDS", "ScenarioClient", "check_base_url"]

DEFAULT_BASE_URL = "https://api.cloud.scenario.com/v1"
MAX_BATCH_ASSET_IDS = 10  # "up to 10 asset IDs are allowed" (SDK and product doc)
_BODY_EXCERPT = 300

Sleep = Callable[[float], Awaitable[None]]


def check_base_url(base_url: str) -> str:
    """Return ``base_url`` without a trailing slash if it is safe to send credentials to.

    Plain ``http`` is allowed only to a loopback host (the emulator): anywhere else
    it would send the API secret in clear text.

    Raises:
        ConfigurationError: the URL is not http(s), has no host, or is plain http to a remote host.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"base_url must be an http(s) URL with a host, got {base_url!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigurationError(
            f"base_url {base_url!r} uses plain http to a non-loopback host; use https "
            "(plain http is allowed only for 127.0.0.1, ::1 or localhost)"
        )
    return base_url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unwrap_credentials(api_key: SecretStr, api_secret: SecretStr) -> tuple[str, tuple[str, ...]]:
    """The Basic ``Authorization`` value, and the strings to redact from error text.

    The single place the key and secret are unwrapped. httpx masks ``Authorization``
    in its reprs, and the client's own repr shows neither.
    """
    key, secret = api_key.get_secret_value(), api_secret.get_secret_value()
    if not key.strip() or not secret.strip():
        raise ConfigurationError("Scenario API key and secret must both be set and non-empty")
    token = base64.b64encode(f"{key}:{secret}".encode()).decode("ascii")
    return f"Basic {token}", (token, secret, key)


_CHUNK = 3 * 1024 * 1024  # a multiple of 3: base64 chunks concatenate without padding


class StreamedBody:
    """A JSON body ``{"name": ..., "data": "data:<mime>;base64,<file>"}`` produced chunk by chunk."""

    def __init__(self, head: bytes, data: bytes | Path, tail: bytes) -> None:
        self.head, self.data, self.tail = head, data, tail
        size = len(data) if isinstance(data, bytes) else data.stat().st_size
        length = len(head) + 4 * ((size + 2) // 3) + len(tail)
        self.headers = {"Content-Type": "application/json", "Content-Length": str(length)}

    @classmethod
    def data_url_upload(cls, *, name: str, data: bytes | Path, mime_type: str) -> StreamedBody:
        head = f'{{"name": {json.dumps(name)}, "data": "data:{mime_type};base64,'.encode()
        return cls(head, data, b'"}')

    async def stream(self) -> AsyncIterator[bytes]:
        yield self.head
        if isinstance(self.data, bytes):
            view = memoryview(self.data)
            for start in range(0, len(view), _CHUNK):
                yield base64.b64encode(view[start : start + _CHUNK])
        else:
            with self.data.open("rb") as handle:
                while chunk := await asyncio.to_thread(handle.read, _CHUNK):
                    yield base64.b64encode(chunk)
        yield self.tail


def data_url(data: bytes, mime_type: str) -> str:
    """A ``data:`` URL for an inline image upload."""
    return f"data:{mime_type};base64,{base64.b64encode(data).decode('ascii')}"


class ScenarioClient:
    """Async client for Scenario's LoRA training endpoints.

    Args:
        api_key: the API key (a ``SecretStr`` or a plain string, kept as a ``SecretStr``).
        api_secret: the API secret.
        project_id: sent as ``projectId`` on every call.
        base_url: the API root including ``/v1``; plain http only for loopback hosts.
        timeout: read/write/pool timeout in seconds.
        connect_timeout: connect timeout in seconds.
        max_retries: retries of a transient failure for requests that are safe to repeat.
        transport: an httpx transport (e.g. ``httpx.ASGITransport`` for in-process tests).
        sleep: the coroutine used to wait between retries (tests pass a fake one).
        rng: the jitter source.

    Raises:
        ConfigurationError: missing credentials or project id, or an unsafe base URL.

    Example:
        >>> client = ScenarioClient(api_key="k", api_secret="s", project_id="p")
        >>> client.base_url
        'https://api.cloud.scenario.com/v1'
    """

    def __init__(
        self,
        *,
        api_key: SecretStr | str,
        api_secret: SecretStr | str,
        project_id: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        max_retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not project_id or not project_id.strip():
            raise ConfigurationError("project_id must be set: Scenario scopes every model to a project")
        self.base_url = check_base_url(base_url)
        self.project_id = project_id
        self.max_retries = max_retries
        self.request_count = 0
        self.requests_by_route: Counter[str] = Counter()
        self._sleep: Sleep = sleep or asyncio.sleep
        self._rng = rng or random.Random()  # jitter, not security
        authorization, self._redact = _unwrap_credentials(
            SecretStr(api_key) if isinstance(api_key, str) else api_key,
            SecretStr(api_secret) if isinstance(api_secret, str) else api_secret,
        )
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers={"Authorization": authorization, "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            transport=transport,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    def __repr__(self) -> str:
        return f"ScenarioClient(base_url={self.base_url!r}, project_id={self.project_id!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the one HTTP seam -------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        route: str,
        json: Any = None,
        body: StreamedBody | None = None,
        params: Mapping[str, str | int] | None = None,
        idempotent: bool,
    ) -> Any:
        """Send one API call and return its parsed JSON body.

        Transient failures are retried up to ``max_retries`` times only when
        ``idempotent``; otherwise the first failure is raised as it is.
        """
        query: dict[str, str | int] = {"projectId": self.project_id, **(params or {})}
        retries_made = 0
        while True:
            self.request_count += 1
            self.requests_by_route[route] += 1
            try:
                if body is not None:
                    response = await self._http.request(
                        method, path.lstrip("/"), content=body.stream(), headers=body.headers, params=query
                    )
                else:
                    response = await self._http.request(method, path.lstrip("/"), json=json, params=query)
            except httpx.TimeoutException as exc:
                error: APIError = APITimeoutError(
                    f"no answer within the timeout ({type(exc).__name__})", method=method, path=_template(route)
                )
                retry_after = None
            except httpx.TransportError as exc:
                error = APIConnectionError(
                    f"connection failed or dropped ({type(exc).__name__})", method=method, path=_template(route)
                )
                retry_after = None
            else:
                if response.status_code < 400:
                    return self._json(response, method, route)
                error = self._status_error(response, method, route)
                retry_after = error.retry_after if isinstance(error, RateLimitError) else None
                if not is_transient_status(response.status_code, error.should_retry):
                    raise error
            if not idempotent or retries_made >= self.max_retries:
                raise error
            await self._sleep(retry_delay(retries_made, retry_after=retry_after, rng=self._rng))
            retries_made += 1

    def _json(self, response: httpx.Response, method: str, route: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise error_for_status(500)(
                f"the API answered {response.status_code} with a body that is not JSON",
                method=method,
                path=_template(route),
                status_code=response.status_code,
                request_id=response.headers.get("x-request-id"),
            ) from None

    def _status_error(self, response: httpx.Response, method: str, route: str) -> APIError:
        body = self._scrub(response.text[:_BODY_EXCERPT])
        fields: dict[str, Any] = {
            "method": method,
            "path": _template(route),
            "status_code": response.status_code,
            "request_id": response.headers.get("x-request-id"),
            "should_retry": parse_should_retry(response.headers),
            "body": body,
        }
        cls = error_for_status(response.status_code)
        message = self._scrub(f"HTTP {response.status_code}: {_error_text(response) or body or response.reason_phrase}")
        if cls is RateLimitError:
            return RateLimitError(message, retry_after=parse_retry_after(response.headers), **fields)
        return cls(message, **fields)

    def _scrub(self, text: str) -> str:
        # An error body should never echo credentials, but if one ever did, it stops here.
        for value in self._redact:
            text = text.replace(value, "**********")
        return text

    # -- models --------------------------------------------------------------------

    async def create_model(self, *, name: str, training_type: str) -> Model:
        """``POST /models``: a new model of ``training_type``, status ``new``. Sent once."""
        data = await self._request(
            "POST", "/models", route="POST /models", json={"name": name, "type": training_type}, idempotent=False
        )
        return Model.model_validate(data["model"])

    async def get_model(self, model_id: str) -> Model:
        """``GET /models/{id}``."""
        data = await self._request("GET", f"/models/{model_id}", route="GET /models/{id}", idempotent=True)
        return Model.model_validate(data["model"])

    async def update_model(self, model_id: str, **fields: Any) -> Model:
        """``PUT /models/{id}`` with wire-named fields (e.g. ``name``, ``parameters``)."""
        data = await self._request("PUT", f"/models/{model_id}", route="PUT /models/{id}", json=fields, idempotent=True)
        return Model.model_validate(data["model"])

    async def delete_model(self, model_id: str) -> None:
        """``DELETE /models/{id}``."""
        await self._request("DELETE", f"/models/{model_id}", route="DELETE /models/{id}", idempotent=True)

    async def list_models_page(
        self, *, status: str | None = None, page_size: int = 100, pagination_token: str | None = None
    ) -> ModelPage:
        """One page of ``GET /models`` (private models of the project)."""
        params: dict[str, str | int] = {"pageSize": page_size, "sortBy": "createdAt", "sortDirection": "desc"}
        if status:
            params["status"] = status
        if pagination_token:
            params["paginationToken"] = pagination_token
        data = await self._request("GET", "/models", route="GET /models", params=params, idempotent=True)
        return ModelPage.model_validate(data)

    async def list_models(self, *, status: str | None = None, page_size: int = 100) -> AsyncIterator[Model]:
        """Every private model of the project, following ``nextPaginationToken``."""
        token: str | None = None
        while True:
            page = await self.list_models_page(status=status, page_size=page_size, pagination_token=token)
            for model in page.models:
                yield model
            token = page.next_pagination_token
            if not token:
                return

    async def find_models_with_tag(self, tag: str) -> list[Model]:
        """Private models carrying ``tag``.

        The API filters by tag only for public models, so the filter runs here.
        """
        return [model async for model in self.list_models() if tag in model.tags]

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

    async def get_models_bulk(self, model_ids: Iterable[str], *, all_training_images: bool = False) -> list[Model]:
        """``POST /models/get-bulk``: many models in one request (read-only, so retried)."""
        body = {"modelIds": list(model_ids), "allTrainingImages": all_training_images}
        data = await self._request(
            "POST", "/models/get-bulk", route="POST /models/get-bulk", json=body, idempotent=True
        )
        return [Model.model_validate(m) for m in data.get("models", [])]

    # -- training images and assets -----------------------------------------------------

    async def add_training_image(
        self, model_id: str, *, name: str, data: bytes | Path, mime_type: str
    ) -> TrainingImage:
        """``POST /models/{id}/training-images`` with the image inline as a data URL. Sent once.

        The JSON body is streamed, base64-encoding ``data`` (bytes, or a file read in
        chunks) as it goes: an upload holds a few MB in memory, not several copies of
        the image (``benchmarks/bench_memory.py``).
        """
        response = await self._request(
            "POST",
            f"/models/{model_id}/training-images",
            route="POST /models/{id}/training-images",
            body=StreamedBody.data_url_upload(name=name, data=data, mime_type=mime_type),
            idempotent=False,
        )
        return TrainingImage.model_validate(response["trainingImage"])

    async def add_training_image_asset(self, model_id: str, asset_id: str) -> TrainingImage:
        """``POST /models/{id}/training-images`` with one existing asset id. Sent once."""
        return await self._add_training_images(model_id, {"assetId": asset_id})

    async def add_training_image_assets(self, model_id: str, asset_ids: Sequence[str]) -> list[TrainingImage]:
        """``POST /models/{id}/training-images`` with a batch of up to 10 asset ids. Sent once.

        The SDK types the answer as one ``trainingImage``; a ``trainingImages`` list is
        read when the API sends one.
        """
        if not 1 <= len(asset_ids) <= MAX_BATCH_ASSET_IDS:
            raise ConfigurationError(f"a batch takes 1 to {MAX_BATCH_ASSET_IDS} asset ids, got {len(asset_ids)}")
        data = await self._request(
            "POST",
            f"/models/{model_id}/training-images",
            route="POST /models/{id}/training-images",
            json={"assetIds": list(asset_ids)},
            idempotent=False,
        )
        images = data.get("trainingImages") or [data["trainingImage"]]
        return [TrainingImage.model_validate(i) for i in images]

    async def _add_training_images(self, model_id: str, body: dict[str, Any]) -> TrainingImage:
        data = await self._request(
            "POST",
            f"/models/{model_id}/training-images",
            route="POST /models/{id}/training-images",
            json=body,
            idempotent=False,
        )
        return TrainingImage.model_validate(data["trainingImage"])

    async def delete_training_image(self, model_id: str, training_image_id: str) -> None:
        """``DELETE /models/{id}/training-images/{imageId}``."""
        await self._request(
            "DELETE",
            f"/models/{model_id}/training-images/{training_image_id}",
            route="DELETE /models/{id}/training-images/{imageId}",
            idempotent=True,
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

    async def upload_asset(self, *, name: str, data: bytes, mime_type: str) -> Asset:
        """``POST /assets``: an image asset (sent as a data URL). Sent once."""
        body = {"name": name, "image": data_url(data, mime_type)}
        response = await self._request("POST", "/assets", route="POST /assets", json=body, idempotent=False)
        return Asset.model_validate(response["asset"])

    # -- training ---------------------------------------------------------------------

    async def train(
        self, model_id: str, parameters: TrainingParameters | None = None, *, dry_run: bool = False
    ) -> TrainResult:
        """``PUT /models/{id}/train``: start the training (paid; sent once).

        With ``dry_run`` it only estimates the cost (HTTP 269) and is safe to repeat.
        """
        body: dict[str, Any] = {}
        if parameters is not None and (wire := parameters.to_wire()):
            body["parameters"] = wire
        data = await self._request(
            "PUT",
            f"/models/{model_id}/train",
            route="PUT /models/{id}/train",
            json=body,
            params={"dryRun": "true"} if dry_run else None,
            idempotent=dry_run,
        )
        return TrainResult.model_validate(data)

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

    async def get_dataset_score(self, model_id: str) -> DatasetScore:
        """``GET /models/{id}/scores/training-dataset``."""
        data = await self._request(
            "GET",
            f"/models/{model_id}/scores/training-dataset",
            route="GET /models/{id}/scores/training-dataset",
            idempotent=True,
        )
        return DatasetScore.model_validate(data)


def _template(route: str) -> str:
    # Errors carry the method separately; "GET /models/{id}" → "/models/{id}", so a message
    # reads "GET /models/{id}: ..." rather than "GET GET /models/{id}: ..." (seen in the bad-input table).
    return route.partition(" ")[2] or route


def _error_text(response: httpx.Response) -> str | None:
    # The API's error shape is not stated; take the usual keys when the body is JSON.
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict):
        for key in ("message", "error", "detail"):
            value = body.get(key)
            if isinstance(value, str):
                return value[:_BODY_EXCERPT]
    return None
