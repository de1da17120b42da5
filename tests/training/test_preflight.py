"""The dataset preflight: every pure check on small synthetic measurements, then the I/O on small images."""

from __future__ import annotations

import doctest
import io
import json
import pickle
import random
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from PIL import Image

from prefect_scenario.dataset import captions, measure
from prefect_scenario.dataset import checks as preflight
from prefect_scenario.dataset.captions import MAX_CAPTION_CHARS, parse_caption, parse_pairs_jsonl, read_caption
from prefect_scenario.dataset.checks import (
    Finding,
    ImageMeasurement,
    PairMeasurement,
    PreflightOptions,
    PreflightReport,
    check_aspect_ratios,
    check_captions,
    check_duplicates,
    check_instructions,
    check_pair_duplicates,
    check_resolution,
    check_size,
    evaluate,
    raise_for_refusals,
    render_text,
    report_rows,
    resolve_kind,
    summarize,
)
from prefect_scenario.dataset.measure import (
    ImageFile,
    dhash,
    measure_image,
    preflight_directory,
    preflight_files,
    preflight_images,
    preflight_s3,
)
from prefect_scenario.exceptions import DatasetPreflightError, InvalidDatasetError, InvalidInputError
from tests.emulator_fixtures import png_bytes

# Small images are the norm here: the I/O tests lower the resolution advice to match.
SMALL = PreflightOptions(min_side=16, recommended_side=64)


def m(
    name: str = "a.png", w: int = 1024, h: int = 1024, *, digest: str = "", bits: int = 0, caption: str | None = None
):
    """A measurement; distinct names get distinct digests unless one is given."""
    return ImageMeasurement(name, w, h, digest or f"sha-{name}", bits, caption)


def far(i: int) -> int:
    """Hashes 16 bits apart from one another: never near-duplicates at the default threshold."""
    return 0xFFFF << (16 * (i % 4)) if i < 4 else (0xFF << (8 * (i % 8))) ^ (1 << 63)


def distinct(count: int, **kwargs: object) -> list[ImageMeasurement]:
    return [m(f"{i:02d}.png", bits=far(i), **kwargs) for i in range(count)]


def pattern_png(seed: int, size: tuple[int, int] = (64, 64), fmt: str = "PNG") -> bytes:
    """Random 8×8 blocks, scaled up: a distinct, deterministic image per seed (solid ones all hash alike)."""
    blocks = Image.frombytes("L", (8, 8), random.Random(seed).randbytes(64))
    buffer = io.BytesIO()
    blocks.resize(size, Image.Resampling.NEAREST).convert("RGB").save(buffer, fmt)
    return buffer.getvalue()


def checks(findings: list[Finding]) -> list[tuple[str, str, str | None]]:
    return [(f.severity, f.check, f.file) for f in findings]


# -- pure checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        pytest.param(1024, 1024, [], id="1024-square-passes"),
        pytest.param(2048, 1000, [("warn", "resolution", "a.png")], id="short-side-under-1024-warns"),
        pytest.param(256, 4000, [("warn", "resolution", "a.png")], id="at-the-floor-warns"),
        pytest.param(255, 4000, [("refuse", "resolution", "a.png")], id="under-the-floor-refuses"),
    ],
)
def test_resolution(width: int, height: int, expected: list[tuple[str, str, str]]) -> None:
    assert checks(check_resolution([m(w=width, h=height)], min_side=256, recommended_side=1024)) == expected


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        pytest.param(m("b.png", bits=0xFFFF), [], id="distinct"),
        pytest.param(m("b.png", digest="sha-a.png"), [("refuse", "duplicate", "b.png")], id="same-bytes-refuse"),
        pytest.param(m("b.png", bits=0b111111), [("warn", "duplicate", "b.png")], id="6-bits-apart-warns"),
        pytest.param(m("b.png", bits=0b1111111), [], id="7-bits-apart-passes"),
        pytest.param(m("b.png", bits=0), [("warn", "duplicate", "b.png")], id="same-hash-other-bytes-warns"),
    ],
)
def test_duplicates(second: ImageMeasurement, expected: list[tuple[str, str, str]]) -> None:
    assert checks(check_duplicates([m("a.png"), second], threshold=6)) == expected


