"""The errors prefect-scenario raises.

One root, a subclass per cause, plain values only so that every error pickles
(Prefect persists exceptions as task and flow results)::

    ScenarioError
    ├── InvalidInputError          bad input, raised before any request is sent
    │   ├── InvalidTrainingTypeError
    │   ├── InvalidParametersError
    │   ├── InvalidDatasetError
    │   │   └── DatasetPreflightError  the local preflight refused (findings)
    │   ├── InvalidImageError
    │   ├── InvalidIdError         an id that does not have its kind's shape (model_…, asset_…)
    │   └── ConfigurationError     credentials, base URL
    ├── APIError                   the API said no, or could not be reached
    │   ├── APIStatusError         an HTTP error answer (status_code, request_id)
    │   │   ├── BadRequestError           400, 422 (other 4xx: APIStatusError)
    │   │   │   └── DuplicateTrainingImageError   the asset is already a training image
    │   │   ├── AuthenticationError       401
    │   │   ├── PermissionDeniedError     403
    │   │   ├── NotFoundError             404
    │   │   ├── ConflictError             409
    │   │   │   └── AlreadyTrainingError  400 "Model is already training", or 409
    │   │   ├── RateLimitError            429 (retry_after; a cooldown's remainingSeconds)
    │   │   ├── PlanLimitError            429 PlanLimitReachedError (action_name, action_limit)
    │   │   └── ServerError               5xx
    │   └── APIConnectionError     no answer
    │       └── APITimeoutError
    └── TrainingError              the workflow's own outcomes (model_id)
        ├── TrainingFailed                the server's reason
        ├── TrainingTimeout
        ├── TrainingCanceled
        ├── DatasetRejected               the dataset score gate said no
        └── BudgetExceeded                a spend limit said no (limit, spent, estimate)

    Evaluation (renders judged before a promotion):
    InvalidInputError
    └── EvaluationInputError       a suite, model or base refused before any credit is spent
    ScenarioError
    ├── ProductionClaimError       a dataset has more than one production model (model_ids)
    └── RenderFailed               a render job ended failure or canceled (job_id, reason)

No error ever holds a request header, the API key or the secret: messages are
built from status codes, the API's ``reason`` text, request and trace ids.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AlreadyTrainingError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceeded",
    "ConfigurationError",
    "ConflictError",
    "DatasetPreflightError",
    "DatasetRejected",
    "DuplicateTrainingImageError",
    "EvaluationInputError",
    "InvalidDatasetError",
    "InvalidIdError",
    "InvalidImageError",
    "InvalidInputError",
    "InvalidParametersError",
    "InvalidTrainingTypeError",
    "NotFoundError",
    "PermissionDeniedError",
    "PlanLimitError",
    "ProductionClaimError",
    "RateLimitError",
    "RenderFailed",
    "ScenarioError",
    "ServerError",
    "TrainingCanceled",
    "TrainingError",
    "TrainingFailed",
    "TrainingTimeout",
    "error_for_status",
]


def _rebuild(cls: type[ScenarioError], args: tuple[Any, ...], state: dict[str, Any]) -> ScenarioError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ScenarioError(Exception):
    """Root of every error prefect-scenario raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword fields; rebuild from state so every one pickles
        # without each having to spell out its own __reduce__.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


# -- bad input ---------------------------------------------------------------


class InvalidInputError(ScenarioError, ValueError):
    """The input cannot be trained on; nothing was sent to the API."""


class InvalidTrainingTypeError(InvalidInputError):
    """The training type is not one Scenario can train, or does not fit the data."""


class InvalidParametersError(InvalidInputError):
    """A training parameter is unknown or outside its documented range."""


class InvalidDatasetError(InvalidInputError):
    """The dataset has too few or too many images or pairs, or duplicates."""


class InvalidImageError(InvalidInputError):
    """A training image is unreadable, not an image, of an unsupported format or too large."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source


class InvalidIdError(InvalidInputError):
    """A model, asset, job or endpoint id that does not have its shape; nothing was sent."""


class ConfigurationError(InvalidInputError):
    """Credentials or connection settings are missing or unsafe."""


# -- API errors ----------------------------------------------------------------


class APIError(ScenarioError):
    """The Scenario API answered with an error, or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        path: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        should_retry: bool | None = None,
        trace_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.status_code = status_code
        self.request_id = request_id
        # Real error bodies carry a trace id (`trace_id` / `traceId`): what Scenario's support asks for.
        self.trace_id = trace_id
        # The server's own verdict (`x-should-retry`), which overrides the status code.
        self.should_retry = should_retry

    def __str__(self) -> str:
        where = f"{self.method} {self.path}: " if self.method and self.path else ""
        ids = [f"request id {self.request_id}"] if self.request_id else []
        ids += [f"trace id {self.trace_id}"] if self.trace_id else []
        return f"{where}{self.message}" + (f" ({', '.join(ids)})" if ids else "")


