"""The training watcher as one long-lived service: ``prefect-scenario watch``.

A watcher cycle (:func:`~prefect_scenario.waiting.watcher.watch_once`) is plumbing, not
work a user wants to see, so it is not a flow run: the loop runs in one process, as
Airflow's triggerer and Prefect's own server services do (``prefect/server/services`` in
PrefectHQ/prefect loop in the server's process). It creates no flow run, logs to its own
output (the ``prefect_scenario.watcher`` logger) and emits the ``scenario.training.*``
events as each training is seen ending.

- **Nothing waits, nothing runs**: a cycle with no run tagged ``scenario-waiting`` is one
  Prefect query and no Scenario request; no flow run exists in any case.
- **Lag bounded by design**: cycles start every ``interval`` seconds, measured from each
  cycle's start (not added up), so a training that ends is read at most one interval plus
  one cycle's calls later; when a read predicts an end sooner (``remainingTimeMs``), the
  next cycle starts just after it (never sooner than ``min_delay``).
- **Killed at any point, nothing lost**: Prefect's flow-run tags are the only state; the
  next process (or a second one running at the same time) does what is left, and Prefect
  accepts one resume of a suspended run and refuses the others.
- **An outage is survived**: a cycle that fails (Prefect or Scenario unreachable) is logged
  and the next one tries again; only a configuration error ends the service.

Example:
    >>> next_cycle_delay(30.0, elapsed=0.4, next_check=None)
    29.6
    >>> next_cycle_delay(30.0, elapsed=0.4, next_check=5.0)
    4.85
    >>> next_cycle_delay(30.0, elapsed=31.0, next_check=None)
    0.0
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Awaitable, Callable

from prefect_scenario.credentials import ScenarioCredentials, resolve_credentials
from prefect_scenario.exceptions import ConfigurationError
from prefect_scenario.waiting.watcher import DEFAULT_WATCH_INTERVAL, WatchReport, watch_once

__all__ = ["MIN_CYCLE_DELAY", "next_cycle_delay", "start_watch_thread", "watch_forever"]

# The least time between two cycles aimed at a predicted end: the poll floor's politeness
# (none of Scenario's own clients polls faster than about every 2 s).
MIN_CYCLE_DELAY = 2.0
# Just after a predicted end, as the in-process wait aims (PollPolicy.end_margin).
_END_MARGIN = 0.25

log = logging.getLogger("prefect_scenario.watcher")

Cycle = Callable[[ScenarioCredentials], Awaitable[WatchReport]]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]


def next_cycle_delay(
    interval: float, *, elapsed: float, next_check: float | None, min_delay: float = MIN_CYCLE_DELAY
) -> float:
    """Seconds from the end of a cycle to the start of the next. Pure.

    The next cycle starts ``interval`` after this one started, or just after the earliest
    predicted end if that is sooner (but at least ``min_delay`` after this one started).
    """
    target = interval
    if next_check is not None:
        target = min(interval, max(min_delay, next_check + _END_MARGIN))
    return max(0.0, round(target - elapsed, 6))


def _summary(report: WatchReport) -> str:
    parts = [f"{report.waiting} waiting", f"{report.bulk_requests} get-bulk"]
    for name in ("resumed", "timed_out", "cancelled_trainings", "forgotten"):
        done = getattr(report, name)
        if done:
            parts.append(f"{name.replace('_', ' ')}: {', '.join(done)}")
    return "; ".join(parts)


async def watch_forever(
    credentials: ScenarioCredentials | str | None = None,
    *,
    interval: float = DEFAULT_WATCH_INTERVAL,
    cycles: int | None = None,
    stop: threading.Event | None = None,
    on_report: Callable[[WatchReport], object] | None = None,
    cycle: Cycle = watch_once,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> int:
    """Run watcher cycles in this process until ``stop`` is set (or ``cycles`` ran).

    Args:
        credentials: for runs that did not use a saved block (a name, a block, or None for
            the ``SCENARIO_*`` variables); resolved once, before the first cycle.
        interval: the most seconds between the starts of two cycles.
        cycles: stop after this many (tests, benchmarks); None runs until stopped.
        stop: set it to end the loop after the current cycle (or its wait).
        on_report: called with each cycle's report (the CLI prints nothing else).
        cycle: one cycle (the watcher's ``watch_once``).
        clock, sleep: injectable, so tests move time instead of waiting.

    Returns:
        The number of cycles run.

    Raises:
        ConfigurationError: no credentials, or an interval that is not positive.
    """
    if not interval > 0:
        raise ConfigurationError(f"the watch interval must be above 0 seconds, got {interval}")
    resolved = await resolve_credentials(credentials)
    done = 0
    while (cycles is None or done < cycles) and not (stop is not None and stop.is_set()):
        started = clock()
        report: WatchReport | None = None
        try:
            report = await cycle(resolved)
        except Exception as exc:  # an outage: the next cycle tries again, Prefect still holds everything
            log.warning("watcher cycle failed (%s: %s); next cycle in %gs", type(exc).__name__, exc, interval)
        done += 1
        if report is not None:
            (log.info if report.waiting else log.debug)("watcher cycle: %s", _summary(report))
            if on_report is not None:
                on_report(report)
        if cycles is not None and done >= cycles:
            break
        next_check = report.next_check_seconds if report is not None else None
        await sleep(next_cycle_delay(interval, elapsed=clock() - started, next_check=next_check))
    return done


def start_watch_thread(
    credentials: ScenarioCredentials | str | None = None,
    *,
    interval: float = DEFAULT_WATCH_INTERVAL,
    stop: threading.Event | None = None,
) -> threading.Thread:
    """The watch loop in a daemon thread with its own event loop (``prefect-scenario serve`` runs it beside the flows).

    A daemon thread ends with the process: killed mid-cycle, it loses nothing.
    """

    def run() -> None:
        asyncio.run(watch_forever(credentials, interval=interval, stop=stop))

    # In a copy of this context: Prefect's settings (a temporary PREFECT_API_URL) live in a
    # context variable, which a bare thread would not see.
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(run,), name="scenario-training-watcher", daemon=True)
    thread.start()
    return thread
