"""sse.wire: the same document back through frame() whichever encoder wrote it (orjson, or the stdlib for what
orjson refuses)."""

from __future__ import annotations

import json

import pytest

from app.domain.states import Liveness
from app.sse import frame, wire


@pytest.mark.parametrize(
    "document",
    [
        {"workers": [{"status": Liveness.ACTIVE, "name": "héllo ☃", "n": 1.5}], "empty": None},
        {"args": ["report-\udcff.csv"]},  # a lone surrogate: orjson refuses it
        {"big": 2**70},  # past 64 bits: orjson refuses it
    ],
)
def test_a_document_survives_the_wire(document):
    event = frame(wire(document))
    assert event.startswith("data:") and event.endswith("\n\n")
    assert json.loads(event[len("data:") :]) == json.loads(json.dumps(document))
