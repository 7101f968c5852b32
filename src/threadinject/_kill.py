"""kill(): inject ThreadKilled, then wait for the thread to end."""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from types import FrameType
from typing import Callable, Protocol

from . import _frames, _monitor, _swallowed, _syscalls
from ._errors import ThreadKilled, ThreadNotFoundError
from ._locks import LockWait
from ._types import CancelFn, InjectFn, InjectIfAtFn, KillFn, PendingFn, ThreadArg
from ._wake import (
    HELD_TRIES,
    MOVING,
    RUNNING,
    UNREAD,
    Judge,
    Judgement,
    Seen,
    WakeFn,
    WakeStatus,
    Withheld,
    in_condition_wait,
    may_land_in_call,
    pass_on_a_notification,
    rechecking_condition,
    still_as_seen,
    withhold_unseen,
)

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
    the run() frame to be on the thread's stack; on free-threaded builds,
    where the stack cannot be read, for a sign that run() was called.
    """
    if isinstance(thread, (threading._MainThread, threading._DummyThread)):  # type: ignore[attr-defined]
        return  # not started by threading.Thread.start(): no bootstrap, no run()
    if not _frames.READABLE:
        _wait_until_run_called(thread, deadline)
        return
    run = getattr(type(thread).run, "__code__", None)
    if run is None:  # run() is not Python code: nothing to look for
        return
    _poll(lambda: not thread.is_alive() or _frames.on_stack(thread.ident, run), deadline, 0.00005, 0.005)


# How long kill() waits, on free-threaded builds, for a thread that has left
# threading's registration to call run(): it is a few bytecodes away
_RUN_CALL_WAIT = 0.02


def _wait_until_run_called(thread: threading.Thread, deadline: float | None) -> None:
    """_wait_until_in_run() without reading frames (free-threaded builds).

    threading's bootstrap looks up ``self.run`` only after it has taken the
    thread out of ``threading._limbo`` (Lib/threading.py, _bootstrap_inner,
    3.9-3.15).  So run() is wrapped in an instance attribute that reports its
    call: a thread still in _limbo once the wrapper is in place will call it.
    One found already out of _limbo may have looked run() up before: it is
    taken to be in run() if /proc shows it past those few bytecodes (it has
    used CPU time that they do not take, or sits in a system call other
    than a futex wait: none is made there), else given _RUN_CALL_WAIT
    seconds to call the wrapper (README, Limits: the window left)."""
    if not thread.is_alive():  # not started yet, or ended: kill() tells which
        return
    called = getattr(thread, "_threadinject_run_called", None)
    if called is None:
        called = threading.Event()
        run = thread.run

        def reporting_run() -> None:
            called.set()
            run()

        thread._threadinject_run_called = called  # type: ignore[attr-defined]
        thread.run = reporting_run  # type: ignore[method-assign]
    if thread not in threading._limbo:  # type: ignore[attr-defined]
        if _past_bootstrap(thread):
            return
        ambiguous = time.monotonic() + _RUN_CALL_WAIT
        deadline = ambiguous if deadline is None else min(deadline, ambiguous)
    _poll(lambda: not thread.is_alive() or called.is_set(), deadline, 0.00005, 0.005)


def _past_bootstrap(thread: threading.Thread) -> bool:
    """Whether /proc shows that `thread`, out of threading._limbo, has gone
    past the bytecodes that lead from there to run() (Linux).

    Those bytecodes make no system call but a futex wait (a contended lock
    of the interpreter's), and no Condition wait (Lib/threading.py,
    _bootstrap_inner, 3.13-3.15: _started.set() comes before the thread
    leaves _limbo): a thread parked on a Condition's waiter lock is in
    run().  Found so, a thread that started waiting on an Event or a Queue
    costs the kill no _RUN_CALL_WAIT."""
    if not _syscalls.LOCK_WAITS or thread.native_id is None:  # where Condition waits are told apart
        return False
    try:
        if _syscalls.cpu_ticks(thread.native_id) > 0:  # 10 ms and more: not threading's start-up
            return True
        blocked = _syscalls.blocked_call(thread.native_id)
    except OSError:  # it is exiting
        return True
    if blocked is None:
        return False
    return blocked.number != _syscalls.FUTEX or in_condition_wait(blocked)


def _wait_ident_gone(ident: int, deadline: float | None, pending: PendingFn) -> bool:
    """Wait for a thread threading does not know (no Thread to join).

    It has ended once it has received the exception and no longer runs Python
    code (sys._current_frames() lists only threads that do).
    """

    def gone() -> bool:
        try:
            return pending(ident) is None and not _frames.runs_python(ident)
        except ThreadNotFoundError:
            return True

    return _poll(gone, deadline, 0.0001, 0.01)


def _position(thread: threading.Thread) -> tuple[object, int] | None:
    """Where the thread is: its innermost frame and instruction (GIL builds)."""
    frame = _frames.innermost(thread.ident)
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
    frame = _frames.innermost(thread.ident)
    while frame is not None and frame is not waiting:
        frame = frame.f_back
    return frame is None or frame.f_lasti > lasti


def _first_scheduling(thread: threading.Thread, inject: InjectFn, inject_if_at: InjectIfAtFn,
                      unsafe_to_land: Callable[[threading.Thread], Judgement]
                      ) -> tuple[tuple[object, int] | None, threading.Condition | None]:
    """kill()'s first step: schedule ThreadKilled, or withhold it where it
    could land holding a lock (not even scheduled: the lock could be handed
    over before a wake() withdrew it); returns where it was withheld, and the
    Condition whose notification the thread would die with (a Queue.get/put
    or Semaphore.acquire waiter a notify() chose: kill() passes it on once
    the thread has ended).  Both from one reading of the thread's frames;
    a function of its own so that the frame read is not kept, with the
    thread's locals, for the whole kill."""
    judged = unsafe_to_land(thread)
    notified_in = rechecking_condition(judged.frame)
    try:
        return _schedule_or_withhold(thread, inject, inject_if_at, judged), notified_in
    except TimeoutError:  # it did not take the wake signal: try again in the polls
        return _position(thread), notified_in


