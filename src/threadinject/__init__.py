"""threadinject: raise exceptions in other threads, and kill stuck threads.

    import threadinject
    threadinject.kill(worker, timeout=1.0)      # -> True once it has ended
    threadinject.inject(worker, TimeoutError("took too long"))

See README.md for the guarantees and the limits.
"""

from __future__ import annotations

from ._backends import select as _select
from ._errors import ThreadKilled, ThreadNotFoundError
from ._kill import make_kill as _make_kill
from ._types import CancelFn, InjectFn, KillFn, PendingFn

__all__ = [
    "ThreadKilled",
    "ThreadNotFoundError",
    "backend",
    "cancel",
    "inject",
    "kill",
    "pending",
]
__version__ = "0.1.0"

backend: str
#: Which backend is active: "c" (the extension) or "ctypes" (the fallback).
backend, _impl = _select()

#: inject(thread, exc, /): schedule `exc` (class or instance) to be raised in `thread`.
inject: InjectFn = _impl.inject
#: cancel(thread, /) -> bool: withdraw the pending injection; whether there was one.
cancel: CancelFn = _impl.cancel
#: pending(thread, /): the injection not yet raised in `thread`, or None.
pending: PendingFn = _impl.pending
#: kill(thread, timeout=None) -> bool: inject ThreadKilled and wait for the end.
kill: KillFn = _make_kill(inject, pending)
