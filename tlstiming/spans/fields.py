"""A span's export, nested and flat, from one table per kind: key, unit, getter.

Each row of a :class:`Table` names one key of ``to_dict()``
(``docs/schema.md``), its :data:`Unit` and how to read it off the span. Both
forms are built from the rows, straight from the span:

- **nested** (:meth:`Table.nested`, ``to_dict()``): every row but the
  ``flat`` ones, values as read (integer nanoseconds, lists, nested objects),
  unknown ones as ``None``;
- **flat** (:meth:`Table.flat`, the log sinks' fields, ``docs/schema.md``
  "Log event keys", versioned by :data:`LOG_SCHEMA_VERSION`): one level of
  scalars, each row's unit deciding its flat key and value; unknown values
  left out. The flat form never reads an ``objects`` or ``nested`` row, so it
  costs a fraction of the nested one.

The kind-free rules for dicts of kinds with no table live in
``tlstiming.sinks._flatten.flatten_dict``; they use :func:`ms`,
:func:`ms_key` and :func:`redact_url` from here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Final, Generic, Literal, TypeVar

__all__ = [
    "LOG_SCHEMA_VERSION",
    "Field",
    "Table",
    "Unit",
    "ms",
    "ms_key",
    "of",
    "redact_url",
]

LOG_SCHEMA_VERSION: Final = "1"
"""Version of the flat key set; bumped when a flat key is renamed or removed."""

Unit = Literal[
    "value",
    "url",
    "ns",
    "strings",
    "objects",
    "phases",
    "verifications",
    "span",
    "span_ref",
    "nested",
    "flat",
]
"""How a row's value is exported.

==================  ===========================  ============================================
unit                nested (``to_dict()``)       flat
==================  ===========================  ============================================
``value``           as read                      as read, same key
``url``             as read                      userinfo, query and fragment removed
``ns``              integer nanoseconds          ``*_ms`` float (``duration_ns`` and
                                                 ``cpu_ns``: ``<kind>.duration_ms``...)
``strings``         list of strings              comma-joined (``None`` if empty)
``objects``         list of objects              left out (never read)
``phases``          list of phase objects        ``<prefix>.phase.<name>_ms`` per phase
``verifications``   list of verification objs.   ``<prefix>.verify.<name>`` and ``.reason``
``span``            the span's ``to_dict()``     its own flat fields join; the outer
                                                 span's win; its ``span.id`` becomes
                                                 ``<kind>.span_id``
``span_ref``        the span's ``to_dict()``     ``<key>.span_id`` and ``<key>.duration_ms``
``nested``          as read                      left out (never read)
``flat``            left out (never read)        as read, same key
==================  ===========================  ============================================

