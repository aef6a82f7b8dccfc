"""A bounded, thread-safe LRU cache whose entries expire at a given time."""

from __future__ import annotations

import datetime
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["ExpiringCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ExpiringCache(Generic[K, V]):
    """At most ``maxsize`` entries, least recently used evicted first.

    Times are aware UTC datetimes passed in by the caller (the verifiers'
    clock), so expiry is testable without waiting.
    """

    __slots__ = ("_entries", "_lock", "_maxsize")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, tuple[V, datetime.datetime]] = OrderedDict()

    def get(self, key: K, now: datetime.datetime) -> tuple[V, datetime.datetime] | None:
        """The value and its expiry time, or ``None`` if absent or expired (then dropped)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[1] <= now:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: K, value: V, expires: datetime.datetime) -> None:
        """Store ``value`` until ``expires``, evicting the least recently used entry if full."""
        with self._lock:
            self._entries[key] = (value, expires)
            self._entries.move_to_end(key)
            while len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
