"""Where a TimedSSLContext's handshake overhead goes: interleaved ablations.

An analysis tool, not a benchmark with a budget: it switches off one piece
of the recording at a time (by replacing a private module attribute of
``tlstiming._recording.conn`` or ``tlstiming._recording.finish`` around each
timed handshake, in this process only) and reports how many percentage points
of the handshake each piece costs. The first table runs on the pure-Python
hot path (the reference implementation, whose pieces are module attributes);
the C accelerator's row is measured beside it. It depends on private names of
the current implementation; if they change it says so and exits.

A second part does the same for the C accelerator: the end of a handshake is
the same Python code on both paths (``finish.finish``), so its pieces are
switched off the same way; the thread CPU clock per message is switched off
by compiling ``tlstiming/_recording/_speedups.c`` again with ``ABLATE_CPU``,
and "everything after the handshake" by configuring a copy of it with a
``finish`` that only ends the recording (needs a C compiler and Python's
headers; skipped without them).

A third part shows why small pieces of Python cost more than a
micro-benchmark suggests right after a handshake: OpenSSL's work evicts the
interpreter's code and data from the CPU caches, so each distinct function
run afterwards pays cache misses. It times the same functions warm and
after touching 16 MiB of memory.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import shutil
import ssl
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

from _common import (
    CPU,
    HOSTNAME,
    PLACEMENTS,
    Certs,
    Sample,
    callback_context,
    certificates,
    connect,
    environment,
    floor_callback,
    hot_path_context,
    interleave,
    pinned,
    placement,
    plain_context,
    pure_python_context,
    ratio,
    server_process,
    table,
    timed_context,
)

import tlstiming

_perf = time.perf_counter_ns
_cpu = time.thread_time_ns
PATCHED: Final = {
    "conn": ("_cpu", "_leave", "_py_drive", "_py_on_message"),
    "finish": ("detach", "finish"),
}
Patches = list[tuple[Any, dict[str, Any]]]
"""(module, {attribute: replacement}) pairs in force around one timed handshake."""


def _nothing(*args: Any) -> None:
    return None


def _callbacks_only(conn: Any, *args: Any) -> None:
    conn.__dict__["_tlstiming_events"] = None


def _modules() -> tuple[Any, Any]:
    from tlstiming._recording import conn, finish

    return conn, finish


def end_ablations() -> dict[str, Patches]:
    """The pieces of a handshake's end (the same Python code on both hot paths)."""
    _, finish = _modules()
    return {"- detach": [(finish, {"detach": _nothing})]}


def ablations() -> dict[str, Patches]:
    """Variant name -> the attributes it replaces, on the pure-Python hot path."""
    conn, _ = _modules()
    return {
        "tlstiming": [],  # pure Python: the reference the rows below take pieces from
        "- thread_time_ns per message": [(conn, {"_cpu": int})],
        **end_ablations(),
        "- everything after the handshake": [(conn, {"_leave": _callbacks_only})],
    }


@contextlib.contextmanager
def patched(patches: Patches) -> Iterator[None]:
    """Replace module attributes for the duration of the block."""
    with contextlib.ExitStack() as stack:
        for module, replacements in patches:
            stack.enter_context(_patched(module, replacements))
        yield


@contextlib.contextmanager
def _patched(module: Any, replacements: dict[str, Any]) -> Iterator[None]:
    saved = {name: getattr(module, name) for name in replacements}
    for name, value in replacements.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


def measure(ctx: ssl.SSLContext, port: int, patches: Patches) -> Callable[[], Sample]:
    """One handshake, timed like ``bench_handshake``, with ``patches`` in force."""

    def run() -> Sample:
        sock = connect(port)
        with patched(patches):
            cpu = _cpu()
            start = _perf()
            tls = ctx.wrap_socket(sock, server_hostname=HOSTNAME)
            wall = _perf() - start
            cpu = _cpu() - cpu
        tls.recv(1)
        tls.close()
        return wall, cpu

    return run


def ablation_table(certs: Certs, port: int, rounds: int, batch: int) -> str:
    """Interleave plain, floor, full tlstiming and each ablation; tabulate ratios to plain."""
    recorder = tlstiming.SpanRecorder(1000)
    plain, floor = plain_context(certs), callback_context(certs, floor_callback)
    python, bare = pure_python_context(certs, recorder), pure_python_context(certs)
    measures = {
        "plain": measure(plain, port, []),
        "floor": measure(floor, port, []),
        "tlstiming, C accelerator": measure(timed_context(certs, recorder), port, []),
    }
    for name, patches in ablations().items():
        measures[name] = measure(python, port, patches)
    measures["- sink (no sinks at all)"] = measure(bare, port, [])
    return ablation_rows(
        measures, rounds, batch, "tlstiming", ("-", "tlstiming,"), "tlstiming = pure Python"
    )


