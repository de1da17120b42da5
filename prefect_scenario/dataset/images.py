"""Training images: where they come from, and the checks they pass before anything is spent.

A source is a local path, raw bytes, an ``s3://bucket/key`` URI (read through a
prefect-aws ``AwsCredentials`` block) or an existing Scenario asset id
(``asset_…``). :func:`prepare_images` reads each one once, checks it (a readable
PNG, JPEG or WebP whose extension matches its content, not empty, not over
:data:`MAX_IMAGE_BYTES`), hashes it, and keeps it on disk rather than in memory,
so a 50 × 8 MB dataset costs disk, not RAM.

A standard image's caption is, in this order: the caller's (``captions``, keyed by the
source as given or its file name), else the UTF-8 ``<image stem>.txt`` beside it (a
local file or an S3 object), the convention of kohya_ss and ai-toolkit
(:mod:`prefect_scenario.dataset.captions`). ``caption_prefix`` (a trigger word such as
``"KAEL_07, "``) starts every caption. Edit pairs have no captions: their instruction is
what an edit LoRA learns.

Each image goes to Scenario named ``<sha256[:16]>_<file name>``: that prefix is how a
re-run recognises the images a crashed run already uploaded.

Example:
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (8, 8)).save(buffer, "PNG")
    >>> image = check_image(buffer.getvalue(), name="dot.png")
    >>> (image.mime_type, image.width)
    ('image/png', 8)
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from PIL import Image, UnidentifiedImageError

from prefect_scenario.dataset.captions import apply_caption_prefix, caption_beside, check_caption
from prefect_scenario.dataset.dhash import dhash
from prefect_scenario.exceptions import InvalidDatasetError, InvalidImageError, InvalidInputError
from prefect_scenario.validation import read_bounded

if TYPE_CHECKING:  # pragma: no cover
    from prefect_aws import AwsCredentials

__all__ = [
    "MAX_IMAGE_BYTES",
    "ImageSource",
    "PairSource",
    "PreparedImage",
    "check_image",
    "hash_from_wire_name",
    "parse_s3_uri",
    "prepare_images",
    "prepare_pairs",
    "read_image_file",
]

# Not stated by the API. 20 MiB bounds one inline upload (≈ 27 MB of base64 JSON) and
# is well above any useful training image.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_EXTENSIONS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
_OTHER_IMAGE_EXTENSIONS = {".gif", ".bmp", ".tif", ".tiff", ".heic", ".avif", ".svg"}
_WIRE_NAME = re.compile(r"^([0-9a-f]{16})_")

ImageSource = str | Path | bytes
PairSource = tuple[ImageSource, ImageSource, str]


@dataclass(frozen=True)
class PreparedImage:
    """A checked training image, or a reference to an existing asset."""

    source: str
    name: str
    sha256: str | None = None
    mime_type: str | None = None
    size: int = 0
    width: int = 0
    height: int = 0
    path: Path | None = None
    data: bytes | None = None
    asset_id: str | None = None
    caption: str | None = None
    dhash: int | None = None

    @property
    def wire_name(self) -> str:
        """The name sent to Scenario: the content hash prefix makes uploads recognisable."""
        if self.sha256 is None:
            return self.name
        return f"{self.sha256[:16]}_{self.name}"


def hash_from_wire_name(name: str | None) -> str | None:
    """The 16-hex-digit content hash prefix of a name given by :attr:`PreparedImage.wire_name`."""
    match = _WIRE_NAME.match(name or "")
    return match.group(1) if match else None


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → ``(bucket, key)``.

    Raises:
        InvalidImageError: not an S3 URI with a bucket and a key.
    """
    rest = uri[len("s3://") :] if uri.startswith("s3://") else ""
    bucket, _, key = rest.partition("/")
    if not bucket or not key:
        raise InvalidImageError(f"{uri!r} is not an s3://bucket/key URI", source=uri)
    return bucket, key


def check_image(data: bytes, *, name: str, source: str | None = None) -> PreparedImage:
    """Check that ``data`` is a usable training image and describe it.

    Raises:
        InvalidImageError: empty, too large, not an image, an unsupported format,
            truncated or corrupt, or an extension that does not match the content.
    """
    where = source or name
    if not data:
        raise InvalidImageError(f"{where}: the file is empty (0 bytes)", source=where)
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidImageError(
            f"{where}: {len(data) / 1e6:.1f} MB is over the {MAX_IMAGE_BYTES // (1024 * 1024)} MiB limit per image",
            source=where,
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                image_format = probe.format or ""
                width, height = probe.size
                probe.verify()
            # verify() misses truncated pixel data; decoding it does not.
            with Image.open(io.BytesIO(data)) as full:
                full.load()
                bits = dhash(full)
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImageError(f"{where}: not a readable image ({type(exc).__name__})", source=where) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"{where}: the image is truncated or corrupt ({exc})", source=where) from None
    if image_format not in _FORMATS:
        raise InvalidImageError(
            f"{where}: {image_format or 'unknown'} images are not supported; use PNG, JPEG or WebP", source=where
        )
    suffix = PurePosixPath(name).suffix.lower()
    expected = _EXTENSIONS.get(suffix)
    if (expected and expected != image_format) or suffix in _OTHER_IMAGE_EXTENSIONS or (suffix and not expected):
        raise InvalidImageError(
            f"{where}: the extension {suffix!r} does not match its {image_format} content", source=where
        )
    return PreparedImage(
        source=where,
        name=PurePosixPath(name).name or "image",
        sha256=hashlib.sha256(data).hexdigest(),
        mime_type=_FORMATS[image_format],
        size=len(data),
        width=width,
        height=height,
        dhash=bits,
    )


