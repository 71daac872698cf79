"""Open positions: stop-loss / take-profit monitoring."""

from machine.positions._monitor import PositionMonitor, exit_trigger

__all__ = ["PositionMonitor", "exit_trigger"]