``<prefix>`` is the kind's first word (``tls``, ``http``).
"""

S = TypeVar("S")
R = TypeVar("R")
_Put = Callable[[str, Any], Any]
_Write = Callable[[dict[str, Any], _Put, str, Any], None]
_Convert = Callable[[Any, Any], Any]
_Row = tuple[str, Callable[[R], Any], _Write | None]


@dataclass(frozen=True, slots=True)
class Field(Generic[R]):
    """One row: a ``to_dict()`` key, its unit, and how to read it off a span.

    Attributes:
        key: the nested key (``docs/schema.md``).
        unit: how both forms export it (:data:`Unit`).
        get: reads the value off the span's parts (see :class:`Table`).
        table: for ``span`` rows, the nested span's table.
    """

    key: str
    unit: Unit
    get: Callable[[R], Any]
    table: Table[Any, Any] | None = None


def of(*path: str) -> Callable[[Any], Any]:
    """A getter for ``x.a.b`` (``of("a", "b")``): ``None`` as soon as a step is ``None``.

    A step may be dotted (``of("facts.cipher")``) when no part of it can be ``None``.
    """
    steps = [attrgetter(name) for name in path]
    if len(steps) == 1:
        return steps[0]
    if len(steps) == 2:
        first, second = steps
        return lambda x: None if (value := first(x)) is None else second(value)

    def get(x: Any) -> Any:
        for step in steps:
            if x is None:
                return None
            x = step(x)
        return x

    return get


class Table(Generic[S, R]):
    """The rows of one span kind, compiled for both forms.

    Args:
        kind: the span kind (``tls.handshake``), which names the flat
            ``<kind>.duration_ms`` and ``<prefix>.phase.*`` keys.
        parts: what the rows read, made once per export: the span with its
            computed parts (facts, error...) looked up once, not once per row.
        fields: the rows, in ``to_dict()`` order (the flat order too).
    """

    __slots__ = ("_flat", "_nested", "_parts", "fields", "kind")

    def __init__(self, kind: str, parts: Callable[[S], R], fields: Iterable[Field[R]]) -> None:
        self.kind = kind
        self._parts = parts
        self.fields: tuple[Field[R], ...] = tuple(fields)
        # Nested rows: (key, getter, converter) with the timeline and without (objects: None).
        self._nested = {
            timeline: [
                (f.key, f.get if timeline or f.unit != "objects" else _none, _NESTED.get(f.unit))
                for f in self.fields
                if f.unit != "flat"
            ]
            for timeline in (True, False)
        }
        # Flat rows: (key, getter, writer) for a span on its own, joined to another, without
        # its nested spans.
        self._flat = {
            mode: self._compile(joined=mode == "joined", spans=mode != "own")
            for mode in ("alone", "joined", "own")
        }

    def nested(self, span: S, *, timeline: bool = True) -> dict[str, Any]:
        """``span`` as ``to_dict()``: with ``timeline=False``, ``objects`` rows are ``None``."""
        out: dict[str, Any] = {}
        parts = self._parts(span)
        for key, get, convert in self._nested[timeline]:
            out[key] = get(parts) if convert is None else convert(span, get(parts))
        return out

    def flat(self, span: S, *, nested_spans: bool = True) -> dict[str, Any]:
        """``span``'s flat log fields, unknown values left out.

        Args:
            span: the span.
            nested_spans: ``False`` leaves out ``span`` and ``span_ref`` rows
                (for exporters that make the nested spans spans of their own).
        """
        out: dict[str, Any] = {"tlstiming.log_schema": LOG_SCHEMA_VERSION}
        self._flat_into(out, span, out.__setitem__, "alone" if nested_spans else "own")
        return {k: v for k, v in out.items() if v is not None}

    def _flat_into(self, out: dict[str, Any], span: S, put: _Put, mode: str) -> None:
        """Add ``span``'s flat fields to ``out`` with ``put`` (``None`` values kept).

        In ``joined`` mode ``span`` is nested in another span: its ``span.id``
        is renamed ``<kind>.span_id`` and ``put`` is ``out.setdefault``.
        """
        parts = self._parts(span)
        for key, get, write in self._flat[mode]:
            if write is None:
                put(key, get(parts))
            else:
                write(out, put, key, get(parts))

    def _compile(self, *, joined: bool, spans: bool) -> list[_Row[R]]:
        prefix = self.kind.split(".", 1)[0]
        rows: list[_Row[R]] = []
        for f in self.fields:
            if f.unit in ("objects", "nested") or (not spans and f.unit in ("span", "span_ref")):
                continue
            key = f.key
            if f.unit == "ns":
                key = ms_key(self.kind, key)
            elif f.unit in ("phases", "verifications"):
                key = f"{prefix}.{'phase' if f.unit == 'phases' else 'verify'}."
            elif joined and key == "span.id":
                key = f"{self.kind}.span_id"
            rows.append((key, f.get, _writer(f)))
        return rows


def ms(ns: int | None) -> float | None:
    """Nanoseconds as milliseconds rounded to the microsecond (``None`` stays)."""
    return None if ns is None else round(ns / 1e6, 3)


def ms_key(kind: str, key: str) -> str:
    """The flat key of a ``*_ns`` key: ``x_ns`` -> ``x_ms``.

    ``duration_ns`` and ``cpu_ns`` name the span itself: ``<kind>.duration_ms``,
    ``<kind>.cpu_ms``.
    """
    if key in ("duration_ns", "cpu_ns"):
        return f"{kind}.{key[:-3]}_ms"
    return key[:-3] + "_ms"


def redact_url(url: str) -> str:
    """Drop the userinfo (``user:pass@``), the query and the fragment of a URL.

    Args:
        url: an absolute URL or anything else (returned without query and
            fragment).

    Returns:
        ``scheme://host:port/path``.
    """
    for mark in ("?", "#"):
        url = url.split(mark, 1)[0]
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, slash, path = rest.partition("/")
    host = authority.rpartition("@")[2]
    return f"{scheme}{sep}{host}{slash}{path}"


# -- nested values -------------------------------------------------------------------


def _phases(span: Any, phases: Sequence[Any]) -> list[dict[str, Any]]:
    origin = span.start_ns
    return [
        {
            "name": p.name,
            "start_ns": p.start_ns - origin,
            "duration_ns": p.duration_ns,
            "cpu_ns": p.cpu_ns,
        }
        for p in phases
    ]


def _verifications(span: Any, verifications: Sequence[Any]) -> list[dict[str, Any]]:
    origin = span.start_ns
    return [
        {
            "name": v.name,
            "start_ns": v.start_ns - origin,
            "duration_ns": v.duration_ns,
            "outcome": v.outcome,
            "reason": v.reason,
            "details": dict(v.details),
        }
        for v in verifications
    ]


def _none(_parts: Any) -> None:
    return None


def _to_dict(_span: Any, nested: Any) -> Any:
    return None if nested is None else nested.to_dict()


_NESTED: Final[dict[str, _Convert]] = {
    "strings": lambda _span, values: list(values),
    "phases": _phases,
    "verifications": _verifications,
    "span": _to_dict,
    "span_ref": _to_dict,
}


# -- flat values ---------------------------------------------------------------------


def _writer(field: Field[Any]) -> _Write | None:
    """How a row's flat value is written (``None``: as read, under its key)."""
    if field.unit == "span":
        table = field.table
        assert table is not None, f"span row {field.key} needs its table"

        def join(out: dict[str, Any], _put: _Put, _key: str, nested: Any) -> None:
            if nested is not None:
                table._flat_into(out, nested, out.setdefault, "joined")

        return join
    return _FLAT.get(field.unit)


