"""The sidecar: scenario.json/yaml and pairs.jsonl parsed into a spec, checked against the content, read from S3."""

from __future__ import annotations

import doctest
import json
from typing import Any

import pytest

from prefect_scenario.dataset.layout import Manifest, S3Object
from prefect_scenario.exceptions import InvalidDatasetError, InvalidInputError
from prefect_scenario.retraining import sidecar
from prefect_scenario.retraining.sidecar import (
    DatasetSpec,
    Pair,
    load_dataset_spec,
    parse_dataset_spec,
    validate_dataset,
)
from tests.s3_fixtures import count_requests, make_bucket, put_many

URI = "s3://studio-assets/curated/hero/"
EDIT = "qwen-image-edit-2511-lora"


# -- the sidecar ---------------------------------------------------------------------------

JSON_SIDECAR = json.dumps(
    {"type": "flux.2-dev-lora", "name": "Hero", "parameters": {"rank": 32, "learningRate": 0.0001}}
)
YAML_SIDECAR = """\
# the hero's LoRA
type: flux.2-dev-lora
name: Hero
parameters:
  rank: 32
  learning_rate: 0.0001
"""
EDIT_YAML = f"""\
type: {EDIT}
name: Beach edits
pairs:
  - before: before/01.jpg
    after: after/01.jpg
    instruction: put it on a beach
  - {{before: before/02.jpg, after: after/02.jpg, instruction: put it on a beach at night}}
"""
PAIRS_JSONL = (
    '{"before": "before/01.jpg", "after": "after/01.jpg", "instruction": "snow"}\n'
    "\n"
    '{"before": "before/02.jpg", "after": "after/02.jpg", "instruction": "rain"}\n'
)


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        pytest.param("scenario.json", JSON_SIDECAR, id="json"),
        pytest.param("scenario.yaml", YAML_SIDECAR, id="yaml"),
        pytest.param("scenario.yml", YAML_SIDECAR.encode(), id="yml-bytes"),
        pytest.param("scenario.json", "\ufeff" + JSON_SIDECAR, id="json-with-bom"),
    ],
)
def test_sidecar_json_and_yaml_read_the_same(filename: str, content: str | bytes) -> None:
    spec = parse_dataset_spec(URI, sidecar=(filename, content))
    assert spec.training_type == "flux.2-dev-lora"
    assert spec.model_name == "Hero"
    assert spec.parameters.rank == 32 and spec.parameters.learning_rate == 0.0001
    assert spec.pairs == ()
    assert spec.sidecar == URI + filename
    assert not spec.edit


def test_sidecar_inline_pairs() -> None:
    spec = parse_dataset_spec(URI, sidecar=("scenario.yaml", EDIT_YAML))
    assert spec.edit and spec.training_type == EDIT
    assert spec.pairs == (
        Pair(before="before/01.jpg", after="after/01.jpg", instruction="put it on a beach"),
        Pair(before="before/02.jpg", after="after/02.jpg", instruction="put it on a beach at night"),
    )
    assert spec.pairs_file is None


def test_pairs_from_pairs_jsonl_with_the_sensor_type() -> None:
    spec = parse_dataset_spec(URI, pairs_jsonl=PAIRS_JSONL.encode(), training_type=EDIT)
    assert [p.instruction for p in spec.pairs] == ["snow", "rain"]
    assert spec.pairs_file == URI + "pairs.jsonl" and spec.sidecar is None
    assert spec.model_name == "hero"


def test_pairs_jsonl_next_to_a_sidecar_without_pairs() -> None:
    spec = parse_dataset_spec(URI, sidecar=("scenario.json", json.dumps({"type": EDIT})), pairs_jsonl=PAIRS_JSONL)
    assert len(spec.pairs) == 2 and spec.sidecar == URI + "scenario.json"


def test_no_sidecar_uses_the_sensor_defaults() -> None:
    spec = parse_dataset_spec(URI, training_type="zimage-turbo-lora", model_name="Hero v2")
    assert (spec.training_type, spec.model_name, spec.sidecar) == ("zimage-turbo-lora", "Hero v2", None)
    assert parse_dataset_spec(URI.rstrip("/"), training_type="zimage-lora").model_name == "hero"


def test_sidecar_wins_over_the_sensor_defaults() -> None:
    spec = parse_dataset_spec(URI, sidecar=("scenario.json", JSON_SIDECAR), training_type="zimage-lora", model_name="X")
    assert (spec.training_type, spec.model_name) == ("flux.2-dev-lora", "Hero")


def test_spec_is_a_serialisable_model() -> None:
    spec = parse_dataset_spec(URI, sidecar=("scenario.yaml", EDIT_YAML))
    assert DatasetSpec.model_validate_json(spec.model_dump_json()) == spec


