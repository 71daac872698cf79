"""Runs untrusted trader filter code in isolated, resource-limited worker processes.

See ``sandbox/README.md`` for the policy (what filters may do and why) and the
isolation each worker gets. The screener uses :class:`SandboxPool`; the
control plane and ``python -m sandbox check`` use :func:`validate_filter`.
"""

from ._check import CheckResult, validate_filter, validate_filter_async
from ._contract import filter_contract
from ._errors import FilterRejected, ProtocolError, SandboxError, SandboxUnavailable, UnknownFilter
from ._pool import MAX_BATCH_SYMBOLS, SandboxPool
from ._segment import SegmentSpec
from ._types import BatchResult, MarketSpec

__all__ = [
    "MAX_BATCH_SYMBOLS",
    "BatchResult",
    "CheckResult",
    "FilterRejected",
    "MarketSpec",
    "ProtocolError",
    "SandboxError",
    "SandboxPool",
    "SandboxUnavailable",
    "SegmentSpec",
    "UnknownFilter",
    "filter_contract",
    "validate_filter",
    "validate_filter_async",
]
