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
  by itself; if it dies with that notification, the notification is lost,
  unless kill() passes it on (pass_on_a_notification(); README, Limits).
* System calls made by the interpreter (``time.sleep``, socket reads,
  ``select``/``poll``/selectors, ``os.read``, ``os.waitpid`` and so
  ``Popen.wait``), on Linux x86-64 and aarch64 with the C backend: see
  _syscalls.py and csrc/wake_linux.c.
* Lock and RLock waits, on Linux x86-64 and aarch64 with the C backend, where that is
  sound: see _locks.py.  A thread waiting to enter ``with lock:`` is left to
  receive the exception when the lock is handed over (DEFERRED) wherever
  waking it would let the block's ``__exit__`` release the holder's lock.

On free-threaded builds no frame is read (_frames.py): a Condition wait is
found from the lock the thread is parked on, in the queue of a Condition
that gc.get_objects() lists; any other futex wait is UNSAFE_TO_LAND.

Other waits (``Thread.join``, ``accept``, ``connect``...) are reported by
name as not supported.
"""

from __future__ import annotations

import collections
import enum
import gc
import queue
import sys
import threading
import weakref
from types import CodeType, FrameType, ModuleType
from typing import Callable, NamedTuple, Protocol

from . import _frames, _landing, _locks, _monitor, _sync_code, _syscalls
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
    here (an untimed wait on CPython's semaphore, README), or, on a
    free-threaded build, in a futex wait that is no Condition's (no frame
    tells a lock's bare acquire(), a with statement's or anything else
    apart there).  Left pending, the exception could land right after the
    acquire succeeds, before the ``try`` that releases the lock: the lock
    would stay held by a dead thread.  kill() withdraws it while the thread
    waits there and raises it again once the thread has moved past the
    call."""
    UNSUPPORTED_CALL = "unsupported call"
    """The thread waits in a call this release cannot end (`call` names it)."""
    FOREIGN_CODE = "foreign code"
    """The system call was made by third-party native code: its handling of an
    interrupted call is unknown, so it is left alone."""
    SIGNAL_BLOCKED = "signal blocked"
    """The thread blocks the signal used to wake it."""
    PLATFORM_UNSUPPORTED = "platform unsupported"
    """Not in a Condition wait, and no wake here for its call (the
    wake: Linux x86-64 and aarch64, C backend, where _syscalls.SUPPORTED)."""


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


def _release_waiter(cond: object, find_waiter: Callable[[threading.Condition], object]) -> WakeResult:
    """Release the waiter lock find_waiter(cond) names, as notify() would,
    holding the condition's lock; no other waiter is affected."""
    if not isinstance(cond, threading.Condition) or not cond.acquire(True, _LOCK_TIMEOUT):
        return WakeResult(WakeStatus.NOT_BLOCKED, "threading.Condition.wait")
    try:
        # Holding the condition's lock, as notify() does: no notify() can
        # choose the waiter meanwhile, and until wait() has queued it and
        # released this lock, it is not there to find.
        waiter = find_waiter(cond)
        try:
            cond._waiters.remove(waiter)  # type: ignore[attr-defined]
        except ValueError:
            # Not queued: a notify() has already chosen it (the exception will
            # land as it wakes), or that wait has ended.  kill() passes such
            # a notification on where a spare one is harmless
            # (pass_on_a_notification()); see README, Limits.
            return WakeResult(WakeStatus.NOT_BLOCKED, "threading.Condition.wait")
        waiter.release()  # type: ignore[attr-defined]  # it was queued: a lock
        return WakeResult(WakeStatus.WOKEN, "threading.Condition.wait")
    finally:
        cond.release()


# The callers of Condition.wait() that look at their condition again after
# any wake-up, on a Condition of their own that nothing else waits on:
# Queue.get and put, Semaphore.acquire (BoundedSemaphore's too).  A
# notification they did not need costs them one look.  Not Event.wait,
# which does not look again (it would return True for an event not set),
# nor a user's Condition, whose other waiters may not look again either
# (even wait_for()'s: its Condition may have plain wait() callers too).
_RECHECKING_CALLERS: tuple[CodeType, ...] = (
    queue.Queue.get.__code__, queue.Queue.put.__code__, threading.Semaphore.acquire.__code__,
)


