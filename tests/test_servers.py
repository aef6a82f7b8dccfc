"""Inbound spans: the client's address on every path, SNI and client-certificate time, ASGI."""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import PKI

import tlstiming
from tlstiming.servers import hypercorn_config, set_peer, uvicorn_config


def _server_context(pki: PKI, *, client_cert: bool = False) -> tlstiming.TimedSSLContext:
    context = tlstiming.TimedSSLContext(ssl.PROTOCOL_TLS_SERVER)
    pki.leaf.configure_cert(context)
    if client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        pki.ca.configure_trust(context)
    context.sni_callback = lambda conn, name, ctx: None
    return context


def _client_context(pki: PKI, *, client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context()
    pki.ca.configure_trust(context)
    if client_cert:
        pki.client.configure_cert(context)
    return context


def _wait_for(spans: list[tlstiming.HandshakeSpan], count: int = 1) -> None:
    deadline = time.monotonic() + 10
    while len(spans) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(spans) >= count


def _assert_inbound(span: tlstiming.HandshakeSpan, client: tuple[str, int]) -> None:
    assert span.side == "server"
    assert span.peer == client
    assert span.phase("sni_callback") is not None


@pytest.mark.parametrize("client_cert", [False, True])
def test_blocking_wrap_socket(pki: PKI, client_cert: bool) -> None:
    context = _server_context(pki, client_cert=client_cert)
    spans: list[tlstiming.HandshakeSpan] = []
    context.add_sink(spans.append)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with contextlib.suppress(ssl.SSLError, OSError), context.wrap_socket(conn, True) as tls:
                tls.recv(1)

        thread = threading.Thread(target=serve)
        thread.start()
        client = _client_context(pki, client_cert=client_cert)
        with client.wrap_socket(
            socket.create_connection(("127.0.0.1", port)), server_hostname="localhost"
        ) as tls:
            address = tls.getsockname()
            tls.sendall(b"x")
        thread.join(10)
    _wait_for(spans)
    _assert_inbound(spans[0], address)
    assert (spans[0].phase("client_certificate") is not None) is client_cert


class _OwnWrapBio(tlstiming.TimedSSLContext):
    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        return super().wrap_bio(*args, **kwargs)  # one more frame between asyncio and us


@pytest.mark.parametrize(
    ("client_cert", "subclass"), [(False, False), (True, False), (False, True)]
)
def test_asyncio_start_server(pki: PKI, client_cert: bool, subclass: bool) -> None:
    context = _server_context(pki, client_cert=client_cert)
    if subclass:
        context = _OwnWrapBio(ssl.PROTOCOL_TLS_SERVER)
        pki.leaf.configure_cert(context)
        context.sni_callback = lambda conn, name, ctx: None
    spans: list[tlstiming.HandshakeSpan] = []
    context.add_sink(spans.append)

    async def main() -> tuple[str, int]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        client = _client_context(pki, client_cert=client_cert)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname="localhost"
        )
        address: tuple[str, int] = writer.get_extra_info("sockname")
        writer.write(b"x")
        await reader.read()
        writer.close()
        server.close()
        await server.wait_closed()
        return address

    address = asyncio.run(main())
    _wait_for(spans)
    _assert_inbound(spans[0], address)
    assert (spans[0].phase("client_certificate") is not None) is client_cert


def test_memory_bio_peer_set_by_owner(pki: PKI) -> None:
    server = _server_context(pki)
    spans: list[tlstiming.HandshakeSpan] = []
    server.add_sink(spans.append)
    client = _client_context(pki)
    bios = [ssl.MemoryBIO() for _ in range(4)]
    s = server.wrap_bio(bios[0], bios[1], server_side=True)
    set_peer(s, ("192.0.2.7", 4433))
    c = client.wrap_bio(bios[1], bios[0], server_hostname="localhost")
    for _ in range(10):
        for conn in (c, s):
            with contextlib.suppress(ssl.SSLWantReadError):
                conn.do_handshake()
    _assert_inbound(spans[0], ("192.0.2.7", 4433))


async def _app(
    scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _get(pki: PKI, port: int) -> tuple[str, int]:
    client = _client_context(pki)
    client.set_alpn_protocols(["http/1.1"])
    with client.wrap_socket(
        socket.create_connection(("127.0.0.1", port)), server_hostname="localhost"
    ) as tls:
        address: tuple[str, int] = tls.getsockname()
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert tls.recv(100).startswith(b"HTTP/1.1 200")
    return address


@pytest.fixture
def pem_files(pki: PKI, tmp_path: Path) -> tuple[str, str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    for blob in pki.leaf.cert_chain_pems:
        blob.write_to_path(cert, append=True)
    pki.leaf.private_key_pem.write_to_path(key)
    return str(cert), str(key)


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port: int = probe.getsockname()[1]
    return port


@contextlib.contextmanager
def _hypercorn(config: Any) -> Iterator[None]:
    from hypercorn.asyncio import serve

    stop = threading.Event()
    loop = asyncio.new_event_loop()

    async def trigger() -> None:
        while not stop.is_set():
            await asyncio.sleep(0.01)

    thread = threading.Thread(
        target=loop.run_until_complete,
        args=(serve(_app, config, shutdown_trigger=trigger),),  # type: ignore[arg-type]
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
        loop.close()


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
            return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on {port}")


def test_hypercorn_config(pki: PKI, pem_files: tuple[str, str]) -> None:
    spans: list[tlstiming.HandshakeSpan] = []
    port = _free_port()
    certfile, keyfile = pem_files
    config = hypercorn_config(
        certfile=certfile, keyfile=keyfile, bind=[f"127.0.0.1:{port}"], sinks=[spans.append]
    )
    context = config.create_ssl_context()
    assert isinstance(context, tlstiming.TimedSSLContext)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    with _hypercorn(config):
        _wait_listening(port)
        address = _get(pki, port)
        _wait_for([s for s in spans if s.outcome == "ok"])
    inbound = [s for s in spans if s.peer == address]
    assert inbound and inbound[0].side == "server"


def test_hypercorn_config_rejects_unknown_option(pem_files: tuple[str, str]) -> None:
    with pytest.raises(AttributeError, match="no_such_option"):
        hypercorn_config(certfile=pem_files[0], keyfile=pem_files[1], no_such_option=1)


def test_uvicorn_config(pki: PKI, pem_files: tuple[str, str]) -> None:
    import uvicorn

    spans: list[tlstiming.HandshakeSpan] = []
    port = _free_port()
    certfile, keyfile = pem_files
    config = uvicorn_config(
        _app,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        sinks=[spans.append],
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        _wait_listening(port)
        address = _get(pki, port)
        _wait_for([s for s in spans if s.peer == address])
    finally:
        server.should_exit = True
        thread.join(10)
    assert isinstance(config.ssl, tlstiming.TimedSSLContext)
    inbound = [s for s in spans if s.peer == address]
    assert inbound[0].side == "server" and inbound[0].outcome == "ok"


def test_configs_pickle_for_worker_processes(pem_files: tuple[str, str]) -> None:
    """hypercorn and uvicorn hand their config to worker processes by pickling it."""
    certfile, keyfile = pem_files
    hyper = pickle.loads(pickle.dumps(hypercorn_config(certfile=certfile, keyfile=keyfile)))
    assert isinstance(hyper.create_ssl_context(), tlstiming.TimedSSLContext)
    uvi = pickle.loads(
        pickle.dumps(uvicorn_config(_app, ssl_certfile=certfile, ssl_keyfile=keyfile))
    )
    uvi.load()
    assert isinstance(uvi.ssl, tlstiming.TimedSSLContext)
