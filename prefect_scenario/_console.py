"""The command line's terminal: a failed run ends as one line, its traceback stays in the run's log.

Prefect logs a failed flow or task run with its traceback, through its API handler (the
run's log in the UI) and through the console handler on the root logger. While a command
runs a flow, the console handler shows no traceback and no error record of a run: the
command prints the error itself, as one line, and the UI keeps the detail.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["console_without_tracebacks"]

_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


class _WithoutTraceback(logging.Formatter):
    """The console's own formatter, given the record without its exception or stack."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


class _RunErrorsStayInTheUI(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR and record.name.startswith(_RUN_LOGGERS))


@contextmanager
def console_without_tracebacks() -> Iterator[None]:
    """Within the block, Prefect's console handler prints no traceback and no run error."""
    from prefect.logging.handlers import PrefectConsoleHandler

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    saved = [(handler, handler.formatter) for handler in handlers]
    quiet = _RunErrorsStayInTheUI()
    for handler, formatter in saved:
        handler.setFormatter(_WithoutTraceback(formatter))
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler, formatter in saved:
            handler.setFormatter(formatter)
            handler.removeFilter(quiet)
