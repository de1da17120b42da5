"""Finding what an earlier attempt of a run already did, so a retry never does it twice.

Scenario's API has no idempotency parameter (its blender-plugin calls the SDK with
``max_retries=0``), so every step that creates something is made safe to repeat here:

- a run's idempotency key is recorded on its model as the tag ``psc-<key>``, and on
  its Prefect flow run as the same tag plus ``scenario-model:<id>``;
- :func:`find_run_model` looks the key up where it is cheap: the earlier flow runs of
  that key in Prefect name their model (one ``get-bulk``, no listing); only when Prefect
  knows the key but not its model (a crash between the create and the tag), or knows
  nothing (no flow run context), it reads the newest models of the project, a bounded
  number of pages (the API filters private models by tag on no endpoint: the
  SDK's ``models.list`` parameters): never a scan of the project;
- images are recognised by the content hash in their name
  (:attr:`prefect_scenario.dataset.images.PreparedImage.wire_name`).

Example:
    >>> idempotency_tag("abc")
    'psc-abc'
"""

from __future__ import annotations

from collections.abc import Iterable

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.context import FlowRunContext
from prefect.exceptions import PrefectException
from prefect.logging import get_logger

from prefect_scenario.api.client import ScenarioClient
from prefect_scenario.api.models import Model, TrainingImage
from prefect_scenario.dataset.images import PreparedImage, hash_from_wire_name
from prefect_scenario.tags import IDEMPOTENCY_TAG_PREFIX, MODEL_TAG_PREFIX, idempotency_tag, tag_values

__all__ = [
    "LISTING_PAGES",
    "find_run_model",
    "image_identity",
    "models_of_key_in_prefect",
    "on_model",
]

# The bounded fallback: the newest LISTING_PAGES × LISTING_PAGE_SIZE models of the project.
LISTING_PAGES = 2
LISTING_PAGE_SIZE = 200
_LOGGER = get_logger("prefect_scenario.reconcile")


async def models_of_key_in_prefect(key: str) -> list[str] | None:
    """Model ids that earlier flow runs of ``key`` recorded, or None when Prefect cannot tell.

    None (no flow run context, the Prefect API failed, or earlier runs of the key recorded
    no model) sends the caller to the bounded listing; an empty list means no run of this
    key ever made a model.
    """
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    try:
        async with get_client() as prefect:
            runs = await prefect.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[idempotency_tag(key)])), limit=50
            )
    except (PrefectException, OSError) as exc:
        _LOGGER.warning("could not read earlier flow runs of %s from Prefect (%s)", key, type(exc).__name__)
        return None
    # The current run counts too: a task called twice in one run, or a run resumed after a
    # suspend (same flow run id, a new process), finds the model it already made.
    ids = {m for run in runs for m in tag_values(run.tags, MODEL_TAG_PREFIX)}
    if ids:
        return sorted(ids)
    if not [run for run in runs if run.id != context.flow_run.id]:
        return []
    # Earlier runs of this key exist but none recorded its model: a crash between the create
    # and the tag. Only a listing can find that model.
    return None


def _is_orphan(model: Model, name: str, training_type: str) -> bool:
    """A model an interrupted create left behind: ours by name and type, untouched and untagged."""
    return (
        model.name == name
        and model.type == training_type
        and model.status == "new"
        and model.training_images_number == 0
        and not any(t.startswith(IDEMPOTENCY_TAG_PREFIX) for t in model.tags)
    )


def _oldest(models: Iterable[Model]) -> Model | None:
    # If two ever exist, keep using the one the first attempt made.
    ordered = sorted(models, key=lambda m: m.created_at or "")
    return ordered[0] if ordered else None


async def find_run_model(
    client: ScenarioClient, *, key: str, name: str, training_type: str, prefect_first: bool = True
) -> Model | None:
    """The model of the run ``key``: tagged with it, else an untagged orphan of an interrupted create.

    Args:
        client: the Scenario client.
        key: the run's idempotency key.
        name: the model name (to recognise an untagged orphan).
        training_type: the model type (likewise).
        prefect_first: look in Prefect's earlier flow runs first (False right after a
            failed create of this very attempt: only a listing can see that model).
    """
    tag = idempotency_tag(key)
    known = await models_of_key_in_prefect(key) if prefect_first else None
    if known == []:
        return None
    if known:
        found = _oldest(m for m in await client.get_models_bulk(known) if tag in m.tags)
        if found is not None:
            return found
    tagged: list[Model] = []
    orphans: list[Model] = []
    seen = 0
    async for model in client.list_models(page_size=LISTING_PAGE_SIZE):
        if tag in model.tags:
            tagged.append(model)
        elif _is_orphan(model, name, training_type):
            orphans.append(model)
        seen += 1
        if seen >= LISTING_PAGES * LISTING_PAGE_SIZE:
            break
    return _oldest(tagged) or _oldest(orphans)


def image_identity(image: PreparedImage) -> str:
    """How an image is recognised on a model: its content hash prefix, or its asset id."""
    return image.sha256[:16] if image.sha256 else str(image.asset_id)


def on_model(images: Iterable[TrainingImage]) -> dict[str, str]:
    """Identity → training image id, for the images a model has."""
    found: dict[str, str] = {}
    for image in images:
        found.setdefault(hash_from_wire_name(image.name) or image.id, image.id)
    return found
