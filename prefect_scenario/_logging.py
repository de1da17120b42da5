"""The logger of the current Prefect run (its lines show in the UI), or ours outside a run.

Example:
    >>> run_logger().name
    'prefect_scenario'
"""

from __future__ import annotations

import logging

from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

__all__ = ["run_logger"]

_LOGGER = logging.getLogger("prefect_scenario")


def run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run logger inside a flow or task run; the ``prefect_scenario`` logger elsewhere."""
    try:
        return get_run_logger()
    except MissingContextError:
        return _LOGGER
