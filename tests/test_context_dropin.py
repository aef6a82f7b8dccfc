"""TimedSSLContext is a drop-in ssl.SSLContext: same results, errors, defaults and seams.

Each comparison runs the same scenario twice, once with ``ssl`` and once with
``tlstiming``, and compares everything a caller can observe.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import enum
import pickle
import socket
import ssl
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import OpenSSLFactory, ServeFactory
from servers import (
    GREETING,
    GUARD,
    PKI,
    connect,
    error_signature,
    read_exactly,
    server_context,
)

import tlstiming
from tlstiming import SpanRecorder, TimedSSLContext

# Every case runs with the C accelerator and with the pure-Python hot path.
pytestmark = pytest.mark.usefixtures("implementation")

Factory = Callable[..., ssl.SSLContext]
FACTORIES: list[Factory] = [ssl.create_default_context, tlstiming.create_default_context]
REV_LINE = b"ping tlstiming\n"


def observe(
    ctx: ssl.SSLContext,
    address: tuple[str, int],
    host: str = "localhost",
    *,
    timeout: float | None = GUARD,
    send: bytes | None = None,
    expect: int = len(GREETING),
) -> tuple[Any, ...]:
    """Everything a caller sees of one connection: result or exception, per stage."""
    try:
        tls = connect(ctx, address, host, timeout=timeout)
    except Exception as exc:
        return ("handshake failed", *error_signature(exc))
    with tls:
        seen: tuple[Any, ...] = (
            "connected",
            tls.version(),
            tls.selected_alpn_protocol(),
            tls.cipher(),
            tls.getpeercert(),
            tls.session_reused,
            tls.server_hostname,
        )
        try:
            if send:
                tls.sendall(send)
            return (*seen, "read", read_exactly(tls, expect))
        except Exception as exc:
            return (*seen, "read failed", *error_signature(exc))


def compare(
    pki: PKI, address: tuple[str, int], host: str = "localhost", **kwargs: Any
) -> tuple[Any, ...]:
    """Run one scenario with ssl and with tlstiming; both must see the same; return it."""
    recorder = SpanRecorder()
    timed = tlstiming.create_default_context(cadata=pki.ca_pem)
    timed.add_sink(recorder)
    plain = ssl.create_default_context(cadata=pki.ca_pem)
    expected = observe(plain, address, host, **kwargs)
    got = observe(timed, address, host, **kwargs)
    assert got == expected
    assert len(recorder) == 1
    return got


# -- same results and the same exceptions -----------------------------------------------


@pytest.mark.parametrize(
    ("case", "first"),
    [
        ("ok", "connected"),
        ("wrong_host", "handshake failed"),
        ("untrusted", "handshake failed"),
        ("expired", "handshake failed"),
        ("missing_intermediate", "handshake failed"),
        ("alpn_no_overlap", "connected"),
        ("certificate_required", "connected"),
        ("tls12", "connected"),
        ("hello_retry", "connected"),
    ],
)
def test_same_outcome_as_ssl(case: str, first: str, serve: ServeFactory, pki: PKI) -> None:
    cert = {
        "untrusted": pki.untrusted,
        "expired": pki.expired,
        "missing_intermediate": pki.chained,
    }.get(case, pki.leaf)
    context = server_context(
        cert,
        send_intermediates=case != "missing_intermediate",
        alpn=["h2"] if case == "alpn_no_overlap" else None,
        client_ca=pki.ca if case == "certificate_required" else None,
        maximum_version=ssl.TLSVersion.TLSv1_2 if case == "tls12" else None,
        ecdh_curve="secp384r1" if case == "hello_retry" else None,
    )
    server = serve(context)
    seen = compare(
        pki, server.address, "wrong.example.test" if case == "wrong_host" else "localhost"
    )
    assert seen[0] == first
    if case == "certificate_required":
        assert "read failed" in seen


def test_same_alpn_result(serve: ServeFactory, pki: PKI) -> None:
    server = serve(server_context(pki.leaf, alpn=["h2"]))
    for factory in FACTORIES:
        ctx = factory(cadata=pki.ca_pem)
        ctx.set_alpn_protocols(["http/1.1"])
        with connect(ctx, server.address) as tls:
            assert tls.selected_alpn_protocol() is None


@pytest.mark.openssl
def test_alpn_mismatch_alert_same_as_ssl(openssl_serve: OpenSSLFactory, pki: PKI) -> None:
    server = openssl_serve(pki.leaf, ["-alpn", "h2"])
    seen = []
    for factory in FACTORIES:
        ctx = factory(cadata=pki.ca_pem)
        ctx.set_alpn_protocols(["http/1.1"])
        seen.append(observe(ctx, server.address, send=REV_LINE, expect=len(REV_LINE)))
    assert seen[0] == seen[1]
    assert seen[0][0] == "handshake failed"
    assert seen[0][1] is ssl.SSLError
    assert "no application protocol" in seen[0][2]


@pytest.mark.openssl
@pytest.mark.parametrize(
    "args", [[], ["-tls1_2"], ["-Verify", "1", "-verify_return_error"]], ids=str
)
def test_openssl_server_same_as_ssl(
    args: list[str], openssl_serve: OpenSSLFactory, pki: PKI
) -> None:
    server = openssl_serve(pki.chained, args, client_ca=pki.ca)
    compare(pki, server.address, send=REV_LINE, expect=len(REV_LINE))


@pytest.mark.parametrize("mode", ["not_tls", "reset"])
def test_broken_peer_same_as_ssl(mode: str, serve: ServeFactory, pki: PKI) -> None:
    server = serve(mode=mode)
    seen = compare(pki, server.address)
    assert seen[0] == "handshake failed"


def test_timeout_same_as_ssl(serve: ServeFactory, pki: PKI) -> None:
    server = serve(mode="silent")
    seen = compare(pki, server.address, timeout=0.2)
    assert seen[:2] == ("handshake failed", TimeoutError)


def test_asyncio_same_errors(serve: ServeFactory, pki: PKI) -> None:
    async def attempt(ctx: ssl.SSLContext, address: tuple[str, int]) -> tuple[Any, ...]:
        try:
            reader, writer = await asyncio.open_connection(
                *address, ssl=ctx, server_hostname="localhost"
            )
        except Exception as exc:
            return error_signature(exc)
        data = await reader.readexactly(len(GREETING))
        writer.close()
        with contextlib.suppress(ssl.SSLError, OSError):  # asyncio's own close-time noise
            await writer.wait_closed()
        return ("connected", data)

    servers = [serve(server_context(c)) for c in (pki.leaf, pki.expired, pki.untrusted)]
    for server in servers:
        got = [asyncio.run(attempt(f(cadata=pki.ca_pem), server.address)) for f in FACTORIES]
        assert got[0] == got[1]


# -- same defaults --------------------------------------------------------------------------


def _settings(ctx: ssl.SSLContext) -> dict[str, Any]:
    return {
        "protocol": ctx.protocol,
        "options": ctx.options,
        "verify_mode": ctx.verify_mode,
        "check_hostname": ctx.check_hostname,
        "verify_flags": ctx.verify_flags,
        "minimum_version": ctx.minimum_version,
        "maximum_version": ctx.maximum_version,
        "post_handshake_auth": ctx.post_handshake_auth,
        "hostname_checks_common_name": ctx.hostname_checks_common_name,
        "security_level": ctx.security_level,
        "keylog_filename": ctx.keylog_filename,
        "ca_certs": len(ctx.get_ca_certs()),
        "cert_store_stats": ctx.cert_store_stats(),
        "ciphers": ctx.get_ciphers(),
        "num_tickets": ctx.num_tickets,
    }


@pytest.mark.parametrize("trust", ["system", "cafile", "cadata", "cadata_der"])
@pytest.mark.parametrize("purpose", [ssl.Purpose.SERVER_AUTH, ssl.Purpose.CLIENT_AUTH])
def test_same_defaults(purpose: ssl.Purpose, trust: str, pki: PKI, tmp_path: Path) -> None:
    cafile = tmp_path / "ca.pem"
    pki.ca.cert_pem.write_to_path(str(cafile))
    options: dict[str, dict[str, Any]] = {
        "system": {},
        "cafile": {"cafile": str(cafile)},
        "cadata": {"cadata": pki.ca_pem},
        "cadata_der": {"cadata": ssl.PEM_cert_to_DER_cert(pki.ca_pem)},
    }
    kwargs = options[trust]
    plain = ssl.create_default_context(purpose, **kwargs)
    timed = tlstiming.create_default_context(purpose, **kwargs)
    assert isinstance(timed, TimedSSLContext)
    assert _settings(timed) == _settings(plain)
    if trust != "system":
        assert len(timed.get_ca_certs()) == 1


def test_same_keylog_default(pki: PKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSLKEYLOGFILE", str(tmp_path / "keys.log"))
    plain = ssl.create_default_context(cadata=pki.ca_pem)
    timed = tlstiming.create_default_context(cadata=pki.ca_pem)
    assert timed.keylog_filename == plain.keylog_filename == str(tmp_path / "keys.log")


def test_client_auth_purpose_gives_a_server_context(
    serve: ServeFactory, pki: PKI, tmp_path: Path
) -> None:
    ctx = tlstiming.create_default_context(purpose=ssl.Purpose.CLIENT_AUTH)
    assert ctx.protocol == ssl.PROTOCOL_TLS_SERVER
    assert ctx.verify_mode == ssl.CERT_NONE
    assert not ctx.check_hostname
    recorder = SpanRecorder()
    ctx.add_sink(recorder)
    pki.leaf.configure_cert(ctx)
    server = serve(ctx)
    with connect(ssl.create_default_context(cadata=pki.ca_pem), server.address) as tls:
        assert read_exactly(tls, len(GREETING)) == GREETING
    assert [span.side for span in recorder.spans] == ["server"]


@pytest.mark.parametrize(
    "purpose",
    ["1.3.6.1.5.5.7.3.1", None, 1, ssl._ASN1Object("1.3.6.1.5.5.7.3.3")],
    ids=["oid-string", "none", "int", "code-signing"],
)
def test_bad_purpose_same_error(purpose: Any) -> None:
    with pytest.raises((TypeError, ValueError)) as expected:
        ssl.create_default_context(purpose)
    with pytest.raises((TypeError, ValueError)) as got:
        tlstiming.create_default_context(purpose)
    assert type(got.value) is type(expected.value)
    assert str(got.value) == str(expected.value)


def test_same_keyword_errors(pki: PKI) -> None:
    with pytest.raises(TypeError):
        tlstiming.create_default_context(ssl.Purpose.SERVER_AUTH, pki.ca_pem)  # type: ignore[call-arg]
    with pytest.raises(ssl.SSLError) as expected:
        ssl.create_default_context(cadata="not a certificate")
    with pytest.raises(ssl.SSLError) as got:
        tlstiming.create_default_context(cadata="not a certificate")
    assert error_signature(got.value) == error_signature(expected.value)


@pytest.mark.parametrize(
    "operation",
    [pickle.dumps, copy.copy, copy.deepcopy],
    ids=["pickle", "copy", "deepcopy"],
)
def test_pickle_and_copy_fail_like_ssl(operation: Callable[[Any], Any]) -> None:
    with pytest.raises(TypeError, match="pickle") as expected:
        operation(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    with pytest.raises(TypeError, match="pickle") as got:
        operation(TimedSSLContext(ssl.PROTOCOL_TLS_CLIENT))
    assert type(got.value) is type(expected.value)


def _warnings_of(factory: Callable[[], object]) -> list[tuple[str, type[Warning], str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        factory()
    return [(str(w.message), w.category, w.filename) for w in caught]


def test_constructor_warns_like_ssl() -> None:
    expected = _warnings_of(ssl.SSLContext)
    got = _warnings_of(TimedSSLContext)
    assert [w[:2] for w in got] == [w[:2] for w in expected]
    assert got[0][2] == expected[0][2] == __file__


def test_constructor_warnings_point_at_the_caller() -> None:
    expected = _warnings_of(ssl.SSLContext)
    got = _warnings_of(TimedSSLContext)
    assert got == expected


def test_constructor_errors_like_ssl() -> None:
    with pytest.raises(ValueError, match="protocol") as plain_error:
        ssl.SSLContext(99)
    with pytest.raises(ValueError, match="protocol") as timed_error:
        TimedSSLContext(99)
    assert str(timed_error.value) == str(plain_error.value)


# -- the user's _msg_callback ---------------------------------------------------------------


def _describe(args: tuple[Any, ...]) -> tuple[Any, ...]:
    conn, direction, version, content_type, msg_type, data = args
    return (
        isinstance(conn, ssl.SSLSocket),
        direction,
        type(version).__name__,
        version,
        type(content_type).__name__,
        content_type,
        type(msg_type).__name__,
        msg_type,
        type(data).__name__,
    )


def _talk(ctx: ssl.SSLContext, address: tuple[str, int], calls: list[tuple[Any, ...]]) -> int:
    """Handshake, write and read on the data path; return how many calls the handshake made."""
    with connect(ctx, address) as tls:
        during = len(calls)
        assert all(c[0] is tls for c in calls)
        tls.sendall(b"x" * 50_000)
        assert read_exactly(tls, len(GREETING)) == GREETING
        tls.sendall(b"y")
    return during


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls12", "tls13"]
)
def test_user_msg_callback_sees_what_ssl_gives(
    version: ssl.TLSVersion, serve: ServeFactory, pki: PKI
) -> None:
    server = serve(server_context(pki.leaf, maximum_version=version))
    seen: list[list[tuple[Any, ...]]] = []
    during: list[int] = []
    recorder = SpanRecorder()
    for factory in FACTORIES:
        ctx = factory(cadata=pki.ca_pem)
        calls: list[tuple[Any, ...]] = []

        def callback(*args: Any, calls: list[tuple[Any, ...]] = calls) -> None:
            calls.append(args)

        assert ctx._msg_callback is None  # type: ignore[attr-defined]
        ctx._msg_callback = callback  # type: ignore[attr-defined]
        assert ctx._msg_callback is callback  # type: ignore[attr-defined]
        if isinstance(ctx, TimedSSLContext):
            ctx.add_sink(recorder)
        during.append(_talk(ctx, server.address, calls))
        seen.append([_describe(c) for c in calls])
    assert during[0] == during[1]
    assert seen[0] == seen[1]
    assert len(seen[0]) > during[0]  # the data path was reported too
    assert any(isinstance(c[5], enum.Enum) for c in seen[0])
    assert len(recorder) == 1


def test_user_msg_callback_reset_to_none(serve: ServeFactory, pki: PKI) -> None:
    server = serve(server_context(pki.leaf))
    ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    recorder = SpanRecorder()
    ctx.add_sink(recorder)
    calls: list[tuple[Any, ...]] = []
    ctx._msg_callback = lambda *args: calls.append(args)
    ctx._msg_callback = None
    assert ctx._msg_callback is None
    with connect(ctx, server.address) as tls:
        read_exactly(tls, len(GREETING))
    assert calls == []
    assert len(recorder) == 1


def test_user_msg_callback_errors_like_ssl() -> None:
    for ctx in (ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), TimedSSLContext(ssl.PROTOCOL_TLS_CLIENT)):
        with pytest.raises(TypeError, match="not callable"):
            ctx._msg_callback = 42  # type: ignore[attr-defined]


# -- user connection classes ----------------------------------------------------------------


class UserSocket(ssl.SSLSocket):
    """A library's own socket class."""

    def marker(self) -> str:
        return "user socket"


