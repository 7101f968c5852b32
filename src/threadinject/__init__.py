"""threadinject: raise exceptions in other threads, and kill stuck threads.

    import threadinject
    threadinject.kill(worker, timeout=1.0)      # -> True once it has ended
    threadinject.inject(worker, TimeoutError("took too long"))

See README.md for the guarantees and the limits.
"""

from __future__ import annotations

import functools as _functools
import threading as _threading

from ._backends import select as _select
from ._errors import ThreadKilled, ThreadNotFoundError
from ._kill import KillAtExitFn
from ._kill import make_kill as _make_kill
from ._kill import make_kill_at_exit as _make_kill_at_exit
from ._types import CancelFn, InjectFn, KillFn, PendingFn
from ._wake import Judgement as _Judgement
from ._wake import WakeFn, WakeResult, WakeStatus
from ._wake import inject_in_call as _wake_inject_in_call
from ._wake import make_wake as _make_wake
from ._wake import unsafe_to_land as _wake_unsafe_to_land

__all__ = [
    "ThreadKilled",
    "ThreadNotFoundError",
    "WakeResult",
    "WakeStatus",
    "backend",
    "cancel",
    "inject",
    "kill",
    "kill_at_exit",
    "pending",
    "wake",
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
#: wake(thread, /) -> WakeResult: end the wait of a thread whose injection is pending.
wake: WakeFn = _make_wake(pending, _impl if backend == "c" else None)
def _unsafe_to_land(thread: _threading.Thread) -> _Judgement:
    return _wake_unsafe_to_land(thread, _impl if backend == "c" else None)


#: kill(thread, timeout=None) -> bool: inject ThreadKilled, wake, wait for the end.
kill: KillFn = _make_kill(inject, pending, cancel, wake, _unsafe_to_land, _impl._inject_if_at,
                          _functools.partial(_wake_inject_in_call, _impl) if backend == "c" else None)
#: kill_at_exit(thread, timeout=None): kill `thread` at exit if it still runs.
kill_at_exit: KillAtExitFn = _make_kill_at_exit(kill)
