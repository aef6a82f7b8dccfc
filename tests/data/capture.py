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

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from tlstiming.testing import CA, LeafCert
from tlstiming.testing.ca import KeyType

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
    """A server and a client context sharing one test CA."""

    server: ssl.SSLContext
    client: ssl.SSLContext
    ca: CA = field(repr=False)


def make_pair(
    *,
    max_version: ssl.TLSVersion | None = None,
    chain: bool = False,
    key_type: KeyType = "ec",
) -> Pair:
    """Contexts for ``localhost``; ``chain`` issues the leaf from an intermediate CA."""
    ca = CA(key_type=key_type)
    issuer = ca.create_child_ca(key_type=key_type) if chain else ca
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    issuer.issue_cert("localhost", key_type=key_type).configure_cert(server)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client)
    if max_version is not None:
        client.maximum_version = max_version
    return Pair(server=server, client=client, ca=ca)


def require_client_cert(pair: Pair, *, send: bool, required: bool = True) -> None:
    """Make the server ask for a client certificate; ``send`` makes the client have one.

    Loading the CA into the server's trust store has a side effect worth
    knowing: OpenSSL then builds the server's own chain from that store and
    sends the root too, so these servers send two certificates.
    """
    pair.server.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
    pair.ca.configure_trust(pair.server)
    if send:
        pair.ca.issue_cert("client@example.test").configure_cert(pair.client)


def _serve(
    listener: socket.socket, ctx: ssl.SSLContext, count: int, done: queue.Queue[None]
) -> None:
    for _ in range(count):
        conn, _addr = listener.accept()
        with conn:
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
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
            recording = pair.client if side == "client" else pair.server
            recording._msg_callback = recorder  # type: ignore[attr-defined]
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
    "session_tickets": 2,  # OpenSSL's default for a full TLS 1.3 handshake
    "alerts": [],
    "parse_errors": [],
}
_COMMON_12: Expect = {
    **_COMMON_13,
    "protocol_version": "1.2",
    "cipher": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "key_share_groups_offered": [],
    "versions_offered": ["1.2"],
    "session_tickets": 1,
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
            {**_COMMON_13, **resumed, "signature_scheme": None, "session_tickets": 1},
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
    rsa = make_pair(max_version=ssl.TLSVersion.TLSv1_2, key_type="rsa")
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
                "session_tickets": 0,
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
        asked: Expect = {
            **common,
            "client_certificate_requested": True,
            "certificate_count": 2,  # leaf + root, see require_client_cert
        }
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
    wrong_ca.client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    CA().configure_trust(wrong_ca.client)
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
                "session_tickets": 0,
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
                "certificate_count": 2,
                "session_tickets": 0,
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


# ``openssl s_client -msg`` prints e.g. ">>> TLS 1.3, Handshake [length 00f7], ClientHello"
# followed by indented hex lines. Map its record names to the callback's content types.
_MSG_HEADER = re.compile(r"^(>>>|<<<) [^,]+, (\w+) \[length [0-9a-f]+\]")
_CONTENT_TYPES = {
    "ChangeCipherSpec": 20,
    "Alert": 21,
    "Handshake": 22,
    "RecordHeader": 256,
    "InnerContent": 257,
}


def _msg_type(content_type: int, data: bytes) -> int:
    """What CPython's callback reports as msg_type (see Modules/_ssl/debughelpers.c)."""
    if content_type == 20:
        return 0x0101  # SSL3_MT_CHANGE_CIPHER_SPEC
    return data[1] if content_type == 21 else data[0]


def parse_s_client_msg(text: str) -> list[Row]:
    """Convert ``openssl s_client -msg`` output into callback rows."""
    rows: list[Row] = []
    current: tuple[str, int] | None = None
    hexdata: list[str] = []

    def flush() -> None:
        if current is not None:
            data = bytes.fromhex("".join(hexdata))
            rows.append([current[0], current[1], _msg_type(current[1], data), data.hex()])

    for line in text.splitlines():
        header = _MSG_HEADER.match(line)
        if header is not None or not line.startswith("    "):
            flush()
            current, hexdata = None, []
        if header is not None and header[2] in _CONTENT_TYPES:
            direction = "write" if header[1] == ">>>" else "read"
            current = (direction, _CONTENT_TYPES[header[2]])
        elif current is not None and line.startswith("    "):
            hexdata.append(line.strip().replace(" ", ""))
    flush()
    return rows


def _ocsp_response(ca: CA, leaf: LeafCert) -> bytes:
    issuer, cert = ca.cert, leaf.cert
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert,
        issuer=issuer,
        algorithm=hashes.SHA256(),
        cert_status=ocsp.OCSPCertStatus.GOOD,
        this_update=now,
        next_update=now + datetime.timedelta(days=1),
        revocation_time=None,
        revocation_reason=None,
    )
    response = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, issuer)
    return response.sign(ca.private_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _openssl_stapled(version: str, tmp: Path) -> list[Row]:
    ca = CA()
    leaf = ca.issue_cert("localhost")
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(tmp / "server.pem"))
    (tmp / "ocsp.der").write_bytes(_ocsp_response(ca, leaf))
    server = subprocess.Popen(
        [
            *("openssl", "s_server", "-accept", "127.0.0.1:0", "-naccept", "1"),
            *("-cert", str(tmp / "server.pem"), "-status_file", str(tmp / "ocsp.der")),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        port = _accept_port(server)
        client = subprocess.run(
            [
                *("openssl", "s_client", "-connect", f"127.0.0.1:{port}"),
                *("-servername", "localhost", "-status", "-msg", f"-tls{version}"),
                *("-CAfile", str(tmp / "ca.pem")),
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    finally:
        server.kill()
        server.communicate()
    return parse_s_client_msg(client.stdout)


def _accept_port(server: subprocess.Popen[str]) -> int:
    assert server.stdout is not None
    for line in server.stdout:
        if line.startswith("ACCEPT"):
            return int(line.rsplit(":", 1)[1])
    raise RuntimeError("openssl s_server did not start")


def _openssl() -> list[Capture]:
    captures = []
    with tempfile.TemporaryDirectory() as tmp:
        for version, common in (("1_3", _COMMON_13), ("1_2", _COMMON_12)):
            label = version.replace("_", ".")
            # s_client may exit before the TLS 1.3 tickets arrive: don't count them.
            expect = {key: value for key, value in common.items() if key != "session_tickets"}
            captures.append(
                Capture(
                    f"openssl_ocsp_tls{version.replace('_', '')}",
                    f"openssl s_client -status against s_server -status_file, TLS {label}",
                    "client",
                    _openssl_stapled(version, Path(tmp)),
                    {
                        **expect,
                        "versions_offered": [label],
                        "ocsp_requested": True,
                        "ocsp_stapled": True,
                        "alerts": [["client", "warning", "close_notify"]],
                    },
                )
            )
    return captures


def save(capture: Capture) -> Path:
    """Write one capture as ``tests/data/<name>.json``."""
    path = HERE / f"{capture.name}.json"
    document = {
        "description": capture.description,
        "side": capture.side,
        "openssl": ssl.OPENSSL_VERSION,
        "expect": capture.expect,
        "messages": capture.messages,
    }
    path.write_text(json.dumps(document, indent=1) + "\n")
    return path


SCENARIOS: list[Callable[[], list[Capture]]] = [
    _tls13,
    _tls12,
    _client_certificates,
    _failures_and_chains,
    _openssl,
]


def main() -> int:
    """Capture every scenario and print one line per file."""
    for scenario in SCENARIOS:
        for capture in scenario():
            path = save(capture)
            print(f"{path.name}: {len(capture.messages)} callbacks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