def rechecking_condition(innermost: FrameType | None) -> threading.Condition | None:
    """The Condition whose wait() the thread whose innermost frame is
    `innermost` is in, if one of _RECHECKING_CALLERS called it; None
    otherwise (and for no frame: free-threaded builds read none)."""
    waiting = _waiting_frame(innermost)
    if waiting is None or waiting.f_code is not _CONDITION_WAIT:
        return None
    caller = waiting.f_back
    if caller is None or not any(caller.f_code is code for code in _RECHECKING_CALLERS):
        return None
    cond = waiting.f_locals.get("self")
    return cond if isinstance(cond, threading.Condition) else None


def pass_on_a_notification(cond: threading.Condition) -> None:
    """notify() `cond` once, for a thread kill() found waiting in it (called
    by one of _RECHECKING_CALLERS) and has ended: if a notify() had chosen
    that thread (just before the kill, or as it was being woken), the thread
    died with the notification, and the next waiter would sleep on beside
    the item it was for.  A spare one costs that waiter a look."""
    if cond.acquire(True, _LOCK_TIMEOUT):
        try:
            cond.notify()
        finally:
            cond.release()


def _waiter_in_frame(frame: FrameType) -> WakeResult:
    """Wake the thread blocked in the Condition.wait running in `frame`."""
    # Reading another thread's frame locals (GIL builds only): it is blocked
    # in (or on its way to) waiter.acquire(), so they do not change under us.
    return _release_waiter(frame.f_locals.get("self"), lambda _: frame.f_locals.get("waiter"))


def _queues(cond: threading.Condition, lock_id: int) -> bool:
    """Whether `cond`'s queue of waiters holds the lock object `lock_id`."""
    waiters = vars(cond).get("_waiters")
    if not isinstance(waiters, collections.deque):
        return False
    # iterated in place: deque.copy() was seen to take 100+ ms each on 3.13t
    # under load (2.7 s for one search), and a queue that changes meanwhile
    # is no lock this thread is still parked on unqueued (a wait() queues
    # its waiter before it blocks)
    try:
        return any(id(w) == lock_id for w in waiters)
    except RuntimeError:  # "deque mutated during iteration"
        return False


# The last Condition _condition_queueing() found, and for which lock: a kill
# asks twice in a row for the same wait (is the thread past start-up, then
# wake it), and each search walks every object the collector tracks.
_last_found: tuple[int, weakref.ReferenceType[threading.Condition]] | None = None


def _condition_queueing(lock_id: int) -> threading.Condition | None:
    """The Condition whose queue holds the lock object `lock_id`, if any."""
    global _last_found
    last = _last_found  # one read: other threads may replace it
    if last is not None and last[0] == lock_id:
        cond = last[1]()
        if cond is not None and _queues(cond, lock_id):  # still queued there: that answer holds
            return cond
    for candidate in gc.get_objects():
        if isinstance(candidate, threading.Condition) and _queues(candidate, lock_id):
            _last_found = (lock_id, weakref.ref(candidate))
            return candidate
    return None


def _queued_in(wait: _locks.LockWait | None) -> threading.Condition | None:
    """The Condition that has queued the lock of `wait` (a lock wait
    _locks.identify() found, parked) as its waiter, if any."""
    return _condition_queueing(wait.lock_id) if wait is not None and wait.parked else None


def in_condition_wait(blocked: _syscalls.Blocked) -> bool:
    """Whether a futex wait /proc showed is parked on a lock that a Condition
    has queued as its waiter: the thread is inside Condition.wait()."""
    return _queued_in(_locks.identify(None, blocked)) is not None


