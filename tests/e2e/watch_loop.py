"""The training watcher service (``prefect-scenario watch``'s loop) in its own process, for the suspend end-to-end test.

Each cycle prints its ``WatchReport`` as one JSON line, so the test reads what every watcher
process resumed. The test kills it (SIGKILL, mid-way) and starts another: the watcher keeps
no state (Prefect's flow-run tags are the record), so the next one finishes the work. The
Scenario credentials come from the ``SCENARIO_*`` variables, as for the workers' runs.

The same loop as ``prefect-scenario watch`` (:func:`~prefect_scenario.waiting.service.watch_forever`):
cycles in one process, no flow run per cycle.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from prefect_scenario.waiting.service import watch_forever
from prefect_scenario.waiting.watcher import WatchReport


def report(cycle: WatchReport) -> None:
    print(json.dumps(cycle.model_dump(mode="json")), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--interval", type=float, default=1.0)
    asyncio.run(watch_forever(None, interval=parser.parse_args().interval, on_report=report))