class APIStatusError(APIError):
    """An HTTP error answer. ``body`` is a short, secret-free excerpt of it."""

    def __init__(self, message: str, *, body: str | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.body = body


class BadRequestError(APIStatusError):
    """400/422 (or another 4xx): the API rejected the request's content."""


class DuplicateTrainingImageError(BadRequestError):
    """400: the asset is already a training image of this model (a re-add, never worth repeating)."""


class AuthenticationError(APIStatusError):
    """401: the API key and secret were not accepted."""


class PermissionDeniedError(APIStatusError):
    """403: the credentials may not act on this project or resource."""


class NotFoundError(APIStatusError):
    """404: no such model, asset or job in this project."""


class ConflictError(APIStatusError):
    """409: the resource is in a state that does not allow this call."""


class AlreadyTrainingError(ConflictError):
    """The model is training already: the real API answers 400 ``Model is already training``."""


class RateLimitError(APIStatusError):
    """429: too many requests, or a cooldown between launches.

    ``retry_after`` is the wait the API asked for, in seconds: a cooldown body's
    ``remainingSeconds``, else the ``retry-after-ms`` / ``Retry-After`` header.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.retry_after = retry_after


class PlanLimitError(APIStatusError):
    """429 ``PlanLimitReachedError``: a ceiling of the Scenario plan; an immediate retry repeats it.

    ``action_name`` names the ceiling (``parallel-training``, ``add-training-image``, ...)
    and ``action_limit`` its value.
    """

    def __init__(
        self, message: str, *, action_name: str | None = None, action_limit: int | None = None, **fields: Any
    ) -> None:
        super().__init__(message, **fields)
        self.action_name = action_name
        self.action_limit = action_limit


class ServerError(APIStatusError):
    """5xx: the API failed; usually worth retrying."""


class APIConnectionError(APIError):
    """No answer: the connection failed or was dropped."""


class APITimeoutError(APIConnectionError):
    """No answer within the timeout."""


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: BadRequestError,
    429: RateLimitError,
}


def error_for_status(status_code: int) -> type[APIStatusError]:
    """The error class for an HTTP error status."""
    if status_code >= 500:
        return ServerError
    return _STATUS_ERRORS.get(status_code, APIStatusError)


# -- workflow outcomes -----------------------------------------------------------


class TrainingError(ScenarioError):
    """A training did not end ``trained``."""

    def __init__(self, message: str, *, model_id: str | None = None) -> None:
        super().__init__(message)
        self.model_id = model_id


class TrainingFailed(TrainingError):
    """The training ended ``failed``; ``reason`` is the server's explanation, if any."""

    def __init__(self, message: str, *, model_id: str | None = None, reason: str | None = None) -> None:
        super().__init__(message, model_id=model_id)
        self.reason = reason


class TrainingTimeout(TrainingError):
    """The training did not finish in time; the remote training was cancelled."""

    def __init__(self, message: str, *, model_id: str | None = None, waited_seconds: float = 0.0) -> None:
        super().__init__(message, model_id=model_id)
        self.waited_seconds = waited_seconds


class TrainingCanceled(TrainingError):
    """The training ended ``training-canceled``."""


class DatasetRejected(TrainingError):
    """The training-dataset score was below the required minimum; nothing was spent."""

    def __init__(
        self,
        message: str,
        *,
        model_id: str | None = None,
        score: float | None = None,
        min_score: float | None = None,
    ) -> None:
        super().__init__(message, model_id=model_id)
        self.score = score
        self.min_score = min_score


class DatasetPreflightError(InvalidDatasetError):
    """The local dataset preflight refused the dataset; nothing was sent to the API.

    ``findings`` holds every finding of the report as plain mappings (``severity``,
    ``check``, ``file``, ``message``), so the error pickles and can be shown as a table.
    """

    def __init__(self, message: str, *, findings: tuple[dict[str, str | None], ...] = ()) -> None:
        super().__init__(message)
        self.findings = findings


class BudgetExceeded(TrainingError):
    """A spend limit refused the training before it was triggered; nothing was spent.

    ``limit`` names the limit (``max_creative_units``, ``per_dataset``, ``per_project``,
    ``per_fleet_run``), ``limit_units`` its value, ``spent`` what the ledger held against it
    and ``estimate`` the dry run's estimate; ``outcome`` is ``refused`` (refused outright) or
    ``skipped`` (paused for a decision, then skipped or timed out).
    """

    def __init__(
        self,
        message: str,
        *,
        model_id: str | None = None,
        limit: str | None = None,
        limit_units: float | None = None,
        spent: float = 0.0,
        estimate: float | None = None,
        outcome: str = "refused",
    ) -> None:
        super().__init__(message, model_id=model_id)
        self.limit = limit
        self.limit_units = limit_units
        self.spent = spent
        self.estimate = estimate
        self.outcome = outcome


# -- evaluation ----------------------------------------------------------------


class EvaluationInputError(InvalidInputError):
    """An evaluation was refused before any credit was spent; the message names what to change."""


class ProductionClaimError(ScenarioError):
    """A dataset has more than one production model; ``model_ids`` lists the claimants."""

    def __init__(self, message: str, *, model_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.model_ids = model_ids


class RenderFailed(ScenarioError):
    """A render job ended ``failure`` or ``canceled``; ``reason`` is the job's error and hint."""

    def __init__(self, message: str, *, job_id: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.reason = reason