def _wake_unseen_futex(native_id: int, blocked: _syscalls.Blocked) -> WakeResult:
    """Free-threaded builds, where no frame says what a futex wait is for:
    end it if it is parked on a lock that a Condition has queued as its
    waiter (Event.wait, Queue.get...).  Any other may be a lock wait where
    the exception must not land (a bare acquire, or a with statement that
    would release the holder's lock): UNSAFE_TO_LAND."""
    wait = _locks.identify(None, blocked)
    cond = _queued_in(wait)
    if wait is None or cond is None:
        name = "futex" if wait is None else wait.name
        return WakeResult(WakeStatus.UNSAFE_TO_LAND, f"{name} (free-threaded build: no frame to judge it by)")

    def still_parked_on(cond: threading.Condition) -> object:
        # Under the condition's lock: the lock queued there at that address
        # is the one the thread waits on, if the thread is still parked on
        # the lock at that address (an address is one live object's), as its
        # system call and parking-lot entry show.
        # (no notify(), wait() or removal changes the queue while we hold
        # the condition's lock: iterated in place)
        queued = next((w for w in cond._waiters if id(w) == wait.lock_id), None)  # type: ignore[attr-defined]
        try:
            now = _syscalls.blocked_call(native_id)
        except OSError:  # exiting
            return None
        if now is None or now.number != blocked.number or now.arg0 != blocked.arg0:
            return None
        return queued if _syscalls.read_word(wait.guard_addr) == wait.guard_value else None

    return _release_waiter(cond, still_parked_on)


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
        why = ("CPython's parking lot, which can hand the lock over after the wake" if wait.parked
               else "untimed, CPython's semaphore")
        return WakeResult(WakeStatus.UNSAFE_TO_LAND, f"{name} ({why})"), wait
    return WakeResult(WakeStatus.WOKEN, name), wait


def _wake_lock_wait(frame: FrameType | None, native_id: int, blocked: _syscalls.Blocked,
                    core: ModuleType) -> WakeResult:
    """A futex wait: end it if it is a Lock/RLock acquire we can end soundly."""
    verdict, wait = _lock_verdict(frame, blocked, core)
    if verdict.status is not WakeStatus.WOKEN or wait is None:
        return verdict
    return _send(core, native_id, wait.name, blocked, wait.result, guard=(wait.guard_addr, wait.guard_value))


def _acquire_calls(code: CodeType) -> frozenset[int]:
    """Offsets of the calls that may be a lock's acquire: calls on a line that
    loads a name acquire/__enter__/_acquire_restore before them (errs towards
    too many: withholding costs a poll)."""
    return _frames.calls_naming(code, _frames.ACQUIRING)


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


_RELEASING = _frames.RELEASING | {"_release_save"}


def _in_call(frame: FrameType, lasti: int, blocked: _syscalls.Blocked | OSError | None) -> bool:
    """Whether the thread is inside the call its innermost frame is at (so
    an exception scheduled now lands as that call returns), rather than
    possibly stopped at a check to give up the GIL (3.13+: it lands at the
    next check).  /proc tells: a system call other than a futex wait, or a
    futex wait that is a Lock's or RLock's (_locks.identify()); any other
    futex wait may be the GIL's, timed or not (the GIL's mutex is waited
    for untimed: seen at a function's RESUME on 3.13.0).  Where /proc is
    not read, or lock waits are not told apart, only the waits wake() ends
    are taken to be in their call (a thread blocked in Event.wait() must
    stay killable there; README, Limits)."""
    if isinstance(blocked, OSError) or (
            blocked is not None and blocked.number == _syscalls.FUTEX and not _syscalls.LOCK_WAITS):
        waiting = _waiting_frame(frame)
        return waiting is frame and (waiting.f_code in _JOIN_CODES
                                     or not _sync_code.critical_at(frame, lasti))
    if blocked is None:
        return False  # on a CPU: in a C call that let the GIL go, or on its way to block
    if blocked.number != _syscalls.FUTEX:
        return True
    return _locks.identify(frame, blocked) is not None


