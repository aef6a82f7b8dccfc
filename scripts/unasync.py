"""Generate the sync twins from their async source: ``_async/`` -> ``_sync/``.

Usage::

    python scripts/unasync.py           # rewrite every generated file
    python scripts/unasync.py --check   # exit 1 if one differs from what it would be

Line by line, :data:`SUBS` rewrites each ``.py`` file of a source folder into
the same file name of its twin folder, so a pair has equal line counts and
line N of one is line N of the other. A source's first line is
:data:`SOURCE_HEADER`; its twin's is :data:`GENERATED_HEADER`. The files named
in :data:`HAND_WRITTEN` are each side's own (what differs in more than the
table: the resolver, the timeout, the backend); the generator leaves them alone.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tokenize
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
FOLDERS: Final = (("tlstiming/_trace/_async", "tlstiming/_trace/_sync"),)
HAND_WRITTEN: Final = frozenset({"__init__.py", "_compat.py"})
SOURCE_HEADER: Final = "# Source of {twin}: edit here, then run scripts/unasync.py.\n"
GENERATED_HEADER: Final = "# Generated from {source} by scripts/unasync.py: do not edit.\n"

SUBS: Final[tuple[tuple[str, str], ...]] = (
    # Keywords.
    (r"\basync def\b", "def"),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\bawait ", ""),
    # Protocol methods and decorators.
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\b__aiter__\b", "__iter__"),
    (r"\b__anext__\b", "__next__"),
    (r"\baclose\b", "close"),
    (r"\basynccontextmanager\b", "contextmanager"),
    # Imports that sort otherwise once renamed.
    (r"\bAsyncIterator, Iterable\b", "Iterable, Iterator"),
    # Names httpx spells otherwise on the sync side.
    (r"\bAsyncByteStream\b", "SyncByteStream"),
    (r"\bhandle_async_request\b", "handle_request"),
    # Every other Async name loses its Async: AsyncClient, TimedAsyncTransport,
    # _AsyncFinal, AsyncIterator, httpcore's AsyncNetworkBackend, AsyncConnectionPool...
    (r"Async(?=[A-Z])", ""),
    # The twin imports its own side's modules.
    (r"\btlstiming\._trace\._async\b", "tlstiming._trace._sync"),
)
COMPILED: Final = tuple((re.compile(pattern), repl) for pattern, repl in SUBS)

# A generated file naming one of these (outside strings and comments) needs a new row.
_LEFTOVER: Final = re.compile(
    r"^(async|await|aclose|anyio|asyncio|trio|sniffio|__a(enter|exit|iter|next)__)$|Async"
)


def unasync_line(line: str) -> str:
    """One source line, rewritten for the sync side."""
    for pattern, repl in COMPILED:
        line = pattern.sub(repl, line)
    return line


def unasync_text(source: str, source_name: str, twin_name: str) -> str:
    """The text of the twin of ``source`` (named ``source_name``).

    Raises:
        ValueError: the source does not start with its header, or the result
            still names something async.
    """
    lines = source.splitlines(keepends=True)
    expected = SOURCE_HEADER.format(twin=twin_name)
    if not lines or lines[0] != expected:
        raise ValueError(f"{source_name}: the first line must be {expected!r}")
    out = [GENERATED_HEADER.format(source=source_name), *map(unasync_line, lines[1:])]
    text = "".join(out)
    left = sorted(set(_leftovers(text)))
    if left:
        raise ValueError(f"{source_name}: no rule in SUBS for {left}")
    return text


def _leftovers(text: str) -> Iterator[str]:
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.NAME and _LEFTOVER.search(token.string):
            yield token.string


def pairs(root: Path = ROOT) -> Iterator[tuple[Path, Path]]:
    """Every (source, generated twin) pair of files below ``root``."""
    for source_dir, twin_dir in FOLDERS:
        for source in sorted((root / source_dir).glob("*.py")):
            if source.name not in HAND_WRITTEN:
                yield source, root / twin_dir / source.name


def generate(source: Path, twin: Path, root: Path = ROOT) -> str:
    """What ``twin`` must hold, generated from ``source``."""
    names = (source.relative_to(root).as_posix(), twin.relative_to(root).as_posix())
    return unasync_text(source.read_text(encoding="utf-8"), *names)


def stale(root: Path = ROOT) -> list[Path]:
    """The generated files that differ from what their source generates (or are missing)."""
    return [
        twin
        for source, twin in pairs(root)
        if not twin.exists() or twin.read_text(encoding="utf-8") != generate(source, twin, root)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Write the generated twins, or with ``--check`` report the stale ones; returns the status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    if args.check:
        found = stale()
        for twin in found:
            print(f"{twin.relative_to(ROOT)} is stale: run python scripts/unasync.py")
        return 1 if found else 0
    for source, twin in pairs():
        text = generate(source, twin)
        if not twin.exists() or twin.read_text(encoding="utf-8") != text:
            twin.write_text(text, encoding="utf-8")
            print(f"{source.relative_to(ROOT)} -> {twin.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