class UserObject(ssl.SSLObject):
    """A library's own object class."""

    def marker(self) -> str:
        return "user object"


def test_user_sslsocket_class(serve: ServeFactory, pki: PKI) -> None:
    server = serve(server_context(pki.leaf))
    ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    recorder = SpanRecorder()
    ctx.add_sink(recorder)
    ctx.sslsocket_class = UserSocket
    assert ctx.sslsocket_class is UserSocket
    with connect(ctx, server.address) as tls:
        assert isinstance(tls, UserSocket)
        assert tls.marker() == "user socket"
        assert tls.context is ctx
        assert read_exactly(tls, len(GREETING)) == GREETING
        assert tlstiming.span_of(tls) is recorder.spans[0]
    assert len(recorder) == 1


def test_user_sslobject_class(serve: ServeFactory, pki: PKI) -> None:
    server = serve(server_context(pki.leaf))
    ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    recorder = SpanRecorder()
    ctx.add_sink(recorder)
    ctx.sslobject_class = UserObject
    assert ctx.sslobject_class is UserObject

    async def main() -> None:
        reader, writer = await asyncio.open_connection(
            *server.address, ssl=ctx, server_hostname="localhost"
        )
        obj = writer.get_extra_info("ssl_object")
        assert isinstance(obj, UserObject)
        assert obj.marker() == "user object"
        assert await reader.readexactly(len(GREETING)) == GREETING
        assert obj.context is ctx
        assert tlstiming.span_of(obj) is recorder.spans[0]
        writer.close()
        await writer.wait_closed()

    asyncio.run(main())
    assert len(recorder) == 1


