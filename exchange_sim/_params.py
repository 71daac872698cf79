"""Decoded request parameters as Binance reads them (``errors.md``: -1100 illegal characters)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from ._errors import BinanceAPIError

__all__ = ["decimal_param"]

DECIMAL_RANGE = "^([0-9]{1,20})(\\.[0-9]{1,20})?$"
INTEGER_RANGE = "^[0-9]+$"


def decimal_param(params: Mapping[str, str], name: str, legal: str = DECIMAL_RANGE) -> Decimal | None:
    """The parameter as a non-negative ``Decimal``; None when absent or empty.

    Raises:
        BinanceAPIError: -1100 naming the parameter and its legal range ``legal`` when it is not a
            finite non-negative number.
    """
    text = params.get(name)
    if text is None or text == "":
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0:
        raise BinanceAPIError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")
    return value