def _lands_soundly(frame: FrameType, lasti: int, blocked: _syscalls.Blocked | OSError | None) -> bool:
    """Whether an exception scheduled now into the thread whose innermost
    frame is `frame` lands where it breaks none of threading's or queue's
    primitives, and, where it lands at a next check (3.13+, a thread not in
    a call: _landing.py), not right after an acquire() the thread has yet to
    make, nor at the start of a Python release()/__exit__ it has yet to run
    (the lock would stay held), nor, in any frame, in a ``finally`` block
    before its release or in a Python release() that has yet to let go
    (_landing.skips_a_release()).  An exception
    landing at the call the thread is at is judged by the caller
    (at_acquire_call(), lock waits).
    `lasti`: where the frame was when read (_in_call() can let the GIL go:
    the thread may move meanwhile, and _inject_if_at() schedules only if
    it is back there)."""
    if lasti + 2 in _landing.unprotected_cleanup(frame.f_code):
        return False  # up to 3.10: it lands before the next instruction, in a finally's normal path
    landings = [(frame, lasti)]
    if _landing.LANDS_AT_NEXT_CHECK and not _in_call(frame, lasti, blocked):
        following = _landing.next_checks(frame, lasti)
        if following is None:
            return False  # it raises first, or returns out of sight: unknown
        for caller, offset in following:
            code = caller.f_code
            if (at_acquire_call(caller, offset) or offset in _frames.calls_naming(code, _RELEASING)
                    or offset in _landing.with_exits(code)):
                return False
        landings.extend(following)
    return not any(_sync_code.critical_at(caller, offset) or _landing.skips_a_release(caller, offset)
                   for caller, offset in landings)


def _in_a_watch_callback_in_own_code(frame: FrameType | None) -> bool:
    """Whether the thread runs one of the watch's callbacks (_monitor.py)
    for an event in the code of threading, queue or threadinject, or at the
    start of a function such code calls (for a loop's jump, only its own
    frame counts: a thread's target function is called by Thread.run).  An
    exception landing in a callback comes out at its event, as if raised
    there: this withholds it wherever the watch itself never raises
    (_monitor._raises_at_start()), so that the two agree.  kill() waits the
    few microseconds until that callback has returned.  A second line of
    defence: for threading's and queue's classes the outward walk of
    _sync_code.critical_at() withholds too.  At the start of
    ``Condition._acquire_restore`` in ``Condition.wait``'s ``finally``, or
    of a Python lock's ``acquire()`` it calls (a landing there would leave
    the condition's lock not taken back), each rule alone judges the thread
    unsafe: tests/test_monitor.py holds a thread in the callback there, and
    fails only with both removed (measured 2026-11-28 on 3.9.18 and 3.13.0;
    the same judgement on 3.11.7, 3.12.1 and 3.14.10).  No case is known
    where this rule alone withholds.

    Only there: a callback at an event in other code is judged as before.
    Withholding during every callback (1cf9d49) starved kills of a thread
    whose safe moments were mostly spent in one: on 3.14.10
    tests/test_finally.py's loop with a call in its ``finally`` was not
    killed in 10 s (CI, 2026-11-28), having passed before.  With an earlier
    form of the 3.9-3.11 trace function, which raised at lines too, the lock
    loop of tests/test_next_check.py was left holding its lock within a few
    of 60 kills on 3.9.18 without any such check (a kill scheduled during a
    line event's callback came out at a ``try:`` line); the calls-only form
    shipped passes without it."""
    callback = None
    while frame is not None:
        if frame.f_code.co_filename == _monitor.__file__:
            callback = frame.f_code  # the outermost one is the callback itself
        elif callback is not None:  # the frame of the event
            if _monitor._skipped(frame.f_code):
                return True
            caller = frame.f_back  # a start: also who called it
            return callback.co_name != "_on_jump" and caller is not None and _monitor._skipped(caller.f_code)
        frame = frame.f_back
    return False


