"""The flow process the crash matrix kills: ``train_lora`` on the images given, nothing else.

Run as ``python -m tests.reliability.crash_child NAME TYPE CONCURRENCY IMAGE...`` with the
``SCENARIO_*`` variables pointing at the test's emulator and ``PREFECT_API_URL`` at
the test session's Prefect server. Prints the result as JSON if it gets that far.
"""

from __future__ import annotations

import json
import sys

from prefect_scenario.training.flows import train_lora
from tests.flow_fixtures import FAST_POLL


def main(argv: list[str]) -> int:
    name, training_type, concurrency, *images = argv
    options = {"upload_concurrency": int(concurrency), "poll_policy": FAST_POLL}
    # A plain script: the flow returns its result (no event loop of our own).
    result = train_lora(name=name, training_type=training_type, images=images, **options)
    print(json.dumps(result.model_dump(mode="json")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
