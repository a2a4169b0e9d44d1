"""`flask --app app users ...`: user management. Passwords are prompted or read from stdin, never echoed."""

from __future__ import annotations

import secrets
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.auditing import AuditedGroup
from app.domain import users
from app.domain.errors import DomainError
from app.domain.users import Role
from app.extensions import get_redis
from app.live_cli import monitor_cli
from app.tokens_cli import tokens_cli

users_cli = AuditedGroup("users", help="Manage the monitor's users.")
ROLE_CHOICE = click.Choice([role.value for role in Role])


def _fail(error: DomainError) -> None:
    detail = "".join(f"; {field}: {text}" for field, text in (error.details or {}).items())
    raise click.ClickException(f"{error.message}{detail}") from error


@users_cli.command("create")
@click.argument("name")
@click.option("--role", type=ROLE_CHOICE, required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user(name: str, role: str, password_stdin: bool) -> None:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = users.create_user(get_redis(), name, password, Role(role), current_app.config["PASSWORD_HASH_METHOD"])
    except DomainError as error:
        _fail(error)
        return
    click.echo(f"created {user.username} ({user.role.value})")


@users_cli.command("list")
def list_users() -> None:
    for user in users.list_users(get_redis()):
        click.echo(f"{user.username}\t{user.role.value}\t{user.created_at}")


@users_cli.command("set-role")
@click.argument("name")
@click.argument("role", type=ROLE_CHOICE)
def set_role(name: str, role: str) -> None:
    try:
        user = users.set_role(get_redis(), name, Role(role))
    except DomainError as error:
        _fail(error)
        return
    click.echo(f"{user.username} is now {user.role.value}")


@users_cli.command("delete")
@click.argument("name")
def delete_user(name: str) -> None:
    try:
        users.delete_user(get_redis(), name)
    except DomainError as error:
        _fail(error)
        return
    click.echo(f"deleted {name}")


demo_cli = AppGroup("demo", help="Demo data for a first look.")


@demo_cli.command("seed")
@click.option("--password-stdin", is_flag=True, help="Read the demo users' password from standard input.")
def seed_demo(password_stdin: bool) -> None:
    """Demo users (admin, viewer), jobs in every state and 30 days of history."""
    from app.demo import seed_demo as seed

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else secrets.token_urlsafe(9)
    summary = seed(get_redis(), password)
    click.echo(f"seeded {summary['jobs']} jobs, {summary['history']} history records, {summary['stuck']} stuck")
    if not password_stdin:
        for name, role in summary["users"]:
            click.echo(f"login: {name} / {password} ({role})")


def loaded_by_a_command() -> bool:
    """Whether the app is being created by a `flask` command other than `run` (users, demo, monitor, shell…):
    those never sign or check a token, so they work without JWT_SECRET_KEY in production."""
    from flask.cli import ScriptInfo

    context = click.get_current_context(silent=True)
    return context is not None and context.find_object(ScriptInfo) is not None and context.info_name != "run"


def init_cli(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(monitor_cli)
