"""A kill CPython swallowed: one that landed in a finalizer or weakref callback.

An asynchronous exception lands at the thread's next check, and that can be
in Python code CPython runs from C on the thread's behalf, where no
exception can come out: a weakref callback (``WeakKeyDictionary``'s
``remove()``, run where a key's last reference goes), a ``__del__``.
CPython reports it to ``sys.unraisablehook`` ("Exception ignored in: ...")
and goes on, and the thread was not killed: kill() waited for its end in
vain.  Measured 2026-11-28, a loop whose every round drops a
``WeakKeyDictionary`` key in a C call (``keep.clear()``) survived 3-10 of 20
kills on 3.9.18, 3.12.1 and 3.13.15, and the watch (_monitor.py), whose
PY_START rule took such a callback's start for a call, lost its exception
there every time; a 5,000-kill stress run on 3.12.1 with tracemalloc hit it
(its own ``WeakKeyDictionary`` of threads).  Any injector has this, the
ctypes recipe included.

While a kill of a thread is under way, this module's hook takes a
ThreadKilled reported in that thread: it notes it, for kill() to deliver
the kill again where it judges it may land, and prints nothing.  Every
other report goes to the hook it replaced, which it puts back once no kill
is under way (unless the hook was replaced meanwhile).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any, Callable

from ._errors import ThreadKilled

__all__ = ["expecting", "take"]

# reentrant: a collection in a thread holding it can run a finalizer whose
# exception comes here
_lock = threading.RLock()
_expected: dict[int, int] = {}  # ident: kills of it under way
_swallowed: set[int] = set()  # idents whose kill CPython swallowed, not yet taken
_replaced: Callable[[Any], object] | None = None


def _hook(unraisable: Any) -> None:
    ident = threading.get_ident()
    if isinstance(unraisable.exc_value, ThreadKilled):
        with _lock:
            if ident in _expected:
                _swallowed.add(ident)
                return
    (sys.__unraisablehook__ if _replaced is None else _replaced)(unraisable)


@contextlib.contextmanager
def expecting(ident: int) -> Iterator[None]:
    """Within the block, a ThreadKilled CPython swallows in thread `ident`
    is noted for take() and not printed."""
    global _replaced
    with _lock:
        if not _expected:
            _replaced, sys.unraisablehook = sys.unraisablehook, _hook
        _expected[ident] = _expected.get(ident, 0) + 1
    try:
        yield
    finally:
        with _lock:
            _expected[ident] -= 1
            if not _expected[ident]:
                del _expected[ident]
                _swallowed.discard(ident)
            if not _expected:
                if sys.unraisablehook is _hook:
                    sys.unraisablehook = sys.__unraisablehook__ if _replaced is None else _replaced
                _replaced = None


def take(ident: int | None) -> bool:
    """Whether CPython swallowed a ThreadKilled in thread `ident` since the
    last call (within expecting())."""
    with _lock:
        if ident in _swallowed:
            _swallowed.discard(ident)
            return True
        return False
