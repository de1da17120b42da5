"""Captions: ``.txt`` files and the ``captions`` argument become the training images' descriptions."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from prefect_scenario import exceptions as exc
from prefect_scenario.api.models import TrainingImage
from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.dataset.captions import MAX_CAPTION_CHARS
from prefect_scenario.dataset.images import prepare_images
from prefect_scenario.training.flows import train_lora
from prefect_scenario.training.uploads import upload_images
from scenario_emulator import EmulatorServer
from tests.flow_fixtures import FAST_POLL, credentials_for

pytestmark = pytest.mark.usefixtures("prefect_harness")
PREFIX = "KAEL_07, "


def png(i: int, size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), ((i * 37) % 256, (i * 91) % 256, 120)).save(buffer, "PNG")
    return buffer.getvalue()


def captioned_folder(root: Path, count: int = 5) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        (root / f"{i:02d}.png").write_bytes(png(i))
        (root / f"{i:02d}.txt").write_text(f"a knight, pose {i}\n", encoding="utf-8")
        paths.append(str(root / f"{i:02d}.png"))
    return paths


def requests_to(server: EmulatorServer, method: str, part: str) -> list[dict[str, Any]]:
    return [r for r in server.requests() if r["method"] == method and part in r["path"] and r["status"] == 200]


async def training_images(creds: ScenarioCredentials, model_id: str) -> list[TrainingImage]:
    async with creds.get_client() as client:
        return (await client.get_models_bulk([model_id], all_training_images=True))[0].training_images


def by_file(images: list[TrainingImage]) -> dict[str, str | None]:
    # Wire names are "<sha256[:16]>_<file name>".
    return {(i.name or "").split("_", 1)[1]: i.description for i in images}


async def test_txt_captions_become_descriptions_and_a_rerun_rewrites_nothing(
    fast_emulator: EmulatorServer, tmp_path: Path
) -> None:
    creds = credentials_for(fast_emulator)
    paths = captioned_folder(tmp_path / "hero")
    options: dict[str, Any] = {"name": "kael", "training_type": "flux.2-dev-lora", "credentials": creds,
                               "caption_prefix": PREFIX, "poll_policy": FAST_POLL}  # fmt: skip
    first = await train_lora(images=paths, **options)
    assert first.status == "trained"
    assert by_file(await training_images(creds, first.model_id)) == {
        f"{i:02d}.png": f"KAEL_07, a knight, pose {i}" for i in range(5)
    }
    assert len(requests_to(fast_emulator, "PUT", "/assets/")) == 5
    again = await train_lora(images=paths, **options)
    assert again.reused and again.model_id == first.model_id
    assert len(requests_to(fast_emulator, "PUT", "/assets/")) == 5  # nothing rewritten


async def test_a_changed_caption_is_a_new_training(fast_emulator: EmulatorServer, tmp_path: Path) -> None:
    creds = credentials_for(fast_emulator)
    paths = captioned_folder(tmp_path / "hero")
    options: dict[str, Any] = {"name": "kael", "training_type": "flux.2-dev-lora", "credentials": creds,
                               "poll_policy": FAST_POLL}  # fmt: skip
    first = await train_lora(images=paths, **options)
    (tmp_path / "hero" / "02.txt").write_text("a knight, kneeling", encoding="utf-8")
    second = await train_lora(images=paths, **options)
    # The caption is part of the run key: the changed dataset trains a model of its own.
    assert second.idempotency_key != first.idempotency_key and second.model_id != first.model_id
    assert by_file(await training_images(creds, second.model_id))["02.png"] == "a knight, kneeling"
    assert by_file(await training_images(creds, first.model_id))["02.png"] == "a knight, pose 2"


async def test_a_changed_caption_on_the_same_model_rewrites_only_it(
    fast_emulator: EmulatorServer, tmp_path: Path
) -> None:
    creds = credentials_for(fast_emulator)
    paths = captioned_folder(tmp_path / "hero")
    async with creds.get_client() as client:
        model = await client.create_model(name="kael", training_type="flux.2-dev-lora")
    await upload_images(creds, model.id, await prepare_images(paths, caption_prefix=PREFIX), 4)
    uploads, writes = (
        len(requests_to(fast_emulator, "POST", "/training-images")),
        len(requests_to(fast_emulator, "PUT", "/assets/")),
    )
    assert (uploads, writes) == (5, 5)
    (tmp_path / "hero" / "03.txt").write_text("a knight, running", encoding="utf-8")
    await upload_images(creds, model.id, await prepare_images(paths, caption_prefix=PREFIX), 4)
    assert len(requests_to(fast_emulator, "POST", "/training-images")) == uploads  # no image uploaded again
    rewritten = requests_to(fast_emulator, "PUT", "/assets/")[writes:]
    assert len(rewritten) == 1
    assert by_file(await training_images(creds, model.id))["03.png"] == "KAEL_07, a knight, running"


async def test_captions_argument_wins_over_txt_files(fast_emulator: EmulatorServer, tmp_path: Path) -> None:
    creds = credentials_for(fast_emulator)
    paths = captioned_folder(tmp_path / "hero")
    result = await train_lora(
        name="kael", training_type="flux.2-dev-lora", images=paths, credentials=creds,
        captions={"01.png": "KAEL_07 in the rain"}, caption_prefix=PREFIX, poll_policy=FAST_POLL,
    )  # fmt: skip
    captions = by_file(await training_images(creds, result.model_id))
    assert captions["01.png"] == "KAEL_07 in the rain"  # the trigger word is there already: not prefixed twice
    assert captions["00.png"] == "KAEL_07, a knight, pose 0"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param(b"\xff\xfe a kni\xe9ght", "not UTF-8", id="not-utf8"),
        pytest.param(b"  \n ", "empty", id="empty"),
        pytest.param(b"x" * (MAX_CAPTION_CHARS + 1), "characters long", id="too-long"),
    ],
)
async def test_a_bad_caption_file_fails_before_any_request(
    fast_emulator: EmulatorServer, tmp_path: Path, content: bytes, problem: str
) -> None:
    paths = captioned_folder(tmp_path / "hero")
    (tmp_path / "hero" / "04.txt").write_bytes(content)
    with pytest.raises(exc.InvalidDatasetError, match=problem) as raised:
        await train_lora(
            name="kael", training_type="flux.2-dev-lora", images=paths, credentials=credentials_for(fast_emulator)
        )
    assert "04.txt" in str(raised.value)
    assert fast_emulator.requests() == []


async def test_captions_for_images_not_given_fail_before_any_request(
    fast_emulator: EmulatorServer, tmp_path: Path
) -> None:
    paths = captioned_folder(tmp_path / "hero")
    with pytest.raises(exc.InvalidDatasetError, match=r"99\.png"):
        await train_lora(
            name="kael", training_type="flux.2-dev-lora", images=paths, captions={"99.png": "typo"},
            credentials=credentials_for(fast_emulator),
        )  # fmt: skip
    assert fast_emulator.requests() == []
