"""wake(): end the wait of a thread that has an exception pending, so it lands.

An injected exception is raised when its thread next runs bytecode; a thread
blocked in a wait does not.  wake() ends two kinds of waits:

* Waits in ``threading.Condition.wait``, on every platform and backend: where
  ``Event.wait``, ``Queue.get``/``put``, ``Semaphore.acquire``,
  ``Condition.wait``/``wait_for`` and ``Barrier.wait`` block.  Each blocks on
  a private one-shot lock (``waiter``) that ``notify()`` releases.  wake(),
  holding the condition's lock as ``notify()`` does, takes that waiter out of
  the condition's queue and releases it: the thread returns from its
  ``waiter.acquire()`` and the pending exception is raised right there, inside
  ``Condition.wait``, whose ``finally`` re-acquires the condition's lock, so
  the caller's ``with cond:`` releases it as usual.  No other waiter is
  affected.  A thread that a ``notify()`` has already chosen is left to wake
  by itself; if it dies with that notification, the notification is lost
  (README, Limits).
* System calls made by the interpreter (``time.sleep``, socket reads,
  ``select``/``poll``/selectors, ``os.read``, ``os.waitpid`` and so
  ``Popen.wait``), on Linux x86-64 with the C backend: see _syscalls.py
  and csrc/wake_linux_x86_64.c.
* Lock and RLock waits, on Linux x86-64 with the C backend, where that is
  sound: see _locks.py.  A thread waiting to enter ``with lock:`` is left to
  receive the exception when the lock is handed over (DEFERRED) wherever
  waking it would let the block's ``__exit__`` release the holder's lock.

Other waits (``Thread.join``, ``accept``, ``connect``...) are reported by
name as not supported.
"""

from __future__ import annotations

import dis
import enum
import functools
import sys
import threading
from types import CodeType, FrameType, ModuleType
from typing import NamedTuple, Protocol

from . import _landing, _locks, _syscalls
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
    DEFERRED = "deferred"
    """The thread waits to enter ``with lock:`` where waking it would make the
    exception land inside the block and release a lock another thread holds:
    the exception lands when the lock is handed over."""
    UNSAFE_TO_LAND = "unsafe to land"
    """The thread waits in a bare ``acquire()`` that cannot be ended silently
    here (an untimed wait on CPython's semaphore, README).  Left pending, the
    exception would land right after the acquire succeeds, before the ``try``
    that releases the lock: the lock would stay held by a dead thread.
    kill() withdraws it while the thread waits there and raises it again once
    the thread has moved past the call."""
    UNSUPPORTED_CALL = "unsupported call"
    """The thread waits in a call this release cannot end (`call` names it)."""
    FOREIGN_CODE = "foreign code"
    """The system call was made by third-party native code: its handling of an
    interrupted call is unknown, so it is left alone."""
    SIGNAL_BLOCKED = "signal blocked"
    """The thread blocks the signal used to wake it."""
    PLATFORM_UNSUPPORTED = "platform unsupported"
    """Not in a Condition wait, and no system-call wake here (not Linux x86-64,
    or the ctypes backend)."""


class WakeResult(NamedTuple):
    status: WakeStatus
    call: str | None = None
    """What the thread waits in, when known: "threading.Condition.wait", a system call's name."""

    def __bool__(self) -> bool:
        return self.status is WakeStatus.WOKEN


_CONDITION_WAIT = threading.Condition.wait.__code__
_JOIN_CODES = tuple(
    f.__code__ for f in (threading.Thread.join, getattr(threading.Thread, "_wait_for_tstate_lock", None))
    if f is not None
)


def _waiting_frame(frame: FrameType | None) -> FrameType | None:
    """The frame of Condition.wait or Thread.join a thread whose innermost
    frame is `frame` waits in: that frame, or the next one (under a
    Python-level lock's _release_save, or join's _wait_for_tstate_lock)."""
    for _ in range(2):
        if frame is None:
            return None
        if frame.f_code is _CONDITION_WAIT or frame.f_code in _JOIN_CODES:
            return frame
        frame = frame.f_back
    return None


