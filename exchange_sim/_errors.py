"""Errors raised by the exchange simulator (one root class: :class:`ExchangeSimError`)."""

from __future__ import annotations


class ExchangeSimError(Exception):
    """Root of every error this package raises."""


class ReplayDataError(ExchangeSimError):
    """The replay folder is missing, empty, or holds a file that cannot be parsed.

    The message names the folder or file and what is wrong with it.
    """


class BinanceAPIError(ExchangeSimError):
    """A request the simulated REST API rejects, carried to the HTTP layer.

    Rendered as Binance renders errors: HTTP ``status`` (400 unless stated) with the
    body ``{"code": code, "msg": msg}``. Codes and messages follow Binance's
    ``errors.md`` (binance-spot-api-docs), e.g. -1121 "Invalid symbol.".
    """

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status


class StreamNameError(ExchangeSimError):
    """A WebSocket stream name that Binance's grammar does not accept."""
