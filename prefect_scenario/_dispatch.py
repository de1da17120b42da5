"""Flows and tasks that return their result from sync code and can be awaited from async code.

Every public flow and task of prefect-scenario has one ``async def`` body. Called from
a plain script or a sync ``@flow`` it runs to completion and returns its result;
called from an ``async`` flow or a coroutine it returns an awaitable, as Prefect's own
async flows do.

Why not ``prefect._internal.compatibility.async_dispatch`` (prefect-aws ``s3.py``)? It
returns a plain function wrapping the flow, so ``.serve()``, ``.deploy()``,
``.to_deployment()``, ``.with_options()``, ``.submit()`` and ``.map()`` are gone, and a
``prefect.yaml`` entrypoint no longer loads as a flow. The subclasses below keep the
real :class:`~prefect.Flow` / :class:`~prefect.Task` object and decide the same way
(Prefect's :func:`is_in_async_context`) only in ``__call__``. A deployment run does not
go through ``__call__``: the engine runs the async body as usual.

Example:
    >>> @scenario_task(name="scenario-add-one")
    ... async def add_one(x: int) -> int:
    ...     return x + 1
    >>> add_one.fn.__name__, add_one.name
    ('add_one', 'scenario-add-one')
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, cast

from prefect import Flow, Task
from prefect._internal.compatibility.async_dispatch import is_in_async_context
from prefect.cache_policies import NO_CACHE
from prefect.utilities.asyncutils import run_coro_as_sync

__all__ = ["TASK_OPTIONS", "ScenarioFlow", "ScenarioTask", "scenario_flow", "scenario_task"]

P = ParamSpec("P")
R = TypeVar("R")
_SECRET_PARAMETERS = frozenset({"wandbKey", "wandb_key"})
# Idempotency is ours (tags, content hashes), not a cache's: every run talks to the API, and the
# one retry layer is the HTTP client's (Prefect task retries on top would multiply it).
TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False, "retries": 0}


def _settle(result: Any) -> Any:
    """Run the coroutine to its end when the caller is sync; hand it back when it is async."""
    if inspect.iscoroutine(result) and not is_in_async_context():
        return run_coro_as_sync(result)
    return result


def mask_secrets(value: Any) -> Any:
    """``value`` with every W&B key, at any depth, replaced by ``**********``.

    Example:
        >>> mask_secrets({"parameters": {"wandbKey": "k", "steps": 10}})
        {'parameters': {'wandbKey': '**********', 'steps': 10}}
    """
    if isinstance(value, dict):
        return {
            k: "**********" if k in _SECRET_PARAMETERS and v is not None else mask_secrets(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


class ScenarioFlow(Flow[P, R]):
    """A flow that runs to completion from sync code, and whose recorded parameters hold no W&B key.

    Prefect stores a run's parameters as the caller gave them: a ``SecretStr`` is masked,
    but ``parameters={"wandbKey": ...}`` (the CLI's form, a sidecar's, a fleet job's)
    would be stored in plain text. The flow itself still receives the real value.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _settle(super().__call__(*args, **kwargs))

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        return dict(mask_secrets(super().serialize_parameters(parameters)))

    def with_options(self, *args: Any, **kwargs: Any) -> ScenarioFlow[P, R]:
        copy = super().with_options(*args, **kwargs)
        copy.__class__ = ScenarioFlow
        return cast(ScenarioFlow[P, R], copy)


class ScenarioTask(Task[P, R]):
    """A task that runs to completion when called from sync code (a sync flow, a script)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _settle(super().__call__(*args, **kwargs))

    def with_options(self, *args: Any, **kwargs: Any) -> ScenarioTask[P, R]:
        copy = super().with_options(*args, **kwargs)
        copy.__class__ = ScenarioTask
        return cast(ScenarioTask[P, R], copy)


def scenario_flow(**options: Any) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], ScenarioFlow[P, R]]:
    """``@flow(**options)`` for an ``async def`` body, making a :class:`ScenarioFlow`."""

    def decorate(fn: Callable[P, Coroutine[Any, Any, R]]) -> ScenarioFlow[P, R]:
        return cast(ScenarioFlow[P, R], ScenarioFlow(fn, **options))

    return decorate


def scenario_task(**options: Any) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], ScenarioTask[P, R]]:
    """``@task(**options)`` for an ``async def`` body, making a :class:`ScenarioTask`."""

    def decorate(fn: Callable[P, Coroutine[Any, Any, R]]) -> ScenarioTask[P, R]:
        return cast(ScenarioTask[P, R], ScenarioTask(fn, **options))

    return decorate