def test_a_cluster_of_duplicates_names_each_image_once() -> None:
    images = [m("a.png"), m("b.png"), m("c.png")]
    found = check_duplicates(images, threshold=6)
    assert [f.file for f in found] == ["b.png", "c.png"] and "a.png" in found[1].message


@pytest.mark.parametrize(
    ("sizes", "outliers"),
    [
        pytest.param([(1024, 1024)] * 4, [], id="all-square"),
        pytest.param([(1024, 1024)] * 3 + [(4096, 1024)], ["03.png"], id="one-panorama-warns"),
        pytest.param([(1024, 1024)] * 3 + [(1024, 2048)], [], id="twice-as-tall-is-within-2x"),
        pytest.param([(1024, 1024), (4096, 1024)], [], id="two-images-have-no-typical-shape"),
    ],
)
def test_aspect_ratios(sizes: list[tuple[int, int]], outliers: list[str]) -> None:
    images = [m(f"{i:02d}.png", w, h) for i, (w, h) in enumerate(sizes)]
    assert [f.file for f in check_aspect_ratios(images, factor=2.0)] == outliers


@pytest.mark.parametrize(
    ("captions_", "prefix", "expected"),
    [
        pytest.param([None, None], None, [("info", "caption", None)], id="none-captioned-is-a-note"),
        pytest.param(["a fox", "a hen"], None, [], id="all-captioned"),
        pytest.param(["a fox", None], None, [("warn", "caption", "01.png")], id="some-captioned-warns"),
        pytest.param(
            ["KAEL_07, a knight", "a knight"], "KAEL_07, ", [("warn", "caption", "01.png")], id="trigger-missing"
        ),
        pytest.param(["KAEL_07 on a horse", "KAEL_07, a knight"], "KAEL_07, ", [], id="trigger-anywhere-counts"),
    ],
)
def test_captions(captions_: list[str | None], prefix: str | None, expected: list[tuple[str, str, str]]) -> None:
    images = [m(f"{i:02d}.png", caption=c) for i, c in enumerate(captions_)]
    assert checks(check_captions(images, caption_prefix=prefix)) == expected


@pytest.mark.parametrize(
    ("instruction", "refused"),
    [
        pytest.param("", True, id="empty"),
        pytest.param("  \n", True, id="blank"),
        pytest.param("add snow", False, id="given"),
    ],
)
def test_instructions(instruction: str, refused: bool) -> None:
    found = check_instructions([PairMeasurement(m("b.png"), m("a.png"), instruction)])
    assert checks(found) == ([("refuse", "instruction", "b.png → a.png")] if refused else [])


def test_pair_duplicates() -> None:
    same = PairMeasurement(m("b.png"), m("b2.png", digest="sha-b.png"), "x")
    pair = PairMeasurement(m("c.png"), m("d.png"), "x")
    found = check_pair_duplicates([same, pair, pair])
    assert [f.message for f in found] == ["the before and after images are the same file", "repeats an earlier pair"]


@pytest.mark.parametrize(
    ("kind", "count", "severity"),
    [
        pytest.param("standard", 0, "refuse", id="standard-0-refuses"),
        pytest.param("standard", 4, "warn", id="standard-4-warns"),
        pytest.param("standard", 5, None, id="standard-5-passes"),
        pytest.param("standard", 15, None, id="standard-15-passes"),
        pytest.param("standard", 16, "warn", id="standard-16-warns"),
        pytest.param("standard", 51, "refuse", id="standard-51-refuses"),
        pytest.param("style", 9, "warn", id="style-9-warns"),
        pytest.param("style", 20, None, id="style-20-passes"),
        pytest.param("style", 21, "warn", id="style-21-warns"),
        pytest.param("edit", 1, "refuse", id="edit-1-pair-refuses"),
        pytest.param("edit", 2, "warn", id="edit-2-pairs-warn"),
        pytest.param("edit", 15, None, id="edit-15-pairs-pass"),
        pytest.param("edit", 26, "refuse", id="edit-26-pairs-refuse"),
    ],
)
def test_size(kind: preflight.Kind, count: int, severity: str | None) -> None:
    assert [f.severity for f in check_size(count, kind=kind)] == ([severity] if severity else [])