def _schedule_or_withhold(thread: threading.Thread, inject: InjectFn, inject_if_at: InjectIfAtFn,
                          judged: Judgement, killed: BaseException | type[BaseException] = ThreadKilled
                          ) -> tuple[object, int] | None:
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
    answer for the thread; `killed`: what to raise."""
    if judged.unsafe:
        return _position(thread)
    if judged.frame is None:
        # no Python code on its stack (at no call of its own), or no frame
        # to judge by (free-threaded builds: README, Limits)
        inject(thread, killed)
        return None
    ending = () if judged.wake is None else (judged.wake,)
    if inject_if_at(thread, killed, judged.frame, judged.lasti, thread.native_id or 0,
                    judged.syscall, judged.arg0, *ending):
        return None
    return _position(thread)


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

    _WATCH_AFTER after it was first withheld, the thread is also left to
    raise the exception itself where its own frame allows (_monitor.py:
    sys.monitoring from 3.12, a trace function in that thread on 3.9-3.11
    with the C extension): one that runs almost only through threading's primitives
    (polling an Event with wait(0)) is seldom where an exception scheduled
    from here may land, from 3.13 (it lands at the thread's next check), or
    with two such threads (they keep each other in the primitive's lock
    wait).  kill() then claims the delivery before each scheduling of its
    own.
    """
    with contextlib.ExitStack() as watching:
        delivery = _Delivery(thread, watching)
        pause = 0.001
        while thread.is_alive():
            status = WakeStatus.NOT_BLOCKED
            running = False
            if _swallowed.take(thread.ident):
                # landed in a finalizer or weakref callback, which CPython
                # reported and went on: judged and scheduled again
                delivery.swallowed()
                withheld_at = _position(thread)
            try:
                if delivery.raised_by_thread():
                    pass  # on its way out: nothing is left to schedule or wake
                elif withheld_at is not None:
                    status = WakeStatus.UNSAFE_TO_LAND
                    # past the call, or blocked in it after all, in a wait that
                    # wake() ends or defers (it was running when withheld)
                    judged = unsafe_to_land(thread)
                    running = judged.syscall in (UNREAD, RUNNING)
                    if not judged.unsafe or _past_call(thread, withheld_at):
                        withheld_at = delivery.schedule(inject, inject_if_at, judged)
                    if withheld_at is not None:
                        delivery.withheld()
                elif (judged := unsafe_to_land(thread)).wake is not None:
                    # in a lock wait with the exception pending (it got there
                    # from C code): withdraw it and schedule it again as the wait
                    # is ended, in one step
                    status = WakeStatus.WOKEN
                    if delivery.cancel(cancel):
                        withheld_at = _position(thread)  # withdrawn, if scheduling fails
                        withheld_at = delivery.schedule(inject, inject_if_at, judged)
                else:
                    status = wake(thread).status
                    if status is WakeStatus.UNSAFE_TO_LAND and delivery.cancel(cancel):
                        withheld_at = _position(thread)
            except TimeoutError:
                # the thread did not take the wake signal (stopped by a
                # debugger, an overloaded machine): the exception was withdrawn,
                # and every other thread waited with it; poll slowly
                status = WakeStatus.SIGNAL_BLOCKED
            except ThreadNotFoundError:  # it has just finished
                pass
            if not _join_a_while(thread, deadline, pause):
                return  # a withheld kill stays withdrawn: nothing is left to land later
            # A running thread withheld from is looked at every millisecond: one
            # that is rarely where the kill may land (polling an Event with
            # wait(0): README, Limits) is found there sooner
            pause = 0.001 if running else min(pause * 2, 0.005 if status in _SOON else 0.1)


