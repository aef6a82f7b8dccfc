"""Types of the optional C accelerator (tlstiming/_speedups.c)."""

from collections.abc import Callable
from typing import Any

VERSION: int

def on_message(
    conn: Any, direction: str, version: int, content_type: int, msg_type: int, data: bytes, /
) -> None: ...
def drive(conn: Any, handshake: Callable[..., None], *args: Any) -> None: ...
def configure(
    *,
    adopt: Any,
    finish: Any,
    refuse: Any,
    failed: Any,
    sink_failed: Any,
    span_type: type,
    build: Any,
    delivery: Any,
    want: tuple[type[BaseException], ...],
    sslsocket: type,
    msg_descr: Any,
    perf: Any,
    cpu: Any,
    unix: Any,
    span_slots: tuple[Any, ...],
) -> None: ...
