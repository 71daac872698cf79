"""A trader as loaded from the ``traders`` table.

A trader = filter code (untrusted Python) + analysis instructions + risk
settings + mode (paper/live), run over its symbols on its check interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

__all__ = ["Risk", "TraderConfig"]


@dataclass(frozen=True, slots=True)
class Risk:
    """Risk settings; percentages are of the entry price or of the quote balance.

    Attributes:
        stop_loss_pct: default stop-loss distance from entry, percent.
        take_profit_pct: default take-profit distance from entry, percent.
        position_size_pct: notional of a new position as percent of the quote balance.
        max_positions: open positions allowed at once for this trader.
        max_drawdown_pct: equity this far below its peak (percent) halts the trader; None: no limit.
        daily_loss_limit_pct: equity this far below the UTC day's start (percent) stops entries
            for the rest of the day; None: no limit.
        loss_cooldown_minutes: no entry on a symbol for this long after a losing close there.
    """

    stop_loss_pct: Decimal
    take_profit_pct: Decimal
    position_size_pct: Decimal
    max_positions: int
    max_drawdown_pct: Decimal | None = None
    daily_loss_limit_pct: Decimal | None = None
    loss_cooldown_minutes: int = 0


@dataclass(frozen=True, slots=True)
class TraderConfig:
    """One trader. ``symbols`` None means every TRADING symbol of the quote asset;
    ``model_tier`` (``standard``/``fast``) picks the LLM, ``analysis_candles`` how many
    candles of each interval an analysis sees (seed 000's analysis limit, 1..1000)."""

    id: UUID
    user_id: UUID
    name: str
    filter_code: str
    ai_instructions: str
    timeframes: tuple[str, ...]
    check_interval: str
    reanalysis_interval: str
    symbols: tuple[str, ...] | None
    mode: str
    risk: Risk
    status: str
    version: int
    model_tier: str = "standard"
    analysis_candles: int = 100

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "TraderConfig":
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            name=row["name"],
            filter_code=row["filter_code"],
            ai_instructions=row["ai_instructions"],
            timeframes=tuple(row["timeframes"]),
            check_interval=row["check_interval"],
            reanalysis_interval=row["reanalysis_interval"],
            symbols=tuple(s.upper() for s in row["symbols"]) if row["symbols"] is not None else None,
            mode=row["mode"],
            risk=Risk(
                stop_loss_pct=row["stop_loss_pct"],
                take_profit_pct=row["take_profit_pct"],
                position_size_pct=row["position_size_pct"],
                max_positions=row["max_positions"],
                max_drawdown_pct=row.get("max_drawdown_pct"),
                daily_loss_limit_pct=row.get("daily_loss_limit_pct"),
                loss_cooldown_minutes=row.get("loss_cooldown_minutes") or 0,
            ),
            status=row["status"],
            version=row["version"],
            model_tier=row.get("model_tier") or "standard",
            analysis_candles=row.get("analysis_candles") or 100,
        )

    @property
    def fingerprint(self) -> tuple[Any, ...]:
        """Changes whenever anything the machine runs changes (reload detection), also when a
        setting was edited without bumping ``version``."""
        return (self.version, self.filter_code, self.timeframes, self.check_interval, self.reanalysis_interval,
                self.symbols, self.mode, self.risk, self.ai_instructions, self.model_tier, self.analysis_candles)
