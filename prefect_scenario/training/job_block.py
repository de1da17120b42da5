"""A training saved as a block: Prefect's ``JobBlock`` for Scenario, as prefect-dbt's ``DbtCloudJob``.

:class:`ScenarioTraining` holds what defines a training (credentials, name, type, images,
parameters). :meth:`ScenarioTraining.trigger` checks, uploads and starts it, and returns
a :class:`ScenarioTrainingRun` whose :meth:`~ScenarioTrainingRun.wait_for_completion`
waits for the end and :meth:`~ScenarioTrainingRun.fetch_result` returns the
:class:`~prefect_scenario.training.pipeline.TrainingResult`. Like the flows, each method
returns its result from sync code and can be awaited from async code. Triggering the
same block twice continues the same model (the idempotency key comes from its dataset).

Example:
    >>> training = ScenarioTraining(credentials=credentials, name="hero", training_type="flux.2-dev-lora",
    ...                             images=hero_image_paths)
    >>> run = training.trigger()
    >>> run.wait_for_completion()
    >>> run.fetch_result().status
    'trained'
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.blocks.abstract import JobBlock, JobRun
from prefect_aws import AwsCredentials
from pydantic import ConfigDict, Field

from prefect_scenario._titles import field_title
from prefect_scenario.api.models import Model
from prefect_scenario.catalog import TrainingParameters
from prefect_scenario.credentials import DOCUMENTATION_URL, LOGO_URL, ScenarioCredentials, resolve_credentials
from prefect_scenario.evaluation.options import EvaluationOptions
from prefect_scenario.exceptions import TrainingError
from prefect_scenario.spend.block import ScenarioBudget
from prefect_scenario.training.judging import judge_training
from prefect_scenario.training.options import TrainingOptions, build_options, option_field
from prefect_scenario.training.pipeline import TrainingRequest, TrainingResult, run_training
from prefect_scenario.waiting.polling import DEFAULT_POLICY, PollPolicy
from prefect_scenario.waiting.wait import finish, wait_until_terminal

__all__ = ["BLOCK_OPTIONS", "ScenarioTraining", "ScenarioTrainingRun"]

# The options a saved training carries (the job run does its own waiting).
BLOCK_OPTIONS = frozenset(TrainingOptions.model_fields) - {"wait", "poll_policy"}


class ScenarioTrainingRun(JobRun[TrainingResult]):
    """A started Scenario training: wait for it, then fetch its result.

    Args:
        started: what the trigger returned (the model, its run key, the cost).
        credentials: the credentials that started it.
        timeout_seconds: how long :meth:`wait_for_completion` waits (then cancels it).
        poll_policy: the wait loop's poll delay bounds.
        judge: with ``promote``, what judges the trained LoRA (once, in :meth:`fetch_result`).
    """

    def __init__(
        self,
        started: TrainingResult,
        credentials: ScenarioCredentials,
        timeout_seconds: float,
        poll_policy: PollPolicy = DEFAULT_POLICY,
        judge: Callable[[TrainingResult], Awaitable[TrainingResult]] | None = None,
    ) -> None:
        self.started = started
        self.judge = judge
        self._result: TrainingResult | None = None
        self.credentials = credentials
        self.timeout_seconds = timeout_seconds
        self.poll_policy = poll_policy
        self.model: Model | None = None

    async def await_for_completion(self) -> None:
        """Wait for the training to end (the async twin of :meth:`wait_for_completion`).

        Raises:
            TrainingFailed: it ended ``failed``; TrainingCanceled: ``training-canceled``;
            TrainingTimeout: it did not end in ``timeout_seconds`` (it was cancelled).
        """
        async with self.credentials.get_client() as client:
            model = await wait_until_terminal(
                client, self.started.model_id, timeout_seconds=self.timeout_seconds, policy=self.poll_policy
            )
            self.model = await finish(client, model)
        self.logger.info("model %s is %s", self.model.id, self.model.status)

    @async_dispatch(await_for_completion)
    def wait_for_completion(self) -> None:  # type: ignore[override]
        """Wait for the training to end: returns from sync code, awaitable from async code."""
        from prefect.utilities.asyncutils import run_coro_as_sync

        run_coro_as_sync(self.await_for_completion())

    async def afetch_result(self) -> TrainingResult:
        """The result of the ended training (the async twin of :meth:`fetch_result`).

        Raises:
            TrainingError: the training has not ended yet (call ``wait_for_completion`` first).
        """
        if self._result is None:
            if self.model is None and self.started.status != "trained":
                raise TrainingError("the training has not ended: call wait_for_completion() first", model_id=None)
            ended = self.started if self.model is None else self.started.with_model(self.model)
            self._result = await self.judge(ended) if self.judge else ended
        return self._result

    @async_dispatch(afetch_result)
    def fetch_result(self) -> TrainingResult:  # type: ignore[override]
        """The result of the ended training: returns from sync code, awaitable from async code."""
        from prefect.utilities.asyncutils import run_coro_as_sync

        return run_coro_as_sync(self.afetch_result())


# Prefect's server registers every Block class the client knows, and pydantic makes
# `JobBlock[TrainingResult]` a class of its own: subclassing it put a "JobBlock[TrainingResult]"
# card in the Blocks catalog. The type checker sees the parameter; the runtime base is plain.
if TYPE_CHECKING:
    _TrainingJobBlock = JobBlock[TrainingResult]
else:
    _TrainingJobBlock = JobBlock


class ScenarioTraining(_TrainingJobBlock):
    """A Scenario LoRA training saved as a block, to run from any flow or from the UI.

    Example:
        Load a saved training and run it:
        ```python
        from prefect_scenario import ScenarioTraining

        training = ScenarioTraining.load("BLOCK_NAME")
        run = training.trigger()
        run.wait_for_completion()
        print(run.fetch_result().model_id)
        ```
    """

    _block_type_name = "Scenario Training"
    _block_type_slug = "scenario-training"
    _logo_url = LOGO_URL  # type: ignore[assignment]
    _documentation_url = DOCUMENTATION_URL  # type: ignore[assignment]
    _description = "A LoRA training on Scenario: model name, type, images and parameters, run as a job."
    model_config = ConfigDict(field_title_generator=field_title)

    credentials: ScenarioCredentials = Field(description="The Scenario credentials block to train with.")
    name: str = Field(description="The model name.")
    training_type: str = Field(description="The LoRA training type, e.g. flux.2-dev-lora.")
    images: list[str] = Field(description="Training images: local paths, s3:// URIs or asset ids.")
    # The options a saved training carries: TrainingOptions' fields (a test holds them equal), less
    # the wait (the job run waits, ``wait_for_completion``) and the poll policy.
    # A model, not a dict: its secrets (wandbKey) are SecretStr, so Prefect stores and serves them masked.
    parameters: TrainingParameters | None = option_field("parameters")
    captions: dict[str, str] | None = option_field("captions")
    caption_prefix: str | None = option_field("caption_prefix")
    strict_preflight: bool = option_field("strict_preflight")
    min_dataset_score: float | None = option_field("min_dataset_score")
    upload_concurrency: int = option_field("upload_concurrency")
    timeout_seconds: float = option_field("timeout_seconds")
    idempotency_key: str | None = option_field("idempotency_key")
    force: bool = option_field("force")
    max_creative_units: float | None = option_field("max_creative_units")
    budget: ScenarioBudget | None = option_field("budget")
    dataset: str | None = option_field("dataset")
    promote: bool | EvaluationOptions = option_field("promote")
    aws_credentials: AwsCredentials | None = Field(
        default=None, description="A prefect-aws AwsCredentials block, for s3:// images."
    )

    async def atrigger(self) -> ScenarioTrainingRun:
        """Check, upload and start the training (the async twin of :meth:`trigger`).

        Raises:
            InvalidInputError: bad input, before any request.
        """
        credentials = await resolve_credentials(self.credentials)
        # The trigger returns once the training started; with promote, fetch_result judges it.
        values = {name: getattr(self, name) for name in BLOCK_OPTIONS - {"promote"}}
        options = build_options(**values, wait=False)
        request = TrainingRequest(
            self.name,
            self.training_type,
            options,
            credentials=credentials,
            images=list(self.images),
            aws_credentials=self.aws_credentials,
        )
        started = await run_training(request)
        self.logger.info("training of %s started (model %s)", self.name, started.model_id)
        judge = functools.partial(
            judge_training,
            credentials,
            promote=self.promote,
            dataset=self.dataset or self.name,
            caption_prefix=self.caption_prefix,
            budget=self.budget,
        )
        return ScenarioTrainingRun(started, credentials, self.timeout_seconds, judge=judge if self.promote else None)

    @async_dispatch(atrigger)
    def trigger(self) -> ScenarioTrainingRun:  # type: ignore[override]
        """Check, upload and start the training: returns from sync code, awaitable from async code."""
        from prefect.utilities.asyncutils import run_coro_as_sync

        return run_coro_as_sync(self.atrigger())
