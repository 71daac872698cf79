"""The machine's HTTP API: /health, /metrics, /reload-traders, /shutdown."""

from machine.http._app import MachineControl, create_app
from machine.http._metrics import MetricsSnapshot, render_prometheus, rss_mb

__all__ = ["MachineControl", "MetricsSnapshot", "create_app", "render_prometheus", "rss_mb"]
