"""The admin pages under /admin: Jinja templates driven by the JSON API and the SSE streams.

Sessions are the same JWTs as the API, in HttpOnly cookies; state changes carry the CSRF token (double submit).
A page whose access cookie has expired is renewed from the refresh cookie, else sent to the login page.
Under /admin/ an error a browser navigates to is an HTML page with the navigation; scripts asking for JSON get JSON.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, Literal

from flask import Blueprint, Response, current_app, g, jsonify, redirect, render_template, request, url_for
from flask_jwt_extended import (
    get_jwt,
    get_jwt_identity,
    set_access_cookies,
    unset_jwt_cookies,
    verify_jwt_in_request,
)
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt.exceptions import PyJWTError
from pydantic import ValidationError
from spectree import Response as Resp

from app import charts
from app.domain import audit, history, schedules, worker_performance
from app.domain.alert_rules import rules_in_force, settings_from
from app.domain.jobs import UnreadableJob, fetch_job
from app.domain.names import check_queue_name, check_worker_name
from app.domain.queues import list_queue_names, require_queue
from app.domain.states import Period, vocabulary
from app.domain.users import Role
from app.domain.workers import read_worker
from app.errors import ApiError, validation_failed
from app.extensions import get_redis, spec
from app.schemas import LoginBody, Success
from app.schemas.audit import AuditQuery
from app.schemas.jobs import Query
from app.security import (
    LoginThrottled,
    authenticate_login,
    current_role,
    issue_tokens,
    renew_access_token,
    revoke_token,
    role_required,
    set_session_cookies,
)

bp = Blueprint("pages", __name__, url_prefix="/admin")

SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


def _to_login(reason: str) -> Response:
    target = url_for("pages.login", next=request.full_path.rstrip("?"), reason=reason)
    response = redirect(target)
    unset_jwt_cookies(response)  # type: ignore[arg-type]
    return response  # type: ignore[return-value]


def page(view: Callable[..., Any]) -> Callable[..., Any]:
    """A moderator's cookie session, renewed from the refresh cookie when the access cookie has expired."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        renewed = None
        try:
            verify_jwt_in_request(locations=["cookies"])
        except (JWTExtendedException, PyJWTError):
            try:
                verify_jwt_in_request(refresh=True, locations=["cookies"])
            except (JWTExtendedException, PyJWTError):
                return _to_login("expired" if request.cookies.get("refresh_token_cookie") else "signin")
            renewed = renew_access_token()
        g.page_user = {"username": get_jwt_identity(), "role": current_role().value}
        response = view(*args, **kwargs)
        if renewed:
            response = Response(response) if isinstance(response, str) else response
            set_access_cookies(response, renewed)
        return response

    return wrapper


@bp.app_context_processor
def _vocabulary() -> dict[str, Any]:
    """Every page's words and stuck bands: base.html hands `vocabulary` to the scripts as JSON (data-vocabulary)."""
    thresholds = current_app.config["STUCK_THRESHOLDS"]
    return {"stuck_thresholds": thresholds, "vocabulary": vocabulary(thresholds.minutes)}


def render(template: str, **context: Any) -> str:
    user = g.page_user
    return render_template(template, user=user, can_act=Role(user["role"]).includes(Role.ADMIN), **context)


@bp.get("/login")
def login() -> Any:
    messages = {"expired": "Your session has expired. Please sign in again.", "signout": "You are signed out."}
    return _login_page(200, message=messages.get(request.args.get("reason", "")), next_url=request.args.get("next"))


def _login_page(status: int, next_url: str | None, message: str | None = None, error: str | None = None) -> Response:
    html = render_template("login.html", message=message, error=error, next_url=_safe_next(next_url))
    return Response(html, status=status, mimetype="text/html")


_UNSAFE_IN_PATH = re.compile(r"[\\\s\x00-\x1f\x7f]")


def _safe_next(target: str | None) -> str:
    """Only paths of this app (same site, relative): never an open redirect."""
    if target and target.startswith("/admin") and not _UNSAFE_IN_PATH.search(target):
        return target
    return url_for("pages.overview")


@bp.post("/login")
def login_submit() -> Any:
    """Sign in from the login page: the tokens go into HttpOnly cookies (plus the CSRF cookies). The page's script
    posts JSON; without script the form itself posts, and a 303 leads to the page asked for."""
    if not request.is_json:
        return _login_form()
    try:
        body = LoginBody.model_validate(request.get_json(silent=True))
    except ValidationError as error:
        raise validation_failed(error) from None
    tokens = issue_tokens(authenticate_login(body.username, body.password))
    return set_session_cookies(jsonify({"success": True, "role": tokens["role"]}), tokens)


