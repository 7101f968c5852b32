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

__all__ = [
    "inject",
    "cancel",
    "pending",
    "kill",
    "ThreadKilled",
    "ThreadNotFoundError",
    "backend",
]
__version__ = "0.1.0"

#: Which backend is active: "c" (the extension) or "ctypes" (the fallback).
backend, _impl = _select()

inject = _impl.inject
cancel = _impl.cancel
pending = _impl.pending
kill = _make_kill(inject)
