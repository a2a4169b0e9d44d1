"""/api/v1/health and /api/v1/alerts against a real Redis, with the rules evaluated by real ticks of the app's own
ticker (no_workers and queue_backlog end to end: enqueued jobs, a real worker draining them)."""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families
from rq import Queue

import config
from app.domain import keys
from app.ticker import make_ticker
from tests.conftest import make_app
from tests.helpers import run_worker


def tick_app(redis_url, tmp_path, **overrides):
    settings = {"ALERT_NO_WORKERS_FOR": 0, "ALERT_QUEUE_BACKLOG": 5, "ALERT_QUEUE_BACKLOG_FOR": 0} | overrides
    return make_app(redis_url, tmp_path, **settings)


class Ticks:
    """The app's own ticker, run tick by tick (each call is a new tick, so it always wins the election)."""

    def __init__(self, app):
        self.ticker = make_ticker(app)
        self.now = time.time()

    def run(self) -> None:
        self.now += self.ticker.tick_seconds
        assert self.ticker.tick(self.now)


def test_no_workers_and_backlog_fire_and_resolve_through_real_ticks(redis_url, tmp_path, auth, connection):
    app = tick_app(redis_url, tmp_path)
    client = app.test_client()
    queue = Queue("e2e-alerts", connection=connection)
    for n in range(8):
        queue.enqueue("workers.tasks.add", n, 1)
    ticks = Ticks(app)
    ticks.run()
    firing = client.get("/api/v1/alerts", headers=auth("moderator")).get_json()["firing"]
    assert {(a["rule"], a["subject"]["name"]) for a in firing} == {
        ("no_workers", "e2e-alerts"),
        ("queue_backlog", "e2e-alerts"),
    }
    backlog = next(a for a in firing if a["rule"] == "queue_backlog")
    assert (backlog["value"], backlog["threshold"], backlog["severity"]) == (8, 5, "warning")
    assert firing[0]["rule"] == "no_workers"  # critical first
    health = client.get("/api/v1/health", headers=auth("moderator")).get_json()
    assert health["status"] == "critical"
    assert health["alerts"] == {"critical": 1, "warning": 1}

    run_worker(redis_url, "e2e-alerts")  # drains the queue
    ticks.run()
    assert len(client.get("/api/v1/alerts", headers=auth("moderator")).get_json()["firing"]) == 2  # one false tick
    ticks.run()
    answer = client.get("/api/v1/alerts", headers=auth("moderator")).get_json()
    assert answer["firing"] == []
    assert {a["rule"] for a in answer["recent"]} == {"no_workers", "queue_backlog"}
    assert all(a["resolved_at"] for a in answer["recent"])
    health = client.get("/api/v1/health", headers=auth("moderator")).get_json()
    assert health["status"] == "healthy"
    assert health["last_run"] is not None


def test_health_document(client, auth):
    health = client.get("/api/v1/health", headers=auth("moderator")).get_json()
    assert health["success"] is True
    assert health["status"] == "healthy"
    assert health["redis"]["connected"] is True and health["redis"]["version"]
    assert health["workers"] == {"total": 0, "active": 0, "stale": 0}
    assert set(health["scheduler"]) == {"alive", "last_heartbeat"}
    assert client.get("/api/v1/health").status_code == 401


def test_health_is_critical_from_memory_when_redis_is_down(tmp_path, redis_url, auth):
    down = make_app("redis://127.0.0.1:1/0", tmp_path).test_client()
    first = down.get("/api/v1/health", headers=auth("moderator"))
    assert first.status_code == 503
    body = first.get_json()
    assert (body["success"], body["error"]["code"]) == (False, "redis_unavailable")  # the one error shape
    assert body["status"] == "critical"
    assert body["redis"]["connected"] is False
    assert body["firing"][0]["rule"] == "redis_unreachable"
    again = down.get("/api/v1/health", headers=auth("moderator")).get_json()
    assert again["firing"][0]["since"] == body["firing"][0]["since"]  # remembered by the process


def test_redis_unreachable_off_keeps_health_from_saying_critical(tmp_path, auth):
    down = make_app("redis://127.0.0.1:1/0", tmp_path, ALERT_REDIS_UNREACHABLE=None).test_client()
    answer = down.get("/api/v1/health", headers=auth("moderator"))
    assert answer.status_code == 503  # Redis is still down: the one error shape
    body = answer.get_json()
    assert (body["error"]["code"], body["redis"]["connected"]) == ("redis_unavailable", False)
    assert (body["status"], body["firing"], body["alerts"]) == ("healthy", [], {"critical": 0, "warning": 0})
    assert "the redis_unreachable rule is off" in body["message"]


def test_redis_unreachable_fires_once_redis_has_failed_for_its_for_duration(tmp_path, auth):
    down = make_app("redis://127.0.0.1:1/0", tmp_path, ALERT_REDIS_UNREACHABLE_FOR=1).test_client()
    first = down.get("/api/v1/health", headers=auth("moderator")).get_json()
    assert (first["status"], first["firing"]) == ("healthy", [])  # failing for 0 s of the 1 s needed
    assert "redis_unreachable fires after 1 s" in first["message"]
    deadline = time.monotonic() + 30
    while (body := down.get("/api/v1/health", headers=auth("moderator")).get_json())["status"] != "critical":
        assert time.monotonic() < deadline, body
        time.sleep(0.2)
    alert = body["firing"][0]
    assert (alert["id"], alert["threshold"]) == ("redis_unreachable:system:redis", 0)
    assert alert["value"] >= 1 and alert["since"] <= body["timestamp"]
    assert body["alerts"] == {"critical": 1, "warning": 0}


