"""No secret in a log line: filters for the loggers that would print statement data.

Statement parameters and result rows hold token digests and password hashes.
``create_engine`` turns SQLAlchemy's parameter logging off (``hide_parameters``)
and installs these filters; no logger's level is ever changed.
"""

from __future__ import annotations

import functools
import logging

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.log import InstanceLogger

__all__ = ["hide_driver_arguments", "hide_result_rows"]


class _HideDriverArguments(logging.Filter):
    """Keep the ``aiosqlite`` logger's DEBUG lines, without the SQL parameters in them.

    aiosqlite logs each call it runs on its thread as ``executing <partial>``,
    whose repr holds the statement and its parameters. This filter replaces
    such arguments by the called function's name (and anything else but a
    number by its type name).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(_describe(arg) for arg in args)
        return True


def _describe(value: object) -> object:
    if isinstance(value, int | float) or value is None:
        return value
    if isinstance(value, functools.partial):
        function = value.func
        return f"{getattr(function, '__qualname__', type(function).__name__)}(...)"
    return f"<{type(value).__name__}>"


class _HideResultRows(logging.Filter):
    """Drop SQLAlchemy's DEBUG ``Row ...`` lines (rows hold password hashes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "Row %r"


_DRIVER_FILTER = _HideDriverArguments()
_ROWS_FILTER = _HideResultRows()


def _add_once(logger: logging.Logger, log_filter: logging.Filter) -> None:
    if log_filter not in logger.filters:
        logger.addFilter(log_filter)


def hide_driver_arguments() -> None:
    """Install the argument filter on the ``aiosqlite`` logger (once)."""
    _add_once(logging.getLogger("aiosqlite"), _DRIVER_FILTER)


def hide_result_rows(engine: AsyncEngine) -> None:
    """Install the row filter on the logger *engine* logs to (once)."""
    logger = engine.sync_engine.logger  # an InstanceLogger when echo is on
    _add_once(logger.logger if isinstance(logger, InstanceLogger) else logger, _ROWS_FILTER)