def _release_waiter(frame: FrameType) -> WakeResult:
    # Reading another thread's frame locals: it is blocked in (or on its way
    # to) waiter.acquire(), so they do not change under us.
    cond = frame.f_locals.get("self")
    if not isinstance(cond, threading.Condition) or not cond.acquire(True, _LOCK_TIMEOUT):
        return WakeResult(WakeStatus.NOT_BLOCKED, "threading.Condition.wait")
    try:
        # Holding the condition's lock, as notify() does.  Read the waiter
        # only now: until wait() queues it and releases this lock, it is not
        # there yet.
        waiter = frame.f_locals.get("waiter")
        try:
            cond._waiters.remove(waiter)  # type: ignore[attr-defined]
        except ValueError:
            # Not queued: a notify() has already chosen it (the exception will
            # land as it wakes), or that wait has ended.  Passing a notify()
            # on is not safe (Event.wait() does not re-check its flag: a spare
            # wake-up would make another waiter return True), so nothing is
            # done; see README, Limits.
            return WakeResult(WakeStatus.NOT_BLOCKED, "threading.Condition.wait")
        waiter.release()  # type: ignore[union-attr]  # it was queued: a lock
        return WakeResult(WakeStatus.WOKEN, "threading.Condition.wait")
    finally:
        cond.release()


def _send(core: ModuleType, native_id: int, name: str, blocked: _syscalls.Blocked, result: int,
          zero_fdsets: bool = False, rewrite: bool = True, guard: tuple[int, int] = (0, 0)) -> WakeResult:
    signo = _syscalls.chosen_signal()
    try:
        if _syscalls.signal_blocked(native_id, signo):
            return WakeResult(WakeStatus.SIGNAL_BLOCKED, name)
    except OSError:
        return WakeResult(WakeStatus.NOT_BLOCKED)
    sent = core._wake_send(native_id, blocked.ip, blocked.arg0, result, zero_fdsets, rewrite, *guard)
    return WakeResult(WakeStatus.WOKEN if sent else WakeStatus.NOT_BLOCKED, name)


def _lock_verdict(frame: FrameType | None, blocked: _syscalls.Blocked, core: ModuleType
                  ) -> tuple[WakeResult, _locks.LockWait | None]:
    """What wake() does with a futex wait of the thread whose innermost frame
    is `frame`: WOKEN means it would wake it."""
    wait = _locks.identify(frame, blocked)
    name = wait.name if wait is not None else "futex"
    if _landing.entering_with(frame) and _landing.lands_inside_with(core):
        # woken, __enter__ would return False, the block run and its __exit__
        # release the lock the holder has
        return WakeResult(WakeStatus.DEFERRED, name), wait
    if wait is None:
        return WakeResult(WakeStatus.UNSUPPORTED_CALL, name), wait
    if not _syscalls.in_c_library(blocked.ip):
        # the wait is the lock's, but the system call is not made where the
        # handler can rewrite it (seen under valgrind)
        return WakeResult(WakeStatus.FOREIGN_CODE, name), wait
    if _landing.at_unchecked_call(frame, core):
        # woken, acquire() would return False to code that acts on it before
        # the kill lands: `lock.acquire(blocking=True); try: ... finally:
        # lock.release()` would release the holder's lock, `if not
        # lock.acquire(timeout=5): raise TimeoutError` would raise its own
        return WakeResult(WakeStatus.DEFERRED, name), wait
    if not wait.wakeable:
        why = "CPython's parking lot, which asserts" if wait.parked else "CPython's semaphore"
        return WakeResult(WakeStatus.UNSAFE_TO_LAND, f"{name} (untimed, {why})"), wait
    return WakeResult(WakeStatus.WOKEN, name), wait


def _wake_lock_wait(frame: FrameType | None, native_id: int, blocked: _syscalls.Blocked,
                    core: ModuleType) -> WakeResult:
    """A futex wait: end it if it is a Lock/RLock acquire we can end soundly."""
    verdict, wait = _lock_verdict(frame, blocked, core)
    if verdict.status is not WakeStatus.WOKEN or wait is None:
        return verdict
    return _send(core, native_id, wait.name, blocked, wait.result, guard=(wait.guard_addr, wait.guard_value))


_ACQUIRING = frozenset({"acquire", "__enter__", "_acquire_restore"})