def _url(_out: dict[str, Any], put: _Put, key: str, url: str | None) -> None:
    put(key, None if url is None else redact_url(url))


def _ns(_out: dict[str, Any], put: _Put, key: str, ns: int | None) -> None:
    put(key, ms(ns))


def _strings(_out: dict[str, Any], put: _Put, key: str, values: Sequence[str]) -> None:
    put(key, ",".join(values) if values else None)


def _flat_phases(_out: dict[str, Any], put: _Put, prefix: str, phases: Sequence[Any]) -> None:
    for p in phases:
        put(f"{prefix}{p.name}_ms", ms(p.duration_ns))


def _flat_verifications(_out: dict[str, Any], put: _Put, prefix: str, runs: Sequence[Any]) -> None:
    for v in runs:
        put(f"{prefix}{v.name}", v.outcome)
        put(f"{prefix}{v.name}.reason", v.reason)


def _span_ref(_out: dict[str, Any], put: _Put, key: str, nested: Any) -> None:
    if nested is None:
        put(key, None)
    else:
        put(f"{key}.span_id", nested.span_id)
        put(f"{key}.duration_ms", ms(nested.duration_ns))


_FLAT: Final[dict[str, _Write]] = {
    "url": _url,
    "ns": _ns,
    "strings": _strings,
    "phases": _flat_phases,
    "verifications": _flat_verifications,
    "span_ref": _span_ref,
}
