"""The dataset convention: keys, datasets, manifests and the sidecar."""

from __future__ import annotations

import doctest
import hashlib
import json
from typing import Any

import pytest

from prefect_scenario.exceptions import InvalidDatasetError, InvalidInputError
from prefect_scenario.retraining import datasets
from prefect_scenario.retraining.datasets import (
    DatasetSpec,
    Manifest,
    Pair,
    S3Object,
    dataset_uri,
    group_datasets,
    is_image_key,
    is_tracked,
    load_dataset_spec,
    normalize_prefix,
    parse_dataset_spec,
    parse_s3_uri,
    split_key,
    validate_dataset,
)
from tests.s3_fixtures import count_requests, make_bucket, put_many

URI = "s3://studio-assets/curated/hero/"
EDIT = "qwen-image-edit-2511-lora"


# -- keys and datasets ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("a.png", True),
        ("a.PNG", True),
        ("a.jpg", True),
        ("a.jpeg", True),
        ("a.JPEG", True),
        ("a.webp", True),
        ("poses/side view.png", True),
        ("a.gif", False),
        ("a.tiff", False),
        ("a.png.txt", False),
        ("notes.txt", False),
        ("scenario.json", False),
        ("._a.png", False),
        (".hidden.png", False),
        ("folder/", False),
        ("png", False),
    ],
)
def test_is_image_key(key: str, expected: bool) -> None:
    assert is_image_key(key) is expected


@pytest.mark.parametrize(
    ("name", "size", "ignore", "expected"),
    [
        pytest.param("01.png", 10, False, True, id="image"),
        pytest.param("01.png", 0, False, False, id="zero-byte-image"),
        pytest.param("01.png", None, False, True, id="unknown-size-image"),
        pytest.param("notes.txt", 10, False, False, id="non-image"),
        pytest.param("scenario.json", 10, False, True, id="sidecar-tracked"),
        pytest.param("scenario.yaml", 10, True, False, id="sidecar-ignored"),
        pytest.param("pairs.jsonl", 10, False, True, id="pairs-tracked"),
        pytest.param("pairs.jsonl", 10, True, False, id="pairs-ignored"),
        pytest.param("poses/scenario.json", 10, False, False, id="nested-sidecar-is-not-one"),
        pytest.param("scenario.json", 0, False, False, id="empty-sidecar"),
    ],
)
def test_is_tracked(name: str, size: int | None, ignore: bool, expected: bool) -> None:
    assert is_tracked(name, size, ignore_sidecar_edits=ignore) is expected


@pytest.mark.parametrize(
    ("root", "key", "expected"),
    [
        ("curated/", "curated/hero/01.png", ("curated/hero/", "01.png")),
        ("curated/", "curated/hero/poses/01.png", ("curated/hero/", "poses/01.png")),
        ("curated/", "curated/01.png", ("curated/", "01.png")),
        ("curated/", "curated/hero/", ("curated/hero/", "")),
        ("curated/", "curated/", None),
        ("curated/", "other/01.png", None),
        ("", "hero/01.png", ("hero/", "01.png")),
        ("", "01.png", ("", "01.png")),
    ],
)
def test_split_key(root: str, key: str, expected: tuple[str, str] | None) -> None:
    assert split_key(root, key) == expected


def test_prefixes_and_uris() -> None:
    assert normalize_prefix("curated") == "curated/"
    assert normalize_prefix("/curated/hero/") == "curated/hero/"
    assert normalize_prefix("") == ""
    assert dataset_uri("b", "curated/hero") == "s3://b/curated/hero/"
    assert parse_s3_uri("s3://b/curated/hero") == ("b", "curated/hero/")
    assert parse_s3_uri("s3://b") == ("b", "")
    with pytest.raises(InvalidDatasetError, match="not an S3 URI"):
        parse_s3_uri("https://b/curated")
    with pytest.raises(InvalidDatasetError, match="no bucket"):
        parse_s3_uri("s3:///curated")


def test_group_datasets_one_per_sub_prefix_plus_the_root() -> None:
    objects = [
        S3Object("curated/hero/01.png", "a", 10),
        S3Object("curated/hero/poses/02.webp", "b", 10),
        S3Object("curated/hero/scenario.yaml", "s", 10),
        S3Object("curated/hero/notes.txt", "n", 10),
        S3Object("curated/villain/01.jpg", "c", 10),
        S3Object("curated/villain/empty.png", "d", 0),
        S3Object("curated/loose.png", "e", 10),
        S3Object("curated/drafts/readme.md", "f", 10),
        S3Object("elsewhere/x.png", "g", 10),
    ]
    grouped = group_datasets("curated", objects)
    assert list(grouped) == ["curated/", "curated/hero/", "curated/villain/"]
    assert grouped["curated/hero/"].keys == (
        "curated/hero/01.png",
        "curated/hero/poses/02.webp",
        "curated/hero/scenario.yaml",
    )
    assert grouped["curated/hero/"].image_count == 2
    assert grouped["curated/villain/"].image_count == 1
    ignoring = group_datasets("curated/", objects, ignore_sidecar_edits=True)
    assert "curated/hero/scenario.yaml" not in ignoring["curated/hero/"].keys


# -- manifests -----------------------------------------------------------------------------


def test_manifest_digest_is_stable_and_content_addressed() -> None:
    a = Manifest((S3Object("d/1.png", "e1", 1), S3Object("d/2.png", "e2", 2)))
    b = Manifest((S3Object("d/2.png", "e2", 2), S3Object("d/1.png", "e1", 1)))
    assert a == b and a.digest == b.digest
    assert len(a.digest) == 64
    assert a.digest != Manifest((S3Object("d/1.png", "e1", 1), S3Object("d/2.png", "e3", 2))).digest
    assert a.digest != Manifest((S3Object("d/1.png", "e1", 1),)).digest
    assert a.digest != Manifest((S3Object("d/1.png", "e1", 1), S3Object("d/3.png", "e2", 2))).digest
    # Size is implied by the ETag, so it is not part of the digest.
    assert Manifest((S3Object("d/1.png", "e1", 1),)).digest == Manifest((S3Object("d/1.png", "e1", 9),)).digest


def test_manifest_digest_known_value() -> None:
    # The digest is in every idempotency key: it must never change between versions.
    manifest = Manifest((S3Object("d/1.png", "e1", 1),))
    assert manifest.digest == hashlib.sha256(b'[["d/1.png","e1"]]').hexdigest()


def test_manifest_json_round_trip_and_images() -> None:
    manifest = Manifest(
        (S3Object("d/1.png", "e1", 1), S3Object("d/scenario.json", "s", 5), S3Object("d/red flower+1.jpg", "e2", 3))
    )
    assert Manifest.from_json(json.loads(json.dumps(manifest.to_json()))) == manifest
    assert [o.key for o in manifest.images] == ["d/1.png", "d/red flower+1.jpg"]
    assert manifest.image_count == 2 and manifest.total_size == 9


def test_manifest_refuses_duplicate_keys() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        Manifest((S3Object("d/1.png", "a", 1), S3Object("d/1.png", "b", 1)))


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
    assert doctest.testmod(datasets).failed == 0
