"""`flask --app app monitor publish`: the ticker (live feeds and tick tasks) as a dedicated process."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from app.ticker import make_ticker

monitor_cli = AppGroup("monitor", help="Live monitoring processes.")


@monitor_cli.command("publish")
def publish() -> None:
    """Publish the live snapshots and run the tick tasks every tick (elected per tick with the web processes, so
    both may run)."""
    ticker = make_ticker(current_app)
    click.echo(f"publishing live snapshots every {ticker.tick_seconds}s; Ctrl-C stops")
    try:
        ticker.run()
    except KeyboardInterrupt:
        ticker.stop()
