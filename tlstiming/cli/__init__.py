"""The ``tlstiming`` command: ``probe`` a server, ``bench`` it, or run the ``demo``.

Exit statuses of ``probe``: 0 no finding at warning or above, 1 findings at
warning or above, 2 usage error, 3 the connection or handshake failed, 4 an
``--slo`` was missed (docs/cli.md). A bad argument gives one line on stderr,
never a traceback; with ``--json`` stdout holds exactly one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from tlstiming.cli import options as opts
from tlstiming.cli.options import UsageError

__all__ = ["main"]

_INTERNAL = 70  # EX_SOFTWARE


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: arguments without the program name; ``sys.argv[1:]`` if None.

    Returns:
        The process exit status.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args_list
    try:
        try:
            args = _parser().parse_args(args_list)
        except SystemExit as done:  # --help, --version: argparse printed them
            return done.code if isinstance(done.code, int) else 0
        if args.command == "probe":
            return _probe(args, sys.stdout)
        if args.command == "demo":
            from tlstiming.cli import demo  # noqa: PLC0415

            return demo.run(as_json=args.json, out=sys.stdout)
        if args.command == "bench":
            from tlstiming.cli import bench  # noqa: PLC0415

            return bench.run(args, sys.stdout)
        _parser().print_help(sys.stderr)
        return 2
    except UsageError as exc:
        return _fail(f"tlstiming: error: {exc}", 2, as_json, "usage")
    except KeyboardInterrupt:
        return _fail("tlstiming: interrupted", 130, as_json, "interrupted")
    except Exception as exc:  # the CLI never shows a traceback; this is a bug to report
        return _fail(
            f"tlstiming: internal error: {type(exc).__name__}: {exc}",
            _INTERNAL,
            as_json,
            "internal",
        )


def _fail(line: str, code: int, as_json: bool, kind: str) -> int:
    shown = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in line)
    sys.stderr.write(shown + "\n")
    if as_json:
        sys.stdout.write(
            json.dumps({"error": {"kind": kind, "message": line}, "exit_code": code}) + "\n"
        )
    return code


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tlstiming", description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    demo = commands.add_parser(
        "demo", help="probe embedded local servers, each with one real problem"
    )
    demo.add_argument("--json", action="store_true", help="one JSON document")
    probe = commands.add_parser(
        "probe", help="time a handshake (and a request) and name what is wrong"
    )
    _target_options(probe)
    probe.add_argument(
        "--count",
        type=_checked(opts.parse_count),
        default=1,
        help="probes in a row, each resuming the previous session (default 1)",
    )
    probe.add_argument(
        "--slo",
        type=_checked(opts.parse_slo),
        default={},
        help="PHASE=MS,...: exit 4 when a phase (or total) takes longer",
    )
    bench = commands.add_parser(
        "bench", help="many handshakes: percentiles, findings, a heatmap, reports"
    )
    _target_options(bench)
    bench.add_argument(
        "-n",
        "--requests",
        type=_checked(opts.parse_count),
        default=100,
        help="how many probes (default 100)",
    )
    bench.add_argument(
        "-c",
        "--concurrency",
        type=_checked(lambda t: opts.parse_count(t, "-c", 256)),
        default=1,
        help="how many at a time (default 1)",
    )
    bench.add_argument(
        "--resume", action="store_true", help="resume sessions (each worker reuses its last one)"
    )
    bench.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    bench.add_argument(
        "--svg", metavar="FILE", help="write the charts as SVG (needs tlstiming[plot])"
    )
    bench.add_argument(
        "--png", metavar="FILE", help="write the charts as PNG (needs tlstiming[plot])"
    )
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _file(option: str) -> Any:
    return lambda path: opts.readable_file(path, option)


def _version(option: str) -> Any:
    return lambda text: opts.parse_version(text, option)


# The options probe and bench share: (flags, parser or None for a flag, help, more keywords).
_TARGET_OPTIONS: tuple[tuple[tuple[str, ...], Any, str, dict[str, Any]], ...] = (
    (("target",), opts.parse_target, "https://HOST[:PORT]/PATH, HOST[:PORT], [IPv6]:PORT", {}),
    (("--cafile",), _file("--cafile"), "trust this CA bundle instead of the system store", {}),
    (("--cert",), _file("--cert"), "client certificate (PEM; may hold the key too)", {}),
    (("--key",), _file("--key"), "the client certificate's key (PEM)", {}),
    (
        ("--servername",),
        lambda name: opts.check_hostname(name, "--servername"),
        "SNI and name to verify (default: the host)",
        {},
    ),
    (
        ("--alpn",),
        opts.parse_alpn,
        "comma-separated ALPN offer, or none (default h2,http/1.1)",
        {"default": ("h2", "http/1.1")},
    ),
    (("--tls-min",), _version("--tls-min"), "lowest version offered: 1.0-1.3", {}),
    (("--tls-max",), _version("--tls-max"), "highest version offered: 1.0-1.3", {}),
    (
        ("--resolve",),
        opts.parse_resolve,
        "use ADDRESS for HOST:PORT instead of DNS (repeatable)",
        {"action": "append", "default": [], "metavar": "HOST:PORT:ADDRESS"},
    ),
    (("--ocsp",), None, "check revocation over OCSP, with a hard timeout", {}),
    (
        ("--timeout",),
        opts.parse_seconds,
        "seconds for each probe, DNS to first byte (default 10)",
        {"default": 10.0},
    ),
    (("--json",), None, "print one JSON document", {}),
)


def _target_options(parser: argparse.ArgumentParser) -> None:
    for flags, parse, text, more in _TARGET_OPTIONS:
        if parse is None:
            parser.add_argument(*flags, action="store_true", help=text, **more)
        else:
            parser.add_argument(*flags, type=_checked(parse), help=text, **more)


def _checked(parse: Any) -> Any:
    """An argparse type from a parser raising UsageError (argparse then names the option)."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def probe_options(args: argparse.Namespace) -> Any:
    """ProbeOptions from parsed arguments (shared by probe and bench)."""
    from tlstiming.cli.probe import ProbeOptions  # noqa: PLC0415

    if args.key and not args.cert:
        raise UsageError("--key needs --cert")
    return ProbeOptions(
        target=args.target,
        servername=args.servername,
        alpn=tuple(args.alpn),
        cafile=args.cafile,
        cert=args.cert,
        key=args.key,
        tls_min=args.tls_min,
        tls_max=args.tls_max,
        resolve={(h, p): a for h, p, a in args.resolve},
        ocsp=args.ocsp,
        timeout=args.timeout,
    )


def _probe(args: argparse.Namespace, out: TextIO) -> int:
    from tlstiming.cli.probe import build_context, probe_once  # noqa: PLC0415
    from tlstiming.cli.report import exit_code, probe_json, probe_text, slo_misses  # noqa: PLC0415
    from tlstiming.diagnosis import diagnose  # noqa: PLC0415
    from tlstiming.recorder import SpanRecorder  # noqa: PLC0415

    options = probe_options(args)
    recorder = SpanRecorder(maxlen=max(args.count, 1) + 1)
    context = build_context(options, recorder)
    runs = []
    session = None
    for _ in range(args.count):
        run = probe_once(options, context, recorder, session)
        runs.append(run)
        session = run.session or session
    findings = diagnose([run.request for run in runs])
    misses = slo_misses(runs, args.slo)
    code = exit_code(runs, findings, misses)
    target = options.target.shown
    if args.json:
        out.write(json.dumps(probe_json(target, runs, findings, misses, code)) + "\n")
    else:
        probe_text(target, runs, findings, misses, out)
    return code
