"""The optional C accelerator (``_speedups.c``): loading it and giving it what it calls.

The accelerator has two functions of the hot path, the message callback and
the ``do_handshake`` wrapper; everything after a handshake's EXIT mark is
:func:`tlstiming._recording.finish.finish`, whichever path recorded it.
"""

from __future__ import annotations

import os
import time
import warnings
from types import ModuleType
from typing import Any, Final

from tlstiming._recording import decide as _decide
from tlstiming._recording import finish as _finish
from tlstiming._recording import implicit as _implicit

__all__ = ["SPEEDUPS_VERSION", "WHY_NOT", "configure", "load"]

SPEEDUPS_VERSION: Final = 7  # the _speedups.c this code was written against
WHY_NOT = ""  # why load() returned None: the reason the pure-Python code records


def configure(speedups: Any) -> None:
    """Give a build of ``_speedups.c`` the Python objects it calls."""
    speedups.configure(
        adopt=_implicit.adopt,
        finish=_finish.finish,
        refuse=_decide.refuse,
        want=_finish.WANT,
        perf=time.perf_counter_ns,
        cpu=time.thread_time_ns,
    )


def load() -> ModuleType | None:
    """The configured ``_speedups`` module, when it is built, current and allowed; else ``None``.

    ``TLSTIMING_PURE_PYTHON`` in the environment keeps it unused; a build
    older or newer than this code warns and is not used.
    """
    global WHY_NOT
    if os.environ.get("TLSTIMING_PURE_PYTHON"):
        WHY_NOT = "TLSTIMING_PURE_PYTHON is set"
        return None
    try:
        from tlstiming._recording import _speedups  # noqa: PLC0415
    except ImportError:
        WHY_NOT = "the C accelerator is not built"
        return None
    if getattr(_speedups, "VERSION", None) != SPEEDUPS_VERSION:
        WHY_NOT = "the C accelerator's build is stale"
        warnings.warn(
            f"tlstiming._recording._speedups at {_speedups.__file__} is stale (rebuild it, e.g. "
            "reinstall tlstiming); using the pure-Python code",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    configure(_speedups)
    return _speedups