def _unsafe_as_read(thread: threading.Thread, core: ModuleType | None) -> Judgement:
    """unsafe_to_land() from what was read of the thread: whether an
    exception scheduled now could land right after a lock's acquire()
    succeeds, before the `try` that would release it; kill() withholds it
    until the thread is past that call.

    Unsafe: a thread blocked in a bare acquire() we cannot end
    (UNSAFE_TO_LAND), one that is at a call that may be an acquire
    without being in a lock wait we end: running, or waiting for the GIL on
    its way back from a wait that has just succeeded (an exception scheduled
    then lands at that call's return, holding the lock), and one where the
    exception would land in threading's or queue's own code anywhere but at
    their waits (_sync_code.py), or, on 3.13+, at a next check that may be
    an acquire's (_lands_soundly()).
    """
    if not _frames.READABLE:
        # free-threaded: no frame to judge by, and the thread runs on while
        # judged anyway; the exception is scheduled as it is (README, Limits)
        return Judgement(False, None, -1)
    # /proc first, the frames after: reading /proc lets the GIL go, and a
    # running thread moves on meanwhile; read in this order, the frame is
    # the one the thread is at when _inject_if_at() checks it, a few
    # microseconds later with no GIL release in between as a rule.  Read
    # the other way round, a busy thread was rarely found where it had been
    # judged and kill() starved it (CI, 3.9: nothing scheduled in 0.2 s).
    blocked: _syscalls.Blocked | OSError | None = OSError()
    wakes_calls = core is not None and core.WAKE_SUPPORTED and _syscalls.SUPPORTED
    if _syscalls.SUPPORTED and thread.native_id is not None:  # either backend: _lands_soundly() reads it
        try:
            blocked = _syscalls.blocked_call(thread.native_id)
        except OSError as exc:  # the task is exiting
            blocked = exc
    frame = _frames.innermost(thread.ident)
    lasti = frame.f_lasti if frame is not None else -1
    if frame is None:
        return Judgement(False, frame, lasti)  # no Python code
    if _in_a_watch_callback_in_own_code(frame):
        return Judgement(True, frame, lasti)
    if not _lands_soundly(frame, lasti, blocked):
        return Judgement(True, frame, lasti)
    if _waiting_frame(frame) is not None:
        # a Condition wait (its waiter lock is wake()'s to release) or a join
        return Judgement(False, frame, lasti)
    if not wakes_calls or isinstance(blocked, OSError):  # no wake, not read, or the task is exiting
        return Judgement(at_acquire_call(frame, lasti), frame, lasti)
    if blocked is None:
        return Judgement(at_acquire_call(frame, lasti), frame, lasti, RUNNING)
    if blocked.number != _syscalls.FUTEX:
        return Judgement(False, frame, lasti, blocked.number, blocked.arg0)  # in another system call
    if not _syscalls.LOCK_WAITS:
        # lock waits are not told apart here: by the frame alone
        return Judgement(at_acquire_call(frame, lasti), frame, lasti)
    assert core is not None
    verdict, wait = _lock_verdict(frame, blocked, core)
    if wait is None:
        # any other futex (the GIL's) is as safe as the call the thread is at
        return Judgement(at_acquire_call(frame, lasti), frame, lasti, RUNNING)
    if verdict.status is WakeStatus.WOKEN:
        # safe if ended as the exception is scheduled (kill() does so); a
        # wait the signal cannot reach would end with the lock.  Read only
        # here: each /proc read lets the GIL go, and a running thread keeps
        # it up to the switch interval (5 ms) each time
        assert thread.native_id is not None
        try:
            signal_blocked = _syscalls.signal_blocked(thread.native_id, _syscalls.chosen_signal())
        except OSError:  # the task is exiting
            return Judgement(True, frame, lasti)
        ending = (blocked.ip, wait.result, wait.guard_addr, wait.guard_value)
        return Judgement(signal_blocked, frame, lasti, blocked.number, blocked.arg0, ending)
    # a lock wait wake() defers is safe
    return Judgement(verdict.status is WakeStatus.UNSAFE_TO_LAND, frame, lasti, blocked.number, blocked.arg0)


def unsafe_to_land(thread: threading.Thread, core: ModuleType | None) -> Judgement:
    """Whether an exception scheduled now into `thread` could land where it
    leaves a lock held or a primitive broken (_unsafe_as_read()); also
    unsafe for a thread that is no longer where it was judged: identifying
    a lock wait reads memory, which lets the GIL go, and the thread runs
    meanwhile.  In the aarch64 VM (3.13.18) a thread read at its acquire()
    call had got the lock and run on by the time that call was looked at
    (the live frame's position then), was judged safe, was back at the call
    in its next round when _inject_if_at() checked, and took the kill right
    after its acquire() returned: the lock stayed held.  Positions are now
    judged as read, and a thread that has moved meanwhile is judged again
    at the next poll."""
    judged = _unsafe_as_read(thread, core)
    if judged.frame is not None and not judged.unsafe and (
            _frames.innermost(thread.ident) is not judged.frame or judged.frame.f_lasti != judged.lasti):
        return judged._replace(unsafe=True)
    return judged


