"""Bad input is refused before the first request, with one error that names the problem.

Every row is one bad input to ``train_lora`` or ``train_edit_lora``: the error
class, a pattern its message must match, and afterwards an empty request log on
the emulator (nothing reached it, so nothing was spent). Wrong credentials are
the one case that needs the API to say no: one request, a 401, no retry.

The older rows of ``tests/training/test_flows.py`` stay where they are; this table is the
complete one.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from prefect_aws import AwsClientParameters, AwsCredentials

from prefect_scenario import exceptions as exc
from prefect_scenario.dataset.images import MAX_IMAGE_BYTES
from prefect_scenario.training.flows import train_edit_lora, train_lora
from scenario_emulator import EmulatorServer
from tests.flow_fixtures import credentials_for
from tests.reliability._support import png
from tests.s3_fixtures import REGION, aws_client, make_bucket

pytestmark = pytest.mark.usefixtures("prefect_harness")

STANDARD = "flux.2-dev-lora"
EDIT = "qwen-image-edit-2511-lora"
S3_ENDPOINT = "<moto>"  # replaced by the moto server's endpoint in the test


def encoded(fmt: str, seed: int = 1) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (seed * 40 % 256, 90, 200)).save(buffer, fmt)
    return buffer.getvalue()


def corrupt_png() -> bytes:
    data = bytearray(png(3, size=48))
    middle = len(data) // 2
    data[middle : middle + 16] = b"\xff" * 16  # the IDAT data no longer inflates (or its CRC fails)
    return bytes(data)


def file(tmp: Path, name: str, data: bytes) -> str:
    path = tmp / name
    path.write_bytes(data)
    return str(path)


def oversized(tmp: Path) -> str:
    """A PNG header followed by a sparse hole: 1 byte over the limit, written in microseconds."""
    path = tmp / "huge.png"
    with path.open("wb") as handle:
        handle.write(png(5))
        handle.truncate(MAX_IMAGE_BYTES + 1)
    return str(path)


def pairs(n: int) -> list[tuple[Any, Any, str]]:
    return [(png(100 + 2 * i), png(101 + 2 * i), "make it snowy") for i in range(n)]


@dataclass(frozen=True)
class Bad:
    id: str
    make: Callable[[Path], dict[str, Any]]  # flow keyword arguments (flow chosen by the type)
    error: type[Exception]
    match: str


def standard(**kw: Any) -> Callable[[Path], dict[str, Any]]:
    return lambda tmp: {"name": "bad", "training_type": STANDARD, "images": [png(1), png(2)], **kw}


def standard_with(make: Callable[[Path], dict[str, Any]]) -> Callable[[Path], dict[str, Any]]:
    return lambda tmp: {"name": "bad", "training_type": STANDARD, "images": [png(1), png(2)], **make(tmp)}


def edit_with(make: Callable[[Path], dict[str, Any]]) -> Callable[[Path], dict[str, Any]]:
    return lambda tmp: {"name": "bad", "training_type": EDIT, "pairs": pairs(2), **make(tmp)}


def param(name: str, value: Any, match: str | None = None) -> Bad:
    extra = {"samplePrompts": ["a"]} if name == "sampleSourceImages" else {}
    return Bad(
        f"param-{name}={str(value)[:12]}",
        standard(parameters={name: value, **extra}),
        exc.InvalidParametersError,
        match or name,
    )


ROWS: list[Bad] = [
    # -- files -----------------------------------------------------------------------------------
    Bad("corrupt-png", standard_with(lambda t: {"images": [file(t, "c.png", corrupt_png())]}), exc.InvalidImageError,
        r"c\.png: (the image is truncated or corrupt|not a readable image)"),
    Bad("truncated-png", standard_with(lambda t: {"images": [file(t, "cut.png", png(1)[:60])]}), exc.InvalidImageError,
        r"cut\.png: the image is truncated or corrupt"),
    Bad("zero-byte", standard_with(lambda t: {"images": [file(t, "empty.png", b"")]}), exc.InvalidImageError,
        r"empty\.png: the file is empty \(0 bytes\)"),
    Bad("oversized", standard_with(lambda t: {"images": [oversized(t)]}), exc.InvalidImageError,
        r"huge\.png: the image is 20\.0 MiB, over the 20\.0 MiB limit"),
    Bad("text-file", standard_with(lambda t: {"images": [file(t, "notes.txt", b"hello")]}), exc.InvalidImageError,
        r"notes\.txt: not a readable image"),
    Bad("non-image-bytes", standard(images=[b"%PDF-1.4 not an image"]), exc.InvalidImageError,
        r"image #1 \(bytes\): not a readable image"),
    Bad("gif-unsupported", standard_with(lambda t: {"images": [file(t, "anim.gif", encoded("GIF"))]}),
        exc.InvalidImageError, r"GIF images are not supported; use PNG, JPEG or WebP"),
    Bad("png-named-jpg", standard_with(lambda t: {"images": [file(t, "photo.jpg", png(1))]}), exc.InvalidImageError,
        r"the extension '\.jpg' does not match its PNG content"),
    Bad("jpeg-named-png", standard_with(lambda t: {"images": [file(t, "photo.png", encoded("JPEG"))]}),
        exc.InvalidImageError, r"the extension '\.png' does not match its JPEG content"),
    Bad("missing-file", standard_with(lambda t: {"images": [str(t / "missing.png")]}), exc.InvalidImageError,
        r"missing\.png: no such file"),
    Bad("s3-without-aws-block", standard(images=["s3://studio/a.png"]), exc.InvalidImageError,
        r"reading from S3 needs an AwsCredentials block"),
    # -- dataset size --------------------------------------------------------------------------
    Bad("0-images", standard(images=[]), exc.InvalidDatasetError, r"needs at least 1 training image; got 0"),
    Bad("51-images", standard(images=[png(i) for i in range(51)]), exc.InvalidDatasetError,
        r"takes at most 50 training images; got 51"),
    Bad("duplicate-images", standard(images=[png(1), png(1)]), exc.InvalidDatasetError, r"is the same image as"),
    Bad("1-pair", edit_with(lambda t: {"pairs": pairs(1)}), exc.InvalidDatasetError, r"needs at least 2 pairs; got 1"),
    Bad("26-pairs", edit_with(lambda t: {"pairs": pairs(26)}), exc.InvalidDatasetError,
        r"takes at most 25 pairs \(50 images\); got 26"),
    Bad("pair-missing-before", edit_with(lambda t: {"pairs": [(str(t / "gone.png"), png(2), "x"), *pairs(1)]}),
        exc.InvalidImageError, r"gone\.png: no such file"),
    Bad("pair-missing-after", edit_with(lambda t: {"pairs": [(png(2), str(t / "gone2.png"), "x"), *pairs(1)]}),
        exc.InvalidImageError, r"gone2\.png: no such file"),
    Bad("pair-empty-instruction", edit_with(lambda t: {"pairs": [(png(1), png(2), " "), *pairs(1)]}),
        exc.InvalidDatasetError, r"pair #1 needs a non-empty instruction"),
    Bad("pair-same-image", edit_with(lambda t: {"pairs": [(png(1), png(1), "x"), *pairs(1)]}),
        exc.InvalidDatasetError, r"pair #1: the before and after images are the same image"),
    Bad("pair-malformed", edit_with(lambda t: {"pairs": [{"before": png(1), "after": png(2)}, *pairs(1)]}),
        exc.InvalidDatasetError, r"pair #1 has no 'instruction'"),
    # -- types -------------------------------------------------------------------------------------
    Bad("unknown-type", standard(training_type="flux.3-lora"), exc.InvalidTrainingTypeError,
        r"Unknown training type 'flux\.3-lora'"),
    Bad("images-for-edit-type", standard(training_type=EDIT), exc.InvalidTrainingTypeError,
        r"'qwen-image-edit-2511-lora' is an edit training type: use train_edit_lora"),
    Bad("pairs-for-standard-type", edit_with(lambda t: {"training_type": STANDARD}), exc.InvalidTrainingTypeError,
        r"'flux\.2-dev-lora' is a standard training type: use train_lora"),
    # -- parameters: every one below and above its range --------------------------------------------
    param("learningRate", 0.000001), param("learningRate", 0.01),
    param("rank", 1), param("rank", 129),
    param("batchSize", 0), param("batchSize", 9),
    param("nbEpochs", 0), param("nbEpochs", 101),
    param("nbRepeats", 0), param("nbRepeats", 101),
    param("maxTrainSteps", -1), param("maxTrainSteps", 10001),
    param("learningRateTextEncoder", 0.0000001), param("learningRateTextEncoder", 0.01),
    param("seed", -1),
    param("samplePrompts", ["a", "b", "c", "d", "e"]),
    param("wandbKey", "k" * 41),
    param("optimizeFor", "speed"),
    param("rank", 16.5),
    param("colour", "blue", r"unknown parameter 'colour'"),
    param("sampleSourceImages", ["asset_1"], r"sampleSourceImages is for edit training types only"),
    Bad("edit-source-images-length", edit_with(lambda t: {"parameters": {"samplePrompts": ["a", "b"],
        "sampleSourceImages": ["asset_1"]}}), exc.InvalidParametersError,
        r"sampleSourceImages must be the same length as samplePrompts \(1 != 2\)"),
    # -- run settings and credentials ---------------------------------------------------------------
    Bad("zero-timeout", standard(timeout_seconds=0), exc.ConfigurationError, r"timeout_seconds must be above 0"),
    Bad("zero-concurrency", standard(upload_concurrency=0), exc.ConfigurationError,
        r"upload_concurrency must be 1 to 16"),
    Bad("no-credentials", standard(credentials=None), exc.ConfigurationError,
        r"set the environment variable\(s\) SCENARIO_API_KEY, SCENARIO_API_SECRET, SCENARIO_PROJECT_ID"),
    Bad("empty-key", standard(credentials={"api_key": ""}), exc.ConfigurationError,
        r"API key and secret must both be set and non-empty"),
    Bad("empty-secret", standard(credentials={"api_secret": "  "}), exc.ConfigurationError,
        r"API key and secret must both be set and non-empty"),
    Bad("empty-project", standard(credentials={"project_id": ""}), exc.ConfigurationError, r"project_id must be set"),
    Bad("http-to-remote-host", standard(credentials={"base_url": "http://api.example.com/v1"}),
        exc.ConfigurationError, r"uses plain http to a non-loopback host; use https"),
    Bad("not-http", standard(credentials={"base_url": "ftp://127.0.0.1/v1"}), exc.ConfigurationError,
        r"base_url must be an http\(s\) URL with a host"),
    # -- S3 (moto) --------------------------------------------------------------------------------------
    Bad("s3-missing-bucket", standard(images=["s3://no-such-bucket/hero/01.png"], aws_credentials=S3_ENDPOINT),
        exc.InvalidImageError, r"s3://no-such-bucket/hero/01\.png: cannot read it from S3 \((404|NoSuchBucket)\)"),
    Bad("s3-missing-key", standard(images=["s3://studio-assets/hero/missing.png"], aws_credentials=S3_ENDPOINT),
        exc.InvalidImageError, r"s3://studio-assets/hero/missing\.png: cannot read it from S3 \((404|NoSuchKey)\)"),
]  # fmt: skip

REFUSED: list[str] = []


def _aws(endpoint: str) -> AwsCredentials:
    return AwsCredentials(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name=REGION,
        aws_client_parameters=AwsClientParameters(endpoint_url=endpoint),
    )


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
async def test_bad_input_is_refused_before_any_request(
    fast_emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
    row: Bad,
) -> None:  # fmt: skip
    for name in ("SCENARIO_API_KEY", "SCENARIO_API_SECRET", "SCENARIO_PROJECT_ID", "SCENARIO_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    kwargs = row.make(tmp_path)
    if "credentials" not in kwargs:
        kwargs["credentials"] = credentials_for(fast_emulator)
    elif isinstance(kwargs["credentials"], dict):
        kwargs["credentials"] = credentials_for(fast_emulator, **kwargs["credentials"])
    if kwargs.get("aws_credentials") == S3_ENDPOINT:
        endpoint = request.getfixturevalue("moto_endpoint")
        make_bucket(aws_client("s3", endpoint))  # studio-assets exists, empty
        kwargs["aws_credentials"] = _aws(endpoint)
    flow = train_edit_lora if "pairs" in kwargs else train_lora
    with pytest.raises(row.error, match=row.match) as raised:
        await flow(**kwargs)
    assert type(raised.value) is row.error, f"{type(raised.value).__name__}: {raised.value}"
    assert fast_emulator.requests() == [], "nothing may reach the API"
    REFUSED.append(row.id)


def test_the_table_is_complete() -> None:
    assert len(ROWS) >= 30 and len({r.id for r in ROWS}) == len(ROWS)


async def test_wrong_credentials_fail_at_once_with_one_request(fast_emulator: EmulatorServer) -> None:
    with pytest.raises(exc.AuthenticationError, match=r"HTTP 401: missing or invalid credentials") as raised:
        await train_lora(
            name="bad", training_type=STANDARD, images=[png(1), png(2)],
            credentials=credentials_for(fast_emulator, api_secret="wrong-secret", max_retries=5),
        )  # fmt: skip
    assert raised.value.status_code == 401
    log = fast_emulator.requests()
    assert [r["status"] for r in log] == [401], "one request, no retry"