@pytest.mark.parametrize(
    ("kwargs", "file", "problem"),
    [
        pytest.param(
            {"sidecar": ("scenario.json", '{"type": "flux.2-dev-lora",\n "name": }')},
            "scenario.json",
            "invalid JSON at line 2, column 10",
            id="json-syntax",
        ),
        pytest.param(
            {"sidecar": ("scenario.yaml", "type: flux.2-dev-lora\nname: [unclosed\n")},
            "scenario.yaml",
            "invalid YAML at line 3",
            id="yaml-syntax",
        ),
        pytest.param(
            {"sidecar": ("scenario.yaml", "- flux.2-dev-lora\n")},
            "scenario.yaml",
            "must be a mapping of fields, got list",
            id="not-a-mapping",
        ),
        pytest.param({"sidecar": ("scenario.yml", "")}, "scenario.yml", "the sidecar is empty", id="empty"),
        pytest.param(
            {"sidecar": ("scenario.json", '{"type": "flux.2-dev-lora", "paramters": {}}')},
            "scenario.json",
            "unknown field 'paramters'",
            id="unknown-field",
        ),
        pytest.param(
            {"sidecar": ("scenario.json", '{"type": "sdxl-lora"}')},
            "scenario.json",
            "Unknown training type 'sdxl-lora'",
            id="unknown-type",
        ),
        pytest.param(
            {"sidecar": ("scenario.yaml", "type: flux.2-dev-lora\nparameters: {rank: 500}\n")},
            "scenario.yaml",
            "rank",
            id="parameter-out-of-range",
        ),
        pytest.param(
            {"sidecar": ("scenario.yaml", "type: flux.2-dev-lora\nparameters: {rnak: 8}\n")},
            "scenario.yaml",
            "unknown parameter 'rnak'",
            id="unknown-parameter",
        ),
        pytest.param(
            {"sidecar": ("scenario.yaml", "type: flux.2-dev-lora\nparameters: 8\n")},
            "scenario.yaml",
            "parameters",
            id="parameters-not-a-mapping",
        ),
        pytest.param(
            {"sidecar": ("scenario.yaml", "name: Hero\n")},
            "scenario.yaml",
            "no training type",
            id="no-type-anywhere",
        ),
        pytest.param(
            {"sidecar": ("scenario.yaml", EDIT_YAML), "pairs_jsonl": PAIRS_JSONL},
            "scenario.yaml",
            "both inline and in",
            id="pairs-twice",
        ),
        pytest.param(
            {"sidecar": ("scenario.yaml", "type: flux.2-dev-lora\n" + EDIT_YAML.split("\n", 2)[2])},
            "scenario.yaml",
            "is a standard type: give images, not 2 pairs",
            id="pairs-for-a-standard-type",
        ),
        pytest.param(
            {"sidecar": ("scenario.yaml", f"type: {EDIT}\n")},
            "scenario.yaml",
            "needs at least 2 pairs; got 0",
            id="edit-type-without-pairs",
        ),
        pytest.param(
            {"sidecar": ("scenario.yaml", "type: qwen-image-edit-lora\npairs:\n  - {before: a.png, after: b.png}\n")},
            "scenario.yaml",
            "pairs.0.instruction: Field required",
            id="pair-without-instruction",
        ),
        pytest.param(
            {"pairs_jsonl": PAIRS_JSONL + "{not json}\n", "training_type": EDIT},
            "pairs.jsonl line 4",
            "invalid JSON",
            id="pairs-jsonl-bad-line",
        ),
        pytest.param(
            {
                "pairs_jsonl": '{"before": "a.png", "after": "b.png", "instruction": "x", "why": 1}',
                "training_type": EDIT,
            },
            "pairs.jsonl line 1",
            "unknown field 'why'",
            id="pairs-jsonl-unknown-field",
        ),
        pytest.param(
            {"pairs_jsonl": PAIRS_JSONL.replace("after/02.jpg", "after/02.psd"), "training_type": EDIT},
            "pairs.jsonl",
            "pair 2 after 'after/02.psd' is not an image",
            id="pair-not-an-image",
        ),
        pytest.param(
            {"pairs_jsonl": PAIRS_JSONL.replace("before/01.jpg", "s3://elsewhere/01.jpg"), "training_type": EDIT},
            "pairs.jsonl",
            "must be a key relative to the dataset prefix",
            id="pair-absolute-uri",
        ),
        pytest.param(
            {"sidecar": ("scenario.json", b"\xff\xfe{}")},
            "scenario.json",
            "not UTF-8 text",
            id="not-utf8",
        ),
        pytest.param(
            {"sidecar": ("settings.json", "{}")},
            "settings.json",
            "a sidecar is named one of",
            id="wrong-file-name",
        ),
    ],
)
def test_malformed_sidecar_names_the_file_and_the_problem(kwargs: dict[str, Any], file: str, problem: str) -> None:
    with pytest.raises(InvalidDatasetError) as caught:
        parse_dataset_spec(URI, **kwargs)
    message = str(caught.value)
    assert message.startswith(URI + file), message
    assert problem in message, message
    assert isinstance(caught.value, InvalidInputError)


