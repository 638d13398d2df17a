"""The ops log: structlog, configured once per process.

The audit trail never goes through here (see ``guard.audit``): no level or handler
setting can drop an audit record.
"""

from __future__ import annotations

import logging
import sys
from typing import Final, TextIO, cast

import structlog

__all__ = ["LEVELS", "configure_logging"]

LEVELS: Final[dict[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

_configured = False


class _CurrentStderr:
    """A stream that writes to whatever ``sys.stderr`` is when it writes (a replaced stderr is followed)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> bool:
    """Configure structlog for the process; later calls are ignored. Return True on the first call.

    ``fmt`` is ``console`` (human), ``json`` (one object a line) or ``auto`` (console on a tty).
    """
    global _configured  # the one sanctioned piece of process state: structlog itself is global
    if _configured:
        return False
    out = stream if stream is not None else cast(TextIO, _CurrentStderr())
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=False) if use_console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    _configured = True
    return True
