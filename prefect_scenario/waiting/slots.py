"""A fleet fills a freed training slot at once: its own get-bulk sees its training end, a waiting trigger goes.

On a plan that caps concurrent trainings (``parallel-training`` in Scenario's plan limits), a
trigger refused for want of a slot waits and tries again. Looking on a timer (every
``PollPolicy.slot_check``) wastes most of a slot when the fleet itself can see it free: while
any trigger of the fleet waits, :class:`SlotWatch` reads the fleet's started trainings with one
``POST /models/get-bulk`` per cycle, timed by :func:`~prefect_scenario.waiting.polling.next_poll_delay`
(just after each predicted end), and wakes one waiting trigger per training it sees end. The
timed check stays, for slots freed by trainings outside the fleet.

The watch is found through a context variable, so the trigger code only asks
:func:`wait_for_a_slot` and :func:`note_started`; outside a fleet both fall back to the timer.

Example:
    >>> import asyncio
    >>> asyncio.run(wait_for_a_slot(0.0))   # no fleet: the timed check
    False
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar

from prefect_scenario._logging import run_logger
from prefect_scenario.api.client import ScenarioClient
from prefect_scenario.api.retry_policy import is_transient
from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.exceptions import APIError
from prefect_scenario.waiting.polling import DEFAULT_POLICY, PollPolicy, next_poll_delay

__all__ = ["SlotWatch", "fleet_slots", "note_started", "wait_for_a_slot"]

_CURRENT: ContextVar[SlotWatch | None] = ContextVar("scenario_slot_watch", default=None)
Sleep = Callable[[float], Awaitable[object]]


class SlotWatch:
    """The fleet's started trainings, and the triggers waiting for one of them to end."""

    def __init__(self) -> None:
        self.started: dict[str, None] = {}
        self.ended: set[str] = set()
        self.freed_total = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._wanted = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def note_started(self, model_id: str) -> None:
        """A training of the fleet started (it will free a slot when it ends)."""
        self.started.setdefault(model_id)

    def freed(self, count: int) -> int:
        """Wake up to ``count`` waiting triggers, oldest first; returns how many woke."""
        woken = 0
        while woken < count and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                woken += 1
        return woken

    async def wait(self, seconds: float) -> bool:
        """True when a fleet training ended within ``seconds``; False on the timer."""
        if asyncio.get_running_loop() is not self._loop:
            await asyncio.sleep(seconds)  # another event loop (a task in a worker thread): the timer only
            return False
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(waiter)
        self._wanted.set()
        try:
            await asyncio.wait_for(waiter, seconds)
            return True
        except TimeoutError:
            return False

    def _running(self) -> list[str]:
        return [m for m in self.started if m not in self.ended]

    async def run(self, client: ScenarioClient, policy: PollPolicy, sleep: Sleep = asyncio.sleep) -> None:
        """Poll the fleet's running trainings while a trigger waits; wake one trigger per ended training."""
        while True:
            self._waiters = deque(w for w in self._waiters if not w.done())
            running = self._running()
            if not self._waiters or not running:
                self._wanted.clear()
                await self._wanted.wait()
                continue
            delay = policy.unknown
            try:
                models = await client.get_models_bulk(running, chunk=policy.max_ids_per_request)
            except APIError as exc:
                if not is_transient(exc):
                    raise
                models = []
            delays = []
            newly = [m.id for m in models if m.is_terminal and m.id not in self.ended]
            for model in models:
                if not model.is_terminal:
                    delays.append(next_poll_delay(model.status, model.training_progress, policy))
            if newly:
                self.ended.update(newly)
                self.freed_total += len(newly)
                woke = self.freed(len(newly))
                run_logger().info("%d fleet training(s) ended: %d waiting trigger(s) go now", len(newly), woke)
            await sleep(min(delays) if delays else delay)


@contextlib.asynccontextmanager
async def fleet_slots(
    credentials: ScenarioCredentials, policy: PollPolicy = DEFAULT_POLICY, *, sleep: Sleep = asyncio.sleep
) -> AsyncIterator[SlotWatch]:
    """Within this block, the triggers of this fleet wait for its own trainings to end, not only on a timer."""
    watch = SlotWatch()
    token = _CURRENT.set(watch)
    try:
        async with credentials.get_client() as client:
            poller = asyncio.create_task(watch.run(client, policy, sleep))
            try:
                yield watch
            finally:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError, APIError):
                    await poller
    finally:
        _CURRENT.reset(token)


def note_started(model_id: str) -> None:
    """Tell the current fleet's watch (if any) that ``model_id`` started training."""
    watch = _CURRENT.get()
    if watch is not None:
        watch.note_started(model_id)


async def wait_for_a_slot(seconds: float) -> bool:
    """Wait ``seconds`` for a slot: less when the current fleet sees one of its trainings end."""
    watch = _CURRENT.get()
    if watch is None:
        await asyncio.sleep(max(0.0, seconds))
        return False
    return await watch.wait(max(0.0, seconds))
