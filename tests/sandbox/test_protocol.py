"""Wire format: framing, caps, and validation of worker replies."""

from __future__ import annotations

import asyncio
import os
import struct

import orjson
import pytest

from sandbox import ProtocolError
from sandbox._protocol import (
    ERROR_TEXT_MAX,
    MAX_REPLY_BYTES,
    cut,
    encode,
    fit_batch_reply,
    parse_batch_reply,
    read_message,
    read_reply,
    write_message,
)


def reader_with(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_reply_roundtrip():
    assert await read_reply(reader_with(encode({"outcome": "ok", "matches": ["A"]}))) == {
        "outcome": "ok",
        "matches": ["A"],
    }


@pytest.mark.parametrize(
    "data",
    [
        struct.pack(">I", MAX_REPLY_BYTES + 1) + b"{}",
        struct.pack(">I", 3) + b"{x}",
        struct.pack(">I", 2) + b"[]",
    ],
    ids=["oversized", "not-json", "not-object"],
)
async def test_bad_replies_are_refused(data):
    with pytest.raises(ProtocolError):
        await read_reply(reader_with(data))


async def test_a_closed_pipe_is_an_incomplete_read():
    with pytest.raises(asyncio.IncompleteReadError):
        await read_reply(reader_with(struct.pack(">I", 10) + b"{}"))


def test_parse_batch_reply_accepts_a_valid_reply_and_cuts_texts():
    parsed = parse_batch_reply(
        {"outcome": "ok", "matches": ["A"], "errors": {"B": "x" * 10_000}, "evaluated": 2, "cpu_s": 0.5},
        ["A", "B"],
    )
    assert parsed["matches"] == frozenset({"A"}) and parsed["evaluated"] == 2
    assert len(parsed["errors"]["B"].encode()) <= ERROR_TEXT_MAX


@pytest.mark.parametrize(
    "reply",
    [
        {"outcome": "pwned"},
        {"outcome": "ok", "matches": ["EVIL"]},
        {"outcome": "ok", "errors": {"EVIL": "x"}},
        {"outcome": "ok", "matches": "A"},
        {"outcome": "ok", "errors": {"A": 1}},
        {"outcome": "ok", "evaluated": 99},
        {"outcome": "ok", "evaluated": True},
        {"outcome": "ok", "cpu_s": "1"},
        {"outcome": "ok", "detail": ["x"]},
    ],
)
def test_parse_batch_reply_refuses_anything_off_format(reply):
    with pytest.raises(ProtocolError):
        parse_batch_reply(reply, ["A", "B"])


def test_fit_batch_reply_always_fits_the_cap():
    symbols = [f"SYM{i:04d}USDT" for i in range(400)]
    data = fit_batch_reply({"outcome": "ok", "matches": [], "errors": {s: "e" * 5000 for s in symbols},
                            "evaluated": 400, "printed": "p" * 4096})  # fmt: skip
    assert len(data) <= MAX_REPLY_BYTES
    reply = orjson.loads(data[4:])
    assert set(reply["errors"]) == set(symbols)
    many = [f"S{i:030d}" for i in range(1024)]
    data = fit_batch_reply({"outcome": "ok", "matches": [], "errors": {s: "e" * 2048 for s in many}, "evaluated": 1024})
    reply = orjson.loads(data[4:])
    assert (
        len(data) <= MAX_REPLY_BYTES and reply["errors"] == {} and "1024 per-symbol errors omitted" in reply["detail"]
    )


def test_cut_respects_utf8_bytes():
    text = "é" * 5000
    assert len(cut(text).encode()) <= ERROR_TEXT_MAX and cut("short") == "short"


def test_worker_side_framing_over_a_pipe():
    r, w = os.pipe()
    try:
        write_message(w, encode({"op": "eval", "n": 1}))
        os.close(w)
        w = -1
        assert read_message(r) == {"op": "eval", "n": 1}
        assert read_message(r) is None
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
