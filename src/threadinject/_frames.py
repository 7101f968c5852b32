"""Other threads' frames: the one place threadinject reads them.

kill() and wake() decide where an exception may land from the target's
innermost frames: the code and instruction it is at, the locals of the
Condition.wait it blocks in, whether it has reached its run() method.  With a
GIL that is sound: the target does not run while this thread holds the GIL.

On a free-threaded build it is not, and not only because the answer can go
stale: the frame objects ``sys._current_frames()`` returns point into the
target's own frame stack, which it pops and frees as it runs, so reading them
(even just ``f_lasti`` or ``f_code``; ``f_back`` creates frame objects on the
running thread's frames) is a use-after-free.  Measured here: CPython 3.13.15t
crashed in a 10,000-kill stress run and in tools/cpython_ft_frames_bug.py
(python/cpython#152355: not backported to 3.13, the maintainers said; the
locking 3.14 added, gh-131479, states that reading the line number or locals
of a frame another thread is executing is still not thread-safe and "may crash
the interpreter").  So on free-threaded builds threadinject reads no other
thread's frame: innermost() and on_stack() answer None and False there, and
each policy that needs a frame has a frame-free branch (README, Limits).
Which threads run Python code (the keys of ``sys._current_frames()``) is still
read: that takes no frame apart.
"""

from __future__ import annotations

import sys
import sysconfig
from types import CodeType, FrameType

__all__ = ["READABLE", "innermost", "on_stack", "runs_python"]

#: Whether another thread's frames can be read here (GIL builds).
READABLE = not sysconfig.get_config_var("Py_GIL_DISABLED")


def innermost(ident: int | None) -> FrameType | None:
    """The innermost frame of the thread `ident`; None if it runs no Python
    code, or if frames cannot be read here (free-threaded builds)."""
    if not READABLE or ident is None:
        return None
    return sys._current_frames().get(ident)


def on_stack(ident: int | None, code: CodeType) -> bool:
    """Whether a frame of the thread `ident` runs `code` (False where frames
    cannot be read)."""
    frame = innermost(ident)
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


def runs_python(ident: int) -> bool:
    """Whether the thread `ident` runs Python code (readable everywhere)."""
    return ident in sys._current_frames()
