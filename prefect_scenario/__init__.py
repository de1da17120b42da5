"""prefect-scenario: Prefect 3 flows, tasks, blocks and an S3 sensor for Scenario's LoRA training API.

Example:
    ```python
    from prefect_scenario import ScenarioCredentials, train_lora

    result = train_lora(
        name="hero-character",
        training_type="flux.2-dev-lora",
        images=["hero-01.png", "hero-02.png", "hero-03.png", "hero-04.png", "hero-05.png"],
        credentials=ScenarioCredentials.load("BLOCK_NAME"),
    )
    print(result.model_id, result.status)
    ```
"""

from __future__ import annotations

from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.evaluation import (
    EvaluationOptions,
    EvaluationResult,
    EvaluationSuite,
    ScenarioLoRA,
    evaluate_and_promote,
    render_scenario_lora,
)
from prefect_scenario.exceptions import APIError, BudgetExceeded, InvalidInputError, ScenarioError, TrainingError
from prefect_scenario.retraining.flows import retrain_changed_datasets, retrain_from_s3, s3_curated_images_sensor
from prefect_scenario.spend.block import ScenarioBudget
from prefect_scenario.training.fleet import TrainingJob, train_lora_fleet
from prefect_scenario.training.flows import train_edit_lora, train_lora
from prefect_scenario.training.job_block import ScenarioTraining, ScenarioTrainingRun
from prefect_scenario.training.pipeline import TrainingResult
from prefect_scenario.training.tasks import (
    add_scenario_training_images,
    cancel_scenario_training,
    check_scenario_dataset_score,
    create_scenario_model,
    get_scenario_model,
    set_scenario_training_pairs,
    trigger_scenario_training,
)
from prefect_scenario.waiting.polling import PollPolicy
from prefect_scenario.waiting.wait import wait_for_scenario_training, wait_for_scenario_trainings
from prefect_scenario.webhooks.block import ScenarioWebhook

__version__ = "0.2.0"

__all__ = [
    "APIError",
    "BudgetExceeded",
    "EvaluationOptions",
    "EvaluationResult",
    "EvaluationSuite",
    "InvalidInputError",
    "PollPolicy",
    "ScenarioBudget",
    "ScenarioCredentials",
    "ScenarioError",
    "ScenarioLoRA",
    "ScenarioTraining",
    "ScenarioTrainingRun",
    "ScenarioWebhook",
    "TrainingError",
    "TrainingJob",
    "TrainingResult",
    "add_scenario_training_images",
    "cancel_scenario_training",
    "check_scenario_dataset_score",
    "create_scenario_model",
    "evaluate_and_promote",
    "get_scenario_model",
    "render_scenario_lora",
    "retrain_changed_datasets",
    "retrain_from_s3",
    "s3_curated_images_sensor",
    "set_scenario_training_pairs",
    "train_edit_lora",
    "train_lora",
    "train_lora_fleet",
    "trigger_scenario_training",
    "wait_for_scenario_training",
    "wait_for_scenario_trainings",
]
