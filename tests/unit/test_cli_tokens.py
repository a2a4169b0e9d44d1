"""`flask --app app tokens create|list|revoke`, and the audit entries of the users and tokens commands, through
the real `flask` command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.domain import audit, keys, tokens

ROOT = Path(__file__).resolve().parents[2]


def flask(redis_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": redis_url, "JWT_SECRET_KEY": "cli-test-secret-key-long-enough-for-hs256"}
    return subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "--app", "app", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=ROOT,
    )


def test_create_list_revoke_on_the_real_command_line(redis_url, connection, client):
    created = flask(redis_url, "tokens", "create", "scraper", "--role", "moderator", "--expires-in-days", "30")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("rqm_") and "shown once" in created.stderr
    assert connection.exists(keys.api_token(tokens.digest(secret)))
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.get_json() == {"username": "token:scraper", "role": "moderator"}

    listing = flask(redis_url, "tokens", "list")
    assert listing.returncode == 0 and listing.stdout.startswith("scraper\tmoderator\t")
    assert secret not in listing.stdout and tokens.digest(secret) not in listing.stdout

    assert flask(redis_url, "tokens", "revoke", "scraper").returncode == 0
    assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert flask(redis_url, "tokens", "list").stdout == ""


def test_refusals_are_clear_and_change_nothing(runner, connection):
    runner.invoke(args=["tokens", "create", "dup", "--role", "admin"])
    taken = runner.invoke(args=["tokens", "create", "dup", "--role", "moderator"])
    assert taken.exit_code == 1 and "already exists" in taken.output
    bad_name = runner.invoke(args=["tokens", "create", "a b", "--role", "admin"])
    assert bad_name.exit_code == 1 and "Invalid token name" in bad_name.output
    bad_days = runner.invoke(args=["tokens", "create", "x", "--role", "admin", "--expires-in-days", "0"])
    assert bad_days.exit_code == 1 and "between 1 and 3650" in bad_days.output
    assert runner.invoke(args=["tokens", "create", "y", "--role", "emperor"]).exit_code == 2
    assert runner.invoke(args=["tokens", "revoke", "ghost"]).exit_code == 1
    assert connection.hkeys(keys.API_TOKENS) == [b"dup"]


def test_users_and_tokens_commands_are_audited_without_secrets(redis_url, connection):
    flask(redis_url, "users", "create", "ulla", "--role", "admin", "--password-stdin", stdin="pass-from-pipe-1\n")
    flask(redis_url, "users", "set-role", "ghost", "admin")
    made = flask(redis_url, "tokens", "create", "cli-bot", "--role", "admin")
    flask(redis_url, "tokens", "revoke", "cli-bot")
    found = audit.list_entries(connection, audit.Query(limit=10))["entries"]
    assert [(e["action"], e["target"], e["status"]) for e in found] == [
        ("token.revoke", "cli-bot", 200),
        ("token.create", "cli-bot", 200),
        ("user.set_role", "ghost", 404),
        ("user.create", "ulla", 200),
    ]
    assert all(e["actor"].startswith("cli") and e["address"] == "cli" for e in found)
    assert found[3]["params"]["role"] == "admin"
    raw = repr(connection.xrange(keys.AUDIT))
    assert "pass-from-pipe-1" not in raw and made.stdout.strip() not in raw
