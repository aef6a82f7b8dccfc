"""The JSON lines sink: read back from a temp file and a stream, under threads."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
from servers import PKI, LoopbackServer, connect, server_context
from sink_spans import FakeRequestSpan, RealSpans, assert_no_secrets, real_spans

import tlstiming
from tlstiming.sinks import JsonLinesSink


@pytest.fixture(scope="module")
def spans(pki: PKI) -> RealSpans:
    return real_spans(pki)


def test_real_handshakes_to_a_file(pki: PKI, tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text('{"earlier": true}\n')
    client = tlstiming.create_default_context(cadata=pki.ca_pem)
    with JsonLinesSink(path, background=False) as sink:
        client.add_sink(sink)
        with LoopbackServer(server_context(pki.leaf)) as server:
            connect(client, server.address).close()
            with pytest.raises(Exception, match="certificate verify failed"):
                connect(client, server.address, "wrong.example.test")
        # flushed per line: readable before close
        assert len(path.read_text().splitlines()) == 3
    earlier, ok, failed = (json.loads(line) for line in path.read_text().splitlines())
    assert earlier == {"earlier": True}  # appended, not truncated
    assert ok["tlstiming.kind"] == "tls.handshake"
    assert ok["outcome"] == "ok"
    assert failed["error.type"] == "ssl.SSLCertVerificationError"
    assert_no_secrets([path.read_text()])


def test_lines_are_to_dict(spans: RealSpans) -> None:
    out = io.StringIO()
    sink = JsonLinesSink(out, background=False)
    sink(spans.ok)
    sink(spans.resumed)
    sink.close()
    assert not out.closed  # a stream passed in stays the caller's
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first == spans.ok.to_dict()
    assert second["tls.resumed"] is True
    assert_no_secrets([out.getvalue()])


def test_request_spans_are_redacted(spans: RealSpans) -> None:
    out = io.StringIO()
    JsonLinesSink(out, background=False)(FakeRequestSpan(spans.ok))
    (line,) = out.getvalue().splitlines()
    data = json.loads(line)
    assert data["url.full"] == "https://api.example.test:8443/v1/items"
    assert data["tlstiming.handshake"]["span.id"] == spans.ok.span_id
    assert_no_secrets([line])


def test_threads_never_interleave_lines(spans: RealSpans, tmp_path: Path) -> None:
    path = tmp_path / "threads.jsonl"
    per_thread, threads = 50, 8
    barrier = threading.Barrier(threads)
    with JsonLinesSink(path, flush=False, background=False) as sink:

        def work() -> None:
            barrier.wait()
            for _ in range(per_thread):
                sink(spans.ok)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    lines = path.read_text().splitlines()
    assert len(lines) == per_thread * threads
    assert all(json.loads(line)["span.id"] == spans.ok.span_id for line in lines)


def test_a_closed_stream_does_not_break_the_connection(
    pki: PKI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = JsonLinesSink(tmp_path / "closed.jsonl", background=False)
    sink.close()
    sink.close()  # idempotent
    client = tlstiming.create_default_context(cadata=pki.ca_pem)
    client.add_sink(sink)
    with LoopbackServer(server_context(pki.leaf)) as server:
        tls = connect(client, server.address)
        assert tls.recv(5) == b"hello"
        tls.close()
    assert "raised" in caplog.text
    assert "closed file" in caplog.text
