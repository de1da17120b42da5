"""The preflight's I/O: read a dataset's images one at a time, measure them, run the checks.

Images come from a local folder, paths or bytes, an S3 prefix (through a boto3 client
the caller builds), or any :class:`ImageFile` whose ``read`` returns the bytes. Each is
read and hashed (SHA-256, which frees the GIL) in a reader thread while the previous one
decodes, so at most two images are in memory. The 64-bit dHash comes from a grid sampled
off the decoded pixels; JPEGs decode at 1/2–1/8 scale (``Image.draft``).

A caption is the caller's (``captions={name: text}``), else the UTF-8 ``<stem>.txt``
beside the image. An edit dataset's pairs are the ``pairs.jsonl`` at its top level, one
``{"before": ..., "after": ..., "instruction": ...}`` a line, names relative to it.

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> Image.linear_gradient("L").resize((1024, 1024)).save(folder / "01.png")
    >>> _ = (folder / "01.txt").write_text("KAEL_07, a gradient")
    >>> [(f.severity, f.check) for f in preflight_directory(folder).findings]
    [('warn', 'size')]
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image, UnidentifiedImageError

from prefect_scenario.dataset.captions import (
    MAX_CAPTION_FILE_BYTES,
    MAX_PAIRS_FILE_BYTES,
    Pair,
    caption_name,
    check_caption,
    parse_caption,
    parse_pairs_jsonl,
    read_bounded_text_file,
)
from prefect_scenario.dataset.checks import (
    Finding,
    ImageMeasurement,
    PairMeasurement,
    PreflightOptions,
    PreflightReport,
    evaluate,
)
from prefect_scenario.dataset.dhash import dhash
from prefect_scenario.dataset.images import MAX_IMAGE_BYTES, read_image_file
from prefect_scenario.dataset.layout import PAIRS_FILE, is_image_key, parse_dataset_uri
from prefect_scenario.dataset.listing import list_objects
from prefect_scenario.exceptions import InvalidDatasetError, InvalidImageError, InvalidInputError

__all__ = [
    "ImageFile",
    "S3ReadListClient",
    "dhash",
    "measure_files",
    "measure_image",
    "preflight_directory",
    "preflight_files",
    "preflight_images",
    "preflight_s3",
]

_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})


@dataclass(frozen=True)
class ImageFile:
    """One image to measure: its name in findings, how to read it, its caption if any."""

    name: str
    read: Callable[[], bytes]
    caption: str | None = None
    read_caption: Callable[[], bytes] | None = None
    caption_file: str | None = None


class S3ReadListClient(Protocol):
    """The part of a boto3 S3 client that :func:`preflight_s3` uses."""

    def list_objects_v2(self, **kwargs: Any) -> Any: ...

    def get_object(self, **kwargs: Any) -> Any: ...


def measure_image(data: bytes, *, name: str, caption: str | None = None, digest: str | None = None) -> ImageMeasurement:
    """Measure one image's bytes: size, content digest and dHash.

    Args:
        data: The file's content.
        name: The image's name in findings.
        caption: Its caption, if any.
        digest: Its SHA-256 in hex, when already computed.

    Returns:
        The measurement.

    Raises:
        InvalidImageError: empty, over 20 MiB, not a PNG, JPEG or WebP, or truncated.

    Example:
        >>> buffer = io.BytesIO()
        >>> Image.new("RGB", (640, 480)).save(buffer, "PNG")
        >>> measure_image(buffer.getvalue(), name="a.png").width
        640
    """
    if not data or len(data) > MAX_IMAGE_BYTES:
        size = "empty (0 bytes)" if not data else f"{len(data) / 1e6:.1f} MB, over the 20 MiB limit"
        raise InvalidImageError(f"{name}: the file is {size}", source=name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image_format, (width, height) = image.format or "unknown", image.size
                bits = dhash(image) if image_format in _FORMATS else None
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImageError(f"{name}: not a readable image ({type(exc).__name__})", source=name) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"{name}: the image is truncated or corrupt ({exc})", source=name) from None
    if bits is None:
        raise InvalidImageError(f"{name}: {image_format} is not supported; use PNG, JPEG or WebP", source=name)
    return ImageMeasurement(name, width, height, digest or hashlib.sha256(data).hexdigest(), bits, caption)


@dataclass
class _Loaded:
    file: ImageFile
    data: bytes | None = None
    digest: str = ""
    caption: str | None = None
    findings: list[Finding] = field(default_factory=list)


def _problem(exc: Exception, source: str) -> str:
    return str(exc).removeprefix(f"{source}: ")


def _load(file: ImageFile) -> _Loaded:
    """In the reader thread: the bytes, their digest (hashlib frees the GIL) and the caption."""
    loaded = _Loaded(file)
    try:
        loaded.data = file.read()
    except (OSError, InvalidInputError) as exc:
        reason = "no such file" if isinstance(exc, FileNotFoundError) else _problem(exc, file.name)
        loaded.findings.append(Finding("refuse", "readable", f"cannot read it: {reason}", file.name))
        return loaded
    loaded.digest = hashlib.sha256(loaded.data).hexdigest()
    source = file.caption_file or caption_name(file.name)
    try:
        if file.caption is not None:
            loaded.caption = check_caption(file.caption, source=source)
        elif file.read_caption is not None:
            loaded.caption = parse_caption(file.read_caption(), source=source)
    except (OSError, InvalidDatasetError) as exc:
        loaded.findings.append(Finding("refuse", "caption", _problem(exc, source), source))
    return loaded


def _read_ahead(files: Iterable[ImageFile]) -> Iterator[_Loaded]:
    """Each file loaded, the next one read while the caller measures the current one."""
    with ThreadPoolExecutor(1, thread_name_prefix="preflight-read") as pool:
        pending: Future[_Loaded] | None = None
        for file in files:
            upcoming = pool.submit(_load, file)
            if pending is not None:
                yield pending.result()
            pending = upcoming
        if pending is not None:
            yield pending.result()


def measure_files(files: Iterable[ImageFile]) -> tuple[list[ImageMeasurement], list[Finding]]:
    """Measure every file, streaming; a file that cannot be measured becomes a refusal.

    Example:
        >>> measured, findings = measure_files([ImageFile("x.png", lambda: b"not an image")])
        >>> measured, [f.message for f in findings]
        ([], ['not a readable image (UnidentifiedImageError)'])
    """
    measured: list[ImageMeasurement] = []
    findings: list[Finding] = []
    for loaded in _read_ahead(files):
        findings += loaded.findings
        if loaded.data is None:
            continue
        name = loaded.file.name
        try:
            measured.append(measure_image(loaded.data, name=name, caption=loaded.caption, digest=loaded.digest))
        except InvalidImageError as exc:
            findings.append(Finding("refuse", "readable", _problem(exc, name), name))
    return measured, findings


def preflight_files(
    files: Sequence[ImageFile],
    pairs: Sequence[Pair] | None = None,
    *,
    options: PreflightOptions | None = None,
    findings: Iterable[Finding] = (),
    source: str = "",
) -> PreflightReport:
    """Measure the files (for ``kind="edit"``: those the pairs name) and run every check.

    Args:
        files: The dataset's images.
        pairs: ``(before name, after name, instruction)`` triples, for ``kind="edit"``.
        options: Thresholds and the kind; the defaults if None.
        findings: Findings made before measuring (a malformed pairs file).
        source: What was checked, for the report.

    Returns:
        The report; it never raises for a weak dataset (see ``raise_for_refusals``).

    Example:
        >>> preflight_files([], source="empty/").findings[0].message
        '0 images: a training takes 1–50'
    """
    opts = options or PreflightOptions()
    found = list(findings)
    if opts.kind != "edit":
        measured, more = measure_files(files)
        return evaluate(measured, options=opts, findings=[*found, *more], source=source)
    if pairs is None:
        found.append(Finding("refuse", "pairs", f"an edit dataset needs pairs: a {PAIRS_FILE} beside its images"))
    by_name = {f.name: f for f in files}
    used = list(dict.fromkeys(name for pair in pairs or () for name in pair[:2]))
    found += [Finding("refuse", "pairs", "a pair names it, but it is not there", n) for n in used if n not in by_name]
    if unused := len(set(by_name) - set(used)):
        found.append(Finding("info", "pairs", f"{unused} image(s) are in no pair and will not be trained on"))
    measured, more = measure_files(by_name[n] for n in used if n in by_name)
    known = {m.name: m for m in measured}
    measured_pairs = [PairMeasurement(known[b], known[a], i) for b, a, i in pairs or () if b in known and a in known]
    return evaluate(measured, measured_pairs, options=opts, findings=[*found, *more], source=source)


def preflight_directory(path: str | Path, *, options: PreflightOptions | None = None) -> PreflightReport:
    """The preflight of a local folder: its images (any depth), their ``.txt`` captions, its pairs.

    Raises:
        InvalidDatasetError: ``path`` is not a folder.

    Example:
        >>> preflight_directory("/nonexistent")
        Traceback (most recent call last):
        ...
        prefect_scenario.exceptions.InvalidDatasetError: /nonexistent: not a folder
    """
    root = Path(path)
    if not root.is_dir():
        raise InvalidDatasetError(f"{root}: not a folder")
    opts = options or PreflightOptions()
    files = []
    for image in sorted(p for p in root.rglob("*") if is_image_key(p.relative_to(root).as_posix()) and p.is_file()):
        name = image.relative_to(root).as_posix()
        text = image.with_suffix(".txt")
        has_caption = opts.kind != "edit" and text.is_file()
        files.append(ImageFile(name, _local_image(image), read_caption=_local_caption(text) if has_caption else None))
    pairs: list[Pair] | None = None
    found: list[Finding] = []
    if opts.kind == "edit" and (root / PAIRS_FILE).is_file():
        data = read_bounded_text_file(root / PAIRS_FILE, MAX_PAIRS_FILE_BYTES, what="the pairs file")
        pairs, found = parse_pairs_jsonl(data, source=PAIRS_FILE)
    return preflight_files(files, pairs, options=opts, findings=found, source=str(root))


def _constant(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def _local_image(path: Path) -> Callable[[], bytes]:
    # Stat before read: a file over the limit, a device or a FIFO is refused without a read.
    return lambda: read_image_file(path)


def _local_caption(path: Path) -> Callable[[], bytes]:
    return lambda: read_bounded_text_file(path, MAX_CAPTION_FILE_BYTES, what="the caption file")


def _s3_reader(client: S3ReadListClient, bucket: str, key: str, limit: int = MAX_IMAGE_BYTES) -> Callable[[], bytes]:
    """Reads the object up to ``limit`` + 1 bytes: one that is (or grew) over the limit is refused, not held."""

    def read() -> bytes:
        body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read(limit + 1)
        if len(body) > limit:
            raise InvalidImageError(f"s3://{bucket}/{key}: over the {limit:,}-byte limit", source=key)
        return body

    return read


def _over_limit(name: str, size: int) -> Callable[[], bytes]:
    def refuse() -> bytes:
        raise InvalidImageError(f"{name}: {size / 1e6:.1f} MB, over the 20 MiB limit", source=name)

    return refuse


def preflight_s3(client: S3ReadListClient, uri: str, *, options: PreflightOptions | None = None) -> PreflightReport:
    """The preflight of an ``s3://bucket/prefix/`` dataset, read through ``client``.

    Args:
        client: A boto3 S3 client, e.g. ``boto3.client("s3")`` or an ``AwsCredentials``
            block's ``get_s3_client()``.
        uri: The dataset's prefix; images at any depth under it, named relative to it.
        options: Thresholds and the kind.

    Raises:
        InvalidDatasetError: not an ``s3://`` URI. Errors of the client (no such bucket,
            no credentials) propagate.

    Example:
        >>> import boto3  # doctest: +SKIP
        >>> preflight_s3(boto3.client("s3"), "s3://studio-assets/curated/hero/").refused  # doctest: +SKIP
        False
    """
    bucket, prefix = parse_dataset_uri(uri)
    opts = options or PreflightOptions()
    sizes = {o.key[len(prefix) :]: o.size for o in list_objects(client, bucket, prefix).objects}
    files = []
    for name in sorted(n for n, size in sizes.items() if is_image_key(n) and size > 0):
        text = caption_name(name)
        caption_limit = MAX_CAPTION_FILE_BYTES
        reader = (
            _s3_reader(client, bucket, prefix + text, caption_limit) if opts.kind != "edit" and text in sizes else None
        )
        # The listing's size is the stat: an object over the limit is refused without a GET.
        image = (
            _over_limit(name, sizes[name])
            if sizes[name] > MAX_IMAGE_BYTES
            else _s3_reader(client, bucket, prefix + name)
        )
        files.append(ImageFile(name, image, read_caption=reader))
    pairs: list[Pair] | None = None
    found: list[Finding] = []
    if opts.kind == "edit" and PAIRS_FILE in sizes:
        data = _s3_reader(client, bucket, prefix + PAIRS_FILE, MAX_PAIRS_FILE_BYTES)()
        pairs, found = parse_pairs_jsonl(data, source=PAIRS_FILE)
    return preflight_files(files, pairs, options=opts, findings=found, source=f"s3://{bucket}/{prefix}")


def preflight_images(
    sources: Sequence[str | Path | bytes],
    *,
    captions: Mapping[str, str] | None = None,
    options: PreflightOptions | None = None,
) -> PreflightReport:
    """The preflight of a standard dataset given as local paths or bytes (``train_lora``'s ``images``).

    Args:
        sources: Local paths, or image bytes (named ``image #1``, ``image #2``, ... in findings).
        captions: Captions by the path as given, its file name, or ``image #N``; an image
            not in it is captioned by the ``.txt`` beside it, if any.
        options: Thresholds and the kind (not ``edit``: use :func:`preflight_files`).

    Raises:
        InvalidInputError: an ``s3://`` URI or an asset id (use :func:`preflight_s3`), or ``kind="edit"``.

    Example:
        >>> preflight_images([b"not an image"]).findings[0].message
        'not a readable image (UnidentifiedImageError)'
    """
    opts = options or PreflightOptions()
    if opts.kind == "edit":
        raise InvalidInputError("preflight_images checks images; for pairs use preflight_files or preflight_directory")
    given = captions or {}
    files = []
    for number, source in enumerate(sources, start=1):
        if isinstance(source, bytes):
            name = f"image #{number}"
            files.append(ImageFile(name, _constant(source), caption=given.get(name)))
            continue
        if str(source).startswith(("s3://", "asset_")):
            raise InvalidInputError(f"{source}: preflight_images reads local files; for S3 use preflight_s3")
        path, name = Path(source), str(source)
        text = path.with_suffix(".txt")
        caption = given.get(name, given.get(path.name))
        reader = _local_caption(text) if caption is None and text.is_file() else None
        files.append(
            ImageFile(name, _local_image(path), caption, reader, caption_name(name) if caption is None else name)
        )
    return preflight_files(files, options=opts)
