"""The ``train`` and ``train-edit`` commands' checks that need no server: run before any flow starts.

Everything that can be refused from the command line alone is refused here, with one
line and exit 2, before Prefect is asked for anything (no block read, no ephemeral
server, no flow run) and before any request to Scenario: the training type, the name,
every number (finite and in range), the parameters (``--param``, ``--params-file``,
read at most :data:`~prefect_scenario.validation.MAX_PARAMS_FILE_BYTES` and nested at
most :data:`~prefect_scenario.validation.MAX_JSON_DEPTH` levels), the dataset's size, and
each local image (a regular file within the size limit, a PNG, JPEG or WebP matching its
extension) and its caption, read one at a time. The flows check all of it again: these
checks only make the common mistakes cheap.

Saved blocks (``--block``, ``--budget``) are read through the Prefect API, so they are
checked after these, and before the flow starts.

Example:
    >>> import argparse
    >>> args = argparse.Namespace(params_file=None, param=["rank=true"], training_type="flux.2-dev-lora")
    >>> parse_parameters(args)
    Traceback (most recent call last):
    ...
    prefect_scenario.exceptions.InvalidParametersError: Invalid training parameters: rank: Value error, \
a boolean is not a number (got True)
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from prefect_scenario.catalog import (
    TrainingParameters,
    check_dataset_size,
    get_training_type,
    validate_parameters,
)
from prefect_scenario.dataset.captions import MAX_PAIRS_FILE_BYTES, read_caption
from prefect_scenario.dataset.images import check_image, parse_s3_uri, read_image_file
from prefect_scenario.exceptions import (
    ConfigurationError,
    InvalidDatasetError,
    InvalidInputError,
    InvalidParametersError,
)
from prefect_scenario.validation import (
    MAX_PARAMS_FILE_BYTES,
    asset_id,
    clean_name,
    finite,
    load_json_bounded,
    positive_seconds,
    read_bounded,
)

__all__ = ["check_common", "check_images", "check_pairs", "check_source", "parse_pairs_file", "parse_parameters"]


def check_common(args: argparse.Namespace) -> TrainingParameters:
    """The options both train commands share: type, name, numbers and parameters.

    Returns:
        The checked parameters (the flow gets them as given; it checks them again).

    Raises:
        InvalidInputError: the first bad option, as one line.
    """
    from prefect_scenario.spend.block import check_units

    check_units("--max-creative-units", args.max_creative_units)  # spend flags first: nothing is read for them
    get_training_type(args.training_type)
    args.name = clean_name("--name", args.name)
    args.timeout = positive_seconds("--timeout", args.timeout)
    if args.min_dataset_score is not None:
        args.min_dataset_score = finite("--min-dataset-score", args.min_dataset_score, minimum=0, maximum=1)
    if getattr(args, "promote", False) and args.no_wait:
        raise ConfigurationError("--promote judges the trained LoRA: it cannot be used with --no-wait")
    return parse_parameters(args)


def parse_parameters(args: argparse.Namespace) -> TrainingParameters:
    """``--params-file`` (a JSON object) then each ``--param NAME=VALUE``, checked for the type.

    A ``--param`` value is read as JSON when it is JSON (``8``, ``1e-4``, ``["a"]``), else as text.

    Raises:
        InvalidParametersError: a malformed ``--param``, a params file that is not a JSON
            object, or a parameter the catalog refuses.
        InvalidInputError: the params file is missing, not a regular file, over 1 MiB or too deeply nested.
    """
    params: dict[str, Any] = {}
    if args.params_file:
        data = read_bounded(args.params_file, MAX_PARAMS_FILE_BYTES, what="--params-file")
        loaded = load_json_bounded(data, what="--params-file")
        if not isinstance(loaded, dict):
            raise InvalidParametersError(f"--params-file must hold a JSON object, not {type(loaded).__name__}")
        params.update(loaded)
    for item in args.param:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise InvalidParametersError(f"--param takes NAME=VALUE, got {item!r}")
        try:
            params[name.strip()] = load_json_bounded(raw, what=f"--param {name.strip()}")
        except InvalidInputError:
            params[name.strip()] = raw
    return validate_parameters(args.training_type, params)


def check_images(training_type: str, images: list[str]) -> None:
    """The dataset's size for the type, and each local image and its caption, one at a time.

    Raises:
        InvalidDatasetError: too few or too many images, or a bad caption file.
        InvalidImageError: a local image that is missing, not a regular file, over the limit,
            not a PNG, JPEG or WebP, or whose extension does not match its content.
        InvalidIdError: an ``asset_…`` source that is not an asset id.
    """
    check_dataset_size(training_type, images=len(images))
    for source in images:
        check_source(source)


def check_source(source: str) -> None:
    """One image source as given on the command line (a path, an ``s3://`` URI or an asset id)."""
    if source.startswith("s3://"):
        parse_s3_uri(source)
    elif source.startswith("asset_"):
        asset_id(source)
    else:
        path = Path(source)
        check_image(read_image_file(path), name=path.name, source=source)
        read_caption(path)


def parse_pairs_file(path: Path) -> list[dict[str, Any]]:
    """The pairs of a JSON-lines file, local paths made relative to it, each local image checked.

    Raises:
        InvalidDatasetError: a line that is not a ``{"before", "after", "instruction"}`` object,
            or too few or too many pairs.
        InvalidInputError: the file is missing, not a regular file or over 1 MiB.
    """
    text = read_bounded(path, MAX_PAIRS_FILE_BYTES, what="the pairs file")
    pairs: list[dict[str, Any]] = []
    for number, line in enumerate(text.decode("utf-8-sig", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        item = load_json_bounded(line, what=f"{path} line {number}")
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("before", "after")):
            raise InvalidDatasetError(f"{path} line {number}: needs a before and an after")
        for side in ("before", "after"):
            # Paths in the pairs file are relative to it.
            if not item[side].startswith(("s3://", "asset_")):
                item[side] = str(path.parent / item[side])
        pairs.append(item)
    return pairs


def check_pairs(training_type: str, pairs: list[dict[str, Any]]) -> None:
    """The pair count for the type, and each pair's local images."""
    check_dataset_size(training_type, pairs=len(pairs))
    for item in pairs:
        for side in ("before", "after"):
            source = item[side]
            if source.startswith("s3://"):
                parse_s3_uri(source)
            elif source.startswith("asset_"):
                asset_id(source)
            else:
                check_image(read_image_file(source), name=Path(source).name, source=source)
