"""``control-plane db|traders|trades|analyses``: the schema, traders, their fills and analyses."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Optional
from uuid import UUID

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from control_plane.settings import ControlPlaneSettings

from ._common import _database_url, _fail, _json_out, _settings, _with_pool, app, console

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
traders_app = typer.Typer(help="Traders.", no_args_is_help=True)
trades_app = typer.Typer(help="Fills of paper (and live) trading.", no_args_is_help=True)
analyses_app = typer.Typer(help="Stored analyses: what they decided and cost; replay.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(traders_app, name="traders")
app.add_typer(trades_app, name="trades")
app.add_typer(analyses_app, name="analyses")


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending SQL migrations."""
    from control_plane.db import migrate

    async def run() -> list[int]:
        settings = _settings()
        url, server = await _database_url(settings)
        try:
            return await migrate(url)
        finally:
            if server is not None:
                server.stop()

    applied = asyncio.run(run())
    console.print(f"applied migrations: {applied or 'none (up to date)'}")


@traders_app.command("add")
def traders_add(user_id: UUID, spec: Path = typer.Argument(..., help="trader JSON, see examples/traders")) -> None:
    """Validate a trader's filter in the sandbox and save it (active); prints its id."""
    from control_plane.traders import TraderRejected, insert_trader, load_spec, validate_code

    try:
        trader = load_spec(spec)
        check = validate_code(trader.filter_code)
    except TraderRejected as exc:
        _fail(f"trader refused: {exc}")
        return
    console.print(f"sandbox check: {check['outcome']} on {check['symbols']} symbols ({check['matches']} matches)")

    async def run(_: ControlPlaneSettings, pool: asyncpg.Pool) -> UUID:
        return await insert_trader(pool, user_id, trader)

    print(asyncio.run(_with_pool(run)))


