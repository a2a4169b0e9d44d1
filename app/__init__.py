"""RQ Monitor: a monitor and control plane for RQ, as a Flask app factory."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import config
from app.embedded_redis import ensure_embedded_redis

if TYPE_CHECKING:
    from flask import Flask

# Flask is imported inside create_app(): the worker side imports app.domain, and every RQ work horse it forks
# should not carry the web stack.

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _template_folder() -> str:
    """The top-level templates/ of a checkout, else the copy installed inside the package."""
    checkout = PROJECT_ROOT / "templates"
    return str(checkout if checkout.is_dir() else Path(__file__).parent / "templates")


def _load_config(app: Flask, test_config: dict[str, Any] | None) -> None:
    app.config.from_mapping(config.defaults())
    app.config.update(config.from_env())
    if test_config:
        app.config.update(test_config)
    from app.domain.severity import StuckThresholds

    try:  # the one thresholds object every stuck check, page and the ticker's feeds use
        app.config["STUCK_THRESHOLDS"] = StuckThresholds.from_config(app.config)
    except ValueError as error:
        raise config.ConfigError(
            f"STUCK_THRESHOLDS_MINUTES={app.config['STUCK_THRESHOLDS_MINUTES']!r}: {error}"
        ) from None
    if not app.config["JWT_SECRET_KEY"]:
        from app.cli import loaded_by_a_command

        if app.config["ENV"] != "production" or app.config["TESTING"]:
            app.config["JWT_SECRET_KEY"] = _development_secret(Path(app.instance_path))
        elif not loaded_by_a_command():  # `flask users …` only touches Redis: it signs no token
            raise RuntimeError("JWT_SECRET_KEY must be set in production (or set RQMON_ENV=development)")
    app.config["SECRET_KEY"] = app.config["JWT_SECRET_KEY"]
    if not app.config["REDIS_URL"]:
        app.config["REDIS_URL"] = ensure_embedded_redis(Path(app.instance_path) / "redis")


def _development_secret(instance: Path) -> str:
    """A random secret kept in the instance folder, so that development tokens survive restarts."""
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "jwt-secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _stop_on(error: config.ConfigError) -> NoReturn:
    """A bad setting stops start-up with one line, not a traceback. Exit status 4 is gunicorn's "App failed to
    load": its master stops instead of restarting workers that can never boot."""
    for line in str(error).splitlines():  # one line per error (a rules file may hold several)
        print(f"rq-monitor: configuration error: {line}", file=sys.stderr, flush=True)
    raise SystemExit(4)


def _recover_stalled_jobs(tick: Any) -> None:
    """Tick task: active jobs whose worker is gone go back to their queues (app.domain.stalled)."""
    from app.domain.stalled import recover_stalled

    recover_stalled(tick.connection, tick.now, float(tick.config["WORKER_STALE_SECONDS"]))


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """config → extensions → blueprints → error handlers → CLI."""
    from flask import Flask
    from werkzeug.middleware.proxy_fix import ProxyFix

    from app.json_provider import OrjsonProvider

    app = Flask(
        __name__,
        template_folder=_template_folder(),
        instance_path=str(config.instance_folder()),
        instance_relative_config=True,
    )
    app.json = OrjsonProvider(app)
    try:
        _load_config(app, test_config)
    except config.ConfigError as error:
        _stop_on(error)
    if app.config["TRUSTED_PROXIES"]:
        n = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]

    from app.auditing import init_audit
    from app.blueprints import (
        alerts,
        audit,
        auth,
        health,
        job_actions,
        jobs,
        live,
        openapi,
        pages,
        prometheus,
        tokens,
    )
    from app.cli import init_cli
    from app.errors import register_error_handlers
    from app.extensions import init_redis, jwt
    from app.security import init_security
    from app.ticker import init_ticker, register_task

    init_redis(app, app.config["REDIS_URL"])
    jwt.init_app(app)
    init_security(app)

    for blueprint in (auth.bp, health.bp, openapi.bp, jobs.bp, job_actions.bp, live.bp, pages.bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(tokens.bp)
    app.register_blueprint(audit.bp)
    from app.blueprints import periodic

    app.register_blueprint(periodic.bp)
    app.register_blueprint(prometheus.bp)
    from app.blueprints import workers

    app.register_blueprint(workers.bp)
    app.register_blueprint(alerts.bp)
    init_audit(app)

    register_error_handlers(app)
    register_task(app, "stalled-jobs", _recover_stalled_jobs)
    init_ticker(app)
    init_cli(app)
    return app
