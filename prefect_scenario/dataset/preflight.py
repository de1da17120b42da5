"""The dataset preflight inside the training flows: measured from the prepared images, before any request.

:func:`run_flow_preflight` turns the images :mod:`prefect_scenario.dataset.images`
already read (size, SHA-256, dHash and caption were taken while checking them, so
nothing is read twice) into measurements, runs the pure
:func:`prefect_scenario.dataset.checks.evaluate`, logs its summary, publishes its
findings as the table artifact ``scenario-preflight-<name>``, and raises
:class:`~prefect_scenario.exceptions.DatasetPreflightError` on a refusal.

What refuses in a flow. The checks that are certainly fatal already refused while
preparing (unreadable or byte-identical images, an empty instruction, a bad caption
file, a dataset size outside the catalog's limits). The preflight's 256 px resolution
floor is a judgement, not an API limit (Scenario advises 1,024 px and warns below it,
skills ``references/dataset-curation.md``), so by default the flow keeps only the
advisory warning: the floor is applied, with every other warning, as a refusal when
``strict_preflight=True``. Images given as existing ``asset_…`` ids are not measured
(the flow holds no bytes for them).

Example:
    >>> from prefect_scenario.dataset.images import PreparedImage
    >>> image = PreparedImage("a.png", "a.png", sha256="ab", width=64, height=64, dhash=0)
    >>> measurements([image])[0].width, flow_options("flux.2-dev-lora", None, strict=False).min_side
    (64, 1)
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
from prefect.artifacts import acreate_table_artifact
from prefect.exceptions import PrefectException

from prefect_scenario._logging import run_logger
from prefect_scenario.dataset.checks import (
    ImageMeasurement,
    PairMeasurement,
    PreflightOptions,
    PreflightReport,
    evaluate,
    raise_for_refusals,
    report_rows,
    resolve_kind,
    summarize,
)
from prefect_scenario.dataset.images import PreparedImage, PreparedPair
from prefect_scenario.reporting import artifact_key

__all__ = ["flow_options", "measurements", "run_flow_preflight"]

# Without strict_preflight, no floor: an image under the advised side warns (see the module docstring).
NO_FLOOR = 1
STRICT_MIN_SIDE = PreflightOptions().min_side


def flow_options(training_type: str, caption_prefix: str | None, *, strict: bool) -> PreflightOptions:
    """The preflight's options in a training flow (the kind follows the training type)."""
    return PreflightOptions(
        kind=resolve_kind(None, training_type),
        min_side=STRICT_MIN_SIDE if strict else NO_FLOOR,
        caption_prefix=caption_prefix,
        strict=strict,
    )


def measurements(images: Sequence[PreparedImage]) -> list[ImageMeasurement]:
    """The measurements of the prepared images that hold bytes (not existing asset ids)."""
    return [
        ImageMeasurement(i.source, i.width, i.height, i.sha256, i.dhash or 0, i.caption)
        for i in images
        if i.sha256 is not None
    ]


def _pair_measurements(pairs: Sequence[PreparedPair]) -> tuple[list[ImageMeasurement], list[PairMeasurement]]:
    unique = {i.sha256 or i.source: i for p in pairs for i in (p.before, p.after)}
    measured = {m.digest: m for m in measurements(list(unique.values()))}
    measured_pairs = [
        PairMeasurement(measured[p.before.sha256], measured[p.after.sha256], p.instruction)
        for p in pairs
        if p.before.sha256 in measured and p.after.sha256 in measured
    ]
    return list(measured.values()), measured_pairs


async def run_flow_preflight(
    name: str,
    training_type: str,
    *,
    images: Sequence[PreparedImage] | None = None,
    pairs: Sequence[PreparedPair] | None = None,
    caption_prefix: str | None = None,
    strict: bool = False,
) -> PreflightReport:
    """Check the prepared dataset; log, publish and return the report.

    Raises:
        DatasetPreflightError: the report refuses the dataset (nothing was sent yet).
    """
    options = flow_options(training_type, caption_prefix, strict=strict)
    if pairs is not None:
        measured, measured_pairs = _pair_measurements(pairs)
        report = evaluate(measured, measured_pairs, options=options, source=name)
    else:
        report = evaluate(measurements(images or []), options=options, source=name)
    summary = summarize(report)
    (run_logger().warning if report.refused or report.count("warn") else run_logger().info)(summary)
    rows = report_rows(report) or [{"severity": "info", "check": "preflight", "file": "", "message": summary}]
    try:
        await acreate_table_artifact(rows, key=artifact_key("scenario-preflight", name), description=summary)
    except (PrefectException, httpx.HTTPError, OSError) as exc:
        run_logger().warning("preflight artifact not created: %s", type(exc).__name__)
    return raise_for_refusals(report)
