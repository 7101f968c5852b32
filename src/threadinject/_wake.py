"""wake(): end the wait of a thread that has an exception pending, so it lands.

An injected exception is raised when its thread next runs bytecode; a thread
blocked in a wait does not.  This release ends one kind of wait, on every
platform: waits in ``threading.Condition.wait``, which is where
``Event.wait``, ``Queue.get``/``put``, ``Semaphore.acquire``,
``Condition.wait``/``wait_for`` and ``Barrier.wait`` block.  Each blocks on a
private one-shot lock (``waiter``) that ``notify()`` releases.  wake(), holding
the condition's lock as ``notify()`` does, takes that waiter out of the
condition's queue and releases it: the thread returns from its
``waiter.acquire()`` and the pending exception is raised right there, inside
``Condition.wait``, whose ``finally`` re-acquires the condition's lock, so the
caller's ``with cond:`` releases it as usual.  No other waiter is affected, and
no ``notify()`` is lost: if one had already chosen the thread, wake() passes
one on with ``notify()`` (every user of a Condition re-checks its predicate, so
a spare wake-up is harmless).

Other waits (``time.sleep``, sockets, ``select``, ``Lock.acquire``,
``Thread.join``) are reported, by name on Linux, as not supported yet.
"""

from __future__ import annotations

import enum
import sys
import threading
from typing import NamedTuple, Protocol

from ._errors import ThreadNotFoundError
from ._types import PendingFn, ThreadArg

__all__ = ["WakeFn", "WakeResult", "WakeStatus", "make_wake"]

# How long wake() waits for a condition's lock, which its owner holds only
# briefly (notify, the start and end of wait).
_LOCK_TIMEOUT = 1.0


class WakeStatus(enum.Enum):
    WOKEN = "woken"
    """A wait was ended: the pending exception is raised now."""
    NOTHING_PENDING = "nothing pending"
    """No exception is pending: waking the thread would only fake a wake-up."""
    NOT_BLOCKED = "not blocked"
    """The thread runs, or is already being woken: the exception lands by itself."""
    UNSUPPORTED_CALL = "unsupported call"
    """The thread waits in a call this release cannot end (`call` names it)."""
    PLATFORM_UNSUPPORTED = "platform unsupported"
    """The thread is not in a Condition wait, and this platform gives no way to tell more."""


class WakeResult(NamedTuple):
    status: WakeStatus
    call: str | None = None
    """What the thread waits in, when known: "threading.Condition.wait", a system call's name."""

    def __bool__(self) -> bool:
        return self.status is WakeStatus.WOKEN


_CONDITION_WAIT = threading.Condition.wait.__code__

# x86-64 Linux system call numbers of the calls blocked threads usually sit
# in (arch/x86/entry/syscalls/syscall_64.tbl), to name them in WakeResult.
_SYSCALLS_X86_64 = {
    0: "read", 7: "poll", 17: "pread64", 19: "readv", 23: "select", 35: "nanosleep",
    42: "connect", 43: "accept", 44: "sendto", 45: "recvfrom", 46: "sendmsg", 47: "recvmsg",
    61: "wait4", 72: "fcntl", 73: "flock", 202: "futex", 230: "clock_nanosleep",
    232: "epoll_wait", 247: "waitid", 270: "pselect6", 271: "ppoll", 281: "epoll_pwait",
    288: "accept4", 441: "epoll_pwait2",
}


def _condition_wait_frame(ident: int) -> object | None:
    """The frame of Condition.wait the thread is in, if it is the innermost
    (or, under a Python-level lock's _release_save, the next) frame."""
    frame = sys._current_frames().get(ident)
    for _ in range(2):
        if frame is None:
            return None
        if frame.f_code is _CONDITION_WAIT:
            return frame
        frame = frame.f_back
    return None


def _release_waiter(frame: object) -> WakeResult:
    # Reading another thread's frame locals: it is blocked in waiter.acquire()
    # (or about to be), so they do not change under us.
    local = frame.f_locals  # type: ignore[attr-defined]
    cond, waiter = local.get("self"), local.get("waiter")
    if not isinstance(cond, threading.Condition) or waiter is None:
        return WakeResult(WakeStatus.NOT_BLOCKED, "threading.Condition.wait")
    if not cond.acquire(True, _LOCK_TIMEOUT):
        return WakeResult(WakeStatus.NOT_BLOCKED, "threading.Condition.wait")
    try:
        try:
            cond._waiters.remove(waiter)  # type: ignore[attr-defined]
        except ValueError:
            # not in the queue: a notify() already chose it, or the wait has
            # not queued it yet / has ended.  Either way it is not blocked on
            # us; hand on a notify() it may take with it to its grave.
            cond.notify()
            return WakeResult(WakeStatus.NOT_BLOCKED, "threading.Condition.wait")
        waiter.release()
        return WakeResult(WakeStatus.WOKEN, "threading.Condition.wait")
    finally:
        cond.release()


def _syscall_of(thread: threading.Thread | None) -> WakeResult:
    """What /proc says the thread is doing (Linux), for the report."""
    if thread is not None and not thread.is_alive():  # it has just ended
        return WakeResult(WakeStatus.NOT_BLOCKED)
    native_id = getattr(thread, "native_id", None)
    if not sys.platform.startswith("linux") or native_id is None:
        return WakeResult(WakeStatus.PLATFORM_UNSUPPORTED)
    try:
        with open(f"/proc/self/task/{native_id}/syscall") as f:
            fields = f.read().split()
    except OSError:  # ENOENT, ESRCH: the task is exiting
        return WakeResult(WakeStatus.NOT_BLOCKED)
    if not fields or fields[0] == "running":
        return WakeResult(WakeStatus.NOT_BLOCKED)
    number = int(fields[0])
    if number < 0:  # -1: not in a system call (blocked in user space or just running)
        return WakeResult(WakeStatus.NOT_BLOCKED)
    name = _SYSCALLS_X86_64.get(number, f"syscall {number}") if _is_x86_64() else f"syscall {number}"
    return WakeResult(WakeStatus.UNSUPPORTED_CALL, name)


def _is_x86_64() -> bool:
    import platform

    return platform.machine() in ("x86_64", "AMD64")


class WakeFn(Protocol):
    def __call__(self, thread: ThreadArg, /) -> WakeResult: ...


def make_wake(pending: PendingFn) -> WakeFn:
    """Build wake() on a backend's pending()."""

    def wake(thread: ThreadArg, /) -> WakeResult:
        """End the wait of `thread` so that its pending exception is raised now.

        Returns a WakeResult: WOKEN, or why not (see WakeStatus).  Raises
        TypeError / ThreadNotFoundError for a bad or ended thread.
        """
        if isinstance(thread, bool) or not isinstance(thread, (threading.Thread, int)):
            raise TypeError(
                "wake() argument 'thread' must be a threading.Thread or an int "
                f"thread ident, not {type(thread).__qualname__}"
            )
        if pending(thread) is None:  # also raises ThreadNotFoundError
            return WakeResult(WakeStatus.NOTHING_PENDING)
        if isinstance(thread, threading.Thread):
            target, ident = thread, thread.ident
        else:
            target, ident = threading._active.get(thread), thread  # type: ignore[attr-defined]
        if ident is None:
            raise ThreadNotFoundError(f"thread={thread!r} has not been started")
        frame = _condition_wait_frame(ident)
        if frame is not None:
            return _release_waiter(frame)
        return _syscall_of(target)

    return wake
