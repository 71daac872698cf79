"""From a filter match to an executed (or stored and refused) decision."""

from machine.signals._payload import build_market_payload
from machine.signals._pipeline import SignalPipeline

__all__ = ["SignalPipeline", "build_market_payload"]
