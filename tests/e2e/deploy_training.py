"""Deploy ``train_lora`` into a work pool of the engine (run by ``tests/e2e/engine.py`` against its server).

A process work pool runs each flow run from code on this machine: the deployment's
entrypoint is the flow's module path (``prefect_scenario.training.flows.train_lora``),
importable wherever the package is installed, so no storage, image or pull step is
involved (Prefect's ``EntrypointType.MODULE_PATH``; ``RunnerDeployment.apply`` then
writes ``pull_steps: []``). The same entrypoint works in the production image
(``Dockerfile``), where the package is installed in site-packages.

Prints the deployment id on its last line.
"""

from __future__ import annotations

import argparse

from prefect.types.entrypoint import EntrypointType

from prefect_scenario import train_lora


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pool", required=True)
    parser.add_argument("--name", default="train-lora")
    args = parser.parse_args()
    deployment = train_lora.to_deployment(name=args.name, entrypoint_type=EntrypointType.MODULE_PATH)
    print(deployment.apply(work_pool_name=args.pool))


if __name__ == "__main__":
    main()
