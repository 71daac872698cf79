"""structlog for the control plane: JSON lines on stderr, or in a log file, secrets redacted.

No log line carries a secret: tracebacks are plain text without local variables
(``format_exc_info``, never a rich traceback with locals), and every value a program
registers with :func:`register_secret` (bearer tokens, API keys, database passwords) is
replaced by ``[redacted]`` wherever it appears in a line, exception text included.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any, TextIO

import structlog

__all__ = ["REDACTED", "configure_logging", "plain_traceback", "redact_secrets", "register_secret"]

REDACTED = "[redacted]"
#: Shorter values are not redacted (they would blank out ordinary words).
_MIN_SECRET_CHARS = 8
_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    """Never log ``value`` (ignored when shorter than 8 characters or None)."""
    if value and len(value) >= _MIN_SECRET_CHARS:
        _SECRETS.add(value)


def plain_traceback(exc: BaseException) -> str:
    """``exc``'s traceback as text, without local variables (log it as a field, never ``exc_info``
    under a renderer that may show locals)."""
    return "".join(traceback.format_exception(exc))


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _SECRETS:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def redact_secrets(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: registered secrets become ``[redacted]`` in every string value."""
    if not _SECRETS:
        return event_dict
    return {key: _scrub(value) for key, value in event_dict.items()}


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
            redact_secrets,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # sys.stderr looked up per logger, not bound once: a replaced stderr (tests) keeps working.
        logger_factory=(lambda *_: structlog.PrintLogger(file)) if file is not None
        else (lambda *_: structlog.PrintLogger(sys.stderr)),
        cache_logger_on_first_use=False,
    )
