"""Peer-written text never reaches a person raw: no forged log line, no terminal escape.

The SNI name, the ALPN protocols, the certificate subject and the verifier
reason that quotes it come from the peer (``evil_peer``). Every rendering
for people is listed in ``RENDERINGS`` (plus the CLI and the pytest plugin
below); each must keep its own line structure and show only printable
characters, the peer's text escaped. Structured output keeps the raw value.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from evil_peer import EVIL_ALPN, EVIL_CN, EVIL_HOST, FORGED, evil_handshake, evil_server
from hypothesis import given
from hypothesis import strategies as st

from tlstiming import HandshakeSpan, cli
from tlstiming.sinks.logging import LoggingSink, message
from tlstiming.spans.escape import escape
from tlstiming.spans.render import one_line, waterfall
from tlstiming.testing import BudgetError, assert_budget

pytest_plugins = ("pytester",)

HERE = Path(__file__).resolve().parent
Spans = tuple[HandshakeSpan, HandshakeSpan]  # client (rejected), server (ok)


# -- the one escaping function -------------------------------------------------------

_UNESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")


def _unescape(text: str) -> str:
    """The inverse of ``escape``: proves its output is unambiguous."""

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        return "\\" if code == "\\" else chr(int(code[1:], 16))

    return _UNESCAPE.sub(one, text)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("example.com", "example.com"),
        ("h2", "h2"),
        ("a\nb", "a\\x0ab"),
        ("a\r\nb", "a\\x0d\\x0ab"),
        ("\x1b[2J", "\\x1b[2J"),
        ("\x00\x07\t", "\\x00\\x07\\x09"),
        ("\x7f", "\\x7f"),
        ("\x85\x9b", "\\x85\\x9b"),  # C1: NEL, CSI
        ("\u202eabc\u2066", "\\u202eabc\\u2066"),  # bidi override and isolate
        ("\u200b\ufeff", "\\u200b\\ufeff"),  # zero-width space, BOM
        ("\u2028\u2029", "\\u2028\\u2029"),  # line and paragraph separators
        ("\u00a0", "\\xa0"),  # a space that is not the ASCII one
        ("\U000e0041", "\\U000e0041"),  # a tag character
        ("\udcff", "\\udcff"),  # a lone surrogate (surrogateescape)
        ("a\\x0ab", "a\\\\x0ab"),  # a backslash is escaped too: no ambiguity
        ("bücher.example 日本", "bücher.example 日本"),  # printable text stays
    ],
)
def test_escape(raw: str, shown: str) -> None:
    assert escape(raw) == shown
    assert _unescape(shown) == raw


@given(st.text())
def test_escape_is_printable_and_reversible(text: str) -> None:
    shown = escape(text)
    assert shown.isprintable()
    assert _unescape(shown) == text


# -- every rendering of a span for people --------------------------------------------


@pytest.fixture(scope="module")
def spans() -> Spans:
    return evil_handshake()


def _logged(span: HandshakeSpan) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"tlstiming.tests.escaping.{span.span_id}")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    LoggingSink(logger, background=False)(span)
    return stream.getvalue().removesuffix("\n")


def _budget_failure(span: HandshakeSpan, **limits: object) -> str:
    with pytest.raises(BudgetError) as caught:
        assert_budget(span, **limits)
    return str(caught.value)


def _request_message() -> str:
    span = SimpleNamespace(kind="http.request", duration_ns=1_000_000, outcome="error")
    fields = {
        "server.address": EVIL_HOST,
        "server.port": 443,
        "http.request.method": "GET\nINFO FORGED METHOD",
        "http.response.status_code": 200,
        "error.type": EVIL_CN,
    }
    return message(span, fields)


def _lines(span: HandshakeSpan) -> int:
    """Lines of a waterfall: summary, facts, header, a row per phase, the error."""
    return 3 + len(span.phases) + (span.error is not None)


# name -> (render, the number of lines the rendering has)
RENDERINGS: dict[str, Callable[[Spans], tuple[str, int]]] = {
    "one_line client": lambda s: (one_line(s[0]), 1),
    "one_line server": lambda s: (one_line(s[1]), 1),
    "waterfall client": lambda s: (waterfall(s[0]), _lines(s[0])),
    "waterfall server": lambda s: (waterfall(s[1]), _lines(s[1])),
    "repr client": lambda s: (repr(s[0]), 1),
    "repr server": lambda s: (repr(s[1]), 1),
    "LoggingSink client": lambda s: (_logged(s[0]), 1),
    "LoggingSink server": lambda s: (_logged(s[1]), 1),
    "LoggingSink other kinds": lambda s: (_request_message(), 1),
    "budget alpn server": lambda s: (
        _budget_failure(s[1], alpn="h2"),
        3 + _lines(s[1]),
    ),
    "budget outcome client": lambda s: (
        _budget_failure(s[0], outcome="ok", alpn="h2"),
        4 + _lines(s[0]),
    ),
}


def assert_safe(text: str) -> None:
    """Only printable characters on each line, and no line the peer started."""
    for line in text.split("\n"):
        assert line.isprintable(), repr(line)
        assert not line.lstrip().startswith(FORGED), repr(line)


@pytest.mark.parametrize("name", list(RENDERINGS))
def test_renderings_escape_what_the_peer_wrote(name: str, spans: Spans) -> None:
    text, lines = RENDERINGS[name](spans)
    assert_safe(text)
    assert text.count("\n") + 1 == lines


def test_what_the_peer_wrote_is_shown_escaped(spans: Spans) -> None:
    client, server = spans
    assert escape(EVIL_HOST) in one_line(server)  # the SNI name
    assert escape(EVIL_HOST) in one_line(client)  # the server_hostname
    assert escape(EVIL_HOST) in repr(client)
    assert f"alpn={escape(EVIL_ALPN)} (offered {escape(EVIL_ALPN)},h2)" in one_line(server)
    assert escape(EVIL_CN) in waterfall(client)  # the verifier's reason quotes the subject


def test_structured_output_keeps_the_raw_values(spans: Spans) -> None:
    client, server = spans
    data = server.to_dict()
    assert data["server.address"] == data["tls.sni"] == EVIL_HOST
    assert data["tls.alpn.offered"] == [EVIL_ALPN, "h2"]
    assert EVIL_CN in client.to_dict()["tls.server.subject"]


# -- the command line ------------------------------------------------------------------


def test_cli_probe_output_is_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    """The peer's certificate name reaches the findings (untrusted chain) and the error."""
    with evil_server() as (port, _, _):
        status = cli.main(["probe", f"127.0.0.1:{port}", "--servername", "localhost"])
    out = capsys.readouterr().out
    assert status == 3  # the chain leads to no CA this client trusts
    assert "handshake failed: SSLCertVerificationError: " in out
    assert escape(f"CN={EVIL_CN}") in out
    assert_safe(out)


