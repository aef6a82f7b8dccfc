"""Run every benchmark, each in a fresh interpreter, and print their tables.

``python benchmarks/run_all.py`` (about 3-4 minutes on 2 cores);
``--quick`` for a smoke run of a few seconds each; ``--analysis`` adds
``analyze_handshake.py``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

HERE: Final = Path(__file__).resolve().parent
BENCHMARKS: Final = (
    "bench_handshake.py",
    "bench_datapath.py",
    "bench_memory.py",
    "bench_sinks.py",
    "bench_format.py",
    "bench_httpx.py",
    "bench_clients.py",
    "bench_aiohttp.py",
)
ANALYSIS: Final = "analyze_handshake.py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode of every benchmark")
    parser.add_argument("--analysis", action="store_true", help=f"also run {ANALYSIS}")
    args = parser.parse_args(argv)
    scripts = [*BENCHMARKS, ANALYSIS] if args.analysis else list(BENCHMARKS)
    failed = []
    for script in scripts:
        command = [sys.executable, str(HERE / script), *(["--quick"] if args.quick else [])]
        print(f"$ python benchmarks/{' '.join([script, *command[2:]])}", flush=True)
        start = time.monotonic()
        code = subprocess.call(command)
        print(f"  [{script}: exit {code}, {time.monotonic() - start:.0f} s]\n", flush=True)
        if code:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
