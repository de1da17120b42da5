"""The S3 dataset convention: which keys form a dataset, what it holds, how it is described.

A dataset is an S3 prefix holding training images and, optionally, a sidecar::

    s3://studio-assets/curated/                 <- root prefix watched by the sensor
    ├── hero-character/                         <- one dataset per immediate sub-prefix
    │   ├── scenario.yaml                       <- optional sidecar: type, name, parameters, pairs
    │   ├── 01.png
    │   └── poses/02.webp                       <- deeper keys belong to the same dataset
    └── product-shots/
        ├── scenario.json
        ├── pairs.jsonl                         <- optional pairs for edit types, one JSON a line
        ├── before/01.jpg
        └── after/01.jpg

Images directly under the root form one more dataset, the root itself. An image is a
non-empty object whose name ends in ``.png``, ``.jpg``, ``.jpeg`` or ``.webp`` (any
case) and whose file name does not start with ``.`` (``._01.png`` is macOS metadata,
not an image). A ``.txt`` with an image's stem is that image's caption (``01.txt``
captions ``01.png``: the kohya_ss and ai-toolkit convention): it is content too, so a new
or edited caption changes the dataset, but it is never an image. Everything else
(``notes.txt`` beside no ``notes.png``) is ignored.

The sidecar's format is described in :mod:`prefect_scenario.retraining.sidecar`.

A :class:`Manifest` is the sorted list of a dataset's tracked objects (key, ETag, size)
with a :attr:`Manifest.digest` over keys and ETags: the identity of "this content".

Example:
    >>> images = group_datasets(
    ...     "curated/",
    ...     [S3Object("curated/hero/01.png", "e1", 10), S3Object("curated/hero/notes.txt", "e2", 5)],
    ... )
    >>> list(images), images["curated/hero/"].image_count
    (['curated/hero/'], 1)
"""

from __future__ import annotations

import hashlib
import itertools
import json
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from prefect_scenario.exceptions import InvalidDatasetError

__all__ = [
    "IMAGE_EXTENSIONS",
    "PAIRS_FILE",
    "SIDECAR_FILES",
    "SIDECAR_NAMES",
    "Manifest",
    "S3Object",
    "check_dataset_name",
    "dataset_uri",
    "group_datasets",
    "is_candidate",
    "is_image_key",
    "is_tracked",
    "keep_captions_of_images",
    "normalize_etag",
    "normalize_prefix",
    "parse_dataset_uri",
    "split_key",
    "unsafe_segment",
]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp"})
SIDECAR_NAMES = ("scenario.json", "scenario.yaml", "scenario.yml")
PAIRS_FILE = "pairs.jsonl"
SIDECAR_FILES = frozenset({*SIDECAR_NAMES, PAIRS_FILE})


# -- keys, prefixes, URIs -------------------------------------------------------------


def normalize_prefix(prefix: str) -> str:
    """A prefix as the convention spells it: no leading ``/``, one trailing ``/``, or empty.

    Example:
        >>> normalize_prefix("/curated"), normalize_prefix("curated/hero/"), normalize_prefix("")
        ('curated/', 'curated/hero/', '')
    """
    prefix = prefix.lstrip("/")
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def normalize_etag(etag: str) -> str:
    """An ETag without its quotes: listings quote it, event notifications do not."""
    return etag.strip().strip('"')


def dataset_uri(bucket: str, prefix: str) -> str:
    """``s3://bucket/prefix`` for a dataset prefix.

    Example:
        >>> dataset_uri("studio-assets", "curated/hero")
        's3://studio-assets/curated/hero/'
    """
    return f"s3://{bucket}/{normalize_prefix(prefix)}"


def parse_dataset_uri(uri: str) -> tuple[str, str]:
    """``(bucket, prefix)`` of an ``s3://bucket/prefix/`` URI; the prefix is normalised.

    Raises:
        InvalidDatasetError: ``uri`` is not an ``s3://`` URI with a bucket.

    Example:
        >>> parse_dataset_uri("s3://studio-assets/curated/hero")
        ('studio-assets', 'curated/hero/')
    """
    if not uri.startswith("s3://"):
        raise InvalidDatasetError(f"{uri!r} is not an S3 URI: expected s3://bucket/prefix/")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise InvalidDatasetError(f"{uri!r} has no bucket: expected s3://bucket/prefix/")
    return bucket, normalize_prefix(prefix)


