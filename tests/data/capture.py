"""Regenerate the captured handshakes in ``tests/data/*.json``.

Every capture is a real handshake over 127.0.0.1, recorded through
``SSLContext._msg_callback`` exactly as the ssl adapter sees it. Run it with::

    .venv/bin/python tests/data/capture.py

Each JSON file holds ``side`` (which end recorded), ``messages`` as
``[direction, content_type, msg_type, hex(data)]`` and ``expect``: the facts
the test must find, written here from how each scenario is configured (never
computed by the parser under test). Certificates and keys change on every run,
so expectations cover structure only: names, counts and flags.

Two captures come from ``openssl s_client -msg`` against ``openssl s_server
-status_file``, because CPython cannot ask for a stapled OCSP response; the
``-msg`` hex dump is converted to the callback's tuples (the callback reports
the same OpenSSL message-callback events).
"""

from __future__ import annotations

import datetime
import json
import queue
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509 import ocsp

HERE = Path(__file__).resolve().parent
Row = list[Any]  # [direction, content_type, msg_type, hex data]
Expect = dict[str, Any]


class Recorder:
    """A ``_msg_callback`` that stores what it sees, in the JSON row form."""

    def __init__(self) -> None:
        self.rows: list[Row] = []

    def __call__(self, _conn: object, direction: str, _version: object, *rest: Any) -> None:
        content_type, msg_type, data = rest
        self.rows.append([direction, int(content_type), int(msg_type), bytes(data).hex()])


@dataclass
class Pair:
    """A server and a client context sharing one trustme CA."""

    server: ssl.SSLContext
    client: ssl.SSLContext
    ca: trustme.CA = field(repr=False)


def make_pair(*, max_version: ssl.TLSVersion | None = None, chain: bool = False) -> Pair:
    """Contexts for ``localhost``; ``chain`` issues the leaf from an intermediate CA."""
    ca = trustme.CA()
    issuer = ca.create_child_ca() if chain else ca
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    issuer.issue_cert("localhost").configure_cert(server)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client)
    if max_version is not None:
        client.maximum_version = max_version
    return Pair(server=server, client=client, ca=ca)


def require_client_cert(pair: Pair, *, send: bool, required: bool = True) -> None:
    """Make the server ask for a client certificate; ``send`` makes the client have one."""
    pair.server.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
    pair.ca.configure_trust(pair.server)
    if send:
        pair.ca.issue_cert("client@example.test").configure_cert(pair.client)


def _serve(listener: socket.socket, ctx: ssl.SSLContext, count: int, done: queue.Queue[None]) -> None:
    for _ in range(count):
        conn, _addr = listener.accept()
        with conn:
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
                    tls.recv(16)
            except (ssl.SSLError, OSError):
                pass
        done.put(None)


def _connect(port: int, ctx: ssl.SSLContext, sni: str | None, session: Any) -> Any:
    with socket.create_connection(("127.0.0.1", port)) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname=sni, session=session) as tls:
                tls.recv(16)  # TLS 1.3 session tickets arrive before the data
                return tls.session
        except ssl.SSLError:
            return None


def run(
    pair: Pair, *, side: str, connections: int = 1, sni: str | None = "localhost"
) -> list[list[Row]]:
    """Make ``connections`` handshakes, each resuming the previous one's session.

    Returns:
        The rows recorded on ``side``, one list per connection.
    """
    recorded: list[list[Row]] = []
    done: queue.Queue[None] = queue.Queue()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        server = threading.Thread(target=_serve, args=(listener, pair.server, connections, done))
        server.start()
        session = None
        for _ in range(connections):
            recorder = Recorder()
            setattr(pair.client if side == "client" else pair.server, "_msg_callback", recorder)
            session = _connect(listener.getsockname()[1], pair.client, sni, session)
            done.get(timeout=10)
            recorded.append(recorder.rows)
    server.join(timeout=10)
    return recorded


_COMMON_13: Expect = {
    "protocol_version": "1.3",
    "cipher": "TLS_AES_256_GCM_SHA384",
    "group": "x25519",
    "sni": "localhost",
    "alpn_offered": [],
    "alpn_selected": None,
    "resumption_offered": False,
    "resumed": False,
    "hello_retry": False,
    "hello_retry_group": None,
    "key_share_groups_offered": ["x25519"],
    "versions_offered": ["1.3", "1.2"],
    "ocsp_requested": False,
    "ocsp_stapled": False,
    "client_certificate_requested": False,
    "client_certificate_sent": False,
    "certificate_count": 1,
    "signature_scheme": "ecdsa_secp256r1_sha256",
    "alerts": [],
    "parse_errors": [],
}
_COMMON_12: Expect = {
    **_COMMON_13,
    "protocol_version": "1.2",
    "cipher": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "key_share_groups_offered": [],
    "versions_offered": ["1.2"],
}


@dataclass
class Capture:
    """One saved handshake."""

    name: str
    description: str
    side: str
    messages: list[Row]
    expect: Expect