@functools.lru_cache(maxsize=512)
def _acquire_calls(code: CodeType) -> frozenset[int]:
    """Offsets of the calls that may be a lock's acquire: calls on a line that
    loads an attribute named acquire/__enter__/_acquire_restore before them
    (a heuristic that errs towards too many: withholding costs a poll)."""
    offsets = set()
    line, seen = None, False
    for instruction in dis.get_instructions(code):
        positions = getattr(instruction, "positions", None)
        now = positions.lineno if positions is not None else instruction.starts_line
        if now is not None and now is not True and now != line:
            line, seen = now, False
        if instruction.opname in ("LOAD_ATTR", "LOAD_METHOD", "LOAD_SPECIAL"):
            # the name is the argval of LOAD_ATTR/LOAD_METHOD, the argrepr of
            # 3.14's LOAD_SPECIAL (whose argval is an index)
            seen = seen or instruction.argval in _ACQUIRING or instruction.argrepr in _ACQUIRING
        elif instruction.opname.startswith("CALL") and seen:
            offsets.add(instruction.offset)
    return frozenset(offsets)


#: Judgement.syscall when /proc was not read (no system-call wake here), and
#: when it showed the thread running or in a futex wait that is no lock's we
#: know (the GIL's: a busy thread is seen in either, depending on the moment)
UNREAD, RUNNING = -1, -2


class Judgement(NamedTuple):
    """What unsafe_to_land() decided, and the state it decided on: the
    thread's innermost frame and instruction, and its system call (number and
    first argument) as /proc showed it.  _inject_if_at() schedules only if the
    thread is still in that very state: /proc and frames are read at
    different moments, and reading /proc lets the GIL go, so the thread can
    move on, even round a loop back to the same instruction, in between.

    `wake`: for a lock wait that wake() would end, what _inject_if_at() needs
    to end it in the same step as the scheduling (ip, result, guard address
    and value): woken apart from it, the wait could be ended by a release
    first and the exception land after acquire() returned True."""

    unsafe: bool
    frame: FrameType | None
    lasti: int
    syscall: int = UNREAD
    arg0: int = 0
    wake: tuple[int, int, int, int] | None = None


def unsafe_to_land(thread: threading.Thread, core: ModuleType | None) -> Judgement:
    """Whether an exception scheduled now could land right after a lock's
    acquire() succeeds, before the `try` that would release it; kill()
    withholds it until the thread is past that call.

    Unsafe: a thread blocked in a bare acquire() we cannot end
    (UNSAFE_TO_LAND), and one that is at a call that may be an acquire
    without being in a lock wait we end: running, or waiting for the GIL on
    its way back from a wait that has just succeeded (an exception scheduled
    then lands at that call's return, holding the lock).
    """
    # /proc first, the frames after: reading /proc lets the GIL go, and a
    # running thread moves on meanwhile; read in this order, the frame is
    # the one the thread is at when _inject_if_at() checks it, a few
    # microseconds later with no GIL release in between as a rule.  Read
    # the other way round, a busy thread was rarely found where it had been
    # judged and kill() starved it (CI, 3.9: nothing scheduled in 0.2 s).
    blocked: _syscalls.Blocked | OSError | None = OSError()
    signal_blocked = False
    wakes_calls = core is not None and core.WAKE_SUPPORTED and _syscalls.SUPPORTED
    if wakes_calls and thread.native_id is not None:
        try:
            blocked = _syscalls.blocked_call(thread.native_id)
            if blocked is not None and blocked.number == _syscalls.FUTEX:
                signal_blocked = _syscalls.signal_blocked(thread.native_id, _syscalls.chosen_signal())
        except OSError as exc:  # the task is exiting
            blocked = exc
    frame = sys._current_frames().get(thread.ident) if thread.ident is not None else None
    lasti = frame.f_lasti if frame is not None else -1
    if frame is None or _waiting_frame(frame) is not None:
        # no Python code, a Condition wait (its waiter lock is wake()'s to
        # release) or a join
        return Judgement(False, frame, lasti)
    if isinstance(blocked, OSError):  # not read, or the task is exiting
        return Judgement(at_acquire_call(frame), frame, lasti)
    if blocked is None:
        return Judgement(at_acquire_call(frame), frame, lasti, RUNNING)
    if blocked.number != _syscalls.FUTEX:
        return Judgement(False, frame, lasti, blocked.number, blocked.arg0)  # in another system call
    assert core is not None
    verdict, wait = _lock_verdict(frame, blocked, core)
    if wait is None:
        # any other futex (the GIL's) is as safe as the call the thread is at
        return Judgement(at_acquire_call(frame), frame, lasti, RUNNING)
    if verdict.status is WakeStatus.WOKEN:
        # safe if ended as the exception is scheduled (kill() does so); a
        # wait the signal cannot reach would end with the lock
        ending = (blocked.ip, wait.result, wait.guard_addr, wait.guard_value)
        return Judgement(signal_blocked, frame, lasti, blocked.number, blocked.arg0, ending)
    # a lock wait wake() defers is safe
    return Judgement(verdict.status is WakeStatus.UNSAFE_TO_LAND, frame, lasti, blocked.number, blocked.arg0)


