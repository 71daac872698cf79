"""Latency of the two paths money rides on: a closing kline to an entry fill, a crossing price to an exit."""

from machine.latency._book import ENTRY_STAGES, EntryTrace, LatencyBook, TickTiming

__all__ = ["ENTRY_STAGES", "EntryTrace", "LatencyBook", "TickTiming"]