#: Which futex wait a thread is in: its futex word and how often it had
#: blocked by then (a new wait on the same word counts one more)
WaitId = tuple[int, int]


class Seen(NamedTuple):
    """What /proc showed of a thread, consistently (free-threaded builds)."""

    blocked: _syscalls.Blocked | None
    """The system call it sleeps in; None: running (or moving, see below)."""
    switches: int
    """How often it had blocked by then (voluntary context switches): a new
    wait, even in the same call, counts one more.  -1: it kept blocking and
    waking while it was read (MOVING)."""
    sampled: tuple[_syscalls.Blocked, ...] = ()
    """MOVING: the futex waits those reads caught it in."""
    call: _syscalls.Blocked | None = None
    """MOVING: the last other system call those reads caught it in."""

    @property
    def wait(self) -> WaitId | None:
        """Which futex wait it is in, if any (MOVING counts as one)."""
        if self.switches < 0:
            return MOVING
        if self.blocked is None or self.blocked.number != _syscalls.FUTEX:
            return None
        return (self.blocked.arg0, self.switches)


#: Seen.wait of a thread that kept blocking and waking while it was read:
#: taken for a futex wait, never for a running thread
MOVING: WaitId = (0, -1)


def _seen(thread: threading.Thread) -> Seen | None:
    """What /proc shows of `thread`; None if it tells nothing (no
    system-call wake here, or the task is exiting)."""
    if not _syscalls.SUPPORTED or thread.native_id is None:
        return None
    caught = []  # the calls the reads caught it in while it kept moving
    for _ in range(3):
        try:
            # the count on both sides of the call's read: equal, they
            # belong to the wait that read saw
            before = _syscalls.voluntary_switches(thread.native_id)
            blocked = _syscalls.blocked_call(thread.native_id)
            after = _syscalls.voluntary_switches(thread.native_id)
        except OSError:
            return None
        if before == after:
            return Seen(blocked, after)
        caught.append(blocked)
    for _ in range(_MOVING_SAMPLES):  # a few more looks at what it keeps blocking in
        try:
            caught.append(_syscalls.blocked_call(thread.native_id))
        except OSError:
            return None
    futex = tuple(b for b in caught if b is not None and b.number == _syscalls.FUTEX)
    other = [b for b in caught if b is not None and b.number != _syscalls.FUTEX]
    return Seen(None, -1, futex, other[-1] if other else None)


#: How many more times _seen() reads the system call of a thread that keeps
#: blocking and waking
_MOVING_SAMPLES = 5


def still_as_seen(thread: threading.Thread, seen: Seen) -> bool:
    """Whether `thread` still sleeps in the very system call it was `seen`
    in: it has not returned from it since (no new wait counted)."""
    now = _seen(thread)
    return (now is not None and seen.blocked is not None and now.blocked is not None
            and seen.switches >= 0 and now.switches == seen.switches
            and now.blocked.number == seen.blocked.number and now.blocked.arg0 == seen.blocked.arg0)


class Withheld(NamedTuple):
    """Why kill() withholds its exception from a thread, on a free-threaded
    build (withhold_unseen())."""

    wait: WaitId | None
    """The Lock or RLock wait the thread was last seen in; None: seen
    running (or in another futex wait)."""
    cpu_ns: int
    """The CPU time it had used then (when first seen running, if so)."""
    resolution_ns: int
    call: _syscalls.Blocked | None = None
    """The last system call other than a futex wait it was seen in since: where
    kill() holds it to schedule the exception once it counts as running,
    rather than schedule it into a thread that may be about to call
    acquire() (HELD_TRIES)."""
    tries: int = 0
    """How often kill() has tried to hold it there since it counted as running."""
    at_release: bool = False
    """Held at a system call, it was found in a ``finally`` block before its
    release, or another place where the exception must not land
    (may_land_in_call()): it may stay there a while."""


