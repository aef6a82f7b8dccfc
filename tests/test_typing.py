"""tlstiming.typing: every protocol and alias in one public module, the same objects as before.

The assignments below are checked by mypy (strict, whole tree): they are the
typing contract, the asserts only its runtime side.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import get_args

import pytest

import tlstiming
import tlstiming.typing as t
from tlstiming import HandshakeSpan, RequestSpan
from tlstiming.sinks import BackgroundSink, JsonLinesSink, LoggingSink, Sampled, StructlogSink

API = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def test_api_doc_lists_exactly_its_names() -> None:
    section = API.read_text().split("## `tlstiming.typing`\n", 1)[1].split("\n## ", 1)[0]
    assert sorted(re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE)) == sorted(t.__all__)
    for name in t.__all__:
        assert hasattr(t, name)


@pytest.mark.parametrize(
    ("name", "old_home"),
    [
        ("Sink", "tlstiming"),
        ("Verifier", "tlstiming"),
        ("Verifier", "tlstiming._recording.verify"),
        ("SpanLike", "tlstiming.sinks"),
        ("SpanLike", "tlstiming.sinks._flatten"),
        ("URLLike", "tlstiming.spans.request"),
        ("Detail", "tlstiming.spans.verification"),
        ("OnError", "tlstiming._recording.verify"),
        ("Outcome", "tlstiming.spans"),
        ("Direction", "tlstiming.spans.handshake"),
    ],
)
def test_old_imports_are_the_same_objects(name: str, old_home: str) -> None:
    module = __import__(old_home, fromlist=[name])
    assert getattr(module, name) is getattr(t, name)


def test_the_aliases() -> None:
    assert get_args(t.Span) == (HandshakeSpan, RequestSpan)
    assert get_args(t.Outcome) == ("ok", "error")
    assert "timeout" in get_args(t.VerificationOutcome)
    assert t.Sink.__module__ == t.SpanLike.__module__ == t.URLLike.__module__ == "tlstiming.typing"


def _both(span: t.Span) -> None:
    pass


def _handshakes_only(span: HandshakeSpan) -> None:
    pass


def test_one_sink_protocol_for_every_kind() -> None:
    """mypy checks these: a sink of every kind fits a context, a transport and subscribe."""
    sinks: list[t.Sink] = [
        _both,
        StructlogSink(background=False),
        LoggingSink(background=False),
        JsonLinesSink(sys.stdout, background=False),
        Sampled(_both),
        BackgroundSink(_both),
    ]
    handshake_sinks: list[t.Sink[HandshakeSpan]] = [*sinks, _handshakes_only]
    request_sinks: list[t.Sink[RequestSpan]] = list(sinks)
    as_callables: list[Callable[[HandshakeSpan], None]] = list(handshake_sinks)
    context = tlstiming.create_default_context()
    for sink in as_callables:
        context.add_sink(sink)
    assert len(context.sinks) == len(sinks) + 1
    assert request_sinks == sinks
    recorder: t.Sink[HandshakeSpan] = tlstiming.SpanRecorder()
    assert callable(recorder)


def test_import_is_light() -> None:
    code = (
        "import sys, tlstiming.typing; "
        "print(sorted(m for m in ('httpx', 'structlog', 'opentelemetry') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
