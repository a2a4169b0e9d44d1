"""`flask --app app users ...`: create (prompt or stdin), list, set-role, delete; passwords never echoed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.domain import keys, users


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