#: How many times kill() tries to hold a thread judged running at the last
#: system call it was seen in (Withheld.call) before it schedules the
#: exception into the running thread all the same.  A thread that both
#: sleeps and takes a free lock (a worker loop: acquire, work, release,
#: sleep) is mostly caught "moving" by /proc and counts as running; an
#: exception scheduled into it as it runs lands wherever it is, right after
#: a bare acquire() too (a 3.13t stress run with the lock workloads left
#: the lock held that way after 5,149 kills, 2026-11-26).  Held at its
#: sleep, it lands there.  Each try is a signal, one poll of kill() apart.
HELD_TRIES = 20


#: CPU time a thread must use outside futex waits before kill() takes it to
#: be past any acquire() call.  Seeing it merely out of a lock wait is not
#: enough: a woken thread can be preempted on the way to the check after
#: the call, or park again within the same acquire() (Python/lock.c
#: retries); and before it parks, a free-threaded PyMutex spins, calling
#: sched_yield() up to 40 times (MAX_SPIN_COUNT, Python/lock.c, 3.13):
#: CPU time spent inside acquire() with no futex wait, 0.2 ms of it seen
#: under load.  A kill scheduled in any of these lands right after
#: acquire() returned True (stress runs on 3.13t with more threads than
#: cores left locks held all three ways).  20 ms is a hundred times that.
PAST_CALL_CPU_NS = 20_000_000


def withhold_unseen(thread: threading.Thread, withheld: Withheld | None,
                    searched: dict[int, _locks.LockWait | None]) -> tuple[Withheld | None, Seen | None]:
    """Free-threaded builds, no frame to read: whether an exception
    scheduled in `thread` now could land right after an acquire() call
    returned True.  `withheld`: this function's last answer; `searched`:
    kept by the caller for _locks.identify_unseen().

    Returns (why it could, None), or (None, what the answer relied on: the
    call the thread sleeps in, for the caller to check it is still there
    once the exception is scheduled; None if it relied on CPU time or on
    nothing).  Safe: a Condition's waiter (wake() ends it), another system
    call (no acquire() is on the way back from one), or running after using
    PAST_CALL_CPU_NS since it was last seen in a Lock or RLock wait (or
    first seen).  Futex waits of no Lock or RLock (tracemalloc's lock, an io
    buffer's, a contended dict's) count as running: a thread contending for
    them all the time was never killed (stress runs with --tracemalloc).
    A thread that kept blocking and waking while it was read is judged by
    the futex waits eight reads of its system call caught it in (caught in
    none, as running: a thread waiting for a Lock spends most of its time
    parked, and busy threads contending for tracemalloc's lock were caught
    in none, read after read, and never killed when that counted as a
    wait)."""
    seen = _seen(thread)
    if seen is None:
        return None, None  # nothing to judge by (README, Limits)
    if seen.blocked is not None and seen.blocked.number != _syscalls.FUTEX:
        return None, seen
    try:
        cpu_ns, resolution_ns = _syscalls.cpu_time(thread.native_id)  # type: ignore[arg-type]
    except OSError:  # the task is exiting
        return None, None
    wait = seen.wait
    lock_wait = None
    if wait is not None:
        caught = (seen.blocked,) if seen.blocked is not None else seen.sampled
        lock_wait = next((found for found in (_locks.identify_unseen(b, searched) for b in caught)
                          if found is not None), None)
        if lock_wait is None:
            wait = None
    if wait is None:
        if withheld is None:
            return Withheld(None, cpu_ns, resolution_ns, seen.call), None
        if cpu_ns - withheld.cpu_ns >= max(PAST_CALL_CPU_NS, 2 * withheld.resolution_ns):
            return None, None
        return withheld._replace(call=seen.call or withheld.call), None
    if (withheld is None or wait != withheld.wait) and seen.blocked is not None \
            and _queued_in(lock_wait) is not None:
        return None, seen  # searched once per wait: the search reads every object
    return Withheld(wait, cpu_ns, resolution_ns), None


#: What inject_in_call() asks before it schedules: whether the exception may
#: land in the held thread whose innermost frame this is
Judge = Callable[[FrameType], bool]


