"""Screening ticks: run a trader's filter over its symbols in the sandbox."""

from machine.screener._screener import Screener, TraderRuntime

__all__ = ["Screener", "TraderRuntime"]
