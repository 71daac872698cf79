"""Volume helpers: volume over a period, volume change, OBV, volume MA.

Volumes are in the base asset (Binance kline column 5). Every helper takes
``klines`` (candle rows in Binance column order, at least 6 columns, oldest
first, or a store view with ``column()``), returns plain floats/tuples/
``None`` (``None`` = too few candles or undefined) and raises
``IndicatorError`` for bad arguments, never for too few candles.
"""

from __future__ import annotations

from . import _formulas, _ta
from ._input import CLOSE, VOLUME, Klines, check_period
from ._spec import IndicatorSpec, latest_of, series_of

__all__ = [
    "OBV",
    "VOLUME_CHANGE",
    "VOLUME_MA",
    "VOLUME_SUM",
    "get_latest_obv",
    "get_latest_volume",
    "get_latest_volume_change",
    "get_latest_volume_ma",
    "get_obv",
    "get_volume",
    "get_volume_change",
    "get_volume_ma",
]

Series = tuple[float | None, ...]


def _bind_volume(period: int = 1) -> tuple[int]:
    return (check_period(period, "volume", "period", 1),)


def _bind_volume_change(period: int) -> tuple[int]:
    return (check_period(period, "volume_change", "period", 1),)


def _bind_obv() -> tuple[()]:
    return ()


def _bind_volume_ma(period: int = 20) -> tuple[int]:
    return (check_period(period, "volume_ma", "period", 1),)


VOLUME_SUM = IndicatorSpec(
    name="volume",
    columns=(VOLUME,),
    compute=_formulas.volume,
    bind=_bind_volume,
    warmup=lambda period: period,
    outputs=("volume",),
    source="numpy: sum of the last `period` volumes",
    latest_helper="get_latest_volume",
    series_helper="get_volume",
)
VOLUME_CHANGE = IndicatorSpec(
    name="volume_change",
    columns=(VOLUME,),
    compute=_formulas.volume_change,
    bind=_bind_volume_change,
    warmup=lambda period: 2 * period,
    outputs=("volume_change",),
    source="numpy: percent change of the last `period` volumes' sum against the `period` before "
    "(StockCharts ChartSchool, Rate of Change, applied to volume sums)",
    latest_helper="get_latest_volume_change",
    series_helper="get_volume_change",
)
OBV = IndicatorSpec(
    name="obv",
    columns=(CLOSE, VOLUME),
    compute=_ta.obv,
    bind=_bind_obv,
    warmup=lambda: 1,
    outputs=("obv",),
    source="TA-Lib OBV",
    latest_helper="get_latest_obv",
    series_helper="get_obv",
)
VOLUME_MA = IndicatorSpec(
    name="volume_ma",
    columns=(VOLUME,),
    compute=_ta.volume_ma,
    bind=_bind_volume_ma,
    warmup=lambda period: period,
    outputs=("volume_ma",),
    source="TA-Lib SMA of volume",
    latest_helper="get_latest_volume_ma",
    series_helper="get_volume_ma",
)


def get_latest_volume(klines: Klines, period: int = 1) -> float | None:
    """Volume traded over the last ``period`` candles (current included), base
    asset: ``sum(volume[-period:])``. numpy (each window summed on its own, so
    all-zero windows give exactly 0). ``period=1`` is the latest candle's
    volume (the forming candle if the input includes it).

    Args: ``klines``; ``period``: window in candles, int 1..100000.
    Returns: float, or ``None`` with fewer than ``period`` candles (warm-up
    ``period``).
    """
    return latest_of(VOLUME_SUM, klines, _bind_volume(period))


def get_volume(klines: Klines, period: int = 1) -> Series:
    """Volume over the last ``period`` candles (base asset) at every candle
    (see :func:`get_latest_volume`). numpy. Not to be confused with
    :func:`get_volumes`, the raw volume column.

    Args: ``klines``; ``period``: window in candles, int 1..100000.
    Returns: tuple of ``float | None``, one per candle, ``None`` for the first
    ``period - 1`` (warm-up ``period``).
    """
    return series_of(VOLUME_SUM, klines, _bind_volume(period))


def get_latest_volume_change(klines: Klines, period: int) -> float | None:
    """Latest volume change in percent: the volume of the last ``period``
    candles against the ``period`` candles before them,
    ``(sum(v[-period:]) / sum(v[-2*period:-period]) - 1) * 100``
    (``period=1``: latest candle against the previous one). numpy; the ROC
    formula (StockCharts ChartSchool, "Rate of Change") on volume sums.

    Args: ``klines``; ``period``: window in candles, int 1..100000.
    Returns: float (percent, >= -100), or ``None`` with fewer than
    ``2 * period`` candles (warm-up ``2 * period``) or when the earlier
    window's volume is 0 (undefined).
    """
    return latest_of(VOLUME_CHANGE, klines, _bind_volume_change(period))


def get_volume_change(klines: Klines, period: int) -> Series:
    """Volume change in percent at every candle (see
    :func:`get_latest_volume_change`). numpy.

    Args: ``klines``; ``period``: window in candles, int 1..100000.
    Returns: tuple of ``float | None`` (percent), one per candle, ``None`` for
    the first ``2 * period - 1`` (warm-up ``2 * period``) and where the
    earlier window's volume is 0.
    """
    return series_of(VOLUME_CHANGE, klines, _bind_volume_change(period))


def get_latest_obv(klines: Klines) -> float | None:
    """Latest on-balance volume, base asset, starting from the oldest candle
    given (so it depends on the window start). TA-Lib OBV.

    Args: ``klines``.
    Returns: float, or ``None`` with no candles (warm-up 1).
    """
    return latest_of(OBV, klines, ())


def get_obv(klines: Klines) -> Series:
    """On-balance volume, base asset, at every candle. TA-Lib OBV.

    Args: ``klines``.
    Returns: tuple of floats, one per candle (warm-up 1, no ``None``).
    """
    return series_of(OBV, klines, ())


def get_latest_volume_ma(klines: Klines, period: int = 20) -> float | None:
    """Latest simple moving average of volume, base asset. TA-Lib SMA on the
    volume column.

    Args: ``klines``; ``period``: window in candles, int 1..100000.
    Returns: float, or ``None`` with fewer than ``period`` candles (warm-up
    ``period``).
    """
    return latest_of(VOLUME_MA, klines, _bind_volume_ma(period))


def get_volume_ma(klines: Klines, period: int = 20) -> Series:
    """Simple moving average of volume, base asset, at every candle. TA-Lib SMA.

    Args: ``klines``; ``period``: window in candles, int 1..100000.
    Returns: tuple of ``float | None``, one per candle, ``None`` for the first
    ``period - 1`` (warm-up ``period``).
    """
    return series_of(VOLUME_MA, klines, _bind_volume_ma(period))