# How long after kill() first withheld its exception on a GIL build it also
# lets the thread raise it itself (_monitor.py)
_WATCH_AFTER = 0.02


class _Delivery:
    """kill()'s scheduling of ThreadKilled on a GIL build, and the watch
    (_monitor.py) it adds _WATCH_AFTER after it first withheld it: with a
    watch, exactly one of the two delivers (each scheduling is claimed
    first, and each withdrawal gives the claim back)."""

    def __init__(self, thread: threading.Thread, watching: contextlib.ExitStack) -> None:
        self._thread = thread
        self._watching = watching
        self._withheld_since: float | None = None
        self._watch: _monitor.Watch | None = None
        self._tried = False

    def raised_by_thread(self) -> bool:
        """Whether the thread has raised the exception itself (or is raising it)."""
        return self._watch is not None and self._watch.raised

    def schedule(self, inject: InjectFn, inject_if_at: InjectIfAtFn,
                 judged: Judgement) -> tuple[object, int] | None:
        """_schedule_or_withhold(), claiming the delivery first if watched."""
        watch = self._watch
        if watch is None:
            return _schedule_or_withhold(self._thread, inject, inject_if_at, judged)
        if not watch.claim():
            return None  # raised by the thread, or delivered by another kill() of it sharing the watch
        try:
            at = _schedule_or_withhold(self._thread, inject, inject_if_at, judged, watch.exc)
        except BaseException:
            watch.unclaim()  # nothing was left scheduled
            raise
        if at is not None:
            watch.unclaim()
        return at

    def cancel(self, cancel: CancelFn) -> bool:
        """cancel() what was scheduled, giving the claim back if it was withdrawn."""
        if not cancel(self._thread):
            return False
        if self._watch is not None:
            self._watch.unclaim()
        return True

    def swallowed(self) -> None:
        """CPython swallowed the exception (_swallowed.py): the watch, if
        any, may raise it again."""
        if self._watch is not None:
            _monitor.deliver_again(self._thread.ident, self._watch)  # type: ignore[arg-type]

    def withheld(self) -> None:
        """The exception is withheld from the thread: add the watch once
        it has been withheld for _WATCH_AFTER since it first was."""
        now = time.monotonic()
        if self._withheld_since is None:
            self._withheld_since = now
        elif now - self._withheld_since >= _WATCH_AFTER and not self._tried:
            self._tried = True
            # None where it cannot be done (no free sys.monitoring tool id;
            # 3.9-3.11 without the C extension, or a thread with a trace
            # function of its own); kills of the same thread at once share
            # one watch, and claim it the same way
            self._watch = self._watching.enter_context(_monitor.watching(self._thread.ident, ThreadKilled()))


