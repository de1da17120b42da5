"""The dataset convention: keys, datasets, manifests and the sidecar."""

from __future__ import annotations

import doctest
import hashlib
import json

import pytest

from prefect_scenario.dataset import layout as datasets
from prefect_scenario.dataset.layout import (
    Manifest,
    S3Object,
    dataset_uri,
    group_datasets,
    is_image_key,
    is_tracked,
    normalize_prefix,
    parse_dataset_uri,
    split_key,
)
from prefect_scenario.exceptions import InvalidDatasetError

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
    assert parse_dataset_uri("s3://b/curated/hero") == ("b", "curated/hero/")
    assert parse_dataset_uri("s3://b") == ("b", "")
    with pytest.raises(InvalidDatasetError, match="not an S3 URI"):
        parse_dataset_uri("https://b/curated")
    with pytest.raises(InvalidDatasetError, match="no bucket"):
        parse_dataset_uri("s3:///curated")


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


def test_module_examples_run() -> None:
    assert doctest.testmod(datasets).failed == 0
