"""structlog for the control plane: JSON lines on stderr, or in a log file."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

__all__ = ["configure_logging"]


def configure_logging(level: str = "info", file: TextIO | None = None) -> None:
    """JSON log lines at ``level`` and above to ``file`` (default stderr).

    With a ``file``, the standard library's logging and Python warnings (e.g.
    a library's ``RuntimeDirWarning``) go there too, so nothing but the
    program's own output reaches the terminal.
    """
    if file is not None:
        handler = logging.StreamHandler(file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(logging.getLevelName(level.upper()))
        logging.captureWarnings(True)
        logging.getLogger("py.warnings").setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=file or sys.stderr),
        cache_logger_on_first_use=True,
    )
