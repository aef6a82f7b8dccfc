"""Hypothesis: the parser raises only ParseError, and build_facts never raises."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlstiming._analysis.certs import certificate_info
from tlstiming._analysis.facts import HandshakeFacts, build_facts
from tlstiming._wire import messages as _wire
from tlstiming.errors import ParseError

DATA = Path(__file__).parent / "data"
Message = tuple[str, int, int, bytes]

PARSERS: dict[str, Callable[[bytes], object]] = {
    "split_handshake": _wire.split_handshake,
    "alert": _wire.parse_alert,
    "client_hello": _wire.parse_client_hello,
    "server_hello": _wire.parse_server_hello,
    "encrypted_extensions": _wire.parse_encrypted_extensions,
    "certificate13": lambda body: _wire.parse_certificate(body, tls13=True),
    "certificate12": lambda body: _wire.parse_certificate(body, tls13=False),
    "certificate_status": _wire.parse_certificate_status,
    "server_key_exchange": _wire.parse_server_key_exchange,
    "server_key_exchange11": lambda body: _wire.parse_server_key_exchange(body, tls12=False),
    "certificate_request13": lambda body: _wire.parse_certificate_request(body, tls13=True),
    "certificate_request12": lambda body: _wire.parse_certificate_request(body, tls13=False),
    "certificate_verify": _wire.parse_certificate_verify,
}


def _load_all() -> list[tuple[list[Message], str]]:
    captures = []
    for path in sorted(DATA.glob("*.json")):
        document = json.loads(path.read_text())
        rows = [(d, c, m, bytes.fromhex(h)) for d, c, m, h in document["messages"]]
        captures.append((rows, document["side"]))
    return captures


CAPTURES = _load_all()
# Distinct real handshake messages (header included), e.g. every real ClientHello.
REAL_MESSAGES = sorted({data for rows, _side in CAPTURES for _d, c, _m, data in rows if c == 22})
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_parser(name: str, data: bytes) -> None:
    with contextlib.suppress(ParseError):
        PARSERS[name](data)


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """Truncate, flip bytes in, or insert bytes into ``original``."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
        if kind == "truncate":
            del data[where:]
        elif kind == "flip" and where < len(data):
            data[where] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=4))
        else:
            del data[where : where + draw(st.integers(1, 4))]
    return bytes(data)


real_message = st.sampled_from(REAL_MESSAGES)
mutated_message = real_message.flatmap(mutated)


@FUZZ
@given(st.sampled_from(sorted(PARSERS)), st.binary(max_size=300))
def test_parsers_on_arbitrary_bytes(name: str, data: bytes) -> None:
    run_parser(name, data)


@FUZZ
@given(st.sampled_from(sorted(PARSERS)), mutated_message)
def test_parsers_on_mutated_real_messages(name: str, message: bytes) -> None:
    run_parser("split_handshake", message)
    run_parser(name, message[4:])


BY_TYPE: dict[int, list[str]] = {
    1: ["client_hello"],
    2: ["server_hello"],
    8: ["encrypted_extensions"],
    11: ["certificate13", "certificate12"],
    12: ["server_key_exchange"],
    13: ["certificate_request13", "certificate_request12"],
    15: ["certificate_verify"],
    22: ["certificate_status"],
}


@FUZZ
@given(st.data())
def test_matching_parser_on_mutated_real_bodies(data: st.DataObject) -> None:
    """Mutate the body of a real message; parse it with the parsers for its type."""
    message = data.draw(real_message)
    body = data.draw(mutated(message[4:]))
    for name in BY_TYPE.get(message[0], []):
        run_parser(name, body)


messages = st.lists(
    st.tuples(
        st.sampled_from(["read", "write", "neither"]),
        st.sampled_from([20, 21, 22, 256, 257, 23]),
        st.integers(0, 300),
        st.one_of(st.binary(max_size=64), real_message, mutated_message),
    ),
    max_size=12,
)


@FUZZ
@given(messages, st.sampled_from(["client", "server"]))
def test_build_facts_never_raises(rows: list[Message], side: str) -> None:
    facts = build_facts(rows, side="client" if side == "client" else "server")
    assert isinstance(facts, HandshakeFacts)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(range(len(CAPTURES))), st.data())
def test_build_facts_on_mutated_captures(index: int, data: st.DataObject) -> None:
    """One message of a real capture mutated; both ends' readings must survive it."""
    rows, _side = CAPTURES[index]
    position = data.draw(st.integers(0, len(rows) - 1))
    direction, content_type, msg_type, payload = rows[position]
    changed = (direction, content_type, msg_type, data.draw(mutated(payload)))
    for recorder in ("client", "server"):
        facts = build_facts([*rows[:position], changed, *rows[position + 1 :]], side=recorder)
        assert isinstance(facts, HandshakeFacts)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.sampled_from(REAL_MESSAGES).flatmap(mutated)))
def test_certificate_info_never_raises(der: bytes) -> None:
    assert certificate_info(der).size == len(der)