def may_land_in_call(frame: FrameType, blocked: _syscalls.Blocked) -> bool:
    """Whether an exception may land at the system call `blocked` of the
    thread whose innermost frame is `frame`, as it returns: not in
    threading's or queue's own code but at their waits, nor in a ``finally``
    block before its release (_lands_soundly()), nor in a watch callback
    (_in_a_watch_callback_in_own_code()).  The judge free-threaded kill()
    gives inject_in_call(): there `frame` is read while the thread is held
    at that call, the one moment its frames can be read soundly."""
    return not _in_a_watch_callback_in_own_code(frame) and _lands_soundly(frame, frame.f_lasti, blocked)


def inject_in_call(core: ModuleType | None, thread: threading.Thread, exc: BaseException,
                   blocked: _syscalls.Blocked, rewrite: bool = True,
                   judge: Judge | None = None) -> bool | None:
    """Free-threaded kill(): schedule `exc` in `thread` while the wake
    signal's handler holds it at the system call `blocked`, then let it go
    with the call's result rewritten, as wake() would: the exception lands at
    that call.  No GIL keeps a thread at its call otherwise: scheduled after a
    /proc read, an exception was seen to land right after the bare acquire()
    of the thread's next loop round, leaving the lock held (stress runs on
    3.13t).  Returns whether it was scheduled (False: the thread had left
    the call), or None where it cannot be done (no C backend or platform
    support, a call wake() does not end, not the interpreter's call, the
    signal blocked): the caller falls back to scheduling and re-checking.

    `rewrite=False`: let the call go on interrupted (-EINTR, which the
    interpreter's calls retry) instead, for a call seen some time ago: the
    thread may be in that same C library call made by other code by now,
    and no result is faked for it (the check that the interpreter made the
    call reads the stack `blocked` was seen with).  The exception lands as
    the call returns, or wake() ends the call meanwhile.

    `judge`: schedule only if judge(frame) is true for the thread's innermost
    frame, read while it is held (the C backend keeps it held for as long as
    that takes); else it is let go, its call interrupted, and False returned.
    The judge must keep no reference to the frame."""
    native_id = thread.native_id
    substitute = _syscalls.substitute_for(blocked.number)
    if (core is None or native_id is None or not core.WAKE_SUPPORTED or not _syscalls.SUPPORTED
            or substitute is None or blocked.number == _syscalls.FUTEX
            or (rewrite and _syscalls.called_from_interpreter(blocked.sp) is not True)):
        return None
    try:
        if _syscalls.signal_blocked(native_id, _syscalls.chosen_signal()):
            return None
    except OSError:  # the task is exiting
        return False
    rewrite = rewrite and not _syscalls.CPYTHON_RAISES_AFTER_EINTR
    return bool(core._inject_in_call(thread, exc, native_id, blocked.ip, blocked.arg0, substitute.result,
                                     substitute.zero_fdsets, rewrite, judge))


def at_acquire_call(frame: FrameType, lasti: int) -> bool:
    """Whether the frame, at `lasti` (where it was read), is at a call that
    may be a lock's acquire."""
    return lasti in _acquire_calls(frame.f_code)


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
    if (core is None or not core.WAKE_SUPPORTED or not _syscalls.SUPPORTED
            or (blocked.number == _syscalls.FUTEX and not _syscalls.LOCK_WAITS)):
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
        frame = _frames.innermost(ident)  # None on free-threaded builds
        waiting = _waiting_frame(frame)
        if waiting is not None and waiting.f_code is _CONDITION_WAIT:
            return _waiter_in_frame(waiting)
        if waiting is not None:
            # Thread.join is never woken: on 3.9-3.12 a join woken early
            # leaves the joined thread reporting is_alive() False while it runs
            return WakeResult(WakeStatus.UNSUPPORTED_CALL, "threading.Thread.join")
        if isinstance(blocked, WakeResult):
            return blocked
        assert target is not None and target.native_id is not None  # _blocked_call_of() found its call
        if not _frames.READABLE and _syscalls.SUPPORTED and blocked.number == _syscalls.FUTEX:
            # told from /proc and memory alone, and a Condition's waiter is
            # released in Python: the same for either backend
            return _wake_unseen_futex(target.native_id, blocked)
        return _wake_syscall(target, frame, blocked, core)

    return wake
