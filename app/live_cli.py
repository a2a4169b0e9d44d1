"""`flask --app app monitor publish`: the live publisher as a dedicated process."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from app.live import make_publisher

monitor_cli = AppGroup("monitor", help="Live monitoring processes.")


@monitor_cli.command("publish")
def publish() -> None:
    """Publish the live snapshots every tick (elected per tick with the web processes, so both may run)."""
    publisher = make_publisher(current_app)
    click.echo(f"publishing live snapshots every {publisher.tick_seconds}s; Ctrl-C stops")
    try:
        publisher.run()
    except KeyboardInterrupt:
        publisher.stop()
