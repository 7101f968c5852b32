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
each policy that needs a frame has a frame-free branch (README, Limits).  The
one exception is a thread the wake signal's handler holds at a system call,
which runs no code until let go: the C extension's _inject_in_call() reads
its frames then, for kill() (_kill._JudgeAtCall).
Which threads run Python code (the keys of ``sys._current_frames()``) is still
read: that takes no frame apart.

On CPython 3.11.0-3.11.11 ``sys._current_frames()`` itself can hang the
process; current_frames() reads it with the cyclic collector paused there.
"""

from __future__ import annotations

import dis
import functools
import gc
import sys
import sysconfig
from types import CodeType, FrameType
from typing import Callable

from . import _backends

__all__ = ["READABLE", "RELEASING", "calls_naming", "current_frames", "innermost", "line_numbers", "on_stack",
           "runs_python"]

#: Whether another thread's frames can be read here (GIL builds).
READABLE = not sysconfig.get_config_var("Py_GIL_DISABLED")

#: Names of the calls that let a lock go: an exception landing before one
#: of them runs leaves the lock held
RELEASING = frozenset({"release", "__exit__", "__aexit__"})

#: Names of the calls that take a lock (Condition.wait takes its lock back
#: through _acquire_restore): an exception landing right after one of them
#: returns, before the code that lets it go, leaves the lock held
ACQUIRING = frozenset({"acquire", "__enter__", "_acquire_restore"})


#: Whether sys._current_frames() can hang here unless the collector is paused
_HANGS_IN_A_COLLECTION = (3, 11) <= sys.version_info[:3] < (3, 11, 12)


def _paused_in_python() -> dict[int, FrameType]:
    """sys._current_frames() with the collector paused by three calls,
    between which another thread can run: one that switches the collector
    off in that window has it switched on again here (the C extension's
    pause is one C call)."""
    if not gc.isenabled():
        return sys._current_frames()
    gc.disable()
    try:
        return sys._current_frames()
    finally:
        gc.enable()


_read: Callable[[], dict[int, FrameType]] | None = None


def current_frames() -> dict[int, FrameType]:
    """sys._current_frames(); on CPython 3.11.0-3.11.11 with the cyclic
    collector paused.  There it holds the runtime's thread-list lock while
    it makes frame objects; an allocation can start a collection, whose
    finalizers (a weakref callback) are Python code that lets the GIL go,
    and a thread that starts or ends then takes the GIL and waits for that
    lock: every thread stands still for good (CPython gh-106883, fixed in
    3.11.12, which pauses the collector there itself).  kill() reads frames
    at every poll: CI hung so once on 3.11.7, and tools/cpython_gh106883.py
    hangs there within seconds (not on 3.9, 3.10, 3.12, 3.13, where no
    collection can start inside the call)."""
    global _read
    if _read is None:
        core = _backends.c_extension() if _HANGS_IN_A_COLLECTION else None
        _read = (sys._current_frames if not _HANGS_IN_A_COLLECTION
                 else core._current_frames if core is not None else _paused_in_python)
    return _read()


def innermost(ident: int | None) -> FrameType | None:
    """The innermost frame of the thread `ident`; None if it runs no Python
    code, or if frames cannot be read here (free-threaded builds)."""
    if not READABLE or ident is None:
        return None
    return current_frames().get(ident)


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
    return ident in current_frames()


def line_numbers(instructions: list[dis.Instruction]) -> list[int | None]:
    """The source line of each instruction (None: none, an artificial one),
    on every version: 3.13's line_number, 3.11's positions, and before them
    the line the last line start named."""
    lines: list[int | None] = []
    line = None
    for instruction in instructions:
        positions = getattr(instruction, "positions", None)
        if hasattr(instruction, "line_number"):  # 3.13+
            line = getattr(instruction, "line_number")  # noqa: B009 (absent before 3.13)
        elif positions is not None:  # 3.11-3.12
            line = positions.lineno
        elif isinstance(instruction.starts_line, int) and instruction.starts_line is not True:
            line = instruction.starts_line
        lines.append(line)
    return lines


@functools.lru_cache(maxsize=512)
def calls_naming(code: CodeType, names: frozenset[str]) -> frozenset[int]:
    """Offsets of the call instructions of `code` that come after a load of
    an attribute or a local variable named in `names` on the same line, and
    of their inline caches: the positions (``f_lasti``) of a frame calling,
    say, ``waiter.acquire()`` (the call's own offset while a C function runs
    or as the call ends; on 3.11 and 3.12 its last cache entry while the
    Python function it called runs).  A heuristic by lines, which errs
    towards too many calls."""
    offsets: set[int] = set()
    line, seen = None, False
    instructions = list(dis.get_instructions(code))
    lines = line_numbers(instructions)
    for instruction, following, now in zip(instructions, [*instructions[1:], None], lines):
        if now is not None and now != line:
            line, seen = now, False
        if instruction.opname == "LOAD_SPECIAL" and instruction.argrepr in ("__exit__", "__aexit__"):
            pass  # 3.14+: a with statement loads its __exit__ before its __enter__, called at the block's end
        elif instruction.opname in ("LOAD_ATTR", "LOAD_METHOD", "LOAD_SPECIAL") or \
                instruction.opname.startswith("LOAD_FAST") or instruction.opname == "LOAD_DEREF":
            # an attribute's name is the argval of LOAD_ATTR/LOAD_METHOD, the
            # argrepr of 3.14's LOAD_SPECIAL (whose argval is an index); 3.13's
            # LOAD_FAST_LOAD_FAST loads two locals (a tuple of names)
            loaded = instruction.argval if isinstance(instruction.argval, tuple) else (instruction.argval,)
            seen = seen or instruction.argrepr in names or any(name in names for name in loaded)
        elif instruction.opname.startswith("CALL") and seen:
            end = following.offset if following is not None else instruction.offset + 2
            offsets.update(range(instruction.offset, end, 2))
    return frozenset(offsets)
