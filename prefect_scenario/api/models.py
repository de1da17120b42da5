"""Wire models: what the Scenario API sends back, as tolerant pydantic models.

Every model accepts unknown fields and missing optional ones (live list rows carry
``"trainingProgress": {}`` and ``"parameters": {}``: Scenario's blender-plugin
captures), and both spellings in use: the product doc's ``draft`` status reads as
the SDK's ``new``, ``job.id`` as ``job.jobId``, and
``creativeUnits.estimatedCreativeUnits`` as ``creativeUnitsCost``.

Example:
    >>> Model.model_validate({"id": "model_1", "status": "draft", "type": "flux.2-dev-lora"}).status
    'new'
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = [
    "TERMINAL_STATUSES",
    "Asset",
    "BaseModelRecord",
    "Collection",
    "CostEstimate",
    "DatasetScore",
    "Epoch",
    "EpochAsset",
    "Job",
    "Model",
    "ModelInput",
    "ModelPage",
    "PairsResult",
    "QualityGateResult",
    "RenderAsset",
    "RenderResult",
    "TagsUpdate",
    "TrainResult",
    "TrainingImage",
    "TrainingPair",
    "TrainingProgress",
    "WebhookEndpoint",
    "redact_url",
]

# `training-canceled` is terminal too: the seed's loop (trained/failed only) would never stop on it.
TERMINAL_STATUSES = frozenset({"trained", "failed", "training-canceled"})


class WireModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _NoStraySecrets(WireModel):
    """A wire model whose unknown fields are kept, except one that names a secret."""

    @model_validator(mode="before")
    @classmethod
    def _no_stray_secrets(cls, data: Any) -> Any:
        # Unknown fields are kept (and shown in the repr): a secret under another name must not be.
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k == "secret" or "secret" not in str(k).lower()}
        return data


class TrainingProgress(WireModel):
    """``model.trainingProgress``: the stage, queue position and progress of a training."""

    stage: str | None = None
    position: float | None = None
    progress: float | None = None
    remaining_time_ms: float | None = Field(None, alias="remainingTimeMs")
    started_at: float | None = Field(None, alias="startedAt")
    updated_at: float | None = Field(None, alias="updatedAt")


class TrainingImage(_NoStraySecrets):
    """A training image of a model; ``id`` is its asset id."""

    id: str
    name: str | None = None
    download_url: str | None = Field(None, alias="downloadUrl")
    created_at: str | None = Field(None, alias="createdAt")

    # The caption training reads: the asset's description (Scenario's skills, dataset-curation.md).
    description: str | None = None


class TrainingPair(WireModel):
    """A before/after pair of an edit model."""

    source_id: str | None = Field(None, alias="sourceId")
    target_id: str | None = Field(None, alias="targetId")
    instruction: str | None = None


class EpochAsset(WireModel):
    asset_id: str | None = Field(None, alias="assetId")
    url: str | None = None


class Epoch(WireModel):
    """One epoch of a trained model, with its sample images when sample prompts were given."""

    epoch: str
    assets: list[EpochAsset] = Field(default_factory=list)


class Model(_NoStraySecrets):
    """A Scenario model (the LoRA being trained)."""

    id: str
    name: str | None = None
    type: str | None = None
    status: str = "new"
    tags: list[str] = Field(default_factory=list)
    training_images_number: int = Field(0, alias="trainingImagesNumber")
    training_images: list[TrainingImage] = Field(default_factory=list, alias="trainingImages")
    training_image_pairs: list[TrainingPair] = Field(default_factory=list, alias="trainingImagePairs")
    training_progress: TrainingProgress | None = Field(None, alias="trainingProgress")
    training_stats: dict[str, Any] | None = Field(None, alias="trainingStats")
    parameters: dict[str, Any] | None = None
    epochs: list[Epoch] = Field(default_factory=list)
    job_id: str | None = Field(None, alias="jobId")
    compliant_model_ids: list[str] = Field(default_factory=list, alias="compliantModelIds")
    collection_ids: list[str] = Field(default_factory=list, alias="collectionIds")
    created_at: str | None = Field(None, alias="createdAt")

    updated_at: str | None = Field(None, alias="updatedAt")

    @field_validator("status", mode="before")
    @classmethod
    def _draft_is_new(cls, value: Any) -> Any:
        # The product doc says "draft" where the SDK says "new": one pre-training state.
        return "new" if value == "draft" else value

    @field_validator("training_images_number", mode="before")
    @classmethod
    def _whole(cls, value: Any) -> Any:
        return int(value) if isinstance(value, float) else value

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def failure_reason(self) -> str | None:
        """The server's reason for a failed training, where it gives one (not stated by the API)."""
        extra = self.model_extra or {}
        for key in ("trainingError", "error", "failureReason"):
            if isinstance(extra.get(key), str):
                return str(extra[key])
        return None


