"""kill(): inject ThreadKilled, then wait for the thread to end."""

from __future__ import annotations

import math
import sys
import sysconfig
import threading
import time
from typing import Callable, Protocol

from ._errors import ThreadKilled, ThreadNotFoundError
from ._types import CancelFn, InjectFn, InjectIfAtFn, KillFn, PendingFn, ThreadArg
from ._wake import Judgement, WakeFn, WakeStatus, at_acquire_call

__all__ = ["KillAtExitFn", "make_kill", "make_kill_at_exit"]


def _check_timeout(timeout: float | None, fname: str = "kill") -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(
            f"{fname}() argument 'timeout' must be a number or None, not {type(timeout).__qualname__}"
        )
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"{fname}() argument 'timeout' must be >= 0, not {timeout!r}")
    return float(timeout)


def _quiet_on_kill(thread: threading.Thread) -> None:
    """Keep `thread` from reporting ThreadKilled through threading.excepthook.

    threading calls ``thread._invoke_excepthook(thread)`` for an exception that
    escapes ``run()`` (Lib/threading.py, 3.8-3.15); that reads the *current*
    ``threading.excepthook`` at that moment.  We wrap this one thread's
    ``_invoke_excepthook`` so that ThreadKilled ends the thread as quietly as a
    return from ``run()``, and every other exception still reaches whatever
    hook is installed then: user hooks, pytest's, the default.  No global state
    is changed.
    """
    invoke = getattr(thread, "_invoke_excepthook", None)
    if invoke is None or getattr(invoke, "_threadinject_quiet", False):
        return

    def invoke_excepthook(thread: threading.Thread) -> None:
        if isinstance(sys.exc_info()[1], ThreadKilled):
            return
        invoke(thread)

    invoke_excepthook._threadinject_quiet = True  # type: ignore[attr-defined]
    thread._invoke_excepthook = invoke_excepthook  # type: ignore[attr-defined]


def _as_thread(thread: object) -> threading.Thread | None:
    if isinstance(thread, threading.Thread):
        return thread
    if isinstance(thread, int) and not isinstance(thread, bool):
        return threading._active.get(thread)  # type: ignore[attr-defined, no-any-return]
    raise TypeError(
        "kill() argument 'thread' must be a threading.Thread or an int thread "
        f"ident, not {type(thread).__qualname__}"
    )


def _poll(done: Callable[[], bool], deadline: float | None, first: float, most: float) -> bool:
    """Call done() until it is true, sleeping `first` seconds, then twice as
    long each time up to `most`; False once `deadline` has passed."""
    delay = first
    while not done():
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return False
        time.sleep(delay if left is None else min(delay, left))
        delay = min(delay * 2, most)
    return True


def _wait_until_in_run(thread: threading.Thread, deadline: float | None) -> None:
    """Wait until `thread` executes its run() method (or has ended).

    Thread.start() returns while the new thread is still in threading's own
    bootstrap code; an exception landing there escapes the handler that
    reports exceptions from run() and is printed as "Exception ignored in
    thread started by ...", and before the thread is registered it even
    breaks threading's bookkeeping (seen on free-threaded 3.13t, where the
    starter and the new thread truly run at once).  So kill() first waits for
    the run() frame to be on the thread's stack.
    """
    if isinstance(thread, (threading._MainThread, threading._DummyThread)):  # type: ignore[attr-defined]
        return  # not started by threading.Thread.start(): no bootstrap, no run()
    run = getattr(type(thread).run, "__code__", None)
    if run is None:  # run() is not Python code: nothing to look for
        return

    def in_run() -> bool:
        frame = sys._current_frames().get(thread.ident)  # type: ignore[arg-type]
        while frame is not None:
            if frame.f_code is run:
                return True
            frame = frame.f_back
        return False

    _poll(lambda: not thread.is_alive() or in_run(), deadline, 0.00005, 0.005)


def _wait_ident_gone(ident: int, deadline: float | None, pending: PendingFn) -> bool:
    """Wait for a thread threading does not know (no Thread to join).

    It has ended once it has received the exception and no longer runs Python
    code (sys._current_frames() lists only threads that do).
    """

    def gone() -> bool:
        try:
            return pending(ident) is None and ident not in sys._current_frames()
        except ThreadNotFoundError:
            return True

    return _poll(gone, deadline, 0.0001, 0.01)


def _position(thread: threading.Thread) -> tuple[object, int] | None:
    """Where the thread is: its innermost frame and instruction."""
    frame = sys._current_frames().get(thread.ident)  # type: ignore[arg-type]
    return None if frame is None else (frame, frame.f_lasti)


