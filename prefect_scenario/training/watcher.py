"""Moved to :mod:`prefect_scenario.waiting.watcher`; kept so deployments that name this path still load."""

from prefect_scenario.waiting.watcher import scenario_training_watcher  # noqa: F401