class ModelPage(WireModel):
    models: list[Model] = Field(default_factory=list)
    next_pagination_token: str | None = Field(None, alias="nextPaginationToken")


class Job(WireModel):
    """A job; the SDK says ``jobId``/``jobType``, the product doc ``id``/``type``."""

    job_id: str = Field(validation_alias=AliasChoices("jobId", "id"))
    job_type: str | None = Field(None, validation_alias=AliasChoices("jobType", "type"))
    status: str | None = None
    progress: float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    billing: dict[str, Any] | None = None

    @property
    def error(self) -> str | None:
        value = self.metadata.get("error")
        return value if isinstance(value, str) else None

    @property
    def creative_units_cost(self) -> float | None:
        """What the job was billed (``billing.cuCost``), when the answer says.

        Example:
            >>> Job.model_validate({"jobId": "job_1", "billing": {"cuCost": 104, "cuDiscount": 0}}).creative_units_cost
            104.0
        """
        cost = (self.billing or {}).get("cuCost")
        return float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None


class CostEstimate(WireModel):
    """Creative units: the answer to a dry run (HTTP 269), and the cost part of a trigger's answer.

    Both shapes are read: the SDK's ``creativeUnitsCost`` (a live dry run answers only
    the cost fields: Scenario's blender-plugin captures) and the product doc's
    ``creativeUnits.estimatedCreativeUnits``.

    Example:
        >>> CostEstimate.model_validate({"creativeUnits": {"estimatedCreativeUnits": 150}}).creative_units_cost
        150.0
    """

    creative_units_cost: float | None = Field(None, alias="creativeUnitsCost")
    creative_units_discount: float | None = Field(None, alias="creativeUnitsDiscount")
    cost_details: dict[str, Any] | None = Field(None, alias="costDetails")

    @model_validator(mode="before")
    @classmethod
    def _seed_cost_shape(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("creativeUnitsCost") is None:
            units = data.get("creativeUnits")
            if isinstance(units, dict) and units.get("estimatedCreativeUnits") is not None:
                data = {**data, "creativeUnitsCost": units["estimatedCreativeUnits"]}
        return data


class TrainResult(CostEstimate):
    """The answer to a train trigger: the model, its job, and what it cost."""

    model: Model | None = None
    job: Job | None = None

    @property
    def job_id(self) -> str | None:
        return self.job.job_id if self.job else (self.model.job_id if self.model else None)


class Asset(WireModel):
    """An uploaded asset (an image)."""

    id: str
    url: str | None = None
    mime_type: str | None = Field(None, alias="mimeType")
    status: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class PairsResult(WireModel):
    count: int
    pairs: list[TrainingPair] = Field(default_factory=list)


class TagsUpdate(WireModel):
    added: list[str] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)


class AssetWarning(WireModel):
    asset_id: str | None = Field(None, alias="assetId")
    message: list[str] = Field(default_factory=list)


class CoupleWarning(WireModel):
    couple: list[str] = Field(default_factory=list)
    message: list[str] = Field(default_factory=list)


