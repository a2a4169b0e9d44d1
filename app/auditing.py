"""Auditing in one place: an after_request hook records every state-changing request (any non-GET route, the
login and logout ones included) before its response is sent, and AuditedGroup records the command line's user
and token commands. A route added later is audited without its author doing anything; its action is named from
its endpoint ("job_actions.retry" -> "job.retry", a queue-wide action -> "queue.pause").

Refusals of requests without a verified identity (a 4xx before or at authentication) are not recorded: anyone
could send them, and the capped log would lose its real history to them. Sign-ins are the exception: an attempt
that reached the password check is recorded whatever its answer, a throttled one once per throttle window."""

from __future__ import annotations

import getpass
import logging
from typing import Any

import click
import redis
from flask import Flask, Response, g, request
from flask.cli import AppGroup, ScriptInfo

from app.domain import audit
from app.domain.errors import DomainError
from app.errors import MAX_BODY_BYTES, domain_status
from app.extensions import get_redis

log = logging.getLogger(__name__)

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Endpoints whose action is not what their blueprint and function names say.
ACTIONS = {"pages.login_submit": "auth.login", "pages.logout": "auth.logout"}
# Non-GET routes that change nothing: renewing an access token is not an action of anyone's.
NOT_AUDITED = {"auth.refresh"}
# Blueprint nouns that differ from the object they act on.
NOUNS = {"periodic": "schedule", "worker_control": "worker"}


def action_name(endpoint: str, view_args: dict[str, Any] | None) -> str:
    """`<noun>.<verb>` from the endpoint: the blueprint names the noun (plural and `_actions` dropped), the
    function the verb; an action on a whole queue (a queueName, no jobId) is a queue action."""
    if endpoint in ACTIONS:
        return ACTIONS[endpoint]
    blueprint, _, function = endpoint.rpartition(".")
    noun = blueprint.removesuffix("_actions").removesuffix("s") or "app"
    noun = NOUNS.get(noun, noun)
    args = view_args or {}
    if "queueName" in args and "jobId" not in args:
        noun = "queue"
    return f"{noun}.{function.removesuffix(f'_{noun}')}"


def _actor(params: dict[str, Any]) -> tuple[str | None, str | None]:
    """Who made the request, and with which role: the verified token's, else the name a login was tried with."""
    claims = g.get("_jwt_extended_jwt")
    if claims:
        return claims.get("sub"), g.get("current_user_role") or claims.get("role")
    user = g.get("signed_in_user")
    if user is not None:
        return user.username, user.role.value
    attempted = params.get("username")
    return (str(attempted)[:64] if attempted else None), None


def _body() -> dict[str, Any]:
    if request.is_json and (request.content_length or 0) <= MAX_BODY_BYTES:
        body = request.get_json(silent=True)  # cached by the body check; never re-read past the limit
        return body if isinstance(body, dict) else {}
    return {}


def _params() -> dict[str, Any]:
    params: dict[str, Any] = dict(request.args.items())
    if request.mimetype == "application/x-www-form-urlencoded":
        params.update(request.form.items())
    params.update(_body())
    return params


def _target(action: str, actor: str | None) -> str | None:
    if action == "auth.login":
        return actor
    args = request.view_args or {}
    return "/".join(str(value) for value in args.values()) or None


def _redis_was_down(response: Response) -> bool:
    if response.status_code != 503 or not response.is_json:
        return False
    return ((response.get_json(silent=True) or {}).get("error") or {}).get("code") == "redis_unavailable"


def _anonymous_refusal(response: Response) -> bool:
    """A refusal (4xx) of a request nobody is known to have made, other than a sign-in worth recording."""
    if response.status_code < 400 or response.status_code >= 500:
        return False
    if g.get("_jwt_extended_jwt") or g.get("signed_in_user") is not None:
        return False
    return not (g.get("login_checked") or g.get("login_throttle_first"))


def record_request(response: Response) -> Response:
    """after_request: one entry per state-changing request, written before the response goes out."""
    endpoint = request.endpoint
    if request.method in SAFE_METHODS or not endpoint or endpoint in NOT_AUDITED:
        return response
    if _anonymous_refusal(response):
        return response
    action = action_name(endpoint, request.view_args)
    params = {} if response.status_code == 413 else _params()  # an oversized body is never read
    actor, role = _actor(params)
    if _redis_was_down(response):  # another wait for the same timeout would only hold the answer back
        log.error("audit entry not written for %s by %s: Redis unreachable", action, actor)
        return response
    try:
        audit.record(
            get_redis(),
            actor=actor,
            role=role,
            action=action,
            target=_target(action, actor),
            params=params,
            status=response.status_code,
            address=request.remote_addr,
        )
    except redis.RedisError as error:  # the action has happened (or failed) already; say so loudly
        log.error("audit entry not written for %s by %s: %s", action, actor, error)
    return response


def init_audit(app: Flask) -> None:
    app.after_request(record_request)


# --- The command line ------------------------------------------------------------------------------------------


def _cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


class AuditedCommand(click.Command):
    """A command recorded like a web action (`users.create`, `tokens.revoke`), whatever its outcome; the status
    is the HTTP status the same refusal gets on the web (200 when it worked). Secret options are redacted."""

    def invoke(self, ctx: click.Context) -> Any:
        status = 200
        try:
            return super().invoke(ctx)
        except click.ClickException as error:
            cause = error.__cause__
            status = domain_status(cause) if isinstance(cause, DomainError) else 400
            raise
        except click.exceptions.Exit as error:
            status = 200 if error.exit_code == 0 else 400
            raise
        except Exception:
            status = 500
            raise
        finally:
            _record_command(ctx, status)


def _record_command(ctx: click.Context, status: int) -> None:
    group = ctx.parent.info_name if ctx.parent else None
    params = {key: value for key, value in ctx.params.items() if value is not None}
    name = params.pop("name", None)
    noun = (group or "app").removesuffix("s")
    action = f"{noun}.{(ctx.info_name or '').replace('-', '_')}"
    with ctx.ensure_object(ScriptInfo).load_app().app_context():
        try:
            audit.record(
                get_redis(),
                actor=_cli_actor(),
                role=None,
                action=action,
                target=str(name) if name is not None else None,
                params=params,
                status=status,
                address="cli",
            )
        except redis.RedisError as error:
            log.error("audit entry not written for %s: %s", action, error)


class AuditedGroup(AppGroup):
    """A command group (`flask users …`, `flask tokens …`) whose every command is audited."""

    command_class = AuditedCommand