def _tls13() -> list[Capture]:
    pair = make_pair()
    full = run(pair, side="client", connections=2)
    server_view = run(make_pair(), side="server")[0]
    alpn = make_pair()
    alpn.client.set_alpn_protocols(["h2", "http/1.1"])
    alpn.server.set_alpn_protocols(["http/1.1"])
    no_sni = make_pair()
    no_sni.client.check_hostname = False
    resumed = {"resumption_offered": True, "resumed": True, "certificate_count": 0}
    return [
        Capture("tls13_full", "TLS 1.3 full handshake", "client", full[0], _COMMON_13),
        Capture("tls13_full_server", "TLS 1.3, server view", "server", server_view, _COMMON_13),
        Capture(
            "tls13_resumed",
            "TLS 1.3 PSK resumption with the first connection's ticket",
            "client",
            full[1],
            {**_COMMON_13, **resumed, "signature_scheme": None},
        ),
        Capture(
            "tls13_alpn",
            "TLS 1.3, ALPN h2,http/1.1 offered, http/1.1 selected",
            "client",
            run(alpn, side="client")[0],
            {**_COMMON_13, "alpn_offered": ["h2", "http/1.1"], "alpn_selected": "http/1.1"},
        ),
        Capture(
            "tls13_no_sni",
            "TLS 1.3 without server_name",
            "client",
            run(no_sni, side="client", sni=None)[0],
            {**_COMMON_13, "sni": None},
        ),
        *_hello_retry(),
    ]


def _hello_retry() -> list[Capture]:
    hrr: Expect = {
        **_COMMON_13,
        "hello_retry": True,
        "hello_retry_group": "secp384r1",
        "group": "secp384r1",
    }
    captures = []
    for side in ("client", "server"):
        pair = make_pair()
        pair.server.set_ecdh_curve("secp384r1")  # OpenSSL 3: the server's only group
        rows = run(pair, side=side)[0]
        name = "tls13_hrr" if side == "client" else "tls13_hrr_server"
        captures.append(Capture(name, f"TLS 1.3 HelloRetryRequest, {side} view", side, rows, hrr))
    return captures


def _tls12() -> list[Capture]:
    pair = make_pair(max_version=ssl.TLSVersion.TLSv1_2)
    full = run(pair, side="client", connections=2)
    server_pair = make_pair(max_version=ssl.TLSVersion.TLSv1_2)
    rsa = make_pair(max_version=ssl.TLSVersion.TLSv1_2)
    rsa_ca = trustme.CA(key_type=trustme.KeyType.RSA)
    rsa_ca.issue_cert("localhost", key_type=trustme.KeyType.RSA).configure_cert(rsa.server)
    rsa_ca.configure_trust(rsa.client)
    return [
        Capture("tls12_full", "TLS 1.2 ECDHE full handshake", "client", full[0], _COMMON_12),
        Capture(
            "tls12_resumed",
            "TLS 1.2 resumption with a session ticket",
            "client",
            full[1],
            {
                **_COMMON_12,
                "resumption_offered": True,
                "resumed": True,
                "certificate_count": 0,
                "group": None,
                "signature_scheme": None,
            },
        ),
        Capture(
            "tls12_full_server",
            "TLS 1.2, server view",
            "server",
            run(server_pair, side="server")[0],
            _COMMON_12,
        ),
        Capture(
            "tls12_rsa",
            "TLS 1.2 with an RSA certificate",
            "client",
            run(rsa, side="client")[0],
            {
                **_COMMON_12,
                "cipher": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "signature_scheme": "rsa_pss_rsae_sha256",
            },
        ),
    ]


def _client_certificates() -> list[Capture]:
    captures = []
    for version, common in (("13", _COMMON_13), ("12", _COMMON_12)):
        top = ssl.TLSVersion.TLSv1_3 if version == "13" else ssl.TLSVersion.TLSv1_2
        asked: Expect = {**common, "client_certificate_requested": True}
        for side in ("client", "server"):
            mtls = make_pair(max_version=top)
            require_client_cert(mtls, send=True)
            suffix = "" if side == "client" else "_server"
            captures.append(
                Capture(
                    f"tls{version}_mtls{suffix}",
                    f"TLS 1.{version[1]} with a client certificate, {side} view",
                    side,
                    run(mtls, side=side)[0],
                    {**asked, "client_certificate_sent": True},
                )
            )
        optional = make_pair(max_version=top)
        require_client_cert(optional, send=False, required=False)
        captures.append(
            Capture(
                f"tls{version}_client_cert_not_sent",
                f"TLS 1.{version[1]}: the server asks for a client certificate, none is sent",
                "client",
                run(optional, side="client")[0],
                asked,
            )
        )
    return captures


def _failures_and_chains() -> list[Capture]:
    wrong_ca = make_pair()
    trustme.CA().configure_trust(wrong_ca.client)
    wrong_ca.client.load_verify_locations(cadata=trustme.CA().cert_pem.bytes().decode())
    wrong_ca.client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    trustme.CA().configure_trust(wrong_ca.client)
    missing = make_pair()
    require_client_cert(missing, send=False)
    return [
        Capture(
            "tls13_unknown_ca",
            "TLS 1.3: the client does not trust the server's CA and aborts",
            "client",
            run(wrong_ca, side="client")[0],
            {
                **_COMMON_13,
                "signature_scheme": None,
                "alerts": [["client", "fatal", "unknown_ca"]],
            },
        ),
        Capture(
            "tls13_certificate_required",
            "TLS 1.3: the server requires a client certificate, the client has none",
            "client",
            run(missing, side="client")[0],
            {
                **_COMMON_13,
                "client_certificate_requested": True,
                "alerts": [["server", "fatal", "certificate_required"]],
            },
        ),
        Capture(
            "tls13_chain",
            "TLS 1.3: the server sends its leaf and an intermediate CA",
            "client",
            run(make_pair(chain=True), side="client")[0],
            {**_COMMON_13, "certificate_count": 2},
        ),
    ]