def split_key(root: str, key: str) -> tuple[str, str] | None:
    """``(dataset prefix, name inside the dataset)`` of ``key`` under ``root``, else None.

    One dataset per immediate sub-prefix of the root; keys directly under the root
    belong to the root itself.

    Example:
        >>> split_key("curated/", "curated/hero/poses/01.png")
        ('curated/hero/', 'poses/01.png')
        >>> split_key("curated/", "curated/01.png")
        ('curated/', '01.png')
        >>> split_key("curated/", "elsewhere/01.png") is None
        True
    """
    if not key.startswith(root) or len(key) == len(root):
        return None
    rest = key[len(root) :]
    head, slash, name = rest.partition("/")
    if slash:
        return f"{root}{head}/", name
    return root, rest


def unsafe_segment(key: str) -> str | None:
    """The first segment of ``key`` that would make it a path rather than a name: ``..``, ``.`` or empty.

    A dataset is a name under its root; ``curated/../x`` or ``curated//x`` would name another
    place, or none, once a tool joins it as a path.

    Example:
        >>> unsafe_segment("curated/hero/01.png"), unsafe_segment("curated/../01.png"), unsafe_segment("a//b.png")
        (None, '..', '')
    """
    return next((part for part in key.split("/") if part in ("", ".", "..")), None)


def check_dataset_name(uri: str) -> str:
    """``uri`` if its prefix is a name: no ``..``, ``.`` or empty segment.

    Raises:
        InvalidDatasetError: not an ``s3://`` URI, or a prefix that is a path.
    """
    _, prefix = parse_dataset_uri(uri)
    if prefix and unsafe_segment(prefix.removesuffix("/")) is not None:
        raise InvalidDatasetError(f"{uri!r}: a dataset is a name; '..', '.' and empty segments are refused")
    return uri


def is_image_key(key: str) -> bool:
    """Whether ``key`` names a training image by its extension (hidden files excluded).

    Example:
        >>> is_image_key("hero/01.PNG"), is_image_key("hero/._01.png"), is_image_key("hero/notes.txt")
        (True, False, False)
    """
    base = posixpath.basename(key)
    if not base or base.startswith("."):
        return False
    return posixpath.splitext(base)[1].lower() in IMAGE_EXTENSIONS


def _caption_of(image_key: str) -> str:
    return posixpath.splitext(image_key)[0] + ".txt"


def keep_captions_of_images(names: Iterable[str]) -> set[str]:
    """The names that count: images and sidecars as given, and the ``.txt`` of an image among them.

    :func:`is_tracked` cannot tell a caption from a note by its name alone, so the callers
    gather the candidates (``is_tracked`` or ``.txt``) and keep those this returns.

    Example:
        >>> sorted(keep_captions_of_images(["01.png", "01.txt", "notes.txt", "scenario.json"]))
        ['01.png', '01.txt', 'scenario.json']
    """
    given = set(names)
    captions = {_caption_of(n) for n in given if is_image_key(n)}
    return {n for n in given if not n.lower().endswith(".txt") or n in captions}


def is_candidate(name: str, size: int | None, *, ignore_sidecar_edits: bool = False) -> bool:
    """:func:`is_tracked`, or a non-empty ``.txt`` that may caption an image (see :func:`keep_captions_of_images`).

    Example:
        >>> is_candidate("01.txt", 9), is_candidate("._01.txt", 9), is_candidate("01.txt", 0)
        (True, False, False)
    """
    if is_tracked(name, size, ignore_sidecar_edits=ignore_sidecar_edits):
        return True
    base = posixpath.basename(name)
    return (size is None or size > 0) and not base.startswith(".") and base.lower().endswith(".txt")


def is_tracked(name: str, size: int | None, *, ignore_sidecar_edits: bool = False) -> bool:
    """Whether an object named ``name`` inside a dataset counts as the dataset's content.

    Images count unless empty. The sidecar files at the dataset's top level count too
    (an edited training type or parameter set is a reason to retrain), unless
    ``ignore_sidecar_edits``. Zero-byte objects (folder markers, uploads in progress
    from some tools) never count. A ``size`` of None means unknown and is trusted.

    Example:
        >>> is_tracked("01.png", 10), is_tracked("01.png", 0), is_tracked("scenario.json", 10)
        (True, False, True)
        >>> is_tracked("scenario.json", 10, ignore_sidecar_edits=True)
        False
    """
    if size is not None and size <= 0:
        return False
    if name in SIDECAR_FILES:
        return not ignore_sidecar_edits
    return is_image_key(name)


