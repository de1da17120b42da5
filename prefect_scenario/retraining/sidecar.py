"""A dataset's description: the sidecar (``scenario.json``/``.yaml``/``.yml``) and ``pairs.jsonl``.

A sidecar, at most one per dataset, at its top level::

    type: qwen-image-edit-2511-lora     # a LoRA training type (or: training_type)
    name: Product shots                 # the model's name (or: model_name)
    parameters: {rank: 32}              # training parameters, wire or snake_case names
    pairs:                              # edit types only; or a pairs.jsonl next to it
      - {before: before/01.jpg, after: after/01.jpg, instruction: put it on a beach}
    captions:                           # standard types only; win over 01.txt beside 01.png
      01.png: KAEL_07, a knight in silver armour

Without a sidecar, the sensor's own parameters give the type and name; a name given
nowhere defaults to the dataset's folder name. :func:`parse_dataset_spec` is pure (the
caller reads the files); :func:`load_dataset_spec` reads them from S3.

Example:
    >>> spec = parse_dataset_spec("s3://b/curated/hero/", sidecar=("scenario.json", '{"type": "flux.2-dev-lora"}'))
    >>> spec.training_type, spec.model_name, spec.sidecar
    ('flux.2-dev-lora', 'hero', 's3://b/curated/hero/scenario.json')
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from prefect_scenario.catalog import (
    TrainingParameters,
    TrainingType,
    check_dataset_size,
    describe_validation_error,
    get_training_type,
    validate_parameters,
)
from prefect_scenario.dataset.layout import (
    IMAGE_EXTENSIONS,
    PAIRS_FILE,
    SIDECAR_NAMES,
    Manifest,
    dataset_uri,
    is_image_key,
    parse_dataset_uri,
)
from prefect_scenario.exceptions import InvalidDatasetError, InvalidInputError

__all__ = [
    "DatasetSpec",
    "Pair",
    "S3ReadClient",
    "load_dataset_spec",
    "parse_dataset_spec",
    "validate_dataset",
]


class Pair(BaseModel):
    """One before/after pair of an edit dataset; keys are relative to the dataset prefix."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    before: str = Field(min_length=1, description="The source image, relative to the dataset prefix.")
    after: str = Field(min_length=1, description="The target image, relative to the dataset prefix.")
    instruction: str = Field(min_length=1, description="What turns the before image into the after image.")


class _Sidecar(BaseModel):
    # Unknown keys are refused: a typo such as "paramters" must not silently train with defaults.
    model_config = ConfigDict(extra="forbid", frozen=True)

    training_type: str | None = Field(None, validation_alias=AliasChoices("type", "training_type", "trainingType"))
    model_name: str | None = Field(None, validation_alias=AliasChoices("name", "model_name", "modelName"), min_length=1)
    parameters: dict[str, Any] | None = None
    pairs: list[Pair] | None = None
    captions: dict[str, str] | None = None


class DatasetSpec(BaseModel):
    """What to train from a dataset: type, model name, parameters and (edit types) pairs.

    Build it with :func:`parse_dataset_spec` (pure) or :func:`load_dataset_spec` (reads S3).

    Example:
        >>> spec = parse_dataset_spec("s3://b/curated/hero/", training_type="flux.2-dev-lora")
        >>> spec.training_type, spec.model_name, spec.sidecar
        ('flux.2-dev-lora', 'hero', None)
    """

    model_config = ConfigDict(frozen=True)

    dataset_uri: str = Field(description="The dataset's s3://bucket/prefix/.")
    training_type: str = Field(description="The LoRA training type.")
    model_name: str = Field(description="The name of the model to train.")
    parameters: TrainingParameters = Field(default_factory=TrainingParameters, description="Training parameters.")
    pairs: tuple[Pair, ...] = Field(default=(), description="Before/after pairs, for edit types only.")
    sidecar: str | None = Field(None, description="The URI of the sidecar the spec was read from, if any.")
    pairs_file: str | None = Field(None, description="The URI of the pairs.jsonl the pairs were read from, if any.")
    captions: dict[str, str] = Field(
        default_factory=dict, description="Captions by image key relative to the dataset prefix (standard types)."
    )

    @property
    def edit(self) -> bool:
        """Whether the training type takes before/after pairs."""
        return get_training_type(self.training_type).edit


def _text(data: str | bytes, source: str) -> str:
    # Editors on Windows often start files with a byte-order mark; json.loads refuses it.
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidDatasetError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _describe(error: ValidationError) -> str:
    return describe_validation_error(error, noun="field", whole="document", show_input=False)