class DatasetScore(WireModel):
    """``GET /models/{id}/scores/training-dataset``: a 0..1 score and its warnings."""

    model_id: str | None = Field(None, alias="modelId")
    score: float
    status: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    assets_warnings: list[AssetWarning] = Field(default_factory=list, alias="assetsWarnings")
    asset_couples_warnings: list[CoupleWarning] = Field(default_factory=list, alias="assetCouplesWarnings")


def redact_url(url: str) -> str:
    """``url`` with its last path segment masked: a receiver's URL ends in its secret path token.

    Example:
        >>> redact_url("https://hooks.example.com/scenario/Zx81kq")
        'https://hooks.example.com/scenario/**********'
    """
    head, sep, _ = url.rstrip("/").rpartition("/")
    return f"{head}/**********" if sep and "://" in head else "**********"


class WebhookEndpoint(_NoStraySecrets):
    """A project webhook endpoint (SDK ``projects.webhook_endpoints``; Scenario's shape is not stated).

    ``secret`` ("used to generate webhook signatures") comes in the creation answer only,
    and is a ``SecretStr``. ``url`` is left out of the repr: a receiver's URL ends in its
    secret path token (see :func:`redact_url`).

    Example:
        >>> endpoint = WebhookEndpoint.model_validate({"id": "we_1", "url": "https://h.example/t0k3n",
        ...     "enabledEvents": ["*"], "secret": "whsec_x"})
        >>> endpoint.secret, "t0k3n" in repr(endpoint)
        (SecretStr('**********'), False)
    """

    id: str = Field(validation_alias=AliasChoices("id", "endpointId", "webhookEndpointId"))
    url: str = Field(repr=False)
    enabled_events: list[str] = Field(default_factory=list, alias="enabledEvents")
    description: str | None = None
    secret: SecretStr | None = None
    status: str | None = None
    created_at: str | None = Field(None, alias="createdAt")


# -- rendering with a trained LoRA (SDK ``generate.run_model``, ``assets``, ``collections``) --------


class ModelInput(WireModel):
    """One input of a base model's schema (SDK ``ModelInput``): its name, type and limits.

    ``max_length`` bounds characters for a string and the number of items for an array.
    """

    name: str
    type: str | None = None
    required: dict[str, Any] | None = None
    default: Any = None
    min: float | None = None
    max: float | None = None
    max_length: int | None = Field(None, alias="maxLength")
    model_types: list[str] = Field(default_factory=list, alias="modelTypes")
    cost_impact: bool = Field(False, alias="costImpact")


class BaseModelRecord(Model):
    """A runnable (``custom``) model's detail record: its inputs and ``uiConfig``."""

    inputs: list[ModelInput] = Field(default_factory=list)
    ui_config: dict[str, Any] = Field(default_factory=dict, alias="uiConfig")

    def input(self, name: str) -> ModelInput | None:
        """The input called ``name``, if the schema has one."""
        return next((i for i in self.inputs if i.name == name), None)


class RenderResult(CostEstimate):
    """The answer to ``POST /generate/custom/{modelId}``: the job (none on a dry run) and the cost."""

    job: Job | None = None


class RenderAsset(WireModel):
    """A render's output: ``outputIndex`` orders a job's outputs; ``qualityGate`` once scored."""

    id: str
    url: str | None = None
    status: str | None = None
    output_index: int | None = Field(None, alias="outputIndex")
    metadata: dict[str, Any] = Field(default_factory=dict)
    quality_gate: dict[str, Any] | None = Field(None, alias="qualityGate")


class QualityGateResult(WireModel):
    """``POST /generate/quality-gate``: a 0-100 score, a verdict and the reasons."""

    overall_score: float = Field(alias="overallScore")
    verdict: str | None = None
    ai_quality: dict[str, Any] = Field(default_factory=dict, alias="aiQuality")
    brief_compliance: dict[str, Any] | None = Field(None, alias="briefCompliance")


class Collection(WireModel):
    """A collection of models."""

    id: str
    name: str | None = None
    model_count: int | None = Field(None, alias="modelCount")