class InjectInCallFn(Protocol):
    """_wake.inject_in_call() bound to the C module."""

    def __call__(self, thread: threading.Thread, exc: BaseException, blocked: _syscalls.Blocked,
                 rewrite: bool = True, judge: Judge | None = None) -> bool | None: ...


def _schedule_unseen(thread: threading.Thread, inject: InjectFn, pending: PendingFn, cancel: CancelFn,
                     killed: ThreadKilled, withheld: Withheld | None,
                     searched: dict[int, LockWait | None],
                     inject_in_call: InjectInCallFn | None,
                     watch: _monitor.Watch | None = None, last: bool = False) -> Withheld | None:
    """Inject `killed` unless withhold_unseen() says it must wait (on a
    free-threaded build); what it says, if so.

    Not once it has been raised: a cancel() can come too late, once the
    target has taken the exception and is raising it (free-threaded builds:
    tests/test_inject.py), and a second one landing as the first unwinds
    could skip the `finally` that releases a lock.

    With a `watch` (_monitor.py) the thread raises `killed` itself when it
    runs; this schedules it only into a thread blocked in a call, having
    claimed the delivery (and gives the claim back if it withdraws it).
    Where the watch covers loops, a thread judged running is left to it,
    but for the `last` call, as kill() gives up: a thread that has met no
    safe point all that time (a long C call) gets the exception scheduled
    as it would without the watch (by /proc), to raise it once it is back
    in Python code, as kill() documents."""
    if killed.__traceback__ is not None:  # raised: it is on its way out
        return None
    previous = withheld
    withheld, seen = withhold_unseen(thread, withheld, searched)
    if withheld is not None:
        return withheld
    if seen is None and watch is not None and _monitor.covers_loops() and not last:
        # running: it raises the exception itself, where its frame allows;
        # the CPU time it had used when first seen running is kept, for
        # the last call
        return _running_since(thread, previous)
    if watch is not None and not watch.claim():
        return None if killed.__traceback__ is not None else _afresh(thread)
    scheduled: Withheld | None = None
    try:
        scheduled = _schedule_claimed(thread, inject, pending, cancel, killed, previous, seen, searched,
                                      inject_in_call)
    finally:
        if watch is not None and scheduled is not None:
            watch.unclaim()  # nothing was left scheduled
    return scheduled


