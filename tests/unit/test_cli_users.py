"""`flask --app app users ...`: create (prompt or stdin), list, set-role, delete; passwords never echoed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redis

from app.domain import keys, users
from app.domain.users import Role
from app.embedded_redis import ensure_embedded_redis, stop_embedded_redis


def test_create_with_password_from_stdin(runner, connection):
    result = runner.invoke(
        args=["users", "create", "zoe", "--role", "admin", "--password-stdin"], input="s3cret-password\n"
    )
    assert result.exit_code == 0, result.output
    assert "s3cret-password" not in result.output
    assert users.authenticate(connection, "zoe", "s3cret-password").role.value == "admin"


def test_create_with_prompted_password(runner, connection):
    result = runner.invoke(
        args=["users", "create", "yan", "--role", "moderator"], input="typed-password\ntyped-password\n"
    )
    assert result.exit_code == 0, result.output
    assert "typed-password" not in result.output
    assert users.authenticate(connection, "yan", "typed-password") is not None


def test_list_set_role_delete(runner, connection):
    runner.invoke(args=["users", "create", "xia", "--role", "moderator", "--password-stdin"], input="password-1\n")
    assert runner.invoke(args=["users", "set-role", "xia", "super_admin"]).exit_code == 0
    listing = runner.invoke(args=["users", "list"]).output
    assert "xia\tsuper_admin" in listing
    assert runner.invoke(args=["users", "delete", "xia"]).exit_code == 0
    assert not connection.exists(keys.user("xia"))
    assert "xia" not in runner.invoke(args=["users", "list"]).output


def test_errors_are_clear_and_change_nothing(runner, connection):
    runner.invoke(args=["users", "create", "wes", "--role", "admin", "--password-stdin"], input="password-1\n")
    before = connection.hgetall(keys.user("wes"))
    duplicate = runner.invoke(
        args=["users", "create", "wes", "--role", "moderator", "--password-stdin"], input="password-2\n"
    )
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output
    assert connection.hgetall(keys.user("wes")) == before
    short = runner.invoke(args=["users", "create", "vic", "--role", "admin", "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "at least 8" in short.output
    bad_name = runner.invoke(
        args=["users", "create", "a b", "--role", "admin", "--password-stdin"], input="password-1\n"
    )
    assert bad_name.exit_code == 1 and "Invalid username" in bad_name.output
    assert runner.invoke(args=["users", "set-role", "ghost", "admin"]).exit_code == 1
    assert runner.invoke(args=["users", "delete", "ghost"]).exit_code == 1
    assert runner.invoke(args=["users", "set-role", "wes", "emperor"]).exit_code == 2
    assert not connection.exists(keys.user("vic")) and not connection.exists(keys.user("ghost"))


def test_the_real_command_line(redis_url, connection, tmp_path):
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "JWT_SECRET_KEY": "cli-test-secret-key-long-enough-for-hs256",
    }
    flask = str(Path(sys.executable).parent / "flask")
    created = subprocess.run(
        [flask, "--app", "app", "users", "create", "una", "--role", "admin", "--password-stdin"],
        input="from-the-pipe-123\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert created.returncode == 0, created.stderr
    assert "from-the-pipe-123" not in created.stdout + created.stderr
    assert users.authenticate(connection, "una", "from-the-pipe-123") is not None


def _user_environment(**settings: str) -> dict[str, str]:
    """A shell as the README's reader has it: no REDIS_URL, no JWT_SECRET_KEY, no RQMON_ENV (production)."""
    unset = {"REDIS_URL", "JWT_SECRET_KEY", "RQMON_ENV", "RQMON_INSTANCE"}
    return {**{name: value for name, value in os.environ.items() if name not in unset}, **settings}


def _flask(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    flask = str(Path(sys.executable).parent / "flask")
    return subprocess.run(
        [flask, "--app", "app", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_user_commands_need_no_jwt_secret_in_production_but_serving_does(redis_url, connection, tmp_path):
    env = _user_environment(REDIS_URL=redis_url, RQMON_INSTANCE=str(tmp_path / "instance"))
    created = _flask(env, "users", "create", "ivy", "--role", "moderator", "--password-stdin", stdin="password-ivy\n")
    assert created.returncode == 0, created.stderr
    listed = _flask(env, "users", "list")
    assert listed.returncode == 0 and "ivy\tmoderator" in listed.stdout, listed.stderr
    assert not (tmp_path / "instance" / "jwt-secret").exists()  # no secret was generated for them

    served = subprocess.run(  # what gunicorn does with 'app:create_app()'
        [sys.executable, "-c", "from app import create_app; create_app()"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert served.returncode != 0 and "JWT_SECRET_KEY must be set" in served.stderr


def test_user_commands_find_the_embedded_redis_the_demo_started(tmp_path):
    """REDIS_URL unset: the command uses the Redis running under the instance folder, not a new empty one."""
    instance = tmp_path / "instance"
    url = ensure_embedded_redis(instance / "redis")  # what `rq-monitor` does at start
    try:
        users.create_user(redis.Redis.from_url(url), "demo-admin", "password-demo", Role.SUPER_ADMIN)
        listed = _flask(_user_environment(RQMON_INSTANCE=str(instance)), "users", "list")
        assert listed.returncode == 0, listed.stderr
        assert "demo-admin\tsuper_admin" in listed.stdout
        assert url.endswith(f":{(instance / 'redis' / 'redis.port').read_text().strip()}/0")  # still the same one
    finally:
        stop_embedded_redis(instance / "redis")