def ablation_rows(
    measures: dict[str, Callable[[], Sample]],
    rounds: int,
    batch: int,
    full: str,
    compared: tuple[str, ...],
    note: str,
) -> str:
    """Interleave ``measures``; tabulate ratios to plain and the pp saved against ``full``."""
    interleave(measures, rounds=max(1, rounds // 20), batch=2, seed=1)
    samples = interleave(measures, rounds=rounds, batch=batch)
    reference = ratio(samples, full, "plain").median
    rows = []
    for name in measures:
        r = ratio(samples, name, "plain")
        cpu = ratio(samples, name, "plain", CPU).median
        saved = f"{(reference - r.median) * 100:+.2f}" if name.startswith(compared) else ""
        rows.append([name, r.cell(), f"{cpu:.3f}", saved])
    headers = [f"variant (TLS 1.3; {note})", "wall ratio [IQR]", "cpu ratio", "pp saved"]
    return table(headers, rows)


BUILDS: Final = {  # analysis builds of _speedups.c: variant -> its macro
    "C accelerator": None,
    "- thread CPU clock per message": "ABLATE_CPU",
    "- everything after the handshake": None,  # configured with a finish that only ends
}


def build_ablations(where: Path) -> dict[str, Any] | str:
    """Compile ``_speedups.c`` once per build; modules by variant, or why not."""
    from tlstiming._recording import accelerator

    conn, finish = _modules()
    source = Path(conn.__file__).with_name("_speedups.c")
    cc = shutil.which((sysconfig.get_config_var("CC") or "cc").split()[0])
    include = sysconfig.get_paths()["include"]
    if not source.exists() or cc is None or not Path(include, "Python.h").exists():
        return "skipped: needs tlstiming/_recording/_speedups.c, a C compiler and Python's headers"
    sys.path.insert(0, str(where))
    modules = {}
    for i, (variant, macro) in enumerate(BUILDS.items()):
        name = f"_ablation_{i}"
        flags = [f'-DSPEEDUPS_MODULE="{name}"', f"-DSPEEDUPS_INIT=PyInit_{name}"]
        if macro:
            flags.append(f"-D{macro}")
        target = where / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}"
        command = [cc, "-O2", "-shared", "-fPIC", f"-I{include}", *flags, str(source)]
        subprocess.run([*command, "-o", str(target)], check=True, capture_output=True)
        module = importlib.import_module(name)
        ends = variant == "- everything after the handshake"
        with patched([(finish, {"finish": _callbacks_only})] if ends else []):
            accelerator.configure(module)
        modules[variant] = module
    return modules


def accelerator_table(certs: Certs, port: int, rounds: int, batch: int) -> str:
    """Interleave plain, floor and each accelerator ablation; tabulate ratios to plain."""
    with tempfile.TemporaryDirectory() as where:
        modules = build_ablations(Path(where))
        if isinstance(modules, str):
            return modules
        measures = {
            "plain": measure(plain_context(certs), port, []),
            "floor": measure(callback_context(certs, floor_callback), port, []),
        }

        def accelerated(variant: str, sink: bool = True) -> ssl.SSLContext:
            module = modules[variant]
            recorder = tlstiming.SpanRecorder(100) if sink else None
            return hot_path_context(certs, recorder, module.on_message, module.drive)

        full = accelerated("C accelerator")
        for variant in modules:
            measures[variant] = measure(accelerated(variant), port, [])
        for variant, patches in end_ablations().items():
            measures[variant] = measure(full, port, patches)
        sinkless = accelerated("C accelerator", sink=False)
        measures["- sinks (SpanRecorder append and eviction)"] = measure(sinkless, port, [])
        return ablation_rows(
            measures, rounds, batch, "C accelerator", ("-",), "SpanRecorder(100) sink"
        )


def cold_warm(certs: Certs, port: int) -> str:
    """Time small Python steps of the kind run after a handshake, warm and with cold caches."""
    recorder = tlstiming.SpanRecorder(10)
    ctx = timed_context(certs, recorder)
    with ctx.wrap_socket(connect(port), server_hostname=HOSTNAME) as tls:
        tls.recv(1)
        span = recorder.spans[-1]
        events = [(i * 1000, -1, "read", 22, i % 24, b"") for i in range(24)]
        steps: dict[str, Callable[[], object]] = {
            "SpanRecorder(span)": lambda: recorder(span),
            "tlstiming.span_of(conn)": lambda: tlstiming.span_of(tls),
            "conn.getpeername()": tls.getpeername,
            "scan 24 event tuples": lambda: next((e for e in reversed(events) if e[4] == 99), None),
        }
        junk = bytearray(16 << 20)
        rows = []
        for name, step in steps.items():
            warm, cold = _median_us(step, None), _median_us(step, junk)
            rows.append([name, f"{warm:.2f}", f"{cold:.2f}"])
    return table(["step", "warm us", "cold-cache us"], rows)


def _median_us(step: Callable[[], object], junk: bytearray | None) -> float:
    times = []
    for _ in range(300):
        if junk is not None:
            junk[::64] = bytes(len(junk) // 64)  # one write per cache line
        start = _perf()
        step()
        times.append(_perf() - start)
    return statistics.median(times) / 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=150, help="interleaved rounds")
    parser.add_argument("--batch", type=int, default=10, help="handshakes per variant per round")
    parser.add_argument("--placement", choices=PLACEMENTS, default="split", help="CPU pinning")
    parser.add_argument("--quick", action="store_true", help="a few seconds: smoke test only")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.batch = 5, 2
    modules = dict(zip(PATCHED, _modules(), strict=True))
    missing = [
        f"{module}.{name}"
        for module, names in PATCHED.items()
        for name in names
        if not hasattr(modules[module], name)
    ]
    if missing:
        print(f"analyze_handshake: tlstiming internals changed ({missing}); nothing to analyse")
        return 0
    place = placement(args.placement)
    print(f"analyze_handshake: {environment()}")
    print(f"  {args.rounds} rounds x {args.batch} handshakes per variant; placement {place.name}")
    with (
        pinned(place.client),
        certificates() as certs,
        server_process(certs, "handshake", "1.3", place.server) as port,
    ):
        print(ablation_table(certs, port, args.rounds, args.batch))
        print("the C accelerator, one piece switched off at a time (analysis builds):")
        print(accelerator_table(certs, port, args.rounds, args.batch))
        print("small steps, median of 300 calls each, warm and after touching 16 MiB:")
        print(cold_warm(certs, port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