def test_evaluate_sorts_most_severe_first_and_strict_refuses_warnings() -> None:
    images = [*distinct(6), m("tiny.png", 100, 100, bits=far(7))]
    report = evaluate(images)
    assert [f.severity for f in report.findings] == ["refuse", "info"]
    soft = evaluate(distinct(3))
    assert not soft.refused and soft.count("warn") == 1
    strict = evaluate(distinct(3), options=PreflightOptions(strict=True))
    assert strict.refused and [f.severity for f in strict.findings] == ["refuse", "info"]


def test_edit_datasets_check_pairs_not_captions() -> None:
    pairs = [PairMeasurement(m(f"b{i}.png", bits=far(i)), m(f"a{i}.png", bits=far(i)), "snow") for i in range(5)]
    report = evaluate(
        [p.before for p in pairs] + [p.after for p in pairs], pairs, options=PreflightOptions(kind="edit")
    )
    assert report.findings == () and report.pairs == 5  # before and after look alike: that is an edit


@pytest.mark.parametrize(
    ("kind", "training_type", "expected"),
    [
        pytest.param(None, None, "standard", id="default"),
        pytest.param(None, "qwen-image-edit-2511-lora", "edit", id="edit-type"),
        pytest.param("style", "flux.2-dev-lora", "style", id="style-is-the-callers"),
    ],
)
def test_resolve_kind(kind: str | None, training_type: str | None, expected: str) -> None:
    assert resolve_kind(kind, training_type) == expected


@pytest.mark.parametrize(
    ("kind", "training_type"),
    [
        pytest.param("style", "qwen-image-edit-2511-lora", id="style-on-edit-type"),
        pytest.param("portrait", None, id="unknown"),
    ],
)
def test_resolve_kind_refuses_contradictions(kind: str, training_type: str | None) -> None:
    with pytest.raises(InvalidInputError):
        resolve_kind(kind, training_type)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"min_side": 0}, id="min-side-0"),
        pytest.param({"near_duplicate_threshold": 65}, id="threshold-65"),
        pytest.param({"aspect_outlier_factor": 1.0}, id="factor-1"),
        pytest.param({"kind": "portrait"}, id="unknown-kind"),
    ],
)
def test_options_are_validated(options: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        PreflightOptions(**options)


def test_rendering_rows_summary_and_table() -> None:
    report = evaluate([m("tiny.png", 100, 100)], source="data/")
    assert report_rows(report)[0] == {
        "severity": "refuse",
        "check": "resolution",
        "file": "tiny.png",
        "message": "100×100 px: below the 256 px floor",
    }
    assert summarize(report) == "preflight refused: 1 image (standard): 1 refused, 1 warning, 1 note"
    lines = render_text(report).splitlines()
    assert lines[0].split() == ["severity", "check", "file", "message"] and lines[-1] == summarize(report)
    assert render_text(PreflightReport((), "standard", 5)) == summarize(PreflightReport((), "standard", 5))


def test_refusals_raise_an_error_that_carries_the_findings_and_pickles() -> None:
    report = evaluate([m("tiny.png", 100, 100)], source="data/")
    with pytest.raises(DatasetPreflightError) as caught:
        raise_for_refusals(report)
    error = caught.value
    assert isinstance(error, InvalidDatasetError)
    assert str(error) == "data/: 1 refusal: tiny.png: 100×100 px: below the 256 px floor"
    copy = pickle.loads(pickle.dumps(error))
    assert copy.findings == error.findings and copy.findings[0]["file"] == "tiny.png"
    assert raise_for_refusals(evaluate(distinct(5))).refused is False


@pytest.mark.parametrize("module", [preflight, measure, captions], ids=lambda mod: mod.__name__.rsplit(".", 1)[1])
def test_docstring_examples(module: object) -> None:
    assert doctest.testmod(module).failed == 0


# -- captions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        pytest.param(b"caf\xe9", "not UTF-8 text", id="latin-1"),
        pytest.param(b"", "the caption is empty", id="empty"),
        pytest.param(b" \n\t", "the caption is empty", id="whitespace"),
        pytest.param(b"x" * (MAX_CAPTION_CHARS + 1), "characters long", id="too-long"),
    ],
)
def test_caption_file_errors_name_the_file(data: bytes, problem: str, tmp_path: Path) -> None:
    (tmp_path / "01.png").write_bytes(png_bytes(size=(8, 8)))
    (tmp_path / "01.txt").write_bytes(data)
    with pytest.raises(InvalidDatasetError, match=problem) as caught:
        read_caption(tmp_path / "01.png")
    assert str(caught.value).startswith(str(tmp_path / "01.txt"))
    report = preflight_directory(tmp_path, options=SMALL)
    assert ("refuse", "caption", "01.txt") in checks(list(report.findings))


