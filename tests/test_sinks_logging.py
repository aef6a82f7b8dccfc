"""The stdlib logging sink, read back with caplog and a JSON formatter like python-json-logger's."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from servers import PKI, LoopbackServer, connect, server_context
from sink_spans import FakeRequestSpan, RealSpans, assert_no_secrets, real_spans

import tlstiming
from tlstiming.sinks import LoggingSink, flatten
from tlstiming.spans.render import one_line

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """What python-json-logger does: the message plus every non-standard record attribute."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        return json.dumps({"message": record.getMessage(), **fields})


@pytest.fixture(scope="module")
def spans(pki: PKI) -> RealSpans:
    return real_spans(pki)


@pytest.fixture
def json_logs() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.tlstiming.json")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, out
    logger.removeHandler(handler)
    handler.close()


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


def test_one_record_per_real_handshake(pki: PKI, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tlstiming.spans")
    client = tlstiming.create_default_context(cadata=pki.ca_pem)
    client.add_sink(LoggingSink(background=False))
    with LoopbackServer(server_context(pki.leaf)) as server:
        connect(client, server.address).close()
        with pytest.raises(Exception, match="certificate verify failed"):
            connect(client, server.address, "wrong.example.test")
    ok, failed = (r for r in caplog.records if r.name == "tlstiming.spans")
    assert ok.levelno == logging.INFO
    assert ok.getMessage().startswith("TLS 1.3 localhost:")
    assert getattr(ok, "tls.protocol.version") == "1.3"
    assert failed.levelno == logging.WARNING
    assert "error=ssl.SSLCertVerificationError" in failed.getMessage()
    assert getattr(failed, "error.type") == "ssl.SSLCertVerificationError"
    assert_no_secrets([_fields(ok), _fields(failed), caplog.text])


def test_extra_holds_exactly_the_flat_keys(
    spans: RealSpans, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tlstiming.spans")
    LoggingSink(background=False)(spans.ok)
    (record,) = caplog.records
    assert _fields(record) == flatten(spans.ok)
    assert record.getMessage() == one_line(spans.ok)


def test_json_formatter_picks_up_dotted_keys(
    spans: RealSpans, json_logs: tuple[logging.Logger, io.StringIO]
) -> None:
    logger, out = json_logs
    sink = LoggingSink(logger, background=False)
    sink(spans.ok)
    sink(FakeRequestSpan(spans.ok))
    handshake, request = (json.loads(line) for line in out.getvalue().splitlines())
    assert handshake["tls.cipher"] == spans.ok.facts.cipher
    assert handshake["tls.handshake.duration_ms"] == round(spans.ok.duration_ns / 1e6, 3)
    assert request["message"] == "http.request GET api.example.test:8443 9.0 ms status=200"
    assert request["url.full"] == "https://api.example.test:8443/v1/items"
    assert_no_secrets([out.getvalue()])


def test_nested_under_one_attribute(spans: RealSpans, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tlstiming.spans")
    LoggingSink(extra_key="tls", background=False)(spans.ok)
    (record,) = caplog.records
    assert _fields(record) == {"tls": flatten(spans.ok)}
    with pytest.raises(ValueError, match="LogRecord attribute"):
        LoggingSink(extra_key="msg", background=False)


def test_levels_and_slow_threshold(spans: RealSpans, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="x")
    LoggingSink("x", error_level=logging.ERROR, background=False)(spans.failed)
    LoggingSink("x", level=logging.DEBUG, slow_ms=0, background=False)(spans.ok)
    LoggingSink("x", level=logging.DEBUG, slow_ms=60_000, background=False)(spans.ok)
    LoggingSink("x", slow_ms=0, slow_level=logging.ERROR, background=False)(
        spans.failed
    )  # error wins
    assert [r.levelno for r in caplog.records] == [40, 30, 10, 30]
    with pytest.raises(ValueError, match="slow_ms"):
        LoggingSink(slow_ms=-1, background=False)


def test_nothing_is_built_when_the_level_is_disabled(
    spans: RealSpans, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tlstiming.spans")

    class Counting(FakeRequestSpan):
        calls = 0

        def to_dict(self) -> dict[str, Any]:
            Counting.calls += 1
            return super().to_dict()

    LoggingSink(background=False)(Counting(spans.ok))
    assert Counting.calls == 0
    assert not caplog.records


def test_reserved_names_are_prefixed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tlstiming.spans")

    class Odd(FakeRequestSpan):
        def to_dict(self) -> dict[str, Any]:
            return {**super().to_dict(), "name": "clash", "message": "clash"}

    LoggingSink(background=False)(Odd(None))
    (record,) = caplog.records
    assert record.name == "tlstiming.spans"
    assert getattr(record, "tlstiming.name") == "clash"
    assert getattr(record, "tlstiming.message") == "clash"


def test_library_attaches_no_handlers() -> None:
    before = list(logging.getLogger().handlers), list(logging.getLogger("tlstiming").handlers)
    sink = LoggingSink(background=False)
    assert sink is not None
    assert not logging.getLogger("tlstiming.spans").handlers
    after = list(logging.getLogger().handlers), list(logging.getLogger("tlstiming").handlers)
    assert before == after


def test_a_raising_logger_does_not_break_the_connection(
    pki: PKI, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(record: logging.LogRecord) -> bool:
        raise RuntimeError("filter bug")

    logger = logging.getLogger("test.tlstiming.broken")
    logger.addFilter(broken)
    logger.setLevel(logging.INFO)
    client = tlstiming.create_default_context(cadata=pki.ca_pem)
    client.add_sink(LoggingSink(logger, background=False))
    try:
        with LoopbackServer(server_context(pki.leaf)) as server:
            tls = connect(client, server.address)
            assert tls.recv(5) == b"hello"
            tls.close()
    finally:
        logger.removeFilter(broken)
        logger.setLevel(logging.NOTSET)
    assert "filter bug" in caplog.text