def _schedule_claimed(thread: threading.Thread, inject: InjectFn, pending: PendingFn, cancel: CancelFn,
                      killed: ThreadKilled, previous: Withheld | None, seen: Seen | None,
                      searched: dict[int, LockWait | None],
                      inject_in_call: InjectInCallFn | None) -> Withheld | None:
    """_schedule_unseen() once it has decided to schedule: None if the
    exception is left scheduled (or has landed), else why it was withdrawn."""
    if seen is not None and seen.blocked is not None and inject_in_call is not None:
        # lands at that very call, if its frames allow
        judge = _JudgeAtCall(seen.blocked)
        held = _hold_and_inject(thread, killed, seen.blocked, inject_in_call, judge=judge)
        if held is not None:
            return None if held else _afresh(thread, seen.blocked, judge.refused)
    elif seen is None and previous is not None and previous.call is not None \
            and previous.tries < HELD_TRIES and inject_in_call is not None:
        # judged running, but seen in a system call since: held there, it
        # lands there, not after an acquire() it may be about to make (the
        # call interrupted, not ended: it was seen a while ago)
        judge = _JudgeAtCall(previous.call)
        held = _hold_and_inject(thread, killed, previous.call, inject_in_call, rewrite=False, judge=judge)
        if held is not None:
            return None if held else previous._replace(tries=previous.tries + 1, at_release=judge.refused)
    inject(thread, killed)
    if seen is not None:
        # Judged by the call it sleeps in: it must not have left that call
        # before the exception was there (this thread can be preempted
        # between the two; seen under CPU load: a thread judged in its
        # sleep had gone on to take a lock, and the kill landed right
        # after the acquire).  Else withdrawn, to be judged afresh.
        if still_as_seen(thread, seen) or not cancel(thread):
            return None
        return _afresh(thread)
    # Judged running: until it lands, watch for the thread entering a futex
    # wait instead, and withdraw it at once (a hand-over in between lands it
    # right after acquire(): README, Limits).  A thread running Python code
    # takes it within microseconds.
    deadline = time.monotonic() + _LANDING_WATCH
    while pending(thread) is not None and time.monotonic() < deadline:
        now, _ = withhold_unseen(thread, None, searched)
        if now is not None and now.wait is not None:
            return now if cancel(thread) else None
    return None


class _JudgeAtCall:
    """The judge kill() gives inject_in_call() (_wake.may_land_in_call()),
    which remembers whether it has refused: the thread was held in a
    ``finally`` block before its release, say, rather than gone on.

    No GIL keeps another thread's frames from being freed as they are read
    (_frames.py), except that thread being held at its call meanwhile: this
    is the one place free-threaded kill() reads them.  Without it, a thread
    asleep in such a block was woken and killed there, its lock left held
    (CI, 3.13t, stress_kill.py's "late release" workload)."""

    def __init__(self, call: _syscalls.Blocked) -> None:
        self.call = call
        self.refused = False

    def __call__(self, frame: FrameType) -> bool:
        if may_land_in_call(frame, self.call):
            return True
        self.refused = True
        return False


def _hold_and_inject(thread: threading.Thread, killed: ThreadKilled, call: _syscalls.Blocked,
                     inject_in_call: InjectInCallFn, rewrite: bool = True,
                     judge: Judge | None = None) -> bool | None:
    """inject_in_call(), a thread that did not take the signal counting as
    one that has left the call (nothing was scheduled)."""
    try:
        return inject_in_call(thread, killed, call, rewrite, judge)
    except TimeoutError:
        return False


def _running_since(thread: threading.Thread, previous: Withheld | None) -> Withheld:
    """What _schedule_unseen() says of a thread judged running that it
    leaves to the watch: `previous` if that already said running (the CPU
    time it had used then kept), else running from now (no CPU time where
    /proc cannot be read: withhold_unseen() reads none there either)."""
    if previous is not None and previous.wait is None:
        return previous
    try:
        return Withheld(None, *_syscalls.cpu_time(thread.native_id))  # type: ignore[arg-type]
    except (OSError, TypeError):  # exiting, or no /proc
        return Withheld(None, 0, 1)


def _afresh(thread: threading.Thread, call: _syscalls.Blocked | None = None,
            at_release: bool = False) -> Withheld | None:
    """What _schedule_unseen() says of a thread that left the call it was
    judged in before the exception was there, or was found at that call
    where the exception must not land (`at_release`): withheld, to be judged
    afresh as if just seen moving (None if it is exiting)."""
    try:
        return Withheld(MOVING, *_syscalls.cpu_time(thread.native_id), call,  # type: ignore[arg-type]
                        at_release=at_release)
    except OSError:
        return None


