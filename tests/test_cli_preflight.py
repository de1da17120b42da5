"""``prefect-scenario preflight``: a plain-text table, exit 1 on a refusal, 2 on bad input."""

from __future__ import annotations

import io
import random
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from PIL import Image

from prefect_scenario.cli import main
from tests.emulator_fixtures import png_bytes


def pattern_png(seed: int, side: int = 64) -> bytes:
    blocks = Image.frombytes("L", (8, 8), random.Random(seed).randbytes(64))
    buffer = io.BytesIO()
    blocks.resize((side, side), Image.Resampling.NEAREST).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    for i in range(5):
        (tmp_path / f"{i:02d}.png").write_bytes(pattern_png(i, side=300))
        (tmp_path / f"{i:02d}.txt").write_text(f"KAEL_07, pose {i}")
    return tmp_path


def test_a_dataset_that_passes_with_warnings_exits_0_and_prints_a_table(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["preflight", str(dataset), "--caption-prefix", "KAEL_07, "]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["severity", "check", "file", "message"]
    assert lines[1].split()[:3] == ["warn", "resolution", "00.png"]  # 300 px: under 1024
    assert lines[-1] == "preflight passed with warnings: 5 images (standard): 0 refused, 5 warnings, 0 notes"


def test_strict_refuses_the_warnings_and_exits_1(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preflight", str(dataset), "--strict"]) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith("preflight refused: 5 images")


def test_a_refusal_exits_1(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (dataset / "small.png").write_bytes(png_bytes(size=(200, 200)))
    assert main(["preflight", str(dataset), "--min-side", "256"]) == 1
    out = capsys.readouterr().out
    assert "refuse    resolution  small.png" in out and "200×200 px: below the 256 px floor" in out
    assert main(["preflight", str(dataset), "--min-side", "100"]) == 0


def test_near_duplicate_threshold_and_kind(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preflight", str(dataset), "--near-duplicate-threshold", "64"]) == 0  # everything is "near"
    assert capsys.readouterr().out.count("duplicate") == 4
    assert main(["preflight", str(dataset), "--kind", "style"]) == 0
    assert "5 images: 10–20 are advised for a style LoRA" in capsys.readouterr().out
    assert main(["preflight", str(dataset), "--kind", "edit"]) == 1  # no pairs.jsonl
    assert "an edit dataset needs pairs" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["nope"], "nope: not a folder", id="missing-folder"),
        pytest.param(["s3://"], "has no bucket", id="s3-uri-without-bucket"),
        pytest.param(
            [".", "--near-duplicate-threshold", "65"], "near_duplicate_threshold is 0–64 bits", id="threshold"
        ),
        pytest.param([".", "--min-side", "0"], "min_side must be at least 1 px", id="min-side"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preflight", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_an_unknown_kind_is_an_argparse_error() -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["preflight", ".", "--kind", "portrait"])
    assert exit_.value.code == 2


@mock_aws
def test_an_s3_prefix_with_the_default_aws_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="studio")
    for i in range(5):
        s3.put_object(Bucket="studio", Key=f"hero/{i:02d}.png", Body=pattern_png(i, side=1024))
    assert main(["preflight", "s3://studio/hero/"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("5 images (standard): 0 refused, 0 warnings, 1 note")
    s3.put_object(Bucket="studio", Key="hero/05.png", Body=pattern_png(0, side=1024))
    assert main(["preflight", "s3://studio/hero/"]) == 1
    assert "the same file as 00.png" in capsys.readouterr().out
    assert main(["preflight", "s3://missing-bucket/hero/"]) == 2
    assert "NoSuchBucket" in capsys.readouterr().err
