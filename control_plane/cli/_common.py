"""What every ``control-plane`` command shares: the app, stderr console, settings, database pool,
one-line failures and JSON output."""

from __future__ import annotations

import os
from typing import Any

import asyncpg
import typer
from rich.console import Console

from control_plane.settings import ControlPlaneSettings

__all__ = ["app", "console"]

os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

app = typer.Typer(help="Control plane of the trader runtime.", no_args_is_help=True, add_completion=False)
console = Console(stderr=True)


def _settings() -> ControlPlaneSettings:
    return ControlPlaneSettings()


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[red]error:[/] {message}")
    raise typer.Exit(code)


async def _database_url(settings: ControlPlaneSettings) -> tuple[str, Any]:
    from control_plane.db import EmbeddedPostgres
    from control_plane.local import read_stack_info

    if settings.database_url is not None:
        return settings.database_url.get_secret_value(), None
    info = read_stack_info(settings.data_dir)
    if info is not None:
        return info.database_url, None
    server = EmbeddedPostgres(settings.data_dir / "pg")
    return server.start(), server


async def _with_pool(fn: Any) -> Any:
    settings = _settings()
    url, server = await _database_url(settings)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=3)
    try:
        return await fn(settings, pool)
    finally:
        await pool.close()
        if server is not None:
            server.stop()


def _json_out(value: Any) -> None:
    import orjson

    typer.echo(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode())


def _print_table(title: str, columns: tuple[str, ...], rows: Any) -> None:
    """A rich table on stdout: ``rows`` are sequences of cell strings, in ``columns`` order."""
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