def test_default_connection_classes() -> None:
    ctx = TimedSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert issubclass(ctx.sslsocket_class, ssl.SSLSocket)
    assert issubclass(ctx.sslobject_class, ssl.SSLObject)


# -- context, session and resumption ------------------------------------------------------------


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls12", "tls13"]
)
def test_session_resumes_like_ssl(version: ssl.TLSVersion, serve: ServeFactory, pki: PKI) -> None:
    server = serve(server_context(pki.leaf, maximum_version=version))
    for factory in FACTORIES:
        ctx = factory(cadata=pki.ca_pem)
        with connect(ctx, server.address) as first:
            assert first.context is ctx
            read_exactly(first, len(GREETING))  # TLS 1.3: the ticket arrives with the data
            session = first.session
        assert session is not None
        with connect(ctx, server.address, session=session) as second:
            assert second.context is ctx
            assert second.session_reused
            assert second.session is not None
            assert second.session.id == session.id or version == ssl.TLSVersion.TLSv1_3


def test_session_refused_by_another_context_like_ssl(serve: ServeFactory, pki: PKI) -> None:
    server = serve(server_context(pki.leaf))
    errors = []
    for factory in FACTORIES:
        ctx = factory(cadata=pki.ca_pem)
        with connect(ctx, server.address) as first:
            read_exactly(first, len(GREETING))
            session = first.session
        other = factory(cadata=pki.ca_pem)
        raw = socket.create_connection(server.address, timeout=GUARD)
        with raw, pytest.raises(ValueError, match=r"[Ss]ession") as error:
            other.wrap_socket(raw, server_hostname="localhost", session=session)
        errors.append(str(error.value))
    assert errors[0] == errors[1]


