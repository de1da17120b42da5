"""Putting images on a model, each exactly once: read what is there, add what is missing.

Images are recognised by the content hash in their name
(:attr:`prefect_scenario.dataset.images.PreparedImage.wire_name`) or by their asset id.
After a failed add, the reconcile step re-reads the model before anything is sent again;
a fresh model skips the first read and, unless an add was retried, the duplicate check.

Captions are set after the images are on the model: an image's caption becomes its
asset's description (the text Scenario trains on, per Scenario's skills,
``references/dataset-curation.md``), written only where the description the model's
training images carry differs, so a re-run rewrites nothing and a changed caption is
rewritten without uploading its image again.

Example:
    >>> from prefect_scenario.api.models import TrainingImage
    >>> on_model([TrainingImage(id="asset_1", name="0123456789abcdef_a.png")])
    {'0123456789abcdef': 'asset_1'}
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence

from prefect_scenario._logging import run_logger
from prefect_scenario.api.client import MAX_BATCH_ASSET_IDS, ScenarioClient
from prefect_scenario.api.models import TrainingImage
from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.dataset.images import PreparedImage, hash_from_wire_name
from prefect_scenario.exceptions import InvalidImageError, PlanLimitError
from prefect_scenario.training.reconcile import image_identity, on_model

__all__ = ["on_model", "set_captions", "upload_images"]


async def _current_images(client: ScenarioClient, model_id: str) -> list[TrainingImage]:
    models = await client.get_models_bulk([model_id], all_training_images=True)
    return models[0].training_images if models else (await client.get_model(model_id)).training_images


async def _upload_missing(
    client: ScenarioClient, model_id: str, images: Sequence[PreparedImage], concurrency: int, known_empty: bool
) -> tuple[dict[str, str], bool]:
    """Upload what is not on the model yet; return identity → training image id, and whether a retry looked."""
    found = {} if known_empty else on_model(await _current_images(client, model_id))
    reconciled: list[bool] = []
    missing_files = [i for i in images if i.sha256 and image_identity(i) not in found]
    missing_assets = [i.asset_id for i in images if i.asset_id and i.asset_id not in found]
    limit = asyncio.Semaphore(max(1, concurrency))

    async def landed(identity: str) -> TrainingImage | None:
        # After a failed add: is the image on the model after all? (never add it twice)
        reconciled.append(True)
        current = on_model(await _current_images(client, model_id))
        return TrainingImage(id=current[identity]) if identity in current else None

    async def add(image: PreparedImage) -> None:
        data = image.data if image.data is not None else image.path
        if data is None:
            raise InvalidImageError(f"{image.source} has no bytes to upload", source=image.source)
        identity = image_identity(image)
        send = functools.partial(
            client.add_training_image,
            model_id,
            name=image.wire_name,
            data=data,
            mime_type=image.mime_type or "image/png",
            reconcile=functools.partial(landed, identity),
        )
        del data
        async with limit:
            found[identity] = (await send()).id

    async def add_batch(asset_ids: list[str]) -> None:
        async def all_landed() -> list[TrainingImage] | None:
            reconciled.append(True)
            current = on_model(await _current_images(client, model_id))
            return [TrainingImage(id=current[a]) for a in asset_ids] if all(a in current for a in asset_ids) else None

        async with limit:
            added = await client.add_training_image_assets(model_id, asset_ids, reconcile=all_landed)
            for asset_id, image in zip(asset_ids, added, strict=False):
                found[asset_id] = image.id

    batches = [missing_assets[i : i + MAX_BATCH_ASSET_IDS] for i in range(0, len(missing_assets), MAX_BATCH_ASSET_IDS)]
    results = await asyncio.gather(
        *(add(i) for i in missing_files), *(add_batch(b) for b in batches), return_exceptions=True
    )
    # Let every upload in flight settle before failing, so a re-run reads a stable model.
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    return found, bool(reconciled)


async def _remove_duplicates(client: ScenarioClient, model_id: str) -> int:
    """Delete the second copy of any image (an add that landed after its answer was lost)."""
    seen: set[str] = set()
    removed = 0
    for image in await _current_images(client, model_id):
        identity = hash_from_wire_name(image.name)
        if identity is None:
            continue
        if identity in seen:
            await client.delete_training_image(model_id, image.id)
            removed += 1
        seen.add(identity)
    return removed


async def set_captions(
    client: ScenarioClient, model_id: str, images: Sequence[PreparedImage], found: dict[str, str], concurrency: int
) -> int:
    """Write each captioned image's caption as its asset's description, where it differs; how many were written."""
    wanted = {found[image_identity(i)]: i.caption for i in images if i.caption is not None}
    if not wanted:
        return 0
    current = {i.id: i.description for i in await _current_images(client, model_id)}
    stale = [(asset_id, caption) for asset_id, caption in wanted.items() if current.get(asset_id) != caption]
    limit = asyncio.Semaphore(max(1, concurrency))

    async def write(asset_id: str, caption: str) -> None:
        async with limit:
            await client.update_asset_description(asset_id, caption)

    await asyncio.gather(*(write(a, c) for a, c in stale))
    return len(stale)


async def upload_images(
    credentials: ScenarioCredentials, model_id: str, images: list[PreparedImage], concurrency: int
) -> dict[str, str]:
    """Put ``images`` on the model, each once, ``concurrency`` at a time, with their captions.

    Returns:
        Identity → training image id (the image's asset id).
    """
    async with credentials.get_client() as client:
        model = await client.get_model(model_id)
        # A fresh model skips the (empty) read before uploading, and the duplicate check
        # after it unless an add was retried: a duplicate needs an add that landed twice.
        known_empty = model.status == "new" and model.training_images_number == 0
        try:
            found, reconciled = await _upload_missing(client, model_id, images, concurrency, known_empty)
        except PlanLimitError as exc:
            raise _dataset_ceiling(exc, model_id, len(images)) from None
        if reconciled or not known_empty:
            removed = await _remove_duplicates(client, model_id)
            if removed:
                run_logger().warning("removed %d duplicate training image(s) left by a lost answer", removed)
        if written := await set_captions(client, model_id, images, found, concurrency):
            run_logger().info("set %d caption(s) on %s", written, model_id)
        return found


def _dataset_ceiling(error: PlanLimitError, model_id: str, images: int) -> PlanLimitError:
    """The plan's dataset ceiling, said so that the user knows what to do (nothing was triggered)."""
    if error.action_name != "add-training-image":
        return error
    message = (
        f"the Scenario plan's dataset ceiling is reached (add-training-image, limit {error.action_limit} training "
        f"images per team) while adding {images} images to {model_id}: trim the dataset or raise the plan; nothing "
        "was triggered; a re-run with the same idempotency_key continues the same model"
    )
    fields = {k: getattr(error, k) for k in ("method", "path", "status_code", "request_id", "trace_id", "body")}
    return PlanLimitError(message, action_name=error.action_name, action_limit=error.action_limit, **fields)
