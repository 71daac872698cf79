"""``control-plane traders pause|resume|enable`` and ``positions exit``: a user's machine steered
over its control API (``control_plane.machine_api``)."""

from __future__ import annotations

import asyncio
from typing import Any, Optional
from uuid import UUID

import asyncpg
import typer

from control_plane.settings import ControlPlaneSettings

from ._common import _fail, _json_out, _with_pool, app, console
from ._trading import traders_app

positions_app = typer.Typer(help="Open positions on a user's machine.", no_args_is_help=True)
app.add_typer(positions_app, name="positions")


def _secret(settings: ControlPlaneSettings) -> str | None:
    from control_plane.local import read_stack_info

    if settings.machine_token_secret is not None:
        return settings.machine_token_secret.get_secret_value()
    info = read_stack_info(settings.data_dir)
    return info.machine_token_secret if info is not None else None


def _on_machine(user_id: UUID, call: Any) -> Any:
    """Run ``call(api)`` against the user's machine; one-line failures."""
    from control_plane.machine_api import MachineApiError, machine_api_for

    async def run(settings: ControlPlaneSettings, pool: asyncpg.Pool) -> Any:
        secret = _secret(settings)
        if secret is None:
            raise MachineApiError("MACHINE_TOKEN_SECRET is not set and no local stack is running")
        api = await machine_api_for(pool, user_id, secret)
        try:
            return await call(api)
        finally:
            await api.aclose()

    try:
        return asyncio.run(_with_pool(run))
    except MachineApiError as exc:
        _fail(str(exc))


@traders_app.command("pause")
def traders_pause(user_id: UUID, trader_id: UUID,
                  reason: Optional[str] = typer.Option(None, help="recorded with the state")) -> None:  # noqa: UP007
    """Halt a trader on its machine (no signals, no analysis; stop-loss and take-profit still run)."""
    answer = _on_machine(user_id, lambda api: api.pause(trader_id, reason))
    console.print(f"trader {trader_id}: {answer['state']}")


@traders_app.command("resume")
def traders_resume(user_id: UUID, trader_id: UUID,
                   reason: Optional[str] = typer.Option(None, help="recorded with the state")) -> None:  # noqa: UP007
    """Make a paused or halted trader ACTIVE again."""
    answer = _on_machine(user_id, lambda api: api.resume(trader_id, reason))
    console.print(f"trader {trader_id}: {answer['state']}")


@traders_app.command("enable")
def traders_enable(user_id: UUID, trader_id: UUID) -> None:
    """Enable a paused trader (a generated one is saved paused) and ask the user's machine to load it
    (without a running machine it is loaded when the machine starts)."""
    from control_plane.machine_api import MachineApiError, machine_api_for

    async def run(settings: ControlPlaneSettings, pool: asyncpg.Pool) -> str:
        enabled = await pool.fetchval(
            "UPDATE traders SET status = 'active', updated_at = NOW() WHERE id = $1 AND user_id = $2 "
            "AND status = 'paused' RETURNING id", trader_id, user_id)
        if enabled is None:
            return "missing"
        secret = _secret(settings)
        try:
            if secret is None:
                raise MachineApiError("no MACHINE_TOKEN_SECRET")
            api = await machine_api_for(pool, user_id, secret)
            try:
                await api.reload_traders()
            finally:
                await api.aclose()
        except MachineApiError as exc:
            return f"enabled; the machine loads it when it starts ({exc})"
        return "enabled and loaded by the machine"

    outcome = asyncio.run(_with_pool(run))
    if outcome == "missing":
        _fail(f"user {user_id} has no paused trader {trader_id}")
    console.print(f"trader {trader_id}: {outcome}")


@positions_app.command("exit")
def positions_exit(
    user_id: UUID,
    trader: Optional[UUID] = typer.Option(None, "--trader", help="every open position of this trader"),  # noqa: UP007
    position: Optional[UUID] = typer.Option(None, "--position", help="this position"),  # noqa: UP007
    all_: bool = typer.Option(False, "--all", help="every open position of the user"),
    json_: bool = typer.Option(False, "--json", help="print the machine's answer as JSON"),
) -> None:
    """Close positions at market by hand (allowed in every risk state); exit 1 if any close failed."""
    if sum(x is not None and x is not False for x in (trader, position, all_ or None)) != 1:
        _fail("give exactly one of --position, --trader or --all", code=2)
    answer = _on_machine(user_id, lambda api: api.force_exit(position_id=position, trader_id=trader, everything=all_))
    if json_:
        _json_out(answer)
    else:
        for closed in answer["closed"]:
            console.print(f"closed {closed['positionId']} (pnl {closed['pnl']})")
        for failed in answer["failed"]:
            console.print(f"[red]not closed[/] {failed['positionId']}: {failed['error']}")
        if not answer["closed"] and not answer["failed"]:
            console.print("no open position matched")
    if answer["failed"]:
        raise typer.Exit(1)