def _describe(source: ImageSource, index: int) -> str:
    if isinstance(source, bytes):
        return f"image #{index + 1} (bytes)"
    return str(source)


def _is_asset_id(source: ImageSource) -> bool:
    return isinstance(source, str) and source.startswith("asset_") and "/" not in source


def _given_caption(captions: Mapping[str, str], image: PreparedImage) -> str | None:
    for key in (image.source, image.name):
        if key in captions:
            return check_caption(captions[key], source=f"the caption of {key}")
    return None


async def _load_one(
    source: ImageSource,
    index: int,
    *,
    workdir: Path,
    aws_credentials: AwsCredentials | None,
    s3_client: Any,
    captions: Mapping[str, str] | None = None,
) -> PreparedImage:
    """The checked image; with ``captions`` (standard images), its caption too."""
    image = await _load_image(source, index, workdir=workdir, s3_client=s3_client)
    if captions is None:
        return image
    caption = _given_caption(captions, image)
    if caption is None and image.asset_id is None:
        caption = await asyncio.to_thread(caption_beside, source, s3_client)
    return replace(image, caption=caption)


async def _load_image(source: ImageSource, index: int, *, workdir: Path, s3_client: Any) -> PreparedImage:
    where = _describe(source, index)
    if isinstance(source, bytes):
        image = check_image(source, name=f"image-{index + 1:03d}", source=where)
        extension = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}[image.mime_type or "image/png"]
        return replace(image, name=image.name + extension, data=source)
    if _is_asset_id(source):
        assert isinstance(source, str)
        return PreparedImage(source=source, name=source, asset_id=source)
    if isinstance(source, str) and source.startswith("s3://"):
        bucket, key = parse_s3_uri(source)
        if s3_client is None:
            raise InvalidImageError(f"{source}: reading from S3 needs an AwsCredentials block", source=source)
        staged = workdir / f"{index:05d}{PurePosixPath(key).suffix.lower()}"
        await asyncio.to_thread(_download, s3_client, bucket, key, staged, source)
        try:
            data = read_bounded(staged, MAX_IMAGE_BYTES, what="the image")
        except InvalidInputError as exc:
            raise InvalidImageError(f"{source}: {str(exc).removeprefix(f'{staged}: ')}", source=source) from None
        image = check_image(data, name=PurePosixPath(key).name, source=source)
        return replace(image, path=staged)
    path = Path(source)
    data = await asyncio.to_thread(_read_local, path)
    return replace(check_image(data, name=path.name, source=str(path)), path=path)


def _read_local(path: Path) -> bytes:
    """The file's bytes: stat first, so a file over the limit, a device or a FIFO is refused unread."""
    return read_image_file(path)


def read_image_file(path: str | Path) -> bytes:
    """The bytes of a local image file, read only if it is a regular file within :data:`MAX_IMAGE_BYTES`.

    Raises:
        InvalidImageError: no such file, not a regular file, or over the limit (nothing read).
    """
    try:
        return read_bounded(path, MAX_IMAGE_BYTES, what="the image")
    except InvalidInputError as exc:
        raise InvalidImageError(str(exc), source=str(path)) from None


def _download(s3_client: Any, bucket: str, key: str, target: Path, uri: str) -> None:
    from botocore.exceptions import ClientError

    try:
        head = s3_client.head_object(Bucket=bucket, Key=key)
        if int(head.get("ContentLength", 0)) > MAX_IMAGE_BYTES:
            raise InvalidImageError(f"{uri}: over the {MAX_IMAGE_BYTES // (1024 * 1024)} MiB limit", source=uri)
        with target.open("wb") as handle:
            s3_client.download_fileobj(bucket, key, handle)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise InvalidImageError(f"{uri}: cannot read it from S3 ({code})", source=uri) from None


