"""A dataset preflight: stop a weak dataset locally, before a request is sent or a credit spent.

The decisions are pure functions of *measurements* (an image's name, width, height,
content digest, 64-bit dHash and caption); :func:`evaluate` runs them all and returns a
:class:`PreflightReport`. The I/O around them (reading local files, bytes or S3, one
image at a time, and measuring it) is :mod:`prefect_scenario.dataset.measure`.

Checks (severity in brackets; ``strict=True`` turns every warning into a refusal):

- ``readable``: not a PNG, JPEG or WebP that decodes [refuse].
- ``resolution``: a side below ``min_side`` (256 px) [refuse]; below 1024 px [warn].
- ``duplicate``: byte-identical images [refuse]; dHashes at most ``near_duplicate_threshold``
  (6 of 64) bits apart [warn]. Edit pairs: a pair given twice, or before = after [refuse].
- ``aspect``: an aspect ratio more than ``aspect_outlier_factor`` (2×) from the median [warn].
- ``caption``: a bad caption file [refuse]; some images captioned, others not [warn];
  none captioned [info]; ``caption_prefix``'s trigger word missing from a caption [warn].
- ``instruction``: an edit pair with an empty instruction [refuse].
- ``size``: outside the catalog's limits [refuse]; outside the advice [warn]: 5–15
  images (``kind="standard"``), 10–20 (``kind="style"``), 5–15 pairs (``kind="edit"``).

The kind is the caller's: a training type says whether a LoRA takes pairs, not whether
it is for a style, so ``kind`` defaults from the type (``edit`` or ``standard``) and
``style`` must be asked for.

Example:
    >>> images = [ImageMeasurement(f"{i}.png", 1024, 1024, digest=str(i), dhash=0xFF << 8 * i) for i in range(8)]
    >>> summarize(evaluate(images, options=PreflightOptions(kind="style")))
    'preflight passed with warnings: 8 images (style): 0 refused, 1 warning, 1 note'
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from prefect_scenario.catalog import EDIT_MAX_PAIRS, EDIT_MIN_PAIRS, MAX_IMAGES, MIN_IMAGES, get_training_type
from prefect_scenario.exceptions import DatasetPreflightError, InvalidInputError

__all__ = [
    "KINDS",
    "RECOMMENDED",
    "RECOMMENDED_SIDE",
    "Finding",
    "ImageMeasurement",
    "Kind",
    "PairMeasurement",
    "PreflightOptions",
    "PreflightReport",
    "Severity",
    "check_aspect_ratios",
    "check_captions",
    "check_duplicates",
    "check_instructions",
    "check_pair_duplicates",
    "check_resolution",
    "check_size",
    "evaluate",
    "raise_for_refusals",
    "render_text",
    "report_rows",
    "resolve_kind",
    "summarize",
]

Severity = Literal["refuse", "warn", "info"]
Kind = Literal["standard", "style", "edit"]
KINDS: tuple[Kind, ...] = ("standard", "style", "edit")
# Scenario's dataset advice (scenario-labs/skills, dataset-curation.md): images, or pairs for edit.
RECOMMENDED: Mapping[Kind, tuple[int, int]] = {"standard": (5, 15), "style": (10, 20), "edit": (5, 15)}
RECOMMENDED_SIDE = 1024  # the same advice, and the API's own warning "Width and height must be larger than 1024"
_ORDER = {"refuse": 0, "warn": 1, "info": 2}


@dataclass(frozen=True)
class Finding:
    """One thing the preflight noticed: how bad, which check, which file, what to do."""

    severity: Severity
    check: str
    message: str
    file: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        """Plain values, for an error that pickles and a table artifact."""
        return {"severity": self.severity, "check": self.check, "file": self.file, "message": self.message}


@dataclass(frozen=True)
class ImageMeasurement:
    """What the checks need to know about one image; ``digest`` is its content's SHA-256."""

    name: str
    width: int
    height: int
    digest: str
    dhash: int
    caption: str | None = None


