"""Embedded loopback TLS servers for ``tlstiming demo``: no internet needed."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from tlstiming.cli.options import Target
from tlstiming.cli.probe import ProbeOptions, ProbeRun, build_context, probe_once
from tlstiming.cli.report import exit_code, probe_json, probe_text
from tlstiming.diagnosis import Finding, diagnose, severity_rank
from tlstiming.recorder import SpanRecorder
from tlstiming.testing.pki import LocalPKI

__all__ = ["DemoPKI", "LoopbackServer", "demo_pki", "run"]


class DemoPKI:
    """A throwaway root and intermediate CA and a ``localhost`` certificate, in ``directory``.

    The certificates are :class:`tlstiming.testing.LocalPKI`'s, which pass the
    strict X.509 checks that Python 3.13's ``create_default_context`` turns on.
    """

    def __init__(self, directory: str) -> None:
        pki = LocalPKI(directory)
        self.ca_file = pki.ca_file
        self._server = pki.issue(("localhost", "127.0.0.1"))

    def server_context(self) -> ssl.SSLContext:
        """A server context presenting the ``localhost`` certificate and its intermediate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._server.cert_file, self._server.key_file)
        return context


@contextmanager
def demo_pki() -> Iterator[DemoPKI]:
    """Yield a :class:`DemoPKI` whose files are deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="tlstiming-demo-") as directory:
        yield DemoPKI(directory)


class LoopbackServer:
    """A TLS server on 127.0.0.1 in a thread: handshake, send a greeting, wait for EOF, close."""

    def __init__(self, context: ssl.SSLContext, greeting: bytes = b"ok") -> None:
        self._context = context
        self._greeting = greeting
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="tlstiming-demo", daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            with raw:
                _answer(self._context, raw, self._greeting)


def _answer(context: ssl.SSLContext, raw: socket.socket, greeting: bytes) -> None:
    raw.settimeout(5)
    try:
        with context.wrap_socket(raw, server_side=True) as conn:
            conn.sendall(greeting)
            while conn.recv(1024):
                pass
    except (OSError, ssl.SSLError):
        return


def run(*, as_json: bool, out: TextIO) -> int:
    """Probe every demo server; show each waterfall and its findings.

    Returns:
        0 when every planted cause was named and the healthy server has no
        finding at warning or above, else 1.
    """
    from tlstiming.cli.demo_servers import available  # noqa: PLC0415
    from tlstiming.testing import LocalPKI  # noqa: PLC0415

    results = []
    with LocalPKI.temporary() as pki:
        for scenario in available():
            with contextlib.ExitStack() as stack:
                started = scenario.start(pki, stack)
                results.append((scenario, *_probe(started)))
    named = [_named(scenario.expected, findings) for scenario, _, findings in results]
    if as_json:
        document = {
            "scenarios": [
                {
                    "name": scenario.name,
                    "title": scenario.title,
                    "expected": scenario.expected,
                    "named": ok,
                    "probe": probe_json(_TARGET, runs, findings, [], exit_code(runs, findings, [])),
                }
                for (scenario, runs, findings), ok in zip(results, named, strict=True)
            ],
            "all_named": all(named),
        }
        out.write(json.dumps(document) + "\n")
    else:
        for (scenario, runs, findings), ok in zip(results, named, strict=True):
            out.write(f"\n== {scenario.title}\n")
            probe_text(_TARGET, runs, findings, [], out)
            want = scenario.expected or "no finding at warning or above"
            out.write(f"   {'named' if ok else 'NOT NAMED'}: {want}\n")
        out.write(f"\n{sum(named)} of {len(named)} servers diagnosed as planted\n")
    return 0 if all(named) else 1


_TARGET = "localhost"


def _probe(started: Any) -> tuple[list[ProbeRun], tuple[Finding, ...]]:
    options = ProbeOptions(
        target=Target("localhost", started.port, "https", "/"),
        cafile=started.cafile,
        ocsp=started.ocsp,
        timeout=3.0,
    )
    recorder = SpanRecorder(maxlen=4)
    run = probe_once(options, build_context(options, recorder), recorder)
    return [run], diagnose([run.request])


def _named(expected: str | None, findings: tuple[Finding, ...]) -> bool:
    if expected is None:
        return not any(severity_rank(f.severity) >= 1 for f in findings)
    return any(f.id == expected for f in findings)