def test_cli_json_output_is_escaped_by_json(capsys: pytest.CaptureFixture[str]) -> None:
    with evil_server() as (port, _, _):
        cli.main(["probe", f"127.0.0.1:{port}", "--servername", "localhost", "--json"])
    out = capsys.readouterr().out
    assert_safe(out)
    document = json.loads(out)  # one document, nothing before or after it
    handshake = document["runs"][0]["handshake"]
    assert handshake["tls.server.subject"] == f"CN={EVIL_CN}"  # raw, JSON-escaped


def test_cli_refuses_a_servername_with_control_characters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["probe", "127.0.0.1:9", "--servername", EVIL_HOST]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert_safe(err)


# -- the pytest plugin -----------------------------------------------------------------


def _plugin_args() -> tuple[str, ...]:
    registered = any(
        ep.value == "tlstiming.pytest_plugin"
        for ep in importlib.metadata.entry_points(group="pytest11")
    )
    return () if registered else ("-p", "tlstiming.pytest_plugin")


def test_pytest_report_and_budget_failures_are_escaped(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(evil_peer=(HERE / "evil_peer.py").read_text())
    pytester.syspathinsert()
    pytester.makepyfile(
        test_evil="""
        import pytest
        import evil_peer

        @pytest.mark.handshake_budget(side="server", alpn="h2")
        def test_server_budget():
            evil_peer.evil_handshake()

        @pytest.mark.handshake_budget(outcome="ok")
        def test_client_budget():
            evil_peer.evil_handshake()
        """
    )
    result = pytester.runpytest(*_plugin_args(), "-p", "no:cacheprovider", "--tls-timing-report")
    result.assert_outcomes(failed=2)
    text = "\n".join(result.outlines + result.errlines)
    assert escape(EVIL_HOST) in text  # in the report's host column and the failures
    assert escape(EVIL_ALPN) in text
    assert escape(EVIL_CN) in text
    assert_safe(text)
