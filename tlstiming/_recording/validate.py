"""Argument checks shared by the public constructors and methods (pure).

Misuse fails at the call that is wrong, with a ``TypeError`` (wrong kind of
value) or a ``ValueError`` (right kind, bad value) naming the argument,
never later on a worker thread or inside a handshake.

The rule for durations: a finite number of seconds. A *limit on work* (a
responder query, a download) must be positive; a *wait* (``flush``,
``close``, ``wait_idle``) may be 0 (do not wait) or ``None`` (no limit).
NaN and infinity are refused everywhere: ``None`` is how to say "no limit".
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable, Iterable
from typing import TypeVar

__all__ = [
    "callable_arg",
    "count",
    "non_negative",
    "optional",
    "positive",
    "sinks",
    "wait_seconds",
]

T = TypeVar("T")
V = TypeVar("V")


def _number(name: str, value: object, *, zero_ok: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result) or result < 0 or (result == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, not {value!r}")
    return result


def positive(name: str, value: float) -> float:
    """``value`` if it is a finite number > 0 (a limit on work in seconds, a rate).

    Raises:
        TypeError: not a number (``bool`` included).
        ValueError: NaN, infinite, zero or negative.
    """
    return _number(name, value, zero_ok=False)


def non_negative(name: str, value: float) -> float:
    """``value`` if it is a finite number >= 0 (a TTL, a tolerance, a threshold).

    Raises:
        TypeError: not a number (``bool`` included).
        ValueError: NaN, infinite or negative.
    """
    return _number(name, value, zero_ok=True)


def wait_seconds(name: str, value: float | None) -> float | None:
    """``value`` if it is ``None`` (no limit) or a finite number >= 0 (how long to wait).

    Raises:
        TypeError: not a number (``bool`` included).
        ValueError: NaN, infinite or negative.
    """
    return None if value is None else _number(name, value, zero_ok=True)


def optional(check: Callable[[str, V], T], name: str, value: V | None) -> T | None:
    """``None``, or ``value`` passed through ``check``."""
    return None if value is None else check(name, value)


def count(name: str, value: int, *, minimum: int = 0) -> int:
    """``value`` if it is an integer (not a ``bool``) >= ``minimum``.

    Raises:
        TypeError: not an integer.
        ValueError: below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    result = operator.index(value)
    if result < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {result}")
    return result


def callable_arg(name: str, value: T) -> T:
    """``value`` if it is callable (a sink, a wrapped sink, a clock).

    Raises:
        TypeError: not callable.
    """
    if not callable(value):
        raise TypeError(f"{name} must be callable, not {type(value).__name__}")
    return value


def sinks(name: str, values: Iterable[T]) -> tuple[T, ...]:
    """``values`` as a tuple, if it is an iterable of callables.

    Raises:
        TypeError: not an iterable (or one string), or an item is not callable.
    """
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be an iterable of sinks, not {type(values).__name__}")
    result = tuple(values)
    for index, value in enumerate(result):
        callable_arg(f"{name}[{index}]", value)
    return result
