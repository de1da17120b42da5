"""The shared checks: numbers, names, ids, bounded reads and JSON."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from prefect_scenario import validation as v
from prefect_scenario.catalog import validate_parameters
from prefect_scenario.dataset.captions import check_caption
from prefect_scenario.exceptions import InvalidDatasetError, InvalidIdError, InvalidInputError, InvalidParametersError

NOT_FINITE = [math.nan, math.inf, -math.inf, True, False, "1", None, [1]]


@pytest.mark.parametrize("value", NOT_FINITE, ids=repr)
def test_finite_refuses_what_is_not_a_finite_number(value: object) -> None:
    with pytest.raises(InvalidInputError):
        v.finite("x", value)


@pytest.mark.parametrize(
    ("value", "bounds"),
    [(-1, {"minimum": 0}), (2, {"maximum": 1}), (0, {"allow_zero": False})],
    ids=["below", "above", "zero"],
)
def test_finite_checks_the_range(value: float, bounds: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        v.finite("x", value, **bounds)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [math.nan, 0, -5, math.inf, v.MAX_SECONDS * 2, True], ids=repr)
def test_positive_seconds(value: object) -> None:
    with pytest.raises(InvalidInputError):
        v.positive_seconds("timeout_seconds", value)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, math.nan, "4", 17], ids=repr)
def test_positive_int(value: object) -> None:
    with pytest.raises(InvalidInputError):
        v.positive_int("upload_concurrency", value, maximum=16)


def test_positive_int_takes_a_whole_float() -> None:
    assert v.positive_int("n", 4.0) == 4


@pytest.mark.parametrize("value", ["", "   ", "a\nb", "x\x1b[2J", "nul\x00", "bidi\u202eevil", "x" * 201, 5], ids=repr)
def test_clean_name_refuses(value: object) -> None:
    with pytest.raises(InvalidInputError) as refused:
        v.clean_name("--name", value)
    assert "\x1b" not in str(refused.value) and "\n" not in str(refused.value)


def test_clean_name_strips() -> None:
    assert v.clean_name("--name", "  hero ") == "hero"


@pytest.mark.parametrize("text", ["a\x00b", "a\x1b[31mred", "\x7f", "a\u0085b"], ids=repr)
def test_a_caption_with_control_characters_is_refused(text: str) -> None:
    with pytest.raises(InvalidDatasetError):
        check_caption(text, source="01.txt")


def test_a_caption_keeps_its_lines() -> None:
    assert check_caption("a knight\nin silver", source="01.txt") == "a knight\nin silver"


@pytest.mark.parametrize(
    ("check", "value"),
    [(v.model_id, "model_bfl-flux-2-dev"), (v.asset_id, "asset_before_01"), (v.job_id, "job_1")],
)
def test_ids_of_the_reference_shape_pass(check: object, value: str) -> None:
    assert check(value) == value  # type: ignore[operator]


@pytest.mark.parametrize("value", ["../../teams/x", "model_x?a=b", "asset_1", "model_", "model_é", 3], ids=repr)
def test_model_ids_of_another_shape_are_refused(value: object) -> None:
    with pytest.raises(InvalidIdError):
        v.model_id(value)


@pytest.mark.parametrize("value", ["", ".", "..", "a/b", "a?b", "a#b", "a%2F", "a b", "x" * 101])
def test_opaque_ids_without_path_breaking_characters(value: str) -> None:
    with pytest.raises(InvalidIdError):
        v.opaque_id("endpoint_id", value)


def test_escape_for_terminal() -> None:
    assert v.escape_for_terminal("a\nb\x1b[2J\u202e") == "a\\nb\\x1b[2J\\u202e"
    assert v.escape_for_terminal("plain") == "plain"


def test_read_bounded_refuses_a_sparse_file_over_the_limit_without_reading(tmp_path: Path) -> None:
    huge = tmp_path / "huge.png"
    with huge.open("wb") as handle:
        handle.truncate(1 << 30)
    with pytest.raises(InvalidInputError, match=r"over the 1\.0 MiB limit"):
        v.read_bounded(huge, 1 << 20)


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null", "/tmp"], ids=["zero", "null", "folder"])
def test_read_bounded_refuses_what_is_not_a_regular_file(path: str) -> None:
    with pytest.raises(InvalidInputError, match="regular file"):
        v.read_bounded(path, 1 << 20)


def test_read_bounded_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInputError, match="FIFO"):
        v.read_bounded(fifo, 1 << 20)


def test_read_bounded_reads_a_small_file(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"abc")
    assert v.read_bounded(tmp_path / "a", 3) == b"abc"
    with pytest.raises(InvalidInputError):
        v.read_bounded(tmp_path / "missing", 3)


def test_json_depth_is_bounded_before_parsing() -> None:
    with pytest.raises(InvalidInputError, match="nested"):
        v.load_json_bounded("[" * 100_000 + "]" * 100_000, what="--params-file")
    assert v.load_json_bounded('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', what="x") == {"a": "[" * 36}


@pytest.mark.parametrize(
    "params",
    [{"nbEpochs": True}, {"rank": False}, {"learningRate": math.nan}, {"learningRate": math.inf}, {"rank": 500}],
    ids=repr,
)
def test_parameters_are_finite_typed_numbers(params: dict[str, object]) -> None:
    with pytest.raises(InvalidParametersError):
        validate_parameters("flux.2-dev-lora", params)


def test_a_bad_wandb_key_is_not_repeated_in_the_error() -> None:
    with pytest.raises(InvalidParametersError) as refused:
        validate_parameters("flux.2-dev-lora", {"wandbKey": "psc-secret-" + "k" * 40})
    assert "psc-secret" not in str(refused.value)