async def prepare_images(
    sources: Sequence[ImageSource],
    *,
    aws_credentials: AwsCredentials | None = None,
    workdir: Path | None = None,
    concurrency: int = 4,
    captions: Mapping[str, str] | None = None,
    caption_prefix: str | None = None,
) -> list[PreparedImage]:
    """Read and check every source and its caption; refuse exact duplicates.

    S3 objects are staged in ``workdir`` (a temporary directory the caller keeps
    until the upload is done); nothing but file names stays in memory.

    Args:
        sources: Paths, bytes, ``s3://`` URIs or asset ids.
        aws_credentials: For ``s3://`` sources (and their ``.txt`` captions).
        workdir: Where S3 objects are staged.
        concurrency: Sources read at once.
        captions: Captions by source (as given) or file name; they win over ``.txt`` files.
        caption_prefix: Put at the start of every caption (a trigger word).

    Raises:
        InvalidImageError: a source is not a usable image.
        InvalidDatasetError: two sources hold the same image; a caption is not UTF-8,
            empty or too long; ``captions`` names no given image.
    """
    given = dict(captions or {})
    images = await prepare_images_allowing_reuse(
        sources, aws_credentials=aws_credentials, workdir=workdir, concurrency=concurrency, captions=given
    )
    refuse_duplicates(images)
    unknown = sorted(set(given) - {key for i in images for key in (i.source, i.name)})
    if unknown:
        raise InvalidDatasetError(f"captions are given for images that are not in the dataset: {', '.join(unknown)}")
    return [
        replace(i, caption=apply_caption_prefix(i.caption, caption_prefix, source=f"the caption of {i.source}"))
        if i.caption is not None
        else i
        for i in images
    ]


def refuse_duplicates(images: Iterable[PreparedImage]) -> None:
    """Raise when two images have the same content (or the same asset id)."""
    seen: dict[str, str] = {}
    for image in images:
        identity = image.sha256 or image.asset_id or image.source
        if identity in seen:
            raise InvalidDatasetError(f"{image.source} is the same image as {seen[identity]}: remove one of them")
        seen[identity] = image.source


@dataclass(frozen=True)
class PreparedPair:
    before: PreparedImage
    after: PreparedImage
    instruction: str


async def prepare_pairs(
    pairs: Sequence[PairSource | dict[str, Any]],
    *,
    aws_credentials: AwsCredentials | None = None,
    workdir: Path | None = None,
    concurrency: int = 4,
) -> list[PreparedPair]:
    """Check before/after pairs: both images usable, an instruction, no pair given twice.

    A pair is ``(before, after, instruction)`` or a mapping with those keys.

    Raises:
        InvalidDatasetError: a malformed pair, an empty instruction, a repeated pair.
        InvalidImageError: an image is not usable.
    """
    triples: list[tuple[ImageSource, ImageSource, str]] = []
    for number, pair in enumerate(pairs, start=1):
        if isinstance(pair, dict):
            try:
                triple = (pair["before"], pair["after"], pair["instruction"])
            except KeyError as exc:
                raise InvalidDatasetError(f"pair #{number} has no {exc.args[0]!r}") from None
        elif isinstance(pair, list | tuple) and len(pair) == 3:
            triple = (pair[0], pair[1], pair[2])
        else:
            raise InvalidDatasetError(f"pair #{number} must be (before, after, instruction)")
        if not isinstance(triple[2], str) or not triple[2].strip():
            raise InvalidDatasetError(f"pair #{number} needs a non-empty instruction")
        triples.append(triple)
    flat: list[ImageSource] = [image for before, after, _ in triples for image in (before, after)]
    images = await prepare_images_allowing_reuse(
        flat, aws_credentials=aws_credentials, workdir=workdir, concurrency=concurrency
    )
    prepared = [PreparedPair(images[2 * i], images[2 * i + 1], triples[i][2].strip()) for i in range(len(triples))]
    seen: set[tuple[str | None, str | None]] = set()
    for number, checked in enumerate(prepared, start=1):
        key = (checked.before.sha256 or checked.before.asset_id, checked.after.sha256 or checked.after.asset_id)
        if key[0] == key[1]:
            raise InvalidDatasetError(f"pair #{number}: the before and after images are the same image")
        if key in seen:
            raise InvalidDatasetError(f"pair #{number} repeats an earlier pair")
        seen.add(key)
    return prepared


async def prepare_images_allowing_reuse(
    sources: Sequence[ImageSource],
    *,
    aws_credentials: AwsCredentials | None = None,
    workdir: Path | None = None,
    concurrency: int = 4,
    captions: Mapping[str, str] | None = None,
) -> list[PreparedImage]:
    """Like :func:`prepare_images`, but one image may appear in several pairs.

    Captions are read only when ``captions`` is given (an empty mapping reads the ``.txt`` files).
    """
    workdir = workdir or Path(tempfile.mkdtemp(prefix="prefect-scenario-"))
    needs_s3 = any(isinstance(s, str) and s.startswith("s3://") for s in sources)
    s3_client = aws_credentials.get_s3_client() if (needs_s3 and aws_credentials is not None) else None
    limit = asyncio.Semaphore(max(1, concurrency))

    async def load(index: int, source: ImageSource) -> PreparedImage:
        async with limit:
            return await _load_one(
                source, index, workdir=workdir, aws_credentials=aws_credentials, s3_client=s3_client, captions=captions
            )

    return list(await asyncio.gather(*(load(i, s) for i, s in enumerate(sources))))
