"""A training's options are stated once: every surface that takes them agrees with TrainingOptions."""

from __future__ import annotations

import argparse
import inspect
import math
from typing import Any

import pytest
from prefect.exceptions import ParameterBindError
from prefect.utilities.callables import parameter_schema
from pydantic import TypeAdapter

from prefect_scenario import ScenarioTraining, TrainingJob, retrain_from_s3, train_edit_lora, train_lora
from prefect_scenario.exceptions import ConfigurationError
from prefect_scenario.training.commands import add_training_arguments
from prefect_scenario.training.job_block import BLOCK_OPTIONS
from prefect_scenario.training.options import JOB_FIELDS, RUN_FIELDS, TrainingOptions, build_options

OPTIONS = TrainingOptions.model_fields
# What a training flow takes besides its options: what to train, and with which credentials.
NOT_OPTIONS = {"name", "training_type", "images", "pairs", "credentials", "aws_credentials"}


def _defaults(fn: Any) -> dict[str, Any]:
    return {n: p.default for n, p in inspect.signature(fn.fn).parameters.items() if n not in NOT_OPTIONS}


@pytest.mark.parametrize(
    ("flow", "left_out"),
    [(train_lora, set()), (train_edit_lora, {"captions", "caption_prefix"})],
    ids=["train_lora", "train_edit_lora"],
)
def test_a_training_flow_takes_every_option_with_its_default(flow: Any, left_out: set[str]) -> None:
    defaults = _defaults(flow)
    assert set(defaults) == set(OPTIONS) - left_out
    assert {n: d for n, d in defaults.items()} == {n: OPTIONS[n].default for n in defaults}


@pytest.mark.parametrize("flow", [train_lora, train_edit_lora], ids=["train_lora", "train_edit_lora"])
def test_prefect_shows_each_option_in_the_form_with_the_models_type_default_and_description(flow: Any) -> None:
    schema = parameter_schema(flow.fn)
    for name in _defaults(flow):
        shown = schema.properties[name]
        assert shown["description"] == OPTIONS[name].description
        assert shown.get("default") == TypeAdapter(OPTIONS[name].annotation).dump_python(
            OPTIONS[name].default, mode="json"
        )
    assert schema.properties["wait"]["anyOf"][0]["enum"] == ["poll", "suspend"]
    assert set(schema.required or []) == {"name", "training_type", "images" if flow is train_lora else "pairs"}


def test_an_option_a_flow_does_not_take_is_refused_by_prefect_before_the_body_runs() -> None:
    # train_edit_lora has no captions (edit pairs carry an instruction each): Prefect's own
    # binding refuses it, as it refused an explicit signature's unknown keyword.
    with pytest.raises(ParameterBindError, match="captions"):
        train_edit_lora(name="n", training_type="qwen-image-edit-2511-lora", pairs=[], captions={})


@pytest.mark.parametrize("flow", [train_lora, train_edit_lora], ids=["train_lora", "train_edit_lora"])
def test_a_training_flow_documents_each_option_as_the_model_does(flow: Any) -> None:
    doc = flow.fn.__doc__ or ""
    assert "{options}" not in doc
    for name in _defaults(flow):
        assert f"{name}: {OPTIONS[name].description}" in doc


def test_a_fleet_job_takes_the_per_job_options() -> None:
    fields = TrainingJob.model_fields
    assert set(fields) - {"name", "training_type", "images"} == JOB_FIELDS
    for name in JOB_FIELDS:
        assert fields[name].default == OPTIONS[name].default, name
        assert fields[name].description == OPTIONS[name].description, name
    # The fleet sets the others once for all its jobs.
    fleet = set(inspect.signature(TrainingJob.options).parameters)
    assert RUN_FIELDS.isdisjoint(fields)
    assert fleet == {"self", "run"}


def test_the_job_block_carries_every_option_but_the_wait() -> None:
    fields = ScenarioTraining.model_fields
    assert BLOCK_OPTIONS == set(OPTIONS) - {"wait", "poll_policy"}
    for name in BLOCK_OPTIONS:
        assert name in fields, name
        assert fields[name].default == OPTIONS[name].default, name
        assert fields[name].description == OPTIONS[name].description, name


def test_retrain_from_s3_shares_the_options_it_takes() -> None:
    params = inspect.signature(retrain_from_s3.fn).parameters
    shared = set(params) & set(OPTIONS)
    assert shared >= {"wait", "timeout_seconds", "upload_concurrency", "force", "poll_policy", "budget"}
    for name in shared:
        assert params[name].default == OPTIONS[name].default, name


def test_the_cli_options_are_training_options() -> None:
    parser = argparse.ArgumentParser()
    add_training_arguments(parser)
    # The CLI's spellings of an option, where they differ from the field's name.
    spelled = {"timeout": "timeout_seconds", "no_wait": "wait"}
    own = {"training_type", "name", "param", "params_file"}  # parameters come from --param and --params-file
    dests = {a.dest for a in parser._actions if a.dest != "help"}
    assert {spelled.get(d, d) for d in dests - own} <= set(OPTIONS)
    assert parser.get_default("timeout") == OPTIONS["timeout_seconds"].default


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"timeout_seconds": math.nan}, "timeout_seconds must be a finite number, got nan"),
        ({"timeout_seconds": math.inf}, "timeout_seconds must be a finite number, got inf"),
        ({"timeout_seconds": 0}, "timeout_seconds must be above 0 seconds, got 0"),
        ({"min_dataset_score": math.nan}, "min_dataset_score must be a finite number, got nan"),
        ({"upload_concurrency": 0}, "upload_concurrency must be 1 to 16, got 0"),
        ({"max_creative_units": -1}, "max_creative_units must be a positive number of creative units, got -1"),
        ({"wait": "later"}, 'wait must be "poll", "suspend" or False, got \'later\''),
        ({"timeout_seconds": True}, "timeout_seconds must be a number, got bool"),
        ({"min_dataset_score": 2}, "min_dataset_score must be at most 1, got 2"),
        ({"upload_concurrency": 17}, "upload_concurrency must be 1 to 16, got 17"),
        ({"caption_prefix": "KAEL\x1b[2J"}, "caption_prefix must not hold control characters (found U+001B)"),
        ({"idempotency_key": "  "}, "idempotency_key must not be empty"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
    ids=[
        "nan-timeout",
        "inf-timeout",
        "zero-timeout",
        "nan-score",
        "no-uploads",
        "negative-units",
        "wait",
        "bool-timeout",
        "score-over-1",
        "too-many-uploads",
        "ansi-prefix",
        "blank-key",
        "extra",
    ],
)
def test_bad_options_are_one_configuration_error(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build_options(**values)
    assert str(caught.value) == message


def test_options_parse_the_wait_mode_once() -> None:
    assert [build_options(wait=w).mode for w in (True, "poll", "suspend", False)] == ["poll", "poll", "suspend", "none"]