def _load_document(name: str, text: str, source: str) -> object:
    try:
        if name.endswith(".json"):
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise InvalidDatasetError(
            f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidDatasetError(f"{source}: invalid YAML{where}: {problem}") from None


def _parse_sidecar(name: str, data: str | bytes, source: str) -> _Sidecar:
    if name not in SIDECAR_NAMES:
        raise InvalidDatasetError(f"{source}: a sidecar is named one of {', '.join(SIDECAR_NAMES)}")
    document = _load_document(name, _text(data, source), source)
    if document is None:
        raise InvalidDatasetError(f"{source}: the sidecar is empty; give at least a training type or delete the file")
    if not isinstance(document, dict):
        raise InvalidDatasetError(f"{source}: the sidecar must be a mapping of fields, got {type(document).__name__}")
    try:
        return _Sidecar.model_validate(document)
    except ValidationError as exc:
        raise InvalidDatasetError(f"{source}: {_describe(exc)}") from None


def _parse_pairs_jsonl(data: str | bytes, source: str) -> tuple[Pair, ...]:
    pairs = []
    for number, line in enumerate(_text(data, source).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            pairs.append(Pair.model_validate(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InvalidDatasetError(f"{source} line {number}: invalid JSON: {exc.msg}") from None
        except ValidationError as exc:
            raise InvalidDatasetError(f"{source} line {number}: {_describe(exc)}") from None
    return tuple(pairs)


def _check_pair_keys(pairs: Iterable[Pair], source: str) -> None:
    for number, pair in enumerate(pairs, start=1):
        for side, key in (("before", pair.before), ("after", pair.after)):
            if key.startswith(("/", "s3://")) or ".." in key.split("/"):
                raise InvalidDatasetError(
                    f"{source}: pair {number} {side} {key!r} must be a key relative to the dataset prefix"
                )
            if not is_image_key(key):
                raise InvalidDatasetError(
                    f"{source}: pair {number} {side} {key!r} is not an image ({', '.join(sorted(IMAGE_EXTENSIONS))})"
                )


def parse_dataset_spec(
    dataset_uri: str,
    *,
    sidecar: tuple[str, str | bytes] | None = None,
    pairs_jsonl: str | bytes | None = None,
    training_type: str | None = None,
    model_name: str | None = None,
) -> DatasetSpec:
    """The dataset's spec from its sidecar and pairs file contents, with defaults.

    Pure: the caller reads the files. The sidecar wins over the defaults; a model name
    given nowhere is the dataset's folder name.

    Args:
        dataset_uri: The dataset's ``s3://bucket/prefix/``; names the files in errors.
        sidecar: ``(file name, content)`` of ``scenario.json``/``.yaml``/``.yml``, if any.
        pairs_jsonl: The content of ``pairs.jsonl``, if any.
        training_type: The type to use when the sidecar gives none (the sensor's).
        model_name: The name to use when the sidecar gives none (the sensor's).

    Returns:
        The validated spec.

    Raises:
        InvalidDatasetError: a malformed sidecar or pairs file (the message names the file
            and the problem), no training type anywhere, an unknown type, invalid
            parameters, pairs given twice or for a standard type, or too few/many pairs.

    Example:
        >>> spec = parse_dataset_spec(
        ...     "s3://b/curated/shoes/",
        ...     sidecar=("scenario.yaml", "type: flux.2-dev-lora\\nname: Shoes\\nparameters: {rank: 16}"),
        ... )
        >>> spec.model_name, spec.parameters.rank, spec.sidecar
        ('Shoes', 16, 's3://b/curated/shoes/scenario.yaml')
    """
    uri = dataset_uri if dataset_uri.endswith("/") else dataset_uri + "/"
    parsed = _Sidecar()
    sidecar_uri = None
    if sidecar is not None:
        name, content = sidecar
        sidecar_uri = uri + name
        parsed = _parse_sidecar(name, content, sidecar_uri)
    source = sidecar_uri or uri
    pairs, pairs_uri = _pairs(parsed, pairs_jsonl, uri, source)
    ttype, parameters = _type_and_parameters(parsed, training_type, pairs, source, pairs_uri if pairs else None)
    name = parsed.model_name or model_name or posixpath.basename(uri.rstrip("/")) or uri
    if parsed.captions and ttype.edit:
        raise InvalidDatasetError(
            f"{source}: captions are for standard types; an edit pair's instruction is its caption"
        )
    return DatasetSpec(
        captions=parsed.captions or {},
        dataset_uri=uri,
        training_type=ttype.id,
        model_name=name,
        parameters=parameters,
        pairs=pairs,
        sidecar=sidecar_uri,
        pairs_file=pairs_uri,
    )


def _pairs(
    parsed: _Sidecar, pairs_jsonl: str | bytes | None, uri: str, source: str
) -> tuple[tuple[Pair, ...], str | None]:
    """The dataset's pairs (inline in the sidecar or from ``pairs.jsonl``) and the file they came from."""
    pairs: tuple[Pair, ...] = tuple(parsed.pairs or ())
    pairs_uri = None
    if pairs_jsonl is not None:
        pairs_uri = uri + PAIRS_FILE
        if parsed.pairs is not None:
            raise InvalidDatasetError(f"{source}: pairs are given both inline and in {pairs_uri}; keep one of the two")
        pairs = _parse_pairs_jsonl(pairs_jsonl, pairs_uri)
    _check_pair_keys(pairs, pairs_uri or source)
    return pairs, pairs_uri


def _type_and_parameters(
    parsed: _Sidecar, default_type: str | None, pairs: tuple[Pair, ...], source: str, pairs_source: str | None
) -> tuple[TrainingType, TrainingParameters]:
    """The training type (the sidecar's, else the default) and its validated parameters.

    Errors name ``source`` (the sidecar or the dataset), or ``pairs_source`` when the
    pairs file gave the pairs.
    """
    type_id = parsed.training_type or default_type
    if not type_id:
        raise InvalidDatasetError(
            f"{source}: no training type: set `type` in a {SIDECAR_NAMES[0]}/{SIDECAR_NAMES[1]} sidecar "
            "or give the sensor a training_type"
        )
    try:
        ttype = get_training_type(type_id)
        parameters = validate_parameters(ttype, parsed.parameters)
        if ttype.edit or pairs:
            check_dataset_size(ttype, pairs=len(pairs))
    except InvalidInputError as exc:
        raise InvalidDatasetError(f"{pairs_source or source}: {exc}") from exc
    return ttype, parameters


def validate_dataset(spec: DatasetSpec, manifest: Manifest) -> list[str]:
    """Check a spec against the dataset's content; return warnings (never fatal).

    Standard types: the image count must fit the type. Edit types: every pair must name
    an image present in the dataset; images in no pair are not trained on.

    Raises:
        InvalidDatasetError: too few or too many images, or a pair naming a missing image.

    Example:
        >>> from prefect_scenario.dataset.layout import S3Object
        >>> spec = parse_dataset_spec("s3://b/d/", training_type="flux.2-dev-lora")
        >>> validate_dataset(spec, Manifest((S3Object("d/1.png", "e", 1),)))
        ['1 training images: 5–15 are recommended for a LoRA']
    """
    _, prefix = parse_dataset_uri(spec.dataset_uri)
    names = {o.key[len(prefix) :] for o in manifest.images if o.key.startswith(prefix)}
    ttype = get_training_type(spec.training_type)
    if not ttype.edit:
        try:
            return check_dataset_size(ttype, images=manifest.image_count)
        except InvalidDatasetError as exc:
            raise InvalidDatasetError(f"{spec.dataset_uri}: {exc}") from None
    source = spec.pairs_file or spec.sidecar or spec.dataset_uri
    missing = [key for pair in spec.pairs for key in (pair.before, pair.after) if key not in names]
    if missing:
        shown = ", ".join(repr(k) for k in missing[:5]) + (" …" if len(missing) > 5 else "")
        raise InvalidDatasetError(f"{source}: {len(missing)} pair image(s) not found in the dataset: {shown}")
    used = {key for pair in spec.pairs for key in (pair.before, pair.after)}
    unused = len(names - used)
    return [f"{unused} image(s) in {spec.dataset_uri} are in no pair and will not be trained on"] if unused else []


# -- reading a sidecar from S3 ----------------------------------------------------------


class S3ReadClient(Protocol):
    """The part of a boto3 S3 client that :func:`load_dataset_spec` uses."""

    def get_object(self, **kwargs: Any) -> Any: ...


def _get_text(client: S3ReadClient, bucket: str, key: str) -> bytes | None:
    from botocore.exceptions import ClientError

    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in {"NoSuchKey", "404", "NotFound"}:
            return None
        raise
    body: bytes = response["Body"].read()
    return body


def load_dataset_spec(
    client: S3ReadClient,
    uri: str,
    *,
    training_type: str | None = None,
    model_name: str | None = None,
    present: Mapping[str, object] | Iterable[str] | None = None,
) -> DatasetSpec:
    """Read a dataset's sidecar and pairs file from S3 and parse them.

    Args:
        client: A boto3 S3 client (or anything with ``get_object``).
        uri: The dataset's ``s3://bucket/prefix/``.
        training_type: The default type (the sensor's) for a dataset without one.
        model_name: The default model name.
        present: Names (relative to the prefix) known to exist, e.g. from a listing: only
            those sidecar files are fetched. None fetches every candidate (4 GETs).

    Returns:
        The validated spec.

    Raises:
        InvalidDatasetError: two sidecars, or anything :func:`parse_dataset_spec` refuses.

    Example:
        >>> import boto3  # doctest: +SKIP
        >>> load_dataset_spec(boto3.client("s3"), "s3://studio-assets/curated/hero/")  # doctest: +SKIP
    """
    bucket, prefix = parse_dataset_uri(uri)
    candidates: Iterable[str] = (*SIDECAR_NAMES, PAIRS_FILE)
    if present is not None:
        known = set(present)
        candidates = [name for name in candidates if name in known]
    found = {name: data for name in candidates if (data := _get_text(client, bucket, prefix + name)) is not None}
    sidecars = [name for name in SIDECAR_NAMES if name in found]
    if len(sidecars) > 1:
        raise InvalidDatasetError(
            f"{dataset_uri(bucket, prefix)}: {len(sidecars)} sidecars ({', '.join(sidecars)}); keep one"
        )
    sidecar = (sidecars[0], found[sidecars[0]]) if sidecars else None
    return parse_dataset_spec(
        dataset_uri(bucket, prefix),
        sidecar=sidecar,
        pairs_jsonl=found.get(PAIRS_FILE),
        training_type=training_type,
        model_name=model_name,
    )
