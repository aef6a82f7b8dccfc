"""The ``tlstiming`` command: ``demo`` against embedded servers, ``probe`` a real host."""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import sys
from collections.abc import Callable
from typing import TextIO

from tlstiming._recording.context import TimedSSLContext, create_default_context
from tlstiming._recording.validate import positive
from tlstiming.cli import demo as _demo
from tlstiming.recorder import SpanRecorder
from tlstiming.spans.escape import escape
from tlstiming.spans.handshake import HandshakeSpan
from tlstiming.spans.render import waterfall

__all__ = ["main"]

_Tweak = Callable[[ssl.SSLContext], None]


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: arguments without the program name; ``sys.argv[1:]`` if None.

    Returns:
        The process exit status.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo_command(args.json, sys.stdout)
    if args.command == "probe":
        return _probe_command(args, sys.stdout)
    parser.print_help()
    return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tlstiming", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    demo = commands.add_parser("demo", help="handshakes of different kinds against local servers")
    demo.add_argument("--json", action="store_true", help="print one JSON object per span")
    probe = commands.add_parser("probe", help="time one handshake with HOST[:PORT]")
    probe.add_argument("target", help="HOST or HOST:PORT (default port 443)")
    probe.add_argument("--alpn", default="h2,http/1.1", help="comma-separated ALPN offer")
    probe.add_argument("--cafile", help="trust this CA bundle instead of the system store")
    probe.add_argument("--servername", help="SNI and hostname to verify (default: HOST)")
    probe.add_argument("--tls-max", choices=["1.2", "1.3"], help="cap the protocol version")
    probe.add_argument(
        "--timeout", type=_seconds, default=10.0, help="seconds per socket operation (default 10)"
    )
    probe.add_argument("--json", action="store_true", help="print the span as JSON")
    return parser


def _seconds(text: str) -> float:
    """``--timeout``: a finite number of seconds > 0 (an argparse type)."""
    try:
        return positive("the timeout", float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _show(span: HandshakeSpan | None, as_json: bool, out: TextIO) -> None:
    if span is None:
        out.write("(no span recorded)\n")
    elif as_json:
        out.write(json.dumps(span.to_dict()) + "\n")
    else:
        out.write(waterfall(span) + "\n\n")


def _error_text(exc: BaseException) -> str:
    """``Type: message``, escaped: the message can quote the peer (names, verifier reasons)."""
    return escape(f"{type(exc).__name__}: {exc}")


def _connect(
    context: ssl.SSLContext, port: int, hostname: str, session: ssl.SSLSession | None = None
) -> ssl.SSLSession | None:
    """Handshake, read the greeting (and with it any TLS 1.3 ticket), return the session."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=hostname, session=session) as conn:
            conn.recv(16)
            return conn.session


def _demo_command(as_json: bool, out: TextIO) -> int:
    def cap_tls12(ctx: ssl.SSLContext) -> None:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    def only_p384(ctx: ssl.SSLContext) -> None:
        ctx.set_ecdh_curve("secp384r1")

    def only_http11(ctx: ssl.SSLContext) -> None:
        ctx.set_alpn_protocols(["http/1.1"])

    scenarios: list[tuple[str, _Tweak | None, str, bool]] = [
        ("TLS 1.3, full handshake", None, "localhost", False),
        ("TLS 1.3, resumed with the ticket of the one above", None, "localhost", True),
        ("TLS 1.2: a second round trip", cap_tls12, "localhost", False),
        ("HelloRetryRequest: the server wants secp384r1", only_p384, "localhost", False),
        ("ALPN: h2 offered, the server falls back to http/1.1", only_http11, "localhost", False),
        ("Failing: certificate not valid for the name asked", None, "wrong.example", False),
    ]
    recorder = SpanRecorder()
    with _demo.demo_pki() as pki:
        client = create_default_context(cafile=pki.ca_file)
        client.set_alpn_protocols(["h2", "http/1.1"])
        client.add_sink(recorder)
        session: ssl.SSLSession | None = None
        shared = pki.server_context()  # one context, so its session tickets stay valid
        for title, tweak, hostname, resume in scenarios:
            server_context = shared if tweak is None else pki.server_context()
            if tweak is not None:
                tweak(server_context)
            if not as_json:
                out.write(f"== {title}\n")
            with _demo.LoopbackServer(server_context) as server:
                try:
                    session = _connect(client, server.port, hostname, session if resume else None)
                except (OSError, ssl.SSLError) as exc:
                    if not as_json:
                        out.write(f"   caller got: {_error_text(exc)}\n")
            _show(recorder.spans[-1] if recorder.spans else None, as_json, out)
    return 0


def _probe_command(args: argparse.Namespace, out: TextIO) -> int:
    host, _, port_text = (
        args.target.rpartition(":") if ":" in args.target else (args.target, "", "")
    )
    port = int(port_text) if port_text else 443
    context: TimedSSLContext = create_default_context(cafile=args.cafile)
    if args.tls_max == "1.2":
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    if args.alpn:
        context.set_alpn_protocols(args.alpn.split(","))
    recorder = SpanRecorder(maxlen=1)
    context.add_sink(recorder)
    status = 0
    try:
        with socket.create_connection((host, port), timeout=args.timeout) as raw:
            with context.wrap_socket(raw, server_hostname=args.servername or host):
                pass
    except (OSError, ssl.SSLError) as exc:
        out.write(f"handshake failed: {_error_text(exc)}\n")
        status = 1
    spans = recorder.spans
    _show(spans[-1] if spans else None, args.json, out)
    return status