def test_no_sidecar_and_no_sensor_type_is_refused() -> None:
    with pytest.raises(InvalidDatasetError, match=r"s3://studio-assets/curated/hero/: no training type"):
        parse_dataset_spec(URI)


# -- the spec against the content ----------------------------------------------------------


def _manifest(*names: str) -> Manifest:
    return Manifest(tuple(S3Object("curated/hero/" + n, "e" + n, 10) for n in names))


def test_validate_standard_dataset_counts_images() -> None:
    spec = parse_dataset_spec(URI, training_type="flux.2-dev-lora")
    assert validate_dataset(spec, _manifest(*(f"{i}.png" for i in range(8)))) == []
    assert validate_dataset(spec, _manifest("1.png"))  # a warning: fewer than recommended
    with pytest.raises(InvalidDatasetError, match=r"^s3://studio-assets/curated/hero/: .*at most 50.*got 51"):
        validate_dataset(spec, _manifest(*(f"{i}.png" for i in range(51))))


def test_validate_edit_dataset_checks_pair_images_exist() -> None:
    spec = parse_dataset_spec(URI, sidecar=("scenario.yaml", EDIT_YAML))
    content = _manifest("before/01.jpg", "after/01.jpg", "before/02.jpg", "after/02.jpg")
    assert validate_dataset(spec, content) == []
    extra = _manifest("before/01.jpg", "after/01.jpg", "before/02.jpg", "after/02.jpg", "loose.png")
    assert "1 image(s)" in validate_dataset(spec, extra)[0]
    with pytest.raises(InvalidDatasetError, match=r"scenario.yaml: 1 pair image\(s\) not found.*'after/02.jpg'"):
        validate_dataset(spec, _manifest("before/01.jpg", "after/01.jpg", "before/02.jpg"))


# -- reading the sidecar from S3 --------------------------------------------------------------


def test_load_dataset_spec_from_s3(s3_client: Any) -> None:
    bucket = make_bucket(s3_client)
    put_many(
        s3_client,
        bucket,
        {
            "curated/hero/scenario.json": json.dumps({"type": EDIT, "name": "Hero edits"}).encode(),
            "curated/hero/pairs.jsonl": PAIRS_JSONL.encode(),
        },
    )
    spec = load_dataset_spec(s3_client, "s3://studio-assets/curated/hero/")
    assert (spec.training_type, spec.model_name, len(spec.pairs)) == (EDIT, "Hero edits", 2)
    assert spec.sidecar == "s3://studio-assets/curated/hero/scenario.json"


def test_load_dataset_spec_fetches_only_what_is_present(s3_client: Any) -> None:
    bucket = make_bucket(s3_client)
    put_many(s3_client, bucket, {"curated/hero/scenario.yaml": YAML_SIDECAR.encode()})
    calls = count_requests(s3_client)
    spec = load_dataset_spec(s3_client, URI, present=["01.png", "scenario.yaml"])
    assert spec.model_name == "Hero" and calls == {"GetObject": 1}
    calls.clear()
    default = load_dataset_spec(s3_client, "s3://studio-assets/curated/villain/", training_type="zimage-lora")
    assert default.sidecar is None and default.model_name == "villain" and calls == {"GetObject": 4}


def test_load_dataset_spec_refuses_two_sidecars(s3_client: Any) -> None:
    bucket = make_bucket(s3_client)
    put_many(
        s3_client,
        bucket,
        {"curated/hero/scenario.json": JSON_SIDECAR.encode(), "curated/hero/scenario.yaml": YAML_SIDECAR.encode()},
    )
    with pytest.raises(InvalidDatasetError, match=r"curated/hero/: 2 sidecars \(scenario.json, scenario.yaml\)"):
        load_dataset_spec(s3_client, URI)


def test_load_dataset_spec_malformed_names_the_s3_file(s3_client: Any) -> None:
    bucket = make_bucket(s3_client)
    put_many(s3_client, bucket, {"curated/hero/scenario.yaml": b"type: [\n"})
    with pytest.raises(InvalidDatasetError, match=r"^s3://studio-assets/curated/hero/scenario.yaml: invalid YAML"):
        load_dataset_spec(s3_client, URI)


def test_module_examples_run() -> None:
    assert doctest.testmod(sidecar).failed == 0