@traders_app.command("generate")
def traders_generate(
    user_id: UUID,
    description: str = typer.Argument(..., help='what the trader should do, e.g. "buy 1h RSI dips in an uptrend"'),
    json_: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Write a trader from a sentence with the configured LLM (LLM_BASE_URL, LLM_MODEL_STANDARD),
    check its filter in the sandbox (repairing it at most LLM_GENERATION_MAX_REPAIRS times) and
    save it paused; prints its id. Exit 1 when no valid trader came out, 2 without an LLM."""
    from control_plane.generation import GenerationFailed, UnknownUser, generate_and_save, spec_json

    settings = _settings()
    generator = settings.trader_generator()
    if generator is None:
        _fail("trader generation needs LLM_BASE_URL and LLM_MODEL_STANDARD", code=2)

    async def run(_: ControlPlaneSettings, pool: asyncpg.Pool) -> Any:
        try:
            return await generate_and_save(pool, generator, user_id, description)
        finally:
            await generator.aclose()

    try:
        saved = asyncio.run(_with_pool(run))
    except UnknownUser as exc:
        _fail(str(exc))
        return
    except ValueError as exc:
        _fail(str(exc), code=2)
        return
    except GenerationFailed as exc:
        meta = exc.meta
        if json_:
            _json_out({"success": False, "error": exc.reason, "generation": meta.to_dict()})
        _fail(f"no trader generated ({meta.rounds} round(s), {meta.usage.get('total_tokens', '?')} tokens): "
              f"{exc.reason}")
        return
    generated = saved.generated
    meta, check = generated.meta, generated.check
    if json_:
        _json_out({"success": True, "traderId": str(saved.trader_id), "generationId": str(saved.generation_id),
                   "status": "paused", "trader": spec_json(generated), "generation": meta.to_dict(),
                   "check": {"outcome": check.outcome, "detail": check.detail}})
        return
    cost = "-" if meta.cost_usd is None else f"${meta.cost_usd:.6f}"
    console.print(f"generated {generated.spec.name!r} (paused, paper) in {meta.rounds} round(s) with {meta.model}: "
                  f"{meta.usage.get('total_tokens', '?')} tokens, cost {cost}; sandbox check {check.outcome} "
                  f"on {check.symbols} symbols")
    print(saved.trader_id)


@traders_app.command("list")
def traders_list(user_id: UUID, json_: bool = typer.Option(False, "--json", help="print JSON instead of a table")) -> None:
    """Each trader's paper account (balances per asset, equity, positions, PnL, fill assumptions), its
    risk state and its metrics (win rate, average win and loss, max drawdown, profit factor)."""
    import orjson

    from control_plane.reports import FILL_RULE, trader_books

    async def run(_: ControlPlaneSettings, pool: asyncpg.Pool) -> list[dict[str, Any]]:
        return await trader_books(pool, user_id)

    books = asyncio.run(_with_pool(run))
    if json_:
        typer.echo(orjson.dumps(books).decode())
        return
    table = Table(title=f"traders of {user_id}", caption=f"fills: {FILL_RULE}")
    for col in ("trader", "mode", "status", "risk", "balances (free / locked)", "equity", "open", "closed",
                "realized PnL", "win rate", "avg win / loss", "max DD", "profit factor", "taker / maker", "slippage bps"):
        table.add_column(col)
    for b in books:
        balances = "\n".join(f"{a} {v['free']} / {v['locked']}" for a, v in b["balances"].items()) or "-"
        fa = b["fill_assumptions"]
        m = b["metrics"].get(b["mode"], {})
        table.add_row(b["name"], b["mode"], b["status"], b["risk_state"], balances, b["equity"] or "-",
                      str(b["open_positions"]), str(b["closed_positions"]), b["realized_pnl"],
                      f"{m['win_rate']} %" if m.get("win_rate") else "-",
                      f"{m.get('avg_win') or '-'} / {m.get('avg_loss') or '-'}",
                      f"{m['max_drawdown']} ({m['max_drawdown_pct']} %)" if m else "-",
                      m.get("profit_factor") or "-", f"{fa['taker_rate']} / {fa['maker_rate']}",
                      str(fa["slippage_bps"]))
    Console().print(table)


@trades_app.command("export")
def trades_export(
    user_id: UUID,
    trader: Optional[UUID] = typer.Option(None, "--trader", help="only this trader's fills"),  # noqa: UP007
    since: Optional[str] = typer.Option(None, "--since", help="ISO 8601; fills executed at or after it"),  # noqa: UP007
) -> None:
    """Every fill as CSV on stdout (header row), oldest first, to reconcile a paper account in a spreadsheet."""
    import sys
    from datetime import datetime, timezone

    from control_plane.reports import fills, write_fills_csv

    start = None
    if since is not None:
        try:
            start = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            _fail(f"--since {since!r} is not an ISO 8601 time", 2)
        if start is not None and start.tzinfo is None:
            start = start.replace(tzinfo=timezone.utc)

    async def run(_: ControlPlaneSettings, pool: asyncpg.Pool) -> list[dict[str, Any]]:
        return await fills(pool, user_id, trader_id=trader, since=start)

    write_fills_csv(sys.stdout, asyncio.run(_with_pool(run)))
    sys.stdout.flush()


@analyses_app.command("show")
def analyses_show(
    user_id: Optional[UUID] = typer.Option(None, "--user", help="only this subscriber's"),  # noqa: UP007
    limit: int = typer.Option(20, min=1, max=1000),
    json_: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """The newest analyses with their decision, model, tokens and cost."""
    from control_plane.reports import recent_analyses

    async def run(_: ControlPlaneSettings, pool: asyncpg.Pool) -> list[dict[str, Any]]:
        return await recent_analyses(pool, user_id=user_id, limit=limit)

    rows = asyncio.run(_with_pool(run))
    if json_:
        _json_out(rows)
        return
    table = Table(title="analyses")
    for col in ("id", "time", "trader", "symbol", "decision", "executed", "backend / model", "tokens", "cost USD",
                "failure"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["id"]), r["timestamp"].strftime("%m-%d %H:%M:%S"), r["trader"], r["symbol"], r["decision"],
                      "yes" if r["executable"] else "no", r["model"] or r["backend"] or "-",
                      str(r["tokens"] or "-"), f"{r['cost_usd']:f}" if r["cost_usd"] is not None else "-",
                      (r["llm_failure"] or "")[:40])
    Console().print(table)


@analyses_app.command("replay")
def analyses_replay(
    analysis_id: UUID,
    backend: Optional[str] = typer.Option(None, "--backend", help="rules | llm (default: ANALYSIS_BACKEND)"),  # noqa: UP007
    json_: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Re-run a stored analysis offline from its stored input; the old and new decision side by side."""
    from control_plane.analysis import AnalysisServiceError
    from control_plane.analysis._replay import replay_analysis

    if backend not in (None, "rules", "llm"):
        _fail(f"--backend must be rules or llm, not {backend!r}", 2)

    async def run(settings: ControlPlaneSettings, pool: asyncpg.Pool) -> Any:
        chosen = settings if backend is None else settings.model_copy(update={"analysis_backend": backend})
        instance = chosen.analysis_backend_instance()
        try:
            return await replay_analysis(pool, analysis_id, instance)
        finally:
            if hasattr(instance, "aclose"):
                await instance.aclose()

    try:
        replay = asyncio.run(_with_pool(run))
    except (LookupError, AnalysisServiceError) as exc:
        _fail(str(exc))
        return
    new = replay.result.to_wire()
    old = replay.stored
    if json_:
        _json_out({"id": str(analysis_id), "stored": old, "replayed": new})
        return
    table = Table(title=f"analysis {analysis_id}")
    for col in ("", "stored", "replayed"):
        table.add_column(col)
    table.add_row("decision", old["decision"], new["decision"])
    table.add_row("confidence", str(old["confidence"]), str(new["confidence"]))
    table.add_row("backend / model", str(old["metadata"].get("model") or old["metadata"].get("backend") or "-"),
                  str(new["metadata"].get("model") or new["metadata"].get("backend")))
    for key in ("stopLoss", "takeProfit"):
        table.add_row(key, str(old["metadata"].get(key, "-")), str(new["metadata"].get(key, "-")))
    table.add_row("reasoning", old["reasoning"], new["reasoning"])
    Console().print(table)