def at_acquire_call(frame: FrameType | None) -> bool:
    """Whether the frame is at a call that may be a lock's acquire."""
    return frame is not None and frame.f_lasti in _acquire_calls(frame.f_code)


def _blocked_call_of(thread: threading.Thread | None) -> _syscalls.Blocked | WakeResult:
    """The system call `thread` is blocked in, or why there is none to wake."""
    if thread is not None and not thread.is_alive():  # it has just ended
        return WakeResult(WakeStatus.NOT_BLOCKED)
    native_id = getattr(thread, "native_id", None)
    if not sys.platform.startswith("linux") or native_id is None:
        return WakeResult(WakeStatus.PLATFORM_UNSUPPORTED)
    try:
        blocked = _syscalls.blocked_call(native_id)
    except OSError:  # ENOENT, ESRCH: the task is exiting
        return WakeResult(WakeStatus.NOT_BLOCKED)
    return WakeResult(WakeStatus.NOT_BLOCKED) if blocked is None else blocked


def _wake_syscall(thread: threading.Thread, frame: FrameType | None, blocked: _syscalls.Blocked,
                  core: ModuleType | None) -> WakeResult:
    """Wake `thread` (innermost frame `frame`) from the system call it is
    blocked in, if we can."""
    native_id = thread.native_id
    assert native_id is not None  # _blocked_call_of() found its call
    name = _syscalls.name_of(blocked.number)
    substitute = _syscalls.substitute_for(blocked.number)
    if core is None or not core.WAKE_SUPPORTED or not _syscalls.SUPPORTED:
        return WakeResult(WakeStatus.PLATFORM_UNSUPPORTED, name)
    if blocked.number == _syscalls.FUTEX:
        return _wake_lock_wait(frame, native_id, blocked, core)
    if substitute is None:
        return WakeResult(WakeStatus.UNSUPPORTED_CALL, name)
    if _syscalls.called_from_interpreter(blocked.sp) is False:
        return WakeResult(WakeStatus.FOREIGN_CODE, name)
    rewrite = not _syscalls.CPYTHON_RAISES_AFTER_EINTR
    if rewrite and _landing.at_unchecked_call(frame, core):
        # the statements after the call would see the fake result first
        return WakeResult(WakeStatus.UNSUPPORTED_CALL, f"{name} (called with keywords)")
    return _send(core, native_id, name, blocked, substitute.result, substitute.zero_fdsets, rewrite)


class WakeFn(Protocol):
    def __call__(self, thread: ThreadArg, /) -> WakeResult: ...


def make_wake(pending: PendingFn, core: ModuleType | None) -> WakeFn:
    """Build wake() on a backend's pending(); `core`: the C module, for
    system-call wakes (None for the ctypes backend)."""

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
        # /proc before the frames: reading /proc lets the GIL go, and the
        # thread can move on meanwhile, even round a loop into a lock wait
        # (likely the cause of a failed 3.15 stress run: a thread seen at a
        # call inside its `with rlock:` block, then blocked entering that
        # `with` again, was woken as if it was not entering one, and ran the
        # block without the lock).  Read in this order, the frame is where
        # the thread is when the signal is armed; the handler checks that the
        # call is still the one /proc showed.  One snapshot of the frames
        # serves every decision below.
        blocked = _blocked_call_of(target)
        frame = sys._current_frames().get(ident)
        waiting = _waiting_frame(frame)
        if waiting is not None and waiting.f_code is _CONDITION_WAIT:
            return _release_waiter(waiting)
        if waiting is not None:
            # Thread.join is never woken: on 3.9-3.12 a join woken early
            # leaves the joined thread reporting is_alive() False while it runs
            return WakeResult(WakeStatus.UNSUPPORTED_CALL, "threading.Thread.join")
        if isinstance(blocked, WakeResult):
            return blocked
        assert target is not None  # _blocked_call_of() found its call
        return _wake_syscall(target, frame, blocked, core)

    return wake
