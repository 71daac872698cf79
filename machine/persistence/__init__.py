"""Postgres persistence of the machine's trading state (asyncpg).

The machine is the only writer of its user's signals, analyses, positions,
trades and paper accounts. Every state change is written before it is acted on.
"""

from machine.persistence._analyses import AnalysisRepository
from machine.persistence._closes import CloseFill, CloseIntent
from machine.persistence._db import SUPPORTED_SCHEMA_VERSIONS, SchemaMismatch, check_schema, open_pool
from machine.persistence._machines import MachineRepository
from machine.persistence._risk import RiskRepository, RiskStateRecord
from machine.persistence._sequences import SequenceRecord, SequenceRepository, StepRecord
from machine.persistence._signals import SignalRecord, SignalRepository
from machine.persistence._traders import TraderRepository
from machine.persistence._trading import InsufficientFunds, PositionRecord, TradeRecord, TradingRepository

__all__ = [
    "SUPPORTED_SCHEMA_VERSIONS",
    "AnalysisRepository",
    "CloseFill",
    "CloseIntent",
    "InsufficientFunds",
    "MachineRepository",
    "PositionRecord",
    "RiskRepository",
    "RiskStateRecord",
    "SchemaMismatch",
    "SequenceRecord",
    "SequenceRepository",
    "SignalRecord",
    "SignalRepository",
    "StepRecord",
    "TradeRecord",
    "TraderRepository",
    "TradingRepository",
    "check_schema",
    "open_pool",
]
