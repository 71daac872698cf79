"""Trader metrics (seed ``001_2798fac69331791f.txt``, "Performance metrics"), pure.

From the PnL of a trader's closed positions in close order (quote asset) and its starting
capital: ``closed_positions``, ``total_pnl`` and ``total_pnl_pct`` (of the starting
capital), ``wins``/``losses`` (PnL > 0 / < 0; a zero is neither), ``win_rate`` (percent of
closed positions), ``avg_win`` and ``avg_loss`` (mean PnL of the winning / losing closes;
``avg_loss`` is negative), ``max_drawdown`` (the largest fall of realised equity, starting
capital plus cumulative PnL, from a running peak, quote asset) and ``max_drawdown_pct`` (that
fall as a percent of its peak), ``profit_factor`` (gross profit over gross loss; None without
a loss). Amounts quantized to 8 dp, percents to 4 dp, half-even.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

__all__ = ["TraderMetrics", "compute_metrics"]

_EIGHT = Decimal("0.00000001")
_FOUR = Decimal("0.0001")
_HUNDRED = Decimal(100)


def _q8(value: Decimal) -> Decimal:
    return value.quantize(_EIGHT, rounding=ROUND_HALF_EVEN)


def _q4(value: Decimal) -> Decimal:
    return value.quantize(_FOUR, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class TraderMetrics:
    """One trader's metrics for one mode (see the module doc); ``signals`` and
    ``open_positions`` are counts given by the caller."""

    signals: int
    open_positions: int
    closed_positions: int
    total_pnl: Decimal
    total_pnl_pct: Decimal
    wins: int
    losses: int
    win_rate: Decimal | None
    avg_win: Decimal | None
    avg_loss: Decimal | None
    max_drawdown: Decimal
    max_drawdown_pct: Decimal
    profit_factor: Decimal | None

    def to_json(self) -> dict[str, Any]:
        """camelCase keys, decimals as strings (None stays null)."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            head, *rest = key.split("_")
            name = head + "".join(part.title() for part in rest)
            out[name] = format(value, "f") if isinstance(value, Decimal) else value
        return out


def compute_metrics(
    closed_pnls: Sequence[Decimal], start_capital: Decimal, *, signals: int = 0, open_positions: int = 0
) -> TraderMetrics:
    """The metrics of closes with PnL ``closed_pnls`` (in close order) on ``start_capital`` (> 0)."""
    wins = [p for p in closed_pnls if p > 0]
    losses = [p for p in closed_pnls if p < 0]
    total = sum(closed_pnls, Decimal(0))
    equity = peak = start_capital
    drawdown = drawdown_pct = Decimal(0)
    for pnl in closed_pnls:
        equity += pnl
        peak = max(peak, equity)
        if peak - equity > drawdown:
            drawdown = peak - equity
            drawdown_pct = (peak - equity) / peak * _HUNDRED if peak > 0 else Decimal(0)
    gross_loss = -sum(losses, Decimal(0))
    n = len(closed_pnls)
    return TraderMetrics(
        signals=signals,
        open_positions=open_positions,
        closed_positions=n,
        total_pnl=_q8(total),
        total_pnl_pct=_q4(total / start_capital * _HUNDRED) if start_capital > 0 else Decimal(0),
        wins=len(wins),
        losses=len(losses),
        win_rate=_q4(Decimal(len(wins)) / n * _HUNDRED) if n else None,
        avg_win=_q8(sum(wins, Decimal(0)) / len(wins)) if wins else None,
        avg_loss=_q8(sum(losses, Decimal(0)) / len(losses)) if losses else None,
        max_drawdown=_q8(drawdown),
        max_drawdown_pct=_q4(drawdown_pct),
        profit_factor=_q8(sum(wins, Decimal(0)) / gross_loss) if gross_loss > 0 else None,
    )
