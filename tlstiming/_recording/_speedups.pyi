"""Types of the optional C accelerator (tlstiming/_recording/_speedups.c)."""

from collections.abc import Callable
from typing import Any, overload

VERSION: int

class Events:
    """A handshake's raw events, packed: a read-only-once-frozen sequence of 6-tuples."""

    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, index: int) -> tuple[int, int, str, int, int, bytes]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[int, int, str, int, int, bytes]]: ...
    def append(self, event: tuple[int, int, str, int, int, bytes], /) -> None: ...
    def freeze(self) -> None: ...

def on_message(
    conn: Any, direction: str, version: int, content_type: int, msg_type: int, data: bytes, /
) -> None: ...
def drive(conn: Any, handshake: Callable[..., None], *args: Any) -> None: ...
def configure(
    *,
    adopt: Any,
    finish: Any,
    refuse: Any,
    want: tuple[type[BaseException], ...],
    perf: Any,
    cpu: Any,
) -> None: ...