def _past_call(thread: threading.Thread, position: tuple[object, int] | None) -> bool:
    """Whether the thread has gone past the call it waited in at `position`.

    Past means: that frame has returned, or it has moved on to a *later*
    instruction (executing it, or calling from there).  An earlier one means
    the thread has looped back towards the same call, where an exception
    scheduled now could land right after the call succeeds.  A later one lies
    after the check that follows the call, so the exception lands further on:
    inside the `try` that releases what the call acquired, or after it.
    """
    if position is None:
        return True
    waiting, lasti = position
    frame = sys._current_frames().get(thread.ident)  # type: ignore[arg-type]
    while frame is not None and frame is not waiting:
        frame = frame.f_back
    return frame is None or frame.f_lasti > lasti


def _schedule_or_withhold(thread: threading.Thread, inject: InjectFn, inject_if_at: InjectIfAtFn,
                          judged: Judgement) -> tuple[object, int] | None:
    """Inject ThreadKilled, unless it could land right after a lock's
    acquire() succeeds: then return where the thread is, to wait until it is
    past that call.

    The classification reads /proc and frames, and the thread can move on
    meanwhile (with a GIL, whenever this code lets the GIL go): a thread
    judged safe at one call could be back at an acquire by the time the
    exception is scheduled, and a hand-over would then leave the lock held
    (seen in stress runs on a loaded machine).  So the exception is
    scheduled only if the thread is still in the state it was judged in (its
    frame, instruction and system call), checked in the same step as the
    scheduling (the C backend's _inject_if_at).  If it has moved, its new
    position is returned, to be judged again.  `judged`: unsafe_to_land()'s
    answer for the thread."""
    if judged.unsafe:
        return _position(thread)
    if judged.frame is None:  # no Python code on its stack: at no call of its own
        inject(thread, ThreadKilled)
        return None
    ending = () if judged.wake is None else (judged.wake,)
    if inject_if_at(thread, ThreadKilled, judged.frame, judged.lasti, thread.native_id or 0,
                    judged.syscall, judged.arg0, *ending):
        return None
    now = _position(thread)
    if _FREE_THREADED:
        # The thread runs on while it is judged: insisting on the judged
        # state would starve a running thread (seen: a busy thread never
        # scheduled within 5 s).  Best effort there: judge by the call it is
        # at now (README, Limits).
        if now is not None and at_acquire_call(now[0]):  # type: ignore[arg-type]
            return now
        inject(thread, ThreadKilled)
        return None
    return now


_FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def _join_waking(thread: threading.Thread, deadline: float | None, wake: WakeFn,
                 inject: InjectFn, inject_if_at: InjectIfAtFn, cancel: CancelFn,
                 unsafe_to_land: Callable[[threading.Thread], Judgement],
                 withheld_at: tuple[object, int] | None) -> None:
    """join(), waking the thread from its waits while its exception is pending.

    wake() is repeated because a thread can enter a new wait after a first
    call found it running, or was between queueing its waiter and blocking.
    Polls stay frequent while the thread is running, being woken or about to
    move past a withheld wait; they back off to 0.1 s while it sits in a wait
    that wake() leaves alone (deferred, unsupported).

    Where the exception must not land when the wait ends (unsafe_to_land: a
    bare acquire() it would leave held), it is withdrawn (or was never
    scheduled) and scheduled again once the thread is past that call
    (_past_call): inside the code the acquire protects (its `try`), or after
    it.  With a GIL a thread only stops running bytecode at a check that is
    followed by the asynchronous-exception check, or inside a C call, whose
    position is what unsafe_to_land() looks at.  If kill() gives up first,
    the exception stays withdrawn.
    """
    pause = 0.001
    while thread.is_alive():
        status = WakeStatus.NOT_BLOCKED
        try:
            if withheld_at is not None:
                status = WakeStatus.UNSAFE_TO_LAND
                # past the call, or blocked in it after all, in a wait that
                # wake() ends or defers (it was running when withheld)
                judged = unsafe_to_land(thread)
                if not judged.unsafe or _past_call(thread, withheld_at):
                    withheld_at = _schedule_or_withhold(thread, inject, inject_if_at, judged)
            elif (judged := unsafe_to_land(thread)).wake is not None:
                # in a lock wait with the exception pending (it got there
                # from C code): withdraw it and schedule it again as the wait
                # is ended, in one step
                status = WakeStatus.WOKEN
                if cancel(thread):
                    withheld_at = _position(thread)  # withdrawn, if scheduling fails
                    withheld_at = _schedule_or_withhold(thread, inject, inject_if_at, judged)
            else:
                status = wake(thread).status
                if status is WakeStatus.UNSAFE_TO_LAND and cancel(thread):
                    withheld_at = _position(thread)
        except TimeoutError:
            # the thread did not take the wake signal (stopped by a
            # debugger, an overloaded machine): the exception was withdrawn,
            # and every other thread waited with it; poll slowly
            status = WakeStatus.SIGNAL_BLOCKED
        except ThreadNotFoundError:  # it has just finished
            pass
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return  # a withheld kill stays withdrawn: nothing is left to land later
        thread.join(pause if left is None else min(pause, left))
        pause = min(pause * 2, 0.005 if status in _SOON else 0.1)