def test_a_caption_at_the_limit_and_with_a_byte_order_mark_is_fine() -> None:
    assert parse_caption(b"\xef\xbb\xbf" + b"x" * MAX_CAPTION_CHARS, source="a.txt") == "x" * MAX_CAPTION_CHARS


def test_pairs_jsonl_lines_that_are_not_pairs_are_refusals() -> None:
    data = b'{"before": "b.png", "after": "a.png"}\n\n{oops\n["b.png"]\n'
    pairs, found = parse_pairs_jsonl(data, source="pairs.jsonl")
    assert pairs == [("b.png", "a.png", "")]
    assert [f.message.split(":")[0] for f in found] == ["line 3", "line 4"]
    assert parse_pairs_jsonl(b"\xff", source="p")[1][0].message == "not UTF-8 text"


# -- measuring -------------------------------------------------------------------------------


def test_dhash_sees_a_resized_copy_as_the_same_and_other_images_as_different() -> None:
    original = Image.open(io.BytesIO(pattern_png(1, (512, 512))))
    copy = Image.open(io.BytesIO(pattern_png(1, (300, 300))))
    other = Image.open(io.BytesIO(pattern_png(2, (512, 512))))
    as_jpeg = Image.open(io.BytesIO(pattern_png(1, (512, 512), "JPEG")))
    first = dhash(original)
    assert (first ^ dhash(copy)).bit_count() <= 2
    assert (first ^ dhash(as_jpeg)).bit_count() <= 2  # decoded through draft(): grey, reduced
    assert (first ^ dhash(other)).bit_count() > 12


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        pytest.param(b"", "the file is empty", id="empty"),
        pytest.param(b"GIF89a not really", "not a readable image", id="not-an-image"),
        pytest.param(pattern_png(1, (64, 64))[:200], "truncated or corrupt", id="truncated"),
    ],
)
def test_measure_image_errors_name_the_image(data: bytes, problem: str) -> None:
    with pytest.raises(InvalidInputError, match=f"^x.png: .*{problem}"):
        measure_image(data, name="x.png")


def test_unsupported_formats_are_refused() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "GIF")
    with pytest.raises(InvalidInputError, match="GIF is not supported"):
        measure_image(buffer.getvalue(), name="x.gif")


def test_a_folder_with_captions_and_a_duplicate(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"{i:02d}.png").write_bytes(pattern_png(i))
        (tmp_path / f"{i:02d}.txt").write_text(f"KAEL_07, pose {i}", encoding="utf-8")
    (tmp_path / "poses").mkdir()
    (tmp_path / "poses" / "copy.png").write_bytes(pattern_png(0))
    (tmp_path / "._01.png").write_bytes(b"macOS metadata")
    report = preflight_directory(
        tmp_path, options=PreflightOptions(min_side=16, recommended_side=64, caption_prefix="KAEL_07, ")
    )
    assert report.images == 6
    assert checks(list(report.findings)) == [
        ("refuse", "duplicate", "poses/copy.png"),
        ("warn", "caption", "poses/copy.png"),
    ]


def test_an_unreadable_file_is_a_refusal_not_an_exception(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"not a png")
    report = preflight_directory(tmp_path, options=SMALL)
    assert ("refuse", "readable", "bad.png") in checks(list(report.findings))


