"""`flask --app app tokens create|list|revoke`: API tokens from the command line (an operator with access to
Redis, so any role). The secret is printed once, on its own line, for scripts to capture."""

from __future__ import annotations

import click

from app.auditing import AuditedGroup
from app.domain import tokens
from app.domain.errors import DomainError
from app.domain.users import Role
from app.extensions import get_redis

tokens_cli = AuditedGroup("tokens", help="Manage API tokens.")


def _fail(error: DomainError) -> None:
    detail = "".join(f"; {field}: {text}" for field, text in (error.details or {}).items())
    raise click.ClickException(f"{error.message}{detail}") from error


@tokens_cli.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice([role.value for role in Role]), required=True)
@click.option("--expires-in-days", type=int, default=None, help="Omitted: the token never expires.")
def create_token(name: str, role: str, expires_in_days: int | None) -> None:
    try:
        secret, token = tokens.create_token(get_redis(), name, Role(role), "", None, expires_in_days)
    except DomainError as error:
        _fail(error)
        return
    expiry = token.to_dict()["expires_at"] or "never"
    click.echo(f"created {token.name} ({token.role.value}, expires {expiry}); the token, shown once:", err=True)
    click.echo(secret)


@tokens_cli.command("list")
def list_tokens() -> None:
    for token in tokens.list_tokens(get_redis()):
        row = token.to_dict()
        fields = [row["name"], row["role"], row["created_at"], row["expires_at"] or "never", row["last_used_at"]]
        click.echo("\t".join(field or "-" for field in fields) + ("\texpired" if row["expired"] else ""))


@tokens_cli.command("revoke")
@click.argument("name")
def revoke_token(name: str) -> None:
    try:
        tokens.revoke_token(get_redis(), name)
    except DomainError as error:
        _fail(error)
        return
    click.echo(f"revoked {name}")