login_submit.accepts_form = True  # type: ignore[attr-defined]


def _login_form() -> Response:
    next_url = request.form.get("next")
    if request.headers.get("Sec-Fetch-Site") == "cross-site":  # another site must not sign people in
        return _login_page(403, next_url, error="Sign in from this site's own login page.")
    try:
        body = LoginBody.model_validate(
            {"username": request.form.get("username", "").strip(), "password": request.form.get("password", "")}
        )
    except ValidationError:
        return _login_page(400, next_url, error="Enter your username and password.")
    try:
        tokens = issue_tokens(authenticate_login(body.username, body.password))
    except LoginThrottled as throttled:
        response = _login_page(429, next_url, error=f"{throttled.message}.")
        response.headers["Retry-After"] = str(throttled.retry_after)
        return response
    except ApiError as failed:
        return _login_page(failed.status, next_url, error="Wrong username or password.")
    return set_session_cookies(redirect(_safe_next(next_url), 303), tokens)  # type: ignore[arg-type]


@bp.post("/logout")
@role_required(Role.MODERATOR)
@spec.validate(resp=Resp(HTTP_200=Success), tags=["pages"])
def logout() -> Any:
    """Revoke the session's tokens and clear its cookies."""
    revoke_token(get_jwt())
    response = jsonify({"success": True, "next": url_for("pages.login", reason="signout")})
    unset_jwt_cookies(response)
    return response


@bp.get("/")
@page
def overview() -> Any:
    return render("overview.html")


@bp.get("/queues/<queueName>")
@page
def queue(queueName: str) -> Any:
    require_queue(get_redis(), queueName)
    return render("queue.html", queue_name=queueName)


@bp.get("/queues/<queueName>/jobs/<jobId>")
@page
def job(queueName: str, jobId: str) -> Any:
    with contextlib.suppress(UnreadableJob):  # it exists: its page shows what can be read, marked
        fetch_job(get_redis(), queueName, jobId)
    return render("job.html", queue_name=queueName, job_id=jobId)


@bp.get("/alerts")
@page
def alerts() -> Any:
    return render("alerts.html", rules=rules_in_force(settings_from(current_app.config)))


class TrendsQuery(Query):
    period: Period = Period.DAY


@bp.get("/trends")
@page
def trends() -> Any:
    try:
        period = TrendsQuery.model_validate(request.args.to_dict()).period
    except ValidationError as error:  # an unknown period is a 400 page, not silently 24h
        raise validation_failed(error) from None
    connection = get_redis()
    return render(
        "trends.html",
        period=period,
        periods=list(history.PERIODS),
        bucket=history.PERIODS[period][0].words,
        trends=history.get_trends(connection, period, list_queue_names(connection)),
    )


class ChartQuery(TrendsQuery):
    queue: str
    kind: Literal["outcomes", "time"] = "outcomes"
    size: Literal["wide", "narrow"] = "wide"


@bp.get("/trends/chart.svg")
@page
def trend_chart() -> Any:
    try:
        query = ChartQuery.model_validate(request.args.to_dict())
    except ValidationError as error:
        raise validation_failed(error) from None
    check_queue_name(query.queue)
    connection = get_redis()
    # Charts exist for the queues the trends page lists: those with history in the period (it outlives RQ's
    # queues) and those that exist; any other name is a 404, not an empty chart.
    by_name = {t["queueName"]: t for t in history.get_trends(connection, query.period, [], True)}
    if query.queue not in by_name:
        require_queue(connection, query.queue)
        by_name = {t["queueName"]: t for t in history.get_trends(connection, query.period, [query.queue], True)}
    trend = by_name[query.queue]
    draw = charts.outcomes_chart if query.kind == "outcomes" else charts.processing_time_chart
    svg = draw(trend, query.size)
    response = Response(svg, mimetype="image/svg+xml")
    response.headers["Content-Security-Policy"] = SVG_POLICY  # pygal styles inline; no script is allowed
    response.headers["Cache-Control"] = "private, max-age=30"
    return response


@bp.get("/audit")
@page
def audit_log() -> Any:
    """The audit log (admins): filters by actor and action, older entries through `before`."""
    if not Role(g.page_user["role"]).includes(Role.ADMIN):
        raise ApiError(403, "forbidden", "The audit log needs the admin role or above")
    try:  # an empty field of the filter form means no filter
        query = AuditQuery.model_validate({key: value for key, value in request.args.items() if value})
    except ValidationError as error:
        raise validation_failed(error) from None
    found = audit.list_entries(get_redis(), audit.Query(query.limit, query.actor, query.action, query.before))
    return render("audit.html", query=query, **found)


