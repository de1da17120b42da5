from __future__ import annotations

import pickle

import pytest

from prefect_scenario import exceptions as exc
from prefect_scenario.catalog import (
    TRAINING_TYPES,
    TrainingParameters,
    check_dataset_size,
    get_training_type,
    validate_parameters,
)


def test_every_reference_type_is_listed_once() -> None:
    expected = {
        "flux.2-dev-lora", "flux.2-dev-edit-lora",
        "flux.2-klein-4b-lora", "flux.2-klein-9b-lora", "flux.2-klein-4b-edit-lora", "flux.2-klein-9b-edit-lora",
        "flux.2-klein-base-4b-lora", "flux.2-klein-base-9b-lora",
        "flux.2-klein-base-4b-edit-lora", "flux.2-klein-base-9b-edit-lora",
        "qwen-image-lora", "qwen-image-2512-lora",
        "qwen-image-edit-lora", "qwen-image-edit-2509-lora", "qwen-image-edit-2511-lora",
        "zimage-lora", "zimage-turbo-lora", "zimage-de-turbo-lora",
        "flux.1-lora", "flux.1-kontext-lora", "flux.1-krea-lora",
    }  # fmt: skip
    assert set(TRAINING_TYPES) == expected


@pytest.mark.parametrize("type_id", sorted(TRAINING_TYPES))
def test_edit_types_are_the_edit_variants(type_id: str) -> None:
    # The doc says "ending in -edit-lora", but its own table lists qwen-image-edit-2509-lora.
    assert get_training_type(type_id).edit is ("-edit-" in type_id)


@pytest.mark.parametrize("type_id", sorted(TRAINING_TYPES))
def test_a_lora_works_with_one_family_only(type_id: str) -> None:
    ttype = get_training_type(type_id)
    if ttype.family == "Z-Image":
        assert ttype.compatible_inference_models == ("Z-Image", "Z-Image Turbo")
    else:
        assert len(ttype.compatible_inference_models) == 1


@pytest.mark.parametrize(
    ("type_id", "steps"),
    [("flux.2-dev-lora", 28), ("flux.2-klein-4b-lora", 4), ("flux.2-klein-base-9b-lora", 28), ("zimage-turbo-lora", 9)],
)
def test_default_inference_steps_from_the_doc(type_id: str, steps: int) -> None:
    assert get_training_type(type_id).default_inference_steps == steps


def test_unknown_type_names_the_value_and_the_choices() -> None:
    with pytest.raises(exc.InvalidTrainingTypeError, match=r"'flux.3-lora'.*flux.2-dev-lora"):
        get_training_type("flux.3-lora")


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        pytest.param({"rank": 1}, "rank", id="rank-1"),
        pytest.param({"rank": 300}, "rank", id="rank-300"),
        pytest.param({"rank": 16.5}, "rank", id="rank-fractional"),
        pytest.param({"learningRate": 0.1}, "learningRate", id="lr-0.1"),
        pytest.param({"learningRate": 0.000001}, "learningRate", id="lr-too-small"),
        pytest.param({"samplePrompts": ["a"] * 5}, "samplePrompts", id="5-prompts"),
        pytest.param({"batchSize": 9}, "batchSize", id="batch-9"),
        pytest.param({"nbEpochs": 0}, "nbEpochs", id="epochs-0"),
        pytest.param({"nbRepeats": 101}, "nbRepeats", id="repeats-101"),
        pytest.param({"learningrate": 1e-4}, "unknown parameter 'learningrate'", id="typo"),
        pytest.param({"optimizeFor": "speed"}, "optimizeFor", id="optimize-for"),
        pytest.param({"wandbKey": "x" * 41}, "wandbKey", id="wandb-too-long"),
    ],
)
def test_bad_parameters_name_the_problem(params: dict[str, object], needle: str) -> None:
    with pytest.raises(exc.InvalidParametersError, match=needle):
        validate_parameters("flux.2-dev-lora", params)


def test_rank_limit_is_the_union_of_the_documented_ones() -> None:
    assert validate_parameters("qwen-image-lora", {"rank": 128}).rank == 128
    assert validate_parameters("flux.2-dev-lora", {"rank": 2.0}).rank == 2


def test_sample_source_images_only_on_edit_types_and_same_length() -> None:
    with pytest.raises(exc.InvalidParametersError, match="edit training types only"):
        validate_parameters("flux.2-dev-lora", {"samplePrompts": ["a"], "sampleSourceImages": ["asset_1"]})
    with pytest.raises(exc.InvalidParametersError, match="same length"):
        validate_parameters("qwen-image-edit-2511-lora", {"samplePrompts": ["a", "b"], "sampleSourceImages": ["x"]})
    ok = validate_parameters("qwen-image-edit-2511-lora", {"samplePrompts": ["a"], "sampleSourceImages": ["x"]})
    assert ok.to_wire() == {"samplePrompts": ["a"], "sampleSourceImages": ["x"]}


def test_wire_names_and_snake_case_are_both_accepted() -> None:
    params = TrainingParameters(learning_rate=1e-4, nbEpochs=3)
    assert params.to_wire() == {"learningRate": 1e-4, "nbEpochs": 3}


def test_wandb_key_is_masked_except_on_the_wire() -> None:
    params = TrainingParameters(wandbKey="wandb-secret-123")
    assert "wandb-secret-123" not in repr(params)
    assert "wandb-secret-123" not in params.model_dump_json()
    assert params.to_wire()["wandbKey"] == "wandb-secret-123"


@pytest.mark.parametrize(
    ("type_id", "images", "pairs", "error"),
    [
        pytest.param("flux.2-dev-lora", 0, 0, "at least 1", id="0-images"),
        pytest.param("flux.2-dev-lora", 51, 0, "at most 50", id="51-images"),
        pytest.param("flux.2-dev-lora", 0, 3, "standard type", id="pairs-for-standard"),
        pytest.param("qwen-image-edit-2511-lora", 0, 1, "at least 2 pairs", id="1-pair"),
        pytest.param("qwen-image-edit-2511-lora", 5, 0, "edit type", id="images-for-edit"),
    ],
)
def test_bad_dataset_sizes(type_id: str, images: int, pairs: int, error: str) -> None:
    with pytest.raises(exc.InvalidDatasetError, match=error):
        check_dataset_size(type_id, images=images, pairs=pairs)


def test_dataset_size_warnings_outside_the_recommended_range() -> None:
    assert check_dataset_size("flux.2-dev-lora", images=10) == []
    assert "recommended" in check_dataset_size("flux.2-dev-lora", images=3)[0]
    assert "recommended" in check_dataset_size("flux.2-dev-lora", images=50)[0]
    assert check_dataset_size("qwen-image-edit-2511-lora", pairs=2) == []


@pytest.mark.parametrize(
    "error",
    [
        exc.RateLimitError("slow down", method="POST", path="/models", status_code=429, request_id="r1", retry_after=2),
        exc.TrainingFailed("failed", model_id="model_1", reason="out of memory"),
        exc.InvalidImageError("not an image", source="a.txt"),
        exc.APITimeoutError("timed out", method="GET", path="/models/x"),
        exc.DatasetRejected("low", model_id="m", score=0.2, min_score=0.5),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_pickle_with_their_fields(error: exc.ScenarioError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert copy.__dict__ == error.__dict__
    assert str(copy) == str(error)


def test_status_mapping() -> None:
    assert exc.error_for_status(401) is exc.AuthenticationError
    assert exc.error_for_status(422) is exc.BadRequestError
    assert exc.error_for_status(503) is exc.ServerError
    assert exc.error_for_status(418) is exc.APIStatusError
