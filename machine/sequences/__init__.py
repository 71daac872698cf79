"""Order sequences: every executed decision as steps recorded before each is taken (issue 21).

``_plan`` (pure: decision + state -> steps or the reason it cannot be executed) and
``_engine`` (record, run, resume after a restart)."""

from machine.sequences._engine import SequenceEngine, SequenceResult
from machine.sequences._plan import MarketView, Refused, StepPlan, plan

__all__ = ["MarketView", "Refused", "SequenceEngine", "SequenceResult", "StepPlan", "plan"]
