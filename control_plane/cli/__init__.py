"""``control-plane``: the admin CLI (typer + rich).

Commands: ``db migrate``, ``traders add|list``, ``trades export``, ``analyses show|replay``
(``_trading``); ``users add|set-tier|set-status|set-keys|cancel|list``, ``machines list|status``,
``reconcile [--once] [--dry-run]``, ``serve``, ``provision``, ``destroy`` (``_fleet``);
``traders pause|resume``, ``positions exit`` (``_control``, over the machine's API); ``demo``
(``_demo``); shared helpers in ``_common``. Lists are tables (``--json`` for scripts); a failure
is one line on stderr and a non-zero exit code. Settings come from the environment
(:mod:`control_plane.settings`).
"""

from __future__ import annotations

from . import _control, _demo, _fleet, _trading  # noqa: F401  (each registers its commands on the app)
from ._common import app

__all__ = ["app"]
