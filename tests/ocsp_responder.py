"""Loopback HTTP servers for revocation tests: OCSP responders and a CRL distribution point.

- :class:`OCSPResponder`: our own responder, built with ``cryptography.x509.ocsp``,
  with fault modes (stall, trickle, garbage, wrong key, expired, HTTP error,
  unsuccessful status) and delegated signing.
- :class:`OpenSSLResponder`: the foreign implementation. ``openssl ocsp``
  (3.0) can only listen on every interface, so this server keeps the HTTP
  side on 127.0.0.1 and has ``openssl ocsp -index ... -reqin ... -respout``
  answer each request.
- :class:`CRLServer`: serves DER CRLs by path.

All bind 127.0.0.1 only, run in threads, never sleep for synchronisation
(the trickle's pacing is a bounded wait on an event) and join every thread
on :meth:`LoopbackHTTP.close`.
"""

from __future__ import annotations

import http.server
import itertools
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any, ClassVar, Final, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from verifier_pki import DAY, REVOKED_AT, Authority, Status, issue, now, ocsp_response

GUARD: Final = 30.0
OPENSSL: Final = shutil.which("openssl")
Mode = Literal[
    "answer", "stall", "trickle", "garbage", "wrong_key", "expired", "http_error", "unauthorized"
]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    owner: LoopbackHTTP

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connections the client cut are expected here: keep stderr quiet."""


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = GUARD
    server: _Server

    def do_GET(self) -> None:
        self.server.owner.handle(self, "GET", b"")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.owner.handle(self, "POST", body)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""

    def reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


class LoopbackHTTP:
    """A threaded HTTP server on ``127.0.0.1:0``; use as a context manager.

    Attributes:
        requests: ``(method, path)`` of every request, in arrival order.
        release: set by :meth:`close` (or a test) to unblock stalled handlers.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.release = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="loopback-http"
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Unblock handlers, stop serving, join every thread."""
        self.release.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(GUARD)
        self._server.server_close()

    def handle(self, handler: _Handler, method: str, body: bytes) -> None:
        self.requests.append((method, handler.path))
        self.respond(handler, method, body)

    def respond(self, handler: _Handler, method: str, body: bytes) -> None:
        raise NotImplementedError


class OCSPResponder(LoopbackHTTP):
    """An OCSP responder for the certificates ``issuer`` issued.

    Args:
        issuer: the CA whose certificates it answers for.

    Attributes:
        mode: what to do with the next requests (``answer`` by default).
        statuses: status by serial number; others are ``default_status``.
        signer: sign with this certificate instead of the issuer (a delegated
            responder), included in the response.
        stalled: set when a ``stall`` handler has read its request and blocks.
        handler_exited: set when a ``stall``/``trickle`` handler returns.
        trickle_outcome: how the trickle ended: ``peer closed`` or ``released``.
    """

    def __init__(self, issuer: Authority) -> None:
        super().__init__()
        self.issuer = issuer
        self.mode: Mode = "answer"
        self.statuses: dict[int, Status] = {}
        self.default_status: Status = "good"
        self.signer: Authority | None = None
        self.stalled = threading.Event()
        self.handler_exited = threading.Event()
        self.trickle_outcome: str | None = None
        common_name = issuer.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        self.impostor = issue(str(common_name), None, ca=True)

    def respond(self, handler: _Handler, method: str, body: bytes) -> None:
        if self.mode in ("stall", "trickle"):
            try:
                self._misbehave(handler)
            finally:
                handler.close_connection = True
                self.handler_exited.set()
            return
        if self.mode == "http_error":
            handler.reply(500, b"oops", "text/plain")
            return
        handler.reply(200, self._answer(body), "application/ocsp-response")

    def _answer(self, body: bytes) -> bytes:
        if self.mode == "garbage":
            return b"\x30\x82\x01\x00 this is not an OCSP response"
        if self.mode == "unauthorized":
            unsuccessful = ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.UNAUTHORIZED
            )
            return unsuccessful.public_bytes(serialization.Encoding.DER)
        request = ocsp.load_der_ocsp_request(body)
        status = self.statuses.get(request.serial_number, self.default_status)
        options: dict[str, Any] = {"status": status}
        if self.signer is not None:
            options.update(signer=self.signer, include_signer=True)
        if self.mode == "wrong_key":  # a CA with the issuer's name, and another key
            options.update(signer=self.impostor, by_name=True)
        if self.mode == "expired":
            options.update(this_update=now() - 2 * DAY, next_update=now() - DAY)
        return ocsp_response(request, self.issuer, **options)

    def _misbehave(self, handler: _Handler) -> None:
        if self.mode == "stall":
            self.stalled.set()
            self.release.wait()
            return
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\n"
        for byte in itertools.cycle(head):
            if self.release.wait(0.02):  # pacing: one byte per 20 ms until released
                self.trickle_outcome = "released"
                return
            try:
                handler.wfile.write(bytes([byte]))
            except OSError:
                self.trickle_outcome = "peer closed"
                return


class OpenSSLResponder(LoopbackHTTP):
    """``openssl ocsp`` answering for ``issuer`` from an index of (certificate, status).

    Args:
        directory: where to write the index, keys and exchanged files.
        issuer: the CA; it signs the responses itself (responder id by name).
        entries: the serial numbers it knows and their status; others are
            answered ``unknown``.
    """

    def __init__(self, directory: Path, issuer: Authority, entries: dict[int, Status]) -> None:
        if OPENSSL is None:
            raise RuntimeError("the openssl command-line tool is not installed")
        super().__init__()
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        (directory / "ca.pem").write_bytes(issuer.pem)
        (directory / "ca.key").write_bytes(issuer.key_pem())
        (directory / "index.txt").write_text("".join(_index_line(*e) for e in entries.items()))
        self._lock = threading.Lock()
        self._count = itertools.count()
        self.outputs: list[str] = []

    def respond(self, handler: _Handler, method: str, body: bytes) -> None:
        with self._lock:
            n = next(self._count)
            request, response = self.directory / f"req{n}.der", self.directory / f"resp{n}.der"
            request.write_bytes(body)
            done = subprocess.run(
                [
                    *(str(OPENSSL), "ocsp", "-index", str(self.directory / "index.txt")),
                    *("-CA", str(self.directory / "ca.pem")),
                    *("-rsigner", str(self.directory / "ca.pem")),
                    *("-rkey", str(self.directory / "ca.key")),
                    *("-reqin", str(request), "-respout", str(response), "-ndays", "1"),
                ],
                capture_output=True,
                text=True,
                timeout=GUARD,
                check=False,
            )
            self.outputs.append(done.stdout + done.stderr)
        if done.returncode != 0:
            handler.reply(500, b"openssl ocsp failed", "text/plain")
            return
        handler.reply(200, response.read_bytes(), "application/ocsp-response")


def _index_line(serial: int, status: Status) -> str:
    """One line of an OpenSSL CA index (``openssl ca``'s ``index.txt``)."""
    expires = (now() + 365 * DAY).strftime("%y%m%d%H%M%SZ")
    revoked = REVOKED_AT.strftime("%y%m%d%H%M%SZ") + ",keyCompromise" if status == "revoked" else ""
    flag = "R" if status == "revoked" else "V"
    return f"{flag}\t{expires}\t{revoked}\t{serial:X}\tunknown\t/CN=localhost\n"


class CRLServer(LoopbackHTTP):
    """Serves :attr:`crls` (path -> DER) by GET; 404 for anything else."""

    content_type: ClassVar[str] = "application/pkix-crl"

    def __init__(self) -> None:
        super().__init__()
        self.crls: dict[str, bytes] = {}

    def respond(self, handler: _Handler, method: str, body: bytes) -> None:
        crl = self.crls.get(handler.path)
        if crl is None:
            handler.reply(404, b"no such CRL", "text/plain")
        else:
            handler.reply(200, crl, self.content_type)


def refused_url(path: str = "/") -> str:
    """An http:// URL on a loopback port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