@bp.get("/schedules")
@page
def schedules_list() -> Any:
    """Every periodic job (SCHEDULES.md), driven by /api/v1/periodic."""
    return render("schedules/list.html")


@bp.get("/schedules/<name>")
@page
def schedule(name: str) -> Any:
    """One schedule and its run history."""
    schedules.get_schedule(get_redis(), name)  # 404 page for an unknown name
    return render("schedules/detail.html", name=name)


def _worker_thresholds() -> tuple[float, float]:
    config = current_app.config
    return float(config["WORKER_ACTIVE_SECONDS"]), float(config["WORKER_STALE_SECONDS"])


@bp.get("/workers")
@page
def workers_list() -> Any:
    """Every worker with the health roll-up, live over /api/v1/workers/live-stream."""
    return render("workers/list.html")


@bp.get("/workers/<name>")
@page
def worker(name: str) -> Any:
    """One worker: its details, history charts, recent jobs and controls (404 page for an unknown worker)."""
    read_worker(get_redis(), check_worker_name(name), time.time(), *_worker_thresholds())
    return render("workers/detail.html", name=name)


class WorkerChartQuery(Query):
    kind: Literal["hourly", "memory"] = "hourly"
    size: Literal["wide", "narrow"] = "wide"


@bp.get("/workers/<name>/chart.svg")
@page
def worker_chart(name: str) -> Any:
    """The worker's attempts per hour (24 h) or memory (last hour) as SVG; its history outlives the worker."""
    try:
        query = WorkerChartQuery.model_validate(request.args.to_dict())
    except ValidationError as error:
        raise validation_failed(error) from None
    check_worker_name(name)
    connection, now = get_redis(), time.time()
    with connection.pipeline(transaction=False) as pipe:
        worker_performance.worker_details_reads(pipe, name, now)
        found = worker_performance.parse_worker_details(pipe.execute(), now)
    if query.kind == "hourly":
        svg = charts.worker_hourly_chart(name, found["hourly"], query.size)
    else:
        svg = charts.worker_memory_chart(name, found["memory_history"], query.size)
    response = Response(svg, mimetype="image/svg+xml")
    response.headers["Content-Security-Policy"] = SVG_POLICY
    response.headers["Cache-Control"] = "private, max-age=30"
    return response


def _wants_html() -> bool:
    """A browser's navigation under /admin/ (GET, or a form post preferring HTML); not the pages' own fetch calls."""
    if not (request.path == "/admin" or request.path.startswith("/admin/")):
        return False
    if request.method in ("GET", "HEAD"):
        return "application/json" not in request.headers.get("Accept", "")
    accept = request.accept_mimetypes
    return accept.quality("text/html") > accept.quality("application/json")


def _page_user() -> dict[str, str] | None:
    """The signed-in user for the error page's navigation, if the cookies say so; never an error of its own."""
    if "page_user" in g:
        return g.page_user  # type: ignore[no-any-return]
    try:
        verify_jwt_in_request(locations=["cookies"])
        return {"username": get_jwt_identity(), "role": current_role().value}
    except Exception:  # no session, an expired one, or Redis down (the error being shown may be that)
        return None


TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "Conflict",
    413: "Too large",
    429: "Too many requests",
    503: "Service unavailable",
}


@bp.after_app_request
def html_errors(response: Response) -> Response:
    """A JSON error under /admin/ becomes its HTML page (same status and headers) for a browser."""
    if response.status_code < 400 or response.mimetype != "application/json" or not _wants_html():
        return response
    error = (response.get_json(silent=True) or {}).get("error") or {}
    status = response.status_code
    html = render_template(
        "error.html",
        user=_page_user(),
        can_act=False,
        status=status,
        title=TITLES.get(status, "Something went wrong" if status >= 500 else "Error"),
        code=error.get("code", ""),
        message=error.get("message", ""),
        details=error.get("details") or {},
    )
    response.set_data(html)
    response.mimetype = "text/html"
    return response


@bp.record_once
def _register_favicon(state: Any) -> None:
    """Browsers ask for /favicon.ico whatever the page says: the same small SVG icon as the pages' link."""
    app = state.app
    app.add_url_rule("/favicon.ico", "favicon", lambda: app.send_static_file("favicon.svg"))
