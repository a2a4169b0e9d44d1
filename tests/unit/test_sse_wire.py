"""sse.wire: the same document back through frame() whichever encoder wrote it (orjson, or the stdlib for what
orjson refuses)."""

from __future__ import annotations

import json
import random
import zlib

import pytest

from app.domain.states import Liveness
from app.sse import DeflateStream, Event, adler32_combine, frame, wire


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


def test_adler32_combine_agrees_with_zlib():
    rng = random.Random(7)
    for _ in range(200):
        first = rng.randbytes(rng.randrange(0, 3000))
        second = rng.randbytes(rng.choice([0, 1, 65520, 65521, 65522, rng.randrange(0, 200_000)]))
        combined = adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second))
        assert combined == zlib.adler32(first + second)


def test_a_deflate_stream_of_shared_events_is_one_valid_zlib_stream():
    """Events deflated once each, in any order and repeated, as two clients' streams would take them."""
    events = [
        Event(b"retry: 2000\n\n"),
        Event(frame(wire({"workers": [{"worker_name": f"w.{i}", "status": "idle"} for i in range(3000)]})).encode()),
        Event(b""),
    ]
    events.append(Event(bytes(range(256)) * 300))
    for order in ([0, 1, 1, 3, 2, 1], [0, 3, 3, 3]):
        stream = DeflateStream()
        body = DeflateStream.HEADER + b"".join(stream.piece(events[i]) for i in order) + stream.end()
        assert zlib.decompress(body) == b"".join(events[i].text for i in order)
        inflater = zlib.decompressobj()  # and piece by piece, as a browser reads it
        assert inflater.decompress(body[:-6]) == b"".join(events[i].text for i in order)
    assert len(events[1].deflated) < len(events[1].text) / 10
