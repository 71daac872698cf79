"""The machine's heartbeat to the control plane (``fly_machines`` row)."""

from machine.heartbeat._heartbeat import Heartbeat

__all__ = ["Heartbeat"]
