"""The sync twins are generated from their async source (scripts/unasync.py), and current."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from types import ModuleType

import pytest

import tlstiming.httpx as th

ROOT = Path(__file__).resolve().parent.parent


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync", ROOT / "scripts" / "unasync.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


unasync = _load_generator()
PAIRS: list[tuple[Path, Path]] = list(unasync.pairs())


def test_the_generated_twins_are_current(capsys: pytest.CaptureFixture[str]) -> None:
    """Edit the ``_async`` source, then run ``python scripts/unasync.py``."""
    assert unasync.main(["--check"]) == 0, capsys.readouterr().out


def test_there_are_pairs() -> None:
    names = {source.name for source, _ in PAIRS}
    assert names >= {"httpcore.py", "httpx_client.py"}


@pytest.mark.parametrize(("source", "twin"), PAIRS, ids=lambda p: p.name)
def test_a_pair_has_equal_line_counts(source: Path, twin: Path) -> None:
    lines = source.read_text(encoding="utf-8").splitlines()
    assert len(twin.read_text(encoding="utf-8").splitlines()) == len(lines)


@pytest.mark.parametrize(("source", "twin"), PAIRS, ids=lambda p: p.name)
def test_a_generated_file_says_so(source: Path, twin: Path) -> None:
    first = twin.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# Generated from ")
    assert source.relative_to(ROOT).as_posix() in first


def test_check_fails_on_a_stale_or_missing_twin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for source, twin in PAIRS:
        for path in (source, twin):
            copy = tmp_path / path.relative_to(ROOT)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    assert unasync.stale(tmp_path) == []
    source, twin = PAIRS[0]
    edited = tmp_path / source.relative_to(ROOT)
    edited.write_text(edited.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    missing = tmp_path / PAIRS[1][1].relative_to(ROOT)
    missing.unlink()
    assert unasync.stale(tmp_path) == [tmp_path / twin.relative_to(ROOT), missing]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("async def handle_async_request(self):", "def handle_request(self):"),
        ("async with lock:", "with lock:"),
        ("async for chunk in self._inner:", "for chunk in self._inner:"),
        ("return await self._write(buffer)", "return self._write(buffer)"),
        ("async def __aenter__(self):", "def __enter__(self):"),
        ("async def __aexit__(self, *exc):", "def __exit__(self, *exc):"),
        ("async def __aiter__(self):", "def __iter__(self):"),
        ("async def __anext__(self):", "def __next__(self):"),
        ("self.aclose = inner.aclose", "self.close = inner.close"),
        ("@contextlib.asynccontextmanager", "@contextlib.contextmanager"),
        ("import AsyncIterator, Iterable", "import Iterable, Iterator"),
        ("class _AsyncBody(httpx.AsyncByteStream):", "class _Body(httpx.SyncByteStream):"),
        ("class AsyncClient(httpx.AsyncClient):", "class Client(httpx.Client):"),
        ("TimedAsyncTransport(httpx.AsyncHTTPTransport)", "TimedTransport(httpx.HTTPTransport)"),
        ("httpcore.AsyncNetworkBackend", "httpcore.NetworkBackend"),
        ("httpcore.AsyncConnectionPool", "httpcore.ConnectionPool"),
        ("from tlstiming._trace._async import x", "from tlstiming._trace._sync import x"),
        ("waits for the async server", "waits for the async server"),  # prose is left alone
    ],
)
def test_the_table(line: str, expected: str) -> None:
    assert unasync.unasync_line(line) == expected


def test_a_source_needs_its_header() -> None:
    with pytest.raises(ValueError, match="first line"):
        unasync.unasync_text("x = 1\n", "a/_async/m.py", "a/_sync/m.py")


def test_a_leftover_async_name_needs_a_new_row() -> None:
    header = unasync.SOURCE_HEADER.format(twin="a/_sync/m.py")
    with pytest.raises(ValueError, match=r"no rule in SUBS for \['anyio'\]"):
        unasync.unasync_text(header + "import anyio\n", "a/_async/m.py", "a/_sync/m.py")


def test_the_hand_written_sides_offer_the_same_names() -> None:
    """``_compat`` is each side's own (not generated): same names, same parameters."""
    from tlstiming._trace._async import _compat as async_side
    from tlstiming._trace._sync import _compat as sync_side

    assert async_side.__all__ == sync_side.__all__
    for name in async_side.__all__:
        ours, theirs = getattr(async_side, name), getattr(sync_side, name)
        if callable(ours):
            assert inspect.signature(ours).parameters == inspect.signature(theirs).parameters
            assert inspect.iscoroutinefunction(theirs) is False


def test_the_public_names_still_live_in_tlstiming_httpx() -> None:
    for name in th.__all__:
        obj = getattr(th, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__module__ == "tlstiming.httpx", name
    assert not inspect.iscoroutinefunction(th.TimedTransport.handle_request)
    assert inspect.iscoroutinefunction(th.TimedAsyncTransport.handle_async_request)
