"""Production of a dataset, on both sides: a Scenario collection, and a :class:`ScenarioLoRA` block.

On Scenario's side, production is membership of the dataset's collection
``psc-production-<slug>``: collections are the only server-side filter that works on
private models (``GET /models?collectionId=``, SDK ``types/model_list_params.py``; the
``tags`` filter is public-only). There is no atomic swap, so a move is done the way
MLflow aliases and W&B protected aliases are moved: the intent is written to the block,
the new model is added, then the old one is removed, then the block is completed. A kill
at any step leaves either the old state, or a recorded intent that the next run
completes: re-running leaves exactly one production model. A read that finds two claims
resolves them deterministically (the block's model, else the most recently updated).

A rollback reads only the block and sends two requests: add the previous model, remove
the current one.

Example:
    >>> collection_name("hero")
    'psc-production-hero-ae6c79d1'
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from prefect_scenario._logging import run_logger
from prefect_scenario.api.models import Collection, Model
from prefect_scenario.evaluation.block import ScenarioLoRA, block_name, dataset_slug
from prefect_scenario.evaluation.report import emit_lora_event
from prefect_scenario.exceptions import EvaluationInputError, NotFoundError, ProductionClaimError

__all__ = [
    "BlockStore",
    "HandleStore",
    "MemoryStore",
    "collection_name",
    "ensure_collection",
    "history_record",
    "production_claims",
    "promote_model",
    "read_production",
    "resolve_claims",
    "rollback",
]


class HandleStore(Protocol):
    """Where the Prefect-side handle lives (a block by default; tests keep it in memory)."""

    async def load(self, dataset: str) -> ScenarioLoRA:
        """The dataset's handle (a new, empty one if none was saved)."""
        ...

    async def save(self, handle: ScenarioLoRA) -> None:
        """Save the handle."""
        ...


class BlockStore:
    """Handles as :class:`ScenarioLoRA` blocks named :func:`~.block.block_name`."""

    async def load(self, dataset: str) -> ScenarioLoRA:
        try:
            loaded = await ScenarioLoRA.aload(block_name(dataset))
        except ValueError:  # Prefect's "Unable to find block document named ..."
            return ScenarioLoRA(dataset=dataset)
        assert isinstance(loaded, ScenarioLoRA)
        return loaded

    async def save(self, handle: ScenarioLoRA) -> None:
        await handle.asave(block_name(handle.dataset), overwrite=True)


class MemoryStore:
    """Handles in a dict (tests, and callers that keep their own)."""

    def __init__(self) -> None:
        self.handles: dict[str, dict[str, Any]] = {}

    async def load(self, dataset: str) -> ScenarioLoRA:
        data = self.handles.get(dataset)
        return ScenarioLoRA(**data) if data else ScenarioLoRA(dataset=dataset)

    async def save(self, handle: ScenarioLoRA) -> None:
        self.handles[handle.dataset] = handle.model_dump(exclude={"block_type_slug"})


def collection_name(dataset: str) -> str:
    """The name of the dataset's production collection."""
    return f"psc-production-{dataset_slug(dataset)}"


def history_record(action: str, model_id: str | None, **details: Any) -> dict[str, Any]:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no user name in some containers
        who = "unknown"
    return {"action": action, "model_id": model_id, "who": who, "at": datetime.now(UTC).isoformat(), **details}


async def ensure_collection(client: Any, dataset: str, handle: ScenarioLoRA) -> str:
    """The dataset's production collection id: the handle's, else found by name, else created (once)."""
    if handle.collection_id:
        return handle.collection_id
    name = collection_name(dataset)

    async def find() -> Collection | None:
        return next((c for c in await client.list_collections() if c.name == name), None)

    found = await find() or await client.create_collection(name, reconcile=find)
    return str(found.id)


def resolve_claims(claims: Sequence[Model], preferred: str | None) -> str | None:
    """The production model among ``claims``: ``preferred`` (the block's) if it is one, else the newest. Pure.

    Example:
        >>> a, b = Model(id="m_a", updatedAt="2026-01-01"), Model(id="m_b", updatedAt="2026-02-01")
        >>> resolve_claims([a, b], None), resolve_claims([a, b], "m_a"), resolve_claims([], None)
        ('m_b', 'm_a', None)
    """
    if not claims:
        return None
    if preferred in {c.id for c in claims}:
        return preferred
    return max(claims, key=lambda c: (c.updated_at or "", c.id)).id


