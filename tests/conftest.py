"""Fixtures for the adapter tests: one test PKI, loopback servers, client contexts."""

from __future__ import annotations

import contextlib
import gc
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import OPENSSL, PKI, LoopbackServer, OpenSSLServer, make_pki

import tlstiming

ServeFactory = Callable[..., LoopbackServer]
OpenSSLFactory = Callable[..., OpenSSLServer]


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test() -> Iterator[None]:
    """Collect each test's garbage before the next one starts.

    An unclosed socket or transport is then reported by (and fails) the test
    that left it, never a later test that happens to trigger the collection.
    """
    yield
    gc.collect()


@pytest.fixture(params=["c", "callback", "python"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the C accelerator as imported, on its callback path, and in pure Python.

    Contexts made after this fixture record through the selected one (the
    context takes ``_conn.on_message`` when built; connections call
    ``_conn.drive``). Without the built accelerator the ``c`` case is skipped;
    ``callback`` runs only where ``c`` is native (else ``c`` is the callback path).
    """
    from tlstiming._recording import conn as _conn
    from tlstiming._recording import native as _native

    if request.param != "python" and not _conn.ACCELERATED:
        pytest.skip(
            "tlstiming._recording._speedups is not built here (or TLSTIMING_PURE_PYTHON is set)"
        )
    if request.param == "callback" and _native.implementation().name != "native":
        pytest.skip("the c case is the callback path here")
    use_implementation(str(request.param), monkeypatch)
    return str(request.param)


def use_implementation(implementation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Record through ``"python"`` (the pure-Python hot path), ``"callback"`` (the
    accelerator through CPython's ``_msg_callback``) or ``"c"`` (as imported)."""
    from tlstiming._recording import conn as _conn
    from tlstiming._recording import native as _native

    if implementation in ("python", "callback"):
        monkeypatch.setattr(_native.SWITCH, "on", False)
    if implementation == "python":
        monkeypatch.setattr(_conn, "on_message", _conn._py_on_message)
        monkeypatch.setattr(_conn, "drive", _conn._py_drive)


@pytest.fixture(scope="session")
def pki() -> PKI:
    """Every certificate the tests use, issued once per session."""
    return make_pki()


@pytest.fixture
def recorder() -> tlstiming.SpanRecorder:
    """A fresh sink."""
    return tlstiming.SpanRecorder(maxlen=10_000)


@pytest.fixture
def client_ctx(pki: PKI, recorder: tlstiming.SpanRecorder) -> tlstiming.TimedSSLContext:
    """A default client context that trusts the test CA, delivering to ``recorder``."""
    context = tlstiming.create_default_context(cadata=pki.ca_pem)
    context.add_sink(recorder)
    return context


@pytest.fixture
def plain_ctx(pki: PKI) -> ssl.SSLContext:
    """The same client context, built by plain ``ssl``."""
    return ssl.create_default_context(cadata=pki.ca_pem)


@pytest.fixture
def serve() -> Iterator[ServeFactory]:
    """Start :class:`LoopbackServer` s (same arguments); all closed at teardown."""
    with contextlib.ExitStack() as stack:

        def start(*args: Any, **kwargs: Any) -> LoopbackServer:
            return stack.enter_context(LoopbackServer(*args, **kwargs))

        yield start


@pytest.fixture
def openssl_serve(tmp_path: Path) -> Iterator[OpenSSLFactory]:
    """Start ``openssl s_server`` processes; all killed at teardown."""
    if OPENSSL is None:
        pytest.skip("the openssl command-line tool is not installed (CI installs it)")
    with contextlib.ExitStack() as stack:
        count = 0

        def start(*args: Any, **kwargs: Any) -> OpenSSLServer:
            nonlocal count
            count += 1
            server = OpenSSLServer(tmp_path / f"s_server{count}", *args, **kwargs)
            return stack.enter_context(server)

        yield start