def test_sslobject_context_after_handshake(serve: ServeFactory, pki: PKI) -> None:
    server = serve(server_context(pki.leaf))
    ctx = tlstiming.create_default_context(cadata=pki.ca_pem)

    async def main() -> None:
        reader, writer = await asyncio.open_connection(
            *server.address, ssl=ctx, server_hostname="localhost"
        )
        obj = writer.get_extra_info("ssl_object")
        assert obj.context is ctx
        assert await reader.readexactly(len(GREETING)) == GREETING
        assert obj.context is ctx
        assert obj.session is not None
        writer.close()
        await writer.wait_closed()

    asyncio.run(main())


def test_without_the_private_seam_it_is_a_plain_context(
    monkeypatch: pytest.MonkeyPatch, serve: ServeFactory, pki: PKI
) -> None:
    """A CPython without ``_msg_callback``: connections work, spans hold only the total."""
    from tlstiming._recording import context

    monkeypatch.setattr(context, "_C_MSG_CALLBACK", None)
    ctx = tlstiming.create_default_context(cadata=pki.ca_pem)
    recorder = tlstiming.SpanRecorder()
    ctx.add_sink(recorder)
    calls: list[object] = []
    ctx._msg_callback = calls.append  # stored, as ssl would, and read back
    assert ctx._msg_callback == calls.append
    server = serve(server_context(pki.leaf))
    with connect(ctx, server.address) as tls:
        assert tls.version() == "TLSv1.3"
    (span,) = recorder.spans
    assert span.outcome == "ok"
    assert span.messages == ()
    assert [p.name for p in span.phases] == ["client_hello"]
    assert span.phases[0].duration_ns == span.duration_ns
