"""The training watcher as a loop of ``watch_once()`` in its own process (run by the suspend end-to-end test).

Each cycle prints its ``WatchReport`` as one JSON line, so the test reads what every watcher
process resumed. The test kills it (SIGKILL, mid-way) and starts another: the watcher keeps
no state (Prefect's flow-run tags are the record), so the next one finishes the work. The
Scenario credentials come from the ``SCENARIO_*`` variables, as for the workers' runs.

A loop in one process, not the served ``scenario-training-watcher`` deployment: a served
flow starts a process per cycle, which on a 2-core machine running 20 flow runs costs more
than the cycle itself. The served deployment is what ``prefect-scenario serve`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from prefect_scenario.waiting.watcher import watch_once


async def main(interval: float) -> None:
    while True:
        report = await watch_once()
        print(json.dumps(report.model_dump(mode="json")), flush=True)
        await asyncio.sleep(interval)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--interval", type=float, default=1.0)
    asyncio.run(main(parser.parse_args().interval))
