"""``control-plane demo``: one subscriber's machine end to end on the embedded defaults."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Optional

import typer

from control_plane.settings import ControlPlaneSettings

from ._common import _fail, app, console


@app.command()
def demo(
    replay: Optional[Path] = typer.Option(None, help="replay this kline folder instead of Binance"),
    speed: float = typer.Option(60.0, help="replay speed (60 = one 1m candle per second)"),
    duration: Optional[float] = typer.Option(None, help="stop after this many seconds (default: until Ctrl-C)"),
    analysis: str = typer.Option("rules", help="rules (offline) | llm (needs LLM_BASE_URL and LLM_MODEL_STANDARD)"),
    mode: str = typer.Option("paper", help="paper | live (against the simulator's matching engine, keys it creates)"),
) -> None:
    """Run one subscriber's machine end to end on the embedded defaults."""
    from pydantic import ValidationError

    from control_plane.demo import open_demo_log, print_summary, run_demo
    from control_plane.logs import configure_logging

    if analysis not in ("rules", "llm"):
        _fail(f"--analysis must be rules or llm, not {analysis!r}", 2)
    if mode not in ("paper", "live"):
        _fail(f"--mode must be paper or live, not {mode!r}", 2)
    try:
        settings = ControlPlaneSettings(analysis_backend=analysis)
    except ValidationError as exc:
        _fail(f"--analysis {analysis}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}", 2)
        return
    log_path, log_file = open_demo_log(settings.data_dir)
    console.print(f"Logs (exchange simulator, services, warnings): {log_path}", soft_wrap=True, highlight=False)
    configure_logging("info", log_file)
    try:
        result = asyncio.run(run_demo(settings, replay=replay, speed=speed, duration=duration, console=console,
                                      log_file=log_file, mode=mode))  # fmt: skip
    finally:
        log_file.flush()
    print_summary(result)