# How long kill() watches, on free-threaded builds, for a thread it has
# scheduled the exception in to enter a lock wait instead of taking it
_LANDING_WATCH = 0.002


def _join_waking_unseen(thread: threading.Thread, deadline: float | None, wake: WakeFn,
                        inject: InjectFn, pending: PendingFn, cancel: CancelFn,
                        inject_in_call: InjectInCallFn | None) -> None:
    """_join_waking() where no frame can be read (free-threaded builds).

    While it runs, the thread raises the exception itself at its next safe
    point where sys.monitoring allows (_monitor.py).  kill() schedules it
    only where it cannot land right after an acquire() returned True, as
    far as /proc tells (withhold_unseen()): into a thread it holds at a
    system call, if the frames read while it is held allow (_JudgeAtCall),
    or one in a Condition wait, which wake() then ends; one it
    finds in a lock wait after all is withdrawn again.  The thread runs on
    while all this is read (no GIL): README, Limits says what can still go
    wrong.
    """
    try:
        pending(thread)  # checks `thread` as inject() would, before a watch is set on its ident
        _kill_unseen(thread, inject, pending, cancel, wake, inject_in_call, deadline)
    except ThreadNotFoundError:
        if not thread._started.is_set():  # type: ignore[attr-defined]
            raise
        # it finished before the exception could be scheduled


def _kill_unseen(thread: threading.Thread, inject: InjectFn, pending: PendingFn, cancel: CancelFn,
                 wake: WakeFn, inject_in_call: InjectInCallFn | None, deadline: float | None) -> None:
    """_join_waking_unseen() once `thread` is known to have been started."""
    with _monitor.watching(thread.ident, ThreadKilled()) as watch:
        # one instance: whether it has been raised is seen on it
        killed = watch.exc if watch is not None else ThreadKilled()
        assert isinstance(killed, ThreadKilled)
        searched: dict[int, LockWait | None] = {}  # futex words searched for a lock
        # Whether the call the thread was blocked in has been ended with the
        # exception scheduled (held there, or woken): it lands as that call
        # returns, before the thread can reach another acquire(), so it is
        # not withdrawn again.  A thread that meets a futex wait on its way
        # back (CPU load, a collection stopping the world) looks
        # UNSAFE_TO_LAND to wake(), and the cancel() below used to withdraw
        # it: the caller then acted on the fake result (a selector returning
        # no events; seen in 1 of ~10 suite runs under load, 3.13t).
        ended_call = False

        def held_at_call(thread: threading.Thread, exc: BaseException, blocked: _syscalls.Blocked,
                         rewrite: bool = True, judge: Judge | None = None) -> bool | None:
            nonlocal ended_call
            assert inject_in_call is not None
            held = inject_in_call(thread, exc, blocked, rewrite, judge)
            ended_call = ended_call or bool(held and (rewrite or _syscalls.CPYTHON_RAISES_AFTER_EINTR))
            return held

        def schedule(withheld: Withheld | None) -> Withheld | None:
            return _schedule_unseen(thread, inject, pending, cancel, killed, withheld, searched,
                                    held_at_call if inject_in_call is not None else None, watch)

        withheld = schedule(None)
        pause = 0.001
        while thread.is_alive():
            status = WakeStatus.NOT_BLOCKED
            try:
                if _swallowed.take(thread.ident):  # as in _join_waking()
                    if watch is not None:
                        _monitor.deliver_again(thread.ident, watch)  # type: ignore[arg-type]
                    killed.__traceback__ = None
                    ended_call = False
                    withheld = schedule(None)
                elif withheld is not None:
                    status = WakeStatus.UNSAFE_TO_LAND
                    withheld = schedule(withheld)
                else:
                    status = wake(thread).status
                    ended_call = ended_call or status is WakeStatus.WOKEN
                    if status is WakeStatus.UNSAFE_TO_LAND and not ended_call and cancel(thread):
                        if watch is not None:
                            watch.unclaim()
                        withheld = schedule(None)
            except ThreadNotFoundError:  # it has just finished
                pass
            if not _join_a_while(thread, deadline, pause):
                # a withheld kill stays withdrawn: nothing is left to land
                # later; one that found no safe point in a running thread
                # is scheduled
                if watch is not None and withheld is not None and withheld.wait is None:
                    with contextlib.suppress(ThreadNotFoundError):
                        _schedule_unseen(thread, inject, pending, cancel, killed, withheld, searched,
                                         inject_in_call, watch, last=True)
                return
            # a thread held where the exception must not land may stay
            # there (asleep in its finally): each look interrupts its call
            soon = status in _SOON and not (withheld is not None and withheld.at_release)
            pause = min(pause * 2, 0.005 if soon else 0.1)


