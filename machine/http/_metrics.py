"""Metrics snapshot, rendered as seed 002 JSON or Prometheus text."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

__all__ = ["MetricsSnapshot", "render_prometheus", "rss_mb"]


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Values at one instant. ``counters`` are monotonic totals since start."""

    active_traders: int
    signals_checked_1h: int
    signals_triggered_1h: int
    open_positions: int
    watching_signals: int
    memory_usage_mb: float
    websocket_status: str
    last_kline_update: str | None
    counters: Mapping[str, float] = field(default_factory=dict)
    gauges: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Seed 002 ``GET /metrics`` shape plus ``counters`` and ``gauges``."""
        return {
            "activeTraders": self.active_traders,
            "signalsChecked1h": self.signals_checked_1h,
            "signalsTriggered1h": self.signals_triggered_1h,
            "openPositions": self.open_positions,
            "watchingSignals": self.watching_signals,
            "memoryUsageMB": round(self.memory_usage_mb, 1),
            "websocketStatus": self.websocket_status,
            "lastKlineUpdate": self.last_kline_update,
            "counters": dict(self.counters),
            "gauges": dict(self.gauges),
        }


class _SnapshotCollector:
    def __init__(self, snap: MetricsSnapshot) -> None:
        self._snap = snap

    def collect(self) -> Iterator[Any]:
        s = self._snap
        for name, value, doc in (
            ("active_traders", s.active_traders, "Traders loaded and running"),
            ("open_positions", s.open_positions, "Open positions"),
            ("watching_signals", s.watching_signals, "Signals being watched"),
            ("memory_usage_megabytes", s.memory_usage_mb, "Resident memory of the machine process"),
            ("websocket_connected", 1.0 if s.websocket_status == "connected" else 0.0, "Market stream connected"),
            ("signals_checked_last_hour", s.signals_checked_1h, "Symbol checks in the last hour"),
            ("signals_triggered_last_hour", s.signals_triggered_1h, "Filter matches in the last hour"),
        ):
            yield GaugeMetricFamily(f"trader_machine_{name}", doc, value=value)
        for name, value in s.gauges.items():
            yield GaugeMetricFamily(f"trader_machine_{name}", name.replace("_", " "), value=value)
        for name, value in s.counters.items():
            yield CounterMetricFamily(f"trader_machine_{name}", name.replace("_", " "), value=value)


def render_prometheus(snap: MetricsSnapshot) -> bytes:
    """Prometheus text exposition format 0.0.4 of ``snap``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snap))  # type: ignore[arg-type]
    return generate_latest(registry)


def rss_mb() -> float | None:
    """This process's resident set size from /proc (Linux), in MB; None where it cannot be read."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1_048_576
    except (OSError, ValueError, IndexError):
        return None
