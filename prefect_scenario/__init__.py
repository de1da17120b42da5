"""prefect-scenario: Prefect 3 tasks, flows and an S3 sensor for Scenario's LoRA training API.

Example:
    ```python
    from prefect_scenario import ScenarioCredentials, train_lora

    train_lora(
        name="hero-character",
        training_type="flux.2-dev-lora",
        images=["hero-01.png", "hero-02.png", "hero-03.png", "hero-04.png", "hero-05.png"],
        credentials=ScenarioCredentials.load("BLOCK_NAME"),
    )
    ```
"""

from __future__ import annotations

from prefect_scenario.api.client import ScenarioClient
from prefect_scenario.catalog import TRAINING_TYPES, TrainingParameters, TrainingType, get_training_type
from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    DatasetRejected,
    InvalidDatasetError,
    InvalidImageError,
    InvalidInputError,
    InvalidParametersError,
    InvalidTrainingTypeError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ScenarioError,
    ServerError,
    TrainingCanceled,
    TrainingError,
    TrainingFailed,
    TrainingTimeout,
)
from prefect_scenario.training.flows import TrainingResult, train_edit_lora, train_lora
from prefect_scenario.training.tasks import (
    cancel_training,
    check_dataset_score,
    create_model,
    get_model,
    set_training_pairs,
    trigger_training,
    upload_training_images,
    wait_for_training,
)

__version__ = "0.1.0"

__all__ = [
    "TRAINING_TYPES",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "DatasetRejected",
    "InvalidDatasetError",
    "InvalidImageError",
    "InvalidInputError",
    "InvalidParametersError",
    "InvalidTrainingTypeError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ScenarioClient",
    "ScenarioCredentials",
    "ScenarioError",
    "ServerError",
    "TrainingCanceled",
    "TrainingError",
    "TrainingFailed",
    "TrainingParameters",
    "TrainingResult",
    "TrainingTimeout",
    "TrainingType",
    "cancel_training",
    "check_dataset_score",
    "create_model",
    "get_model",
    "get_training_type",
    "set_training_pairs",
    "train_edit_lora",
    "train_lora",
    "trigger_training",
    "upload_training_images",
    "wait_for_training",
]
