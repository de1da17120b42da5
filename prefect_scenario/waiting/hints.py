"""A webhook hint's work in a long-lived process: the watcher's ``settle_model``, kept warm.

:func:`~prefect_scenario.waiting.watcher.settle_model` opens a Prefect client and a Scenario
client, asks Prefect which suspended run waits for the model, reads the model and resumes
the run: three calls in a row, two of them to the Prefect server. When a fleet's trainings
end together, the resumed runs start their processes at the same moment and load that
server most (measured on 2 cores: each Prefect call then takes 0.5–1.8 s), so a hint's lag
is about the number of Prefect calls it makes in a row. :class:`HintSettler` makes one:

- **an index of the waiting runs**, read from Prefect every ``index_seconds`` (one query, no
  Scenario request, no flow run): a hint for an indexed model reads the model and resumes
  its run at once. A model the index does not hold (its run suspended since the last read,
  or a made-up id) is asked of Prefect as before, so the index only ever saves a call;
- **clients kept open** for the process's life (no new connection per hint); a saved
  credentials block is loaded once, and again after a hint that used it failed (a rotated
  key is picked up by the next hint);
- the index is a cache, Prefect stays the only record: a run taken from it is only ever
  resumed (Prefect accepts one resume of a suspended run and refuses the rest, and a run
  resumed before its training ended suspends again); one past its deadline is left to the
  watcher, which times it out on a fresh read of Prefect.

What a delivery costs is unchanged: a model nobody waits for, no Scenario request; a forged
or early one, at most one read.

Example:
    >>> settler = HintSettler(credentials, index_seconds=10.0)
    >>> settler
    HintSettler(index_seconds=10.0, indexed=0)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.objects import StateType

from prefect_scenario.api.client import ScenarioClient
from prefect_scenario.credentials import ScenarioCredentials
from prefect_scenario.waiting.watcher import WaitingRun, WatchReport, find_waiting_runs, settle_runs

__all__ = ["DEFAULT_INDEX_SECONDS", "HintSettler"]

# Seconds between two reads of the waiting runs. A run that suspended since the last read is
# asked of Prefect as before, so this bounds nothing but the idle cost: one query per interval.
DEFAULT_INDEX_SECONDS = 10.0

log = logging.getLogger("prefect_scenario.webhooks")


class HintSettler:
    """``on_hint`` for the webhook receiver: ``settle_model`` with an index and open clients.

    Use it in one event loop; :meth:`start` (the receiver's startup) opens the clients and
    starts the index, :meth:`aclose` (its shutdown) ends both. A call before :meth:`start`
    starts it.

    Args:
        credentials: for runs whose flow used no saved credentials block.
        index_seconds: seconds between two reads of the waiting runs.
        clock: a monotonic clock (tests move it).
    """

    def __init__(
        self,
        credentials: ScenarioCredentials,
        *,
        index_seconds: float = DEFAULT_INDEX_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.credentials = credentials
        self.index_seconds = index_seconds
        self._clock = clock
        self._stack: contextlib.AsyncExitStack | None = None
        self._prefect: PrefectClient | None = None
        self._clients: dict[str | None, ScenarioClient] = {}
        self._index: dict[str, list[WaitingRun]] = {}
        self._indexed_at: float | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._refresh_failed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(index_seconds={self.index_seconds}, indexed={len(self._index)})"

    # -- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the Prefect client and start reading the waiting runs every ``index_seconds``."""
        if self._stack is not None:
            return
        self._stack = contextlib.AsyncExitStack()
        self._prefect = await self._stack.enter_async_context(get_client())
        self._refresher = asyncio.create_task(self._refresh_forever(), name="scenario-hint-index")

    async def aclose(self) -> None:
        """Stop the index and close every client."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = self._prefect = self._refresher = None

    # -- the index -------------------------------------------------------------------------

    async def refresh(self) -> int:
        """Read the suspended runs from Prefect into the index; how many there are."""
        await self.start()
        assert self._prefect is not None
        read_at = self._clock()  # a run suspending while the query runs may be missing: its hint asks Prefect
        runs = await find_waiting_runs(self._prefect, states=(StateType.PAUSED,))
        index: dict[str, list[WaitingRun]] = {}
        for run in runs:
            for model_id in run.record.model_ids:
                index.setdefault(model_id, []).append(run)
        self._index, self._indexed_at = index, read_at
        return len(runs)

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # Prefect unreachable: hints ask it themselves meanwhile
                if not self._refresh_failed:
                    log.warning("could not read the waiting runs (hints ask Prefect each time): %s", type(exc).__name__)
                self._refresh_failed = True
            else:
                if self._refresh_failed:
                    log.info("reading the waiting runs again")
                self._refresh_failed = False
            await asyncio.sleep(self.index_seconds)

    def indexed(self, model_id: str) -> list[WaitingRun]:
        """The suspended runs the index says wait for ``model_id`` (none once it is two reads old)."""
        fresh = self._indexed_at is not None and self._clock() - self._indexed_at <= 2 * self.index_seconds
        return list(self._index.get(model_id, ())) if fresh else []

    def _forget(self, run_ids: list[str]) -> None:
        gone = set(run_ids)
        for model_id, runs in list(self._index.items()):
            kept = [r for r in runs if str(r.id) not in gone]
            if kept:
                self._index[model_id] = kept
            else:
                del self._index[model_id]

    # -- one hint --------------------------------------------------------------------------

    async def client(self, credentials_block: str | None) -> ScenarioClient:
        """The open Scenario client for a saved credentials block (None: the default credentials)."""
        if credentials_block not in self._clients:
            credentials = self.credentials
            if credentials_block is not None:
                loaded = await ScenarioCredentials.aload(credentials_block)
                assert isinstance(loaded, ScenarioCredentials)
                credentials = loaded
            self._clients[credentials_block] = await credentials.get_client().__aenter__()
        return self._clients[credentials_block]

    async def __call__(self, model_id: str) -> WatchReport:
        """Settle the runs waiting for ``model_id``: resume each whose training ended."""
        await self.start()
        assert self._prefect is not None
        runs = self.indexed(model_id)
        try:
            if not runs:
                # Not indexed (suspended since the last read, or nobody waits): Prefect afresh.
                fresh = await find_waiting_runs(self._prefect, model_id=model_id, states=(StateType.PAUSED,))
                if not fresh:
                    return WatchReport()
                report, _ = await settle_runs(self._prefect, fresh, self.credentials, clients=self)
                return report
            report, skipped = await settle_runs(self._prefect, runs, self.credentials, clients=self, resume_only=True)
        except Exception:
            await self._drop_clients([r.credentials_block for r in runs])
            raise
        for run in skipped:  # past its deadline: the watcher times it out, on a fresh read of Prefect
            log.info("flow run %s (%s) is past its deadline: left to the watcher", run.name, run.id)
        self._forget(report.resumed)
        return report

    async def _drop_clients(self, blocks: Iterable[str | None]) -> None:
        # A failed hint may be a rotated key or a closed connection: the next one starts afresh.
        for block in {*blocks, None}:
            client = self._clients.pop(block, None)
            if client is not None:
                await client.aclose()
