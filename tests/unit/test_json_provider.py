"""The orjson response encoder: same JSON as Flask's for plain data, and no failure on what orjson refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from flask import Flask, jsonify

from app.json_provider import OrjsonProvider


def make_app() -> Flask:
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    return app


def test_plain_document_round_trips() -> None:
    app = make_app()
    document = {"queues": [{"queueName": "é-emails", "waiting": 12, "successRate": 99.5, "paused": False}], "x": None}
    with app.app_context():
        response = jsonify(document)
    assert response.mimetype == "application/json"
    assert json.loads(response.get_data()) == document


def test_integer_beyond_64_bits_falls_back_to_the_stdlib_encoder() -> None:
    app = make_app()
    huge = 2**80 + 1
    with app.app_context():
        response = jsonify({"args": [huge]})
    assert json.loads(response.get_data()) == {"args": [huge]}


def test_non_string_keys_and_dates_use_flasks_rules() -> None:
    app = make_app()
    when = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    with app.app_context():
        keyed = json.loads(jsonify({1: "one"}).get_data())
        dated = json.loads(jsonify({"at": when}).get_data())
        assert app.json.dumps({"b": 1}, sort_keys=True, indent=1) == '{\n "b": 1\n}'
    assert keyed == {"1": "one"}
    assert dated == {"at": "Mon, 23 Nov 2026 12:00:00 GMT"}  # Flask's http_date, as before


def test_not_a_number_is_written_as_valid_json() -> None:
    app = make_app()
    with app.app_context():
        body = jsonify({"rate": float("nan")}).get_data()
    assert json.loads(body) == {"rate": None}