@dataclass(frozen=True)
class PairMeasurement:
    """One before/after pair of an edit dataset."""

    before: ImageMeasurement
    after: ImageMeasurement
    instruction: str


@dataclass(frozen=True)
class PreflightOptions:
    """The preflight's thresholds; the defaults follow Scenario's dataset advice."""

    kind: Kind = "standard"
    min_side: int = 256
    recommended_side: int = RECOMMENDED_SIDE
    near_duplicate_threshold: int = 6
    aspect_outlier_factor: float = 2.0
    caption_prefix: str | None = None
    strict: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInputError(f"kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if self.min_side < 1 or self.recommended_side < 1:
            raise InvalidInputError(f"min_side must be at least 1 px; got {self.min_side}")
        if not 0 <= self.near_duplicate_threshold <= 64:
            raise InvalidInputError(f"near_duplicate_threshold is 0–64 bits; got {self.near_duplicate_threshold}")
        if not self.aspect_outlier_factor > 1:
            raise InvalidInputError(f"aspect_outlier_factor must be above 1; got {self.aspect_outlier_factor}")


@dataclass(frozen=True)
class PreflightReport:
    """Every finding, most severe first, and what was checked."""

    findings: tuple[Finding, ...]
    kind: Kind
    images: int
    pairs: int = 0
    strict: bool = False
    source: str = ""

    def count(self, severity: Severity) -> int:
        """How many findings have this severity."""
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def refused(self) -> bool:
        """Whether the dataset must not be trained as it is."""
        return self.count("refuse") > 0


# -- the pure checks ----------------------------------------------------------------------


def check_resolution(images: Iterable[ImageMeasurement], *, min_side: int, recommended_side: int) -> list[Finding]:
    """A side under ``min_side`` refuses; under ``recommended_side`` warns."""
    findings = []
    for image in images:
        size, side = f"{image.width}×{image.height} px", min(image.width, image.height)
        if side < min_side:
            findings.append(Finding("refuse", "resolution", f"{size}: below the {min_side} px floor", image.name))
        elif side < recommended_side:
            message = f"{size}: under {recommended_side} px on a side (Scenario advises at least {recommended_side})"
            findings.append(Finding("warn", "resolution", message, image.name))
    return findings


def check_duplicates(images: Sequence[ImageMeasurement], *, threshold: int) -> list[Finding]:
    """Byte-identical images refuse; dHashes within ``threshold`` bits warn (each image once)."""
    findings: list[Finding] = []
    for index, image in enumerate(images):
        for earlier in images[:index]:
            if image.digest == earlier.digest:
                findings.append(Finding("refuse", "duplicate", f"the same file as {earlier.name}", image.name))
                break
            distance = (image.dhash ^ earlier.dhash).bit_count()
            if distance <= threshold:
                message = f"looks like {earlier.name} ({distance} of 64 hash bits differ): keep the better one"
                findings.append(Finding("warn", "duplicate", message, image.name))
                break
    return findings


def check_pair_duplicates(pairs: Sequence[PairMeasurement]) -> list[Finding]:
    """A pair whose before and after are the same file, or a pair given twice, refuses."""
    findings, seen = [], set()
    for pair in pairs:
        where = f"{pair.before.name} → {pair.after.name}"
        if pair.before.digest == pair.after.digest:
            findings.append(Finding("refuse", "duplicate", "the before and after images are the same file", where))
        elif (pair.before.digest, pair.after.digest) in seen:
            findings.append(Finding("refuse", "duplicate", "repeats an earlier pair", where))
        seen.add((pair.before.digest, pair.after.digest))
    return findings


def check_aspect_ratios(images: Sequence[ImageMeasurement], *, factor: float) -> list[Finding]:
    """An aspect ratio more than ``factor`` times away from the dataset's median warns."""
    if len(images) < 3:
        return []  # with two images there is no "typical" shape to stand out from
    logs = [math.log(i.width / i.height) for i in images if i.width and i.height]
    typical = statistics.median(logs)
    findings = []
    for image in images:
        ratio = math.log(image.width / image.height) if image.width and image.height else typical
        if abs(ratio - typical) > math.log(factor):
            message = (
                f"aspect ratio {image.width / image.height:.2f} is far from the dataset's {math.exp(typical):.2f}: "
                "crop it to match, or it trains on its own"
            )
            findings.append(Finding("warn", "aspect", message, image.name))
    return findings


def _trigger(caption_prefix: str | None) -> str:
    return (caption_prefix or "").strip().rstrip(",;:").strip()


def check_captions(images: Sequence[ImageMeasurement], *, caption_prefix: str | None = None) -> list[Finding]:
    """Captions all or none, and the trigger word of ``caption_prefix`` in each caption."""
    captioned = sum(1 for i in images if i.caption is not None)
    if images and not captioned:
        message = "no captions: Scenario captions every image itself (automaticCaptioning)"
        return [Finding("info", "caption", message)]
    findings = []
    trigger = _trigger(caption_prefix)
    for image in images:
        if image.caption is None:
            message = f"no caption while {captioned} of {len(images)} images have one: caption all or none"
            findings.append(Finding("warn", "caption", message, image.name))
        elif trigger and trigger not in image.caption:
            findings.append(Finding("warn", "caption", f"the trigger word {trigger!r} is missing", image.name))
    return findings


def check_instructions(pairs: Iterable[PairMeasurement]) -> list[Finding]:
    """An edit pair without an instruction refuses: the instruction is what an edit LoRA learns."""
    return [
        Finding("refuse", "instruction", "the pair has an empty instruction", f"{p.before.name} → {p.after.name}")
        for p in pairs
        if not p.instruction.strip()
    ]


def check_size(count: int, *, kind: Kind) -> list[Finding]:
    """Outside the catalog's limits refuses; outside Scenario's advice for ``kind`` warns."""
    noun = "pairs" if kind == "edit" else "images"
    lowest, highest = (EDIT_MIN_PAIRS, EDIT_MAX_PAIRS) if kind == "edit" else (MIN_IMAGES, MAX_IMAGES)
    low, high = RECOMMENDED[kind]
    if not lowest <= count <= highest:
        return [Finding("refuse", "size", f"{count} {noun}: a training takes {lowest}–{highest}")]
    if not low <= count <= high:
        return [Finding("warn", "size", f"{count} {noun}: {low}–{high} are advised for a {kind} LoRA")]
    return []


def evaluate(
    images: Sequence[ImageMeasurement],
    pairs: Sequence[PairMeasurement] = (),
    *,
    options: PreflightOptions | None = None,
    findings: Iterable[Finding] = (),
    source: str = "",
) -> PreflightReport:
    """Run every check on the measurements; pure.

    Args:
        images: The measured images (for ``kind="edit"``: every image the pairs use).
        pairs: The measured pairs, for ``kind="edit"``.
        options: Thresholds and the dataset's kind; the defaults if None.
        findings: Findings the measuring already made (unreadable files, bad captions).
        source: What was checked, for the report's title.

    Returns:
        The report, most severe findings first; with ``strict``, warnings are refusals.

    Example:
        >>> small = ImageMeasurement("a.png", 200, 200, digest="d", dhash=0)
        >>> [f.message for f in evaluate([small]).findings][:1]
        ['200×200 px: below the 256 px floor']
    """
    opts = options or PreflightOptions()
    found = [*findings]
    found += check_resolution(images, min_side=opts.min_side, recommended_side=opts.recommended_side)
    found += check_aspect_ratios(images, factor=opts.aspect_outlier_factor)
    if opts.kind == "edit":
        found += check_pair_duplicates(pairs) + check_instructions(pairs) + check_size(len(pairs), kind="edit")
    else:
        found += check_duplicates(images, threshold=opts.near_duplicate_threshold)
        found += check_captions(images, caption_prefix=opts.caption_prefix)
        found += check_size(len(images), kind=opts.kind)
    if opts.strict:
        found = [replace(f, severity="refuse") if f.severity == "warn" else f for f in found]
    found.sort(key=lambda f: _ORDER[f.severity])
    return PreflightReport(tuple(found), opts.kind, len(images), len(pairs), opts.strict, source)


def resolve_kind(kind: str | None = None, training_type: str | None = None) -> Kind:
    """The dataset kind from the caller's ``kind`` and the training type.

    Raises:
        InvalidInputError: an unknown kind or type, or a kind that contradicts the type.

    Example:
        >>> resolve_kind(None, "qwen-image-edit-2511-lora"), resolve_kind("style", "flux.2-dev-lora")
        ('edit', 'style')
    """
    edit = get_training_type(training_type).edit if training_type else None
    chosen = kind or ("edit" if edit else "standard")
    if chosen not in KINDS:
        raise InvalidInputError(f"kind must be one of {', '.join(KINDS)}; got {chosen!r}")
    if edit is not None and edit != (chosen == "edit"):
        raise InvalidInputError(f"kind {chosen!r} does not fit the training type {training_type!r}")
    return chosen


# -- showing a report ---------------------------------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summarize(report: PreflightReport) -> str:
    """One line for a log.

    Example:
        >>> summarize(PreflightReport((), "standard", 8))
        'preflight passed: 8 images (standard): 0 refused, 0 warnings, 0 notes'
    """
    verdict = "refused" if report.refused else "passed with warnings" if report.count("warn") else "passed"
    what = _plural(report.pairs, "pair") if report.kind == "edit" else _plural(report.images, "image")
    counts = f"{report.count('refuse')} refused, {_plural(report.count('warn'), 'warning')}"
    return f"preflight {verdict}: {what} ({report.kind}): {counts}, {_plural(report.count('info'), 'note')}"


def report_rows(report: PreflightReport) -> list[dict[str, str]]:
    """The findings as rows for ``prefect.artifacts.create_table_artifact``.

    Example:
        >>> report_rows(PreflightReport((Finding("warn", "size", "3 images"),), "standard", 3))
        [{'severity': 'warn', 'check': 'size', 'file': '', 'message': '3 images'}]
    """
    return [{key: value or "" for key, value in f.as_dict().items()} for f in report.findings]


def render_text(report: PreflightReport) -> str:
    """The report as a plain-text table and its summary line, for a terminal.

    Example:
        >>> print(render_text(PreflightReport((Finding("warn", "size", "3 images"),), "standard", 3)))
        severity  check  file  message
        warn      size         3 images
        preflight passed with warnings: 3 images (standard): 0 refused, 1 warning, 0 notes
    """
    rows = report_rows(report)
    if not rows:
        return summarize(report)
    columns = ("severity", "check", "file", "message")
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns[:-1]}
    lines = ["  ".join(c.ljust(widths.get(c, 0)) for c in columns).rstrip()]
    lines += ["  ".join(r[c].ljust(widths.get(c, 0)) for c in columns).rstrip() for r in rows]
    return "\n".join([*lines, summarize(report)])


def raise_for_refusals(report: PreflightReport) -> PreflightReport:
    """Return the report, or raise when it refuses the dataset.

    Raises:
        DatasetPreflightError: at least one refusal; the error carries every finding.

    Example:
        >>> raise_for_refusals(PreflightReport((), "standard", 5)).refused
        False
    """
    refusals = [f for f in report.findings if f.severity == "refuse"]
    if not refusals:
        return report
    shown = "; ".join(f"{f.file + ': ' if f.file else ''}{f.message}" for f in refusals[:3])
    more = f" (and {len(refusals) - 3} more)" if len(refusals) > 3 else ""
    raise DatasetPreflightError(
        f"{report.source or 'the dataset'}: {_plural(len(refusals), 'refusal')}: {shown}{more}",
        findings=tuple(f.as_dict() for f in report.findings),
    )
