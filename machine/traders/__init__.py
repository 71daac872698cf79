"""Trader configurations as the machine runs them."""

from machine.traders._model import Risk, TraderConfig

__all__ = ["Risk", "TraderConfig"]