def _join_a_while(thread: threading.Thread, deadline: float | None, pause: float) -> bool:
    """Join `thread` for `pause` seconds, or until `deadline`; False if the
    deadline had passed already."""
    left = None if deadline is None else deadline - time.monotonic()
    if left is not None and left <= 0:
        return False
    thread.join(pause if left is None else min(pause, left))
    return True


# statuses after which the thread may move on any moment: poll every few ms
_SOON = (WakeStatus.WOKEN, WakeStatus.NOT_BLOCKED, WakeStatus.NOTHING_PENDING, WakeStatus.UNSAFE_TO_LAND)


def make_kill(inject: InjectFn, pending: PendingFn, cancel: CancelFn, wake: WakeFn,
              unsafe_to_land: Callable[[threading.Thread], Judgement],
              inject_if_at: InjectIfAtFn, inject_in_call: InjectInCallFn | None = None) -> KillFn:
    """Build kill() on a backend's inject(), pending(), cancel() and
    _inject_if_at(), wake() on them, and unsafe_to_land() (whether the thread
    waits where the exception must not be left pending)."""

    def kill(thread: ThreadArg, timeout: float | None = None) -> bool:
        """Raise ThreadKilled in `thread`, then wait up to `timeout` seconds for it to end.

        Escalation: inject ThreadKilled; wake the thread from a wait that
        wake() can end (Condition waits; system calls and some lock waits on
        Linux x86-64 and aarch64), repeatedly while it is pending; where it
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
        with _swallowed.expecting(ident):  # type: ignore[arg-type]
            return kill_started(thread, target, ident, deadline)

    def kill_started(thread: ThreadArg, target: threading.Thread | None, ident: object,
                     deadline: float | None) -> bool:
        """kill() once its arguments are checked and a Thread is in its run()."""
        if target is not None and not isinstance(target, threading._DummyThread) and not _frames.READABLE:
            _join_waking_unseen(target, deadline, wake, inject, pending, cancel, inject_in_call)
            return not target.is_alive()
        withheld_at = notified_in = None
        try:
            if target is None:
                inject(thread, ThreadKilled)
            else:
                withheld_at, notified_in = _first_scheduling(target, inject, inject_if_at, unsafe_to_land)
        except ThreadNotFoundError:
            if target is None or not target._started.is_set():  # type: ignore[attr-defined]
                raise
            # it finished before the exception could be scheduled
        if target is None or isinstance(target, threading._DummyThread):
            # not started by threading: nothing to join, watch the ident instead
            assert isinstance(ident, int)
            try:
                wake(ident)
            except ThreadNotFoundError:
                return True
            return _wait_ident_gone(ident, deadline, pending)
        _join_waking(target, deadline, wake, inject, inject_if_at, cancel, unsafe_to_land, withheld_at)
        if target.is_alive():
            return False
        if notified_in is not None:
            pass_on_a_notification(notified_in)
        return True

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