async def production_claims(client: Any, collection_id: str) -> list[Model]:
    """Every model in the production collection."""
    return list(await client.list_collection_models(collection_id))


async def read_production(client: Any, dataset: str, store: HandleStore | None = None) -> str | None:
    """The dataset's production model, read on Scenario's side (double claims resolved deterministically)."""
    handle = await (store or BlockStore()).load(dataset)
    collection_id = (
        await ensure_collection(client, dataset, handle) if handle.collection_id is None else handle.collection_id
    )
    return resolve_claims(await production_claims(client, collection_id), handle.model_id)


async def promote_model(
    client: Any, dataset: str, model_id: str, *, store: HandleStore | None = None, details: dict[str, Any] | None = None
) -> ScenarioLoRA:
    """Make ``model_id`` the dataset's production model: intent, add, remove, complete.

    Raises:
        ProductionClaimError: the collection holds two or more other models and no recorded
            intent explains them (nothing is changed).
    """
    store = store or BlockStore()
    handle = await store.load(dataset)
    claims = await _claims(client, dataset, handle)
    others = [c.id for c in claims if c.id != model_id]
    pending = handle.pending or {}
    if len(others) > 1 and pending.get("model_id") not in [model_id, *others]:
        raise ProductionClaimError(
            f"dataset {dataset!r} has {len(others)} production claims ({', '.join(others)}): keep one with "
            f"`prefect-scenario rollback` or remove the others from collection {handle.collection_id}",
            model_ids=tuple(others),
        )
    previous = (
        pending.get("previous") if pending.get("model_id") == model_id else (others[0] if others else handle.model_id)
    )
    if handle.model_id != model_id:
        handle.pending = {"model_id": model_id, "previous": previous}
        await store.save(handle)
    if model_id not in {c.id for c in claims}:
        try:
            await client.add_to_collection(handle.collection_id, [model_id])
        except NotFoundError:  # the remembered collection is gone (a listing of it may answer empty)
            handle.collection_id = await _found_again(client, dataset, handle)
            await client.add_to_collection(handle.collection_id, [model_id])
    if others:
        await client.remove_from_collection(handle.collection_id, others)
    if handle.model_id != model_id:
        if previous and (not handle.previous_model_ids or handle.previous_model_ids[-1] != previous):
            handle.previous_model_ids.append(previous)
        handle.model_id = model_id
        handle.history.append(history_record("promoted", model_id, previous=previous, **(details or {})))
    handle.pending = None
    await store.save(handle)
    return handle


async def _claims(client: Any, dataset: str, handle: ScenarioLoRA) -> list[Model]:
    """The models in the dataset's production collection, which ``handle`` then names."""
    handle.collection_id = await ensure_collection(client, dataset, handle)
    try:
        return await production_claims(client, handle.collection_id)
    except NotFoundError:
        handle.collection_id = await _found_again(client, dataset, handle)
        return await production_claims(client, handle.collection_id)


async def _found_again(client: Any, dataset: str, handle: ScenarioLoRA) -> str:
    """The dataset's collection, found by name or created, when the one the block remembers is gone.

    A user may delete it in Scenario's web app, or a block may have been saved against another
    project; the gone collection marked nothing any more, so nothing is lost.
    """
    gone = handle.collection_id
    run_logger().warning("collection %s of %r is gone on Scenario's side: finding or creating it again", gone, dataset)
    handle.collection_id = None
    return await ensure_collection(client, dataset, handle)


async def rollback(client: Any, dataset: str, *, store: HandleStore | None = None) -> ScenarioLoRA:
    """Restore the previous production model: two requests to Scenario (add it, remove the current one).

    Raises:
        EvaluationInputError: nothing to roll back to.
    """
    store = store or BlockStore()
    handle = await store.load(dataset)
    if not handle.previous_model_ids or not handle.collection_id or not handle.model_id:
        raise EvaluationInputError(f"dataset {dataset!r} has no earlier production model to roll back to")
    current, previous = handle.model_id, handle.previous_model_ids[-1]
    await client.add_to_collection(handle.collection_id, [previous])
    await client.remove_from_collection(handle.collection_id, [current])
    handle.model_id, handle.previous_model_ids = previous, handle.previous_model_ids[:-1]
    handle.history.append(history_record("rolled-back", previous, replaced=current))
    await store.save(handle)
    emit_lora_event("rolled-back", previous, dataset, {"replaced": current, "dataset": dataset})
    return handle
