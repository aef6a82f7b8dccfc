"""The package's layers import only downward (docs/internals.md, "Layout")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tlstiming

PACKAGE = Path(tlstiming.__file__).parent

# Bottom to top; a module may import its own layer and the layers below it.
LAYERS: dict[str, int] = {
    "errors": 0,
    "_wire": 1,
    "_analysis": 2,
    "spans": 3,
    "diagnosis": 4,
    "_recording": 5,
    "_trace": 6,
}
TOP = len(LAYERS)  # the public face and the adapters: sinks, verifiers, testing, cli, httpx...


def layer_of(module: str) -> int | None:
    """The layer of a ``tlstiming`` module (``None`` for anything outside the package)."""
    parts = module.split(".")
    if parts[0] != "tlstiming":
        return None
    return TOP if len(parts) == 1 else LAYERS.get(parts[1], TOP)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[str]:
    """Every module an ``import`` statement in ``path`` names (lazy imports too)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_only_downward(path: Path) -> None:
    own = layer_of(module_name(path))
    assert own is not None
    upward = [
        name for name in imports(path) if (other := layer_of(name)) is not None and other > own
    ]
    assert upward == [], f"{module_name(path)} (layer {own}) imports upward: {upward}"


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    wrong = tmp_path / "bad.py"
    wrong.write_text("from tlstiming._recording import conn\n", encoding="utf-8")
    assert layer_of("tlstiming.spans.handshake") == LAYERS["spans"]
    assert [n for n in imports(wrong) if (layer_of(n) or 0) > LAYERS["spans"]] == [
        "tlstiming._recording",
        "tlstiming._recording.conn",
    ]


def test_the_pure_layers_import_no_io() -> None:
    """_wire and _analysis: no sockets, no ssl objects, no clocks, no HTTP clients."""
    banned = {"socket", "ssl", "time", "httpx", "httpcore", "threading", "asyncio"}
    for pure in ("_wire", "_analysis"):
        for path in sorted((PACKAGE / pure).rglob("*.py")):
            used = {name.split(".")[0] for name in imports(path)} & banned
            assert used == set(), f"{module_name(path)} imports {sorted(used)}"


def test_the_root_holds_only_the_public_face() -> None:
    private = sorted(
        p.name
        for p in PACKAGE.glob("*.py")
        if p.name.startswith("_") and p.stem not in {"__init__", "__main__"}
    )
    assert private == []
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert set(folders) >= {"_wire", "_analysis", "spans", "diagnosis", "_recording", "_trace"}
    assert set(folders) - set(LAYERS) <= {"sinks", "verifiers", "testing", "cli"}