# -- manifests ----------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class S3Object:
    """One object: its full key, its ETag (unquoted) and its size in bytes."""

    key: str
    etag: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """The tracked objects of one dataset, sorted by key, with a stable digest.

    The digest covers keys and ETags (a size change always changes the ETag), so two
    listings of the same content give the same digest whatever their order or source.

    Example:
        >>> m = Manifest((S3Object("d/b.png", "e2", 2), S3Object("d/a.png", "e1", 1)))
        >>> [o.key for o in m.entries], m.digest == Manifest.from_json(m.to_json()).digest
        (['d/a.png', 'd/b.png'], True)
    """

    entries: tuple[S3Object, ...] = field(default=())

    def __post_init__(self) -> None:
        entries = tuple(sorted(self.entries, key=lambda o: o.key))
        for before, after in itertools.pairwise(entries):
            if before.key == after.key:
                raise ValueError(f"a manifest lists each key once; {before.key!r} appears twice")
        object.__setattr__(self, "entries", entries)

    @cached_property
    def digest(self) -> str:
        """SHA-256 (hex) of the canonical JSON of ``[[key, etag], ...]``."""
        canonical = json.dumps([[o.key, o.etag] for o in self.entries], separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def images(self) -> tuple[S3Object, ...]:
        """The image entries (the sidecar files, when tracked, are not images)."""
        return tuple(o for o in self.entries if is_image_key(o.key))

    @property
    def image_count(self) -> int:
        """How many training images the dataset holds."""
        return sum(1 for o in self.entries if is_image_key(o.key))

    @property
    def keys(self) -> tuple[str, ...]:
        """All keys, sorted."""
        return tuple(o.key for o in self.entries)

    @property
    def total_size(self) -> int:
        """Bytes across all entries."""
        return sum(o.size for o in self.entries)

    def without_sidecars(self, prefix: str) -> Manifest:
        """This manifest without the sidecar files at the top of the dataset at ``prefix``.

        What the content is when sidecar edits are not activity (``ignore_sidecar_edits``).

        Example:
            >>> m = Manifest((S3Object("d/1.png", "e1", 1), S3Object("d/scenario.json", "e2", 1)))
            >>> m.without_sidecars("d").keys
            ('d/1.png',)
        """
        prefix = normalize_prefix(prefix)
        kept = (o for o in self.entries if not (o.key.startswith(prefix) and o.key[len(prefix) :] in SIDECAR_FILES))
        return Manifest(tuple(kept))

    def to_json(self) -> list[list[Any]]:
        """``[[key, etag, size], ...]``: compact, JSON-serialisable, for flow parameters."""
        return [[o.key, o.etag, o.size] for o in self.entries]

    @classmethod
    def from_json(cls, data: Iterable[Iterable[Any]]) -> Manifest:
        """The inverse of :meth:`to_json`."""
        entries = []
        for row in data:
            key, etag, size = row
            entries.append(S3Object(str(key), str(etag), int(size)))
        return cls(tuple(entries))


def group_datasets(
    root: str, objects: Iterable[S3Object], *, ignore_sidecar_edits: bool = False
) -> dict[str, Manifest]:
    """Group the objects under ``root`` into datasets: ``{dataset prefix: manifest}``.

    Only tracked objects (see :func:`is_tracked`) are kept; a dataset with none is left
    out. Keys outside ``root`` are ignored.

    Example:
        >>> sorted(group_datasets("c/", [S3Object("c/a/1.png", "e", 1), S3Object("c/2.jpg", "f", 1)]))
        ['c/', 'c/a/']
    """
    root = normalize_prefix(root)
    grouped: dict[str, dict[str, S3Object]] = {}
    for obj in objects:
        split = split_key(root, obj.key)
        if split is None:
            continue
        prefix, name = split
        if is_candidate(name, obj.size, ignore_sidecar_edits=ignore_sidecar_edits):
            grouped.setdefault(prefix, {})[name] = obj
    manifests = {}
    for prefix, objs in sorted(grouped.items()):
        kept = keep_captions_of_images(objs)
        if kept:
            manifests[prefix] = Manifest(tuple(objs[n] for n in sorted(kept)))
    return manifests
