"""When traders run: fixed intervals and candle closes."""

from machine.timers._schedule import INTERVAL_MS, Schedule, ScheduleError, intervals_needed, parse_schedule
from machine.timers._timers import Timers

__all__ = ["INTERVAL_MS", "Schedule", "ScheduleError", "Timers", "intervals_needed", "parse_schedule"]
