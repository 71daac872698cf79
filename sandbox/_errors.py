"""Errors raised by the sandbox package.

Hierarchy (name says what the caller must do)::

    SandboxError                 root: anything the sandbox raises on purpose
    ├── FilterRejected           blame user code: syntax or policy error, refuse to save/run it
    ├── UnknownFilter            caller bug: evaluate()/unload() of a filter never loaded
    ├── SandboxUnavailable       retry later: pool not started, stopped, or no worker came up in time
    ├── ProtocolError            a worker broke the reply format (the pool kills that worker)
    └── WindowGone               worker side: a pinned kline window was overwritten before it was read

Per-symbol filter errors (exceptions, non-bool results) and batch limits
(timeout, memory, crash) are not exceptions: they come back in
:class:`sandbox.BatchResult`, so one bad filter never interrupts a screening tick.
"""

from __future__ import annotations

__all__ = [
    "SandboxError",
    "FilterRejected",
    "UnknownFilter",
    "SandboxUnavailable",
    "ProtocolError",
    "WindowGone",
]


class SandboxError(Exception):
    """Root of every error the sandbox package raises."""


class FilterRejected(SandboxError):
    """The filter code does not compile under the policy; ``str(exc)`` is the message for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownFilter(SandboxError, KeyError):
    """No filter with this id is loaded in the pool."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown filter"


class SandboxUnavailable(SandboxError):
    """The pool cannot run a batch now (not started, stopped, or no worker available in time)."""


class ProtocolError(SandboxError):
    """A worker sent a message that is not in the reply format (too large, bad JSON, bad fields)."""


class WindowGone(SandboxError, RuntimeError):
    """A pinned kline window (``KlineSegment.window``) was overwritten before one of its columns was read.

    Happens when more than ``SLACK`` candles were appended to the slot since the
    window was pinned, or when the store reloaded the slot; the filter gets it as
    that symbol's error, and the next tick pins a fresh window.
    """