def test_images_from_bytes_and_paths_with_given_captions(tmp_path: Path) -> None:
    path = tmp_path / "hero.png"
    path.write_bytes(pattern_png(9))
    (tmp_path / "hero.txt").write_text("from the file")
    sources: list[str | Path | bytes] = [pattern_png(i) for i in range(4)] + [path]
    report = preflight_images(
        sources, captions={"image #1": "a", "image #2": "b", "image #3": "c", "image #4": "d"}, options=SMALL
    )
    assert report.findings == () and report.images == 5
    missing = preflight_images([tmp_path / "nope.png"], options=SMALL)
    assert ("refuse", "readable", str(tmp_path / "nope.png")) in checks(list(missing.findings))
    with pytest.raises(InvalidInputError, match="preflight_s3"):
        preflight_images(["s3://bucket/key.png"])


def test_files_are_read_one_ahead_of_the_one_being_measured() -> None:
    events: list[str] = []

    def reader(i: int):
        def read() -> bytes:
            events.append(f"read {i}")
            return pattern_png(i)

        return read

    files = [ImageFile(f"{i}.png", reader(i)) for i in range(4)]
    measured = []
    for loaded in measure._read_ahead(files):
        measured.append(loaded.file.name)
        assert len(events) <= len(measured) + 1  # never more than one image read ahead
    assert measured == ["0.png", "1.png", "2.png", "3.png"]


def _edit_folder(tmp_path: Path, lines: list[dict[str, str]]) -> Path:
    for i in range(3):
        (tmp_path / f"b{i}.png").write_bytes(pattern_png(10 + i))
        (tmp_path / f"a{i}.png").write_bytes(pattern_png(20 + i))
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    return tmp_path


def test_an_edit_folder_checks_its_pairs(tmp_path: Path) -> None:
    lines = [
        {"before": "b0.png", "after": "a0.png", "instruction": "add snow"},
        {"before": "b1.png", "after": "a1.png", "instruction": " "},
        {"before": "b2.png", "after": "gone.png", "instruction": "add snow"},
    ]
    report = preflight_directory(
        _edit_folder(tmp_path, lines), options=PreflightOptions(kind="edit", min_side=16, recommended_side=64)
    )
    assert checks(list(report.findings)) == [
        ("refuse", "pairs", "gone.png"),
        ("refuse", "instruction", "b1.png → a1.png"),
        ("warn", "size", None),
        ("info", "pairs", None),  # a2.png is in no pair
    ]
    assert report.pairs == 2 and report.images == 5  # b2.png is measured, though its pair is not whole
    (tmp_path / "pairs.jsonl").unlink()
    assert preflight_directory(tmp_path, options=PreflightOptions(kind="edit")).findings[0].check == "pairs"


def test_a_missing_folder_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidDatasetError, match="not a folder"):
        preflight_directory(tmp_path / "nope")


def test_preflight_files_takes_any_reader() -> None:
    files = [ImageFile(f"{i}.png", lambda i=i: pattern_png(i), caption=f"pose {i}") for i in range(5)]
    assert preflight_files(files, options=SMALL).findings == ()


@mock_aws
def test_an_s3_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="studio")
    for i in range(5):
        s3.put_object(Bucket="studio", Key=f"curated/hero/{i:02d}.png", Body=pattern_png(i))
        s3.put_object(Bucket="studio", Key=f"curated/hero/{i:02d}.txt", Body=f"KAEL_07, pose {i}".encode())
    s3.put_object(Bucket="studio", Key="curated/hero/04.txt", Body=b"\xff\xfe")
    s3.put_object(Bucket="studio", Key="curated/other/zz.png", Body=pattern_png(0))
    report = preflight_s3(s3, "s3://studio/curated/hero/", options=SMALL)
    assert report.source == "s3://studio/curated/hero/" and report.images == 5
    # The unreadable caption leaves 04.png uncaptioned among captioned images: both are said.
    assert checks(list(report.findings)) == [("refuse", "caption", "04.txt"), ("warn", "caption", "04.png")]
    assert "not UTF-8" in report.findings[0].message


@pytest.mark.parametrize("mode", ["L", "I;16", "RGB", "RGBA", "LA"], ids=lambda mode: f"mode-{mode}")
def test_dhash_is_the_same_across_pixel_modes(mode: str) -> None:
    grey = Image.open(io.BytesIO(pattern_png(3, (128, 128)))).convert("L")
    buffer = io.BytesIO()
    grey.convert(mode).save(buffer, "PNG")
    assert measure_image(buffer.getvalue(), name="x.png").dhash == dhash(grey)  # 16-bit is not clipped flat