# statuses after which the thread may move on any moment: poll every few ms
_SOON = (WakeStatus.WOKEN, WakeStatus.NOT_BLOCKED, WakeStatus.NOTHING_PENDING, WakeStatus.UNSAFE_TO_LAND)


def make_kill(inject: InjectFn, pending: PendingFn, cancel: CancelFn, wake: WakeFn,
              unsafe_to_land: Callable[[threading.Thread], Judgement],
              inject_if_at: InjectIfAtFn) -> KillFn:
    """Build kill() on a backend's inject(), pending(), cancel() and
    _inject_if_at(), wake() on them, and unsafe_to_land() (whether the thread
    waits where the exception must not be left pending)."""

    def kill(thread: ThreadArg, timeout: float | None = None) -> bool:
        """Raise ThreadKilled in `thread`, then wait up to `timeout` seconds for it to end.

        Escalation: inject ThreadKilled; wake the thread from a wait that
        wake() can end (Condition waits; system calls and lock waits on Linux
        x86-64), repeatedly while it is pending; in a bare acquire() where it
        must not land (UNSAFE_TO_LAND) withdraw it until the thread is past the
        call; join until `timeout`.  Returns whether the thread has ended
        (False leaves the exception pending, or withdrawn if withheld).
        Killing the calling thread raises ThreadKilled at once.  A Thread that has already finished counts
        as ended; an unstarted Thread or an unknown ident raises
        ThreadNotFoundError.
        """
        timeout = _check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        target = _as_thread(thread)
        ident = target.ident if target is not None else thread
        if target is not None:
            _quiet_on_kill(target)
        if ident == threading.get_ident():
            raise ThreadKilled()
        if target is not None:
            _wait_until_in_run(target, deadline)
        withheld_at = None
        try:
            if target is None:
                inject(thread, ThreadKilled)
            else:
                # not even scheduled where it could land holding a lock: the
                # lock could be handed over before a wake() withdrew it
                withheld_at = _schedule_or_withhold(target, inject, inject_if_at, unsafe_to_land(target))
        except ThreadNotFoundError:
            if target is None or not target._started.is_set():  # type: ignore[attr-defined]
                raise
            # it finished before the exception could be scheduled
        except TimeoutError:  # it did not take the wake signal: try again in the polls
            withheld_at = _position(target)  # type: ignore[arg-type]
        if target is None or isinstance(target, threading._DummyThread):
            # not started by threading: nothing to join, watch the ident instead
            assert isinstance(ident, int)
            try:
                wake(ident)
            except ThreadNotFoundError:
                return True
            return _wait_ident_gone(ident, deadline, pending)
        _join_waking(target, deadline, wake, inject, inject_if_at, cancel, unsafe_to_land, withheld_at)
        return not target.is_alive()

    return kill


class KillAtExitFn(Protocol):
    def __call__(self, thread: threading.Thread, timeout: float | None = None) -> None: ...


def make_kill_at_exit(kill: KillFn) -> KillAtExitFn:
    """Build kill_at_exit() on a kill()."""

    def kill_at_exit(thread: threading.Thread, timeout: float | None = None) -> None:
        """At interpreter exit, kill `thread` if it is still running.

        A non-daemon thread keeps the interpreter from exiting: at exit,
        threading joins it first.  This registers the kill with
        threading._register_atexit (3.9+), whose functions run before that
        join, so the program can always end.  `timeout` is passed to kill().
        """
        if not isinstance(thread, threading.Thread):
            raise TypeError(
                "kill_at_exit() argument 'thread' must be a threading.Thread, "
                f"not {type(thread).__qualname__}"
            )
        timeout = _check_timeout(timeout, "kill_at_exit")

        def at_exit() -> None:
            if thread.is_alive():
                kill(thread, timeout)

        threading._register_atexit(at_exit)  # type: ignore[attr-defined]

    return kill_at_exit