def test_rules_in_force(redis_url, tmp_path, auth):
    client = make_app(redis_url, tmp_path, ALERT_QUEUE_BACKLOG=250, ALERT_WORKER_MEMORY=None).test_client()
    listed = {r["rule"]: r for r in client.get("/api/v1/alerts/rules", headers=auth("moderator")).get_json()["rules"]}
    assert len(listed) == 12
    assert (listed["queue_backlog"]["threshold"], listed["queue_backlog"]["for_seconds"]) == (250, 60)
    assert listed["worker_memory"]["enabled"] is False
    assert listed["no_workers"]["severity"] == "critical"
    assert all(rule["kind"] == name and rule["queues"] is None for name, rule in listed.items())


EXTRA_RULE = """
[queue_backlog.queues]
e2e-extra = 7

[[rules]]
name = "backlog_critical"
kind = "queue_backlog"
severity = "critical"
threshold = 6
queues = ["e2e-extra"]
"""


def rules_file(tmp_path, text: str) -> config.RulesFile:
    """ALERT_RULES_FILE read and validated as start-up does."""
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return config.from_env({"ALERT_RULES_FILE": str(path)})["ALERT_RULES_FILE"]


def test_an_extra_rule_through_real_ticks_rules_list_metrics_and_webhooks(redis_url, tmp_path, auth, connection):
    hook = "http://127.0.0.1:9/hook"  # never called here: the deliveries are only queued by the tick
    app = tick_app(
        redis_url,
        tmp_path,
        ALERT_RULES_FILE=rules_file(tmp_path, EXTRA_RULE),
        ALERT_WEBHOOK_URLS=(hook,),
        METRICS_PUBLIC=True,
    )
    client = app.test_client()
    rules = client.get("/api/v1/alerts/rules", headers=auth("moderator")).get_json()["rules"]
    assert rules[-1] == {
        "rule": "backlog_critical",
        "kind": "queue_backlog",
        "severity": "critical",
        "subject": "queue",
        "enabled": True,
        "threshold": 6,
        "for_seconds": 0,
        "per_queue": {},
        "queues": ["e2e-extra"],
        "meaning": next(r["meaning"] for r in rules if r["rule"] == "queue_backlog"),
    }
    queue = Queue("e2e-extra", connection=connection)
    for n in range(8):
        queue.enqueue("workers.tasks.add", n, 1)
    ticks = Ticks(app)
    ticks.run()
    firing = client.get("/api/v1/alerts", headers=auth("moderator")).get_json()["firing"]
    assert {(a["id"], a["severity"]) for a in firing} == {
        ("no_workers:queue:e2e-extra", "critical"),
        ("backlog_critical:queue:e2e-extra", "critical"),
        ("queue_backlog:queue:e2e-extra", "warning"),  # 8 over the queue's own 7
    }
    health = client.get("/api/v1/health", headers=auth("moderator")).get_json()
    assert (health["status"], health["alerts"]) == ("critical", {"critical": 2, "warning": 1})
    samples = {
        (sample.labels["rule"], sample.labels["severity"]): sample.value
        for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
        if family.name == "rqmon_alerts_firing"
        for sample in family.samples
    }
    assert samples == {
        ("backlog_critical", "critical"): 1,
        ("no_workers", "critical"): 1,
        ("queue_backlog", "warning"): 1,
    }
    deliveries = Queue(keys.NOTIFICATIONS_QUEUE, connection=connection).get_jobs()
    assert "alert firing: backlog_critical:queue:e2e-extra -> http://127.0.0.1:9/…" in {
        job.description for job in deliveries
    }

    run_worker(redis_url, "e2e-extra")  # drains the queue
    ticks.run()
    ticks.run()
    answer = client.get("/api/v1/alerts", headers=auth("moderator")).get_json()
    assert [a for a in answer["firing"] if a["subject"]["name"] == "e2e-extra"] == []  # (the deliveries wait)
    assert "backlog_critical:queue:e2e-extra" in {a["id"] for a in answer["recent"]}
    descriptions = {job.description for job in Queue(keys.NOTIFICATIONS_QUEUE, connection=connection).get_jobs()}
    assert "alert resolved: backlog_critical:queue:e2e-extra -> http://127.0.0.1:9/…" in descriptions


def test_test_notification_needs_admin(client, auth):
    assert client.post("/api/v1/alerts/test", headers=auth("moderator")).status_code == 403
    answer = client.post("/api/v1/alerts/test", headers=auth("admin"))
    assert answer.status_code == 200
    assert answer.get_json() == {"success": True, "deliveries": []}


def test_test_notification_reports_each_webhook(redis_url, tmp_path, auth):
    from tests.workers.test_notify import Receiver  # noqa: PLC0415 - the local HTTP receiver of the delivery tests

    taking, refusing = Receiver(), Receiver(answers=[500])
    try:
        urls = (taking.url, refusing.url)
        client = make_app(redis_url, tmp_path, ALERT_WEBHOOK_URLS=urls).test_client()
        report = client.post("/api/v1/alerts/test", headers=auth("admin")).get_json()["deliveries"]
        assert [(entry["delivered"], entry["status"]) for entry in report] == [(True, 200), (False, None)]
        assert "500" in report[1]["error"]
        assert all(entry["url"].endswith("/…") and "/hook" not in entry["url"] for entry in report)  # path redacted
        assert taking.posts[0]["body"]["alert"]["rule"] == "test"
    finally:
        taking.close()
        refusing.close()
