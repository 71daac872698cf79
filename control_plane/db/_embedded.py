"""Embedded PostgreSQL 16 (the ``pgserver`` wheel) for the demo and the tests.

Production sets ``DATABASE_URL``; without it the control plane starts a local
server whose data lives under ``.data/pg`` (or a directory given by the caller).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

__all__ = ["EmbeddedPostgres", "resolve_database_url"]


class EmbeddedPostgres:
    """A pgserver instance; ``url`` is an asyncpg/libpq DSN over its Unix socket.

    Args:
        data_dir: the cluster's directory (created when missing).
        keep: when False the cluster is deleted on :meth:`stop` (tests).
    """

    def __init__(self, data_dir: Path, *, keep: bool = True) -> None:
        self.data_dir = Path(data_dir).resolve()
        self._keep = keep
        self._server = None

    def start(self) -> str:
        import pgserver  # imported lazily: production never needs it

        # As root, pgserver runs PostgreSQL as the user "pgserver", which must be able
        # to reach the directory: create the parent world-traversable, not the cluster.
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop" if self._keep else "delete")
        return self.url

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("embedded postgres is not started")
        return f"postgresql://postgres@/postgres?host={quote(str(self.data_dir))}"

    def database_url(self, dbname: str) -> str:
        """DSN of another database on the same server."""
        return f"postgresql://postgres@/{dbname}?host={quote(str(self.data_dir))}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def resolve_database_url(data_dir: Path) -> tuple[str, EmbeddedPostgres | None]:
    """``DATABASE_URL`` when set, otherwise a started embedded server under ``data_dir``.

    Returns:
        ``(url, server)``; ``server`` is None when ``DATABASE_URL`` was used.
    """
    url = os.environ.get("DATABASE_URL")
    if url:
        return url, None
    server = EmbeddedPostgres(data_dir)
    return server.start(), server
