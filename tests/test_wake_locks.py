"""Killing a thread that waits for a Lock or RLock another thread holds.

The rule checked on every interpreter and both backends: the kill never
breaks the lock.  The holder keeps it for its whole hold and releases it
without error, the waiter ends with ThreadKilled, the lock is free
afterwards, nothing is printed.  How the kill lands depends on the
interpreter (see src/threadinject/_locks.py and _landing.py): woken at once
(WOKEN), once the lock is handed over (DEFERRED), or not at all where
neither is sound (UNSUPPORTED_CALL: the test then withdraws it with cancel()).
"""

from __future__ import annotations

import sys
import threading
import time
from types import SimpleNamespace
from typing import Callable

import pytest
from conftest import JOIN_TIMEOUT, settled_in_futex_wait, syscall_of

from threadinject import ThreadKilled, WakeStatus, _frames, _syscalls

# Waiter bodies, compiled afresh for each test: the keyword-call case is about
# a call site that runs for the first time.  work() is the protected work: it
# waits until the test lets it finish, so no step of a test depends on how
# long another one takes.
PATTERNS = {
    "with": """
def wait(lock, entered, work):
    with lock:
        entered.append(True)
        work()
""",
    "acquire-try": """
def wait(lock, entered, work):
    lock.acquire()
    try:
        entered.append(True)
        work()
    finally:
        lock.release()
""",
    "keyword-acquire-try": """
def wait(lock, entered, work):
    lock.acquire(blocking=True)
    try:
        entered.append(True)
        work()
    finally:
        lock.release()
""",
    "timed-acquire-if": """
def wait(lock, entered, work):
    if lock.acquire(timeout=60):
        try:
            entered.append(True)
            work()
        finally:
            lock.release()
""",
}

LOCKS: dict[str, Callable[[], object]] = {"Lock": threading.Lock, "RLock": threading.RLock}


def expected_status(api: SimpleNamespace, pattern: str, kind: str) -> set[WakeStatus]:
    """What wake() may answer, from the facts the library probes (layout of
    the lock's wait, where exceptions land) rather than from version numbers."""
    if not _syscalls.LOCK_WAITS:
        return {WakeStatus.PLATFORM_UNSUPPORTED}
    if not _frames.READABLE:
        # no frame tells a with statement or a bare acquire from anything
        # else: withheld by kill() until the wait ends, with either backend
        return {WakeStatus.UNSAFE_TO_LAND}
    if api.name != "c":
        return {WakeStatus.PLATFORM_UNSUPPORTED}
    from threadinject import _core, _landing, _locks

    layout = {name: layout for name, layout in _locks.layouts().values()}[f"{kind}.acquire"]
    if pattern == "with":
        # untimed: deferred where the kill lands inside the block, else withheld
        return {WakeStatus.DEFERRED if _landing.lands_inside_with(_core) else WakeStatus.UNSAFE_TO_LAND}
    keyword_call = pattern in ("keyword-acquire-try", "timed-acquire-if")
    if keyword_call and sys.version_info >= (3, 12) and _landing._lands_late_after_keyword_call(_core):
        return {WakeStatus.DEFERRED}
    # only a timed wait on a semaphore is ended; in the parking lot the lock
    # can be handed over after the wake (_locks.py)
    woken = pattern == "timed-acquire-if" and not layout.parked
    return {WakeStatus.WOKEN if woken else WakeStatus.UNSAFE_TO_LAND}


def owned(lock: object) -> bool:
    if hasattr(lock, "_is_owned"):
        return bool(lock._is_owned())  # RLock: owned by the calling thread
    return bool(lock.locked())  # type: ignore[attr-defined]


class Holder:
    """Holds the lock until the test sets `release`."""

    def __init__(self, lock: object) -> None:
        self.lock = lock
        self.holding = threading.Event()
        self.release = threading.Event()
        self.kept_it = False
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        try:
            with self.lock:  # type: ignore[attr-defined]
                self.holding.set()
                self.release.wait(JOIN_TIMEOUT)
                self.kept_it = owned(self.lock)
        except BaseException as exc:
            self.error = exc


def wait_until_blocked(thread: threading.Thread, code: object) -> None:
    """Until the thread runs `code` (not threading's start-up) and, on Linux,
    sleeps in the kernel."""
    deadline = time.monotonic() + JOIN_TIMEOUT
    while True:
        if not _frames.READABLE:  # no frame to read: its first wait is the lock's
            if settled_in_futex_wait(thread):
                return
            assert time.monotonic() < deadline, "the waiter never blocked"
            continue
        frame = _frames.current_frames().get(thread.ident)  # type: ignore[arg-type]
        if frame is not None and frame.f_code is code:
            if not sys.platform.startswith("linux"):
                time.sleep(0.05)
                return
            if syscall_of(thread) is not None:
                return
        assert time.monotonic() < deadline, "the waiter never blocked"
        time.sleep(0.001)


class Waiter:
    """A thread running one of PATTERNS on `lock`; its protected work lasts
    until `finish` is set."""

    def __init__(self, pattern: str, lock: object) -> None:
        namespace: dict[str, object] = {}
        exec(compile(PATTERNS[pattern], f"<{pattern}>", "exec"), namespace)
        self.wait = namespace["wait"]
        self.entered: list[bool] = []
        self.outcome: list[object] = []
        self.lock = lock
        self.finish = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        try:
            self.wait(self.lock, self.entered, lambda: self.finish.wait(JOIN_TIMEOUT))  # type: ignore[operator]
            self.outcome.append("returned")
        except BaseException as exc:
            self.outcome.append(exc)


def start_holder_and_waiter(pattern: str, kind: str) -> tuple[object, Holder, Waiter]:
    lock = LOCKS[kind]()
    holder = Holder(lock)
    holder.thread.start()
    assert holder.holding.wait(JOIN_TIMEOUT)
    waiter = Waiter(pattern, lock)
    waiter.thread.start()
    wait_until_blocked(waiter.thread, waiter.wait.__code__)  # type: ignore[attr-defined]
    return lock, holder, waiter


def end_both(holder: Holder, waiter: Waiter) -> None:
    holder.release.set()
    waiter.finish.set()
    holder.thread.join(JOIN_TIMEOUT)
    waiter.thread.join(JOIN_TIMEOUT)


def assert_lock_intact(lock: object, holder: Holder) -> None:
    assert not holder.thread.is_alive()
    assert holder.error is None and holder.kept_it
    assert lock.acquire(blocking=False), "the lock was left held"  # type: ignore[attr-defined]
    lock.release()  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", sorted(LOCKS))
@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_wake_of_a_lock_waiter_never_breaks_the_lock(api, pattern, kind, capfd):
    lock, holder, waiter = start_holder_and_waiter(pattern, kind)
    victim, entered, outcome = waiter.thread, waiter.entered, waiter.outcome
    try:
        api.inject(victim, ThreadKilled)
        status = api.wake(victim).status
        assert status in expected_status(api, pattern, kind)
        if status is WakeStatus.WOKEN:
            victim.join(JOIN_TIMEOUT)
            assert not victim.is_alive(), "the woken waiter did not end while the lock was held"
        elif status is WakeStatus.DEFERRED:
            # lands at the hand-over, before the protected work
            holder.release.set()
            victim.join(JOIN_TIMEOUT)
        else:
            # Not woken, and landing at the hand-over is not known to be
            # sound (after a bare acquire it lands holding the lock, before
            # the try): withdraw the kill, the waiter then runs normally.
            assert api.cancel(victim)
    finally:
        end_both(holder, waiter)
    assert not victim.is_alive()
    assert_lock_intact(lock, holder)
    if status in (WakeStatus.WOKEN, WakeStatus.DEFERRED):
        assert len(outcome) == 1 and isinstance(outcome[0], ThreadKilled), outcome
    else:
        assert outcome == ["returned"] and entered == [True]
    assert capfd.readouterr().err == ""


@pytest.mark.skipif(not _syscalls.LOCK_WAITS, reason="lock waits are identified where system calls are "
                    "woken, C backend; elsewhere a kill lands when the lock is handed over (README, Limits)")
@pytest.mark.parametrize("kind", sorted(LOCKS))
@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_kill_of_a_lock_waiter_ends_it_and_never_breaks_the_lock(pattern, kind, capfd):
    # the C backend (the package's default here): woken, deferred to the
    # hand-over, or withheld until the thread is past its bare acquire().  The
    # kill runs in a thread of its own, as it only returns once the waiter has
    # ended, which it may do only after the hand-over.
    import threadinject
    from threadinject import _core

    assert threadinject.backend == "c"
    woken = expected_status(SimpleNamespace(name="c"), pattern, kind) == {WakeStatus.WOKEN}
    lock, holder, waiter = start_holder_and_waiter(pattern, kind)
    killed: list[bool] = []
    killer = threading.Thread(target=lambda: killed.append(threadinject.kill(waiter.thread, JOIN_TIMEOUT)))
    try:
        killer.start()
        if woken:
            waiter.thread.join(JOIN_TIMEOUT)
            assert not waiter.thread.is_alive(), "the woken waiter did not end while the lock was held"
        # Otherwise the kill lands at the hand-over or, once the waiter is past
        # a bare acquire(), in its protected work, which lasts until the
        # waiter ends: `finish` is only set below, when it has.
        holder.release.set()
        killer.join(JOIN_TIMEOUT)
        assert killed == [True]
    finally:
        end_both(holder, waiter)
        killer.join(JOIN_TIMEOUT)
    assert _core.WAKE_SUPPORTED
    assert_lock_intact(lock, holder)
    assert len(waiter.outcome) == 1 and isinstance(waiter.outcome[0], ThreadKilled), waiter.outcome
    assert capfd.readouterr().err == ""


def woken_pattern(kind: str) -> str | None:
    """A pattern whose wait wake() ends for a lock of `kind` here, if any."""
    for pattern in sorted(PATTERNS):
        if expected_status(SimpleNamespace(name="c"), pattern, kind) == {WakeStatus.WOKEN}:
            return pattern
    return None


def judged_blocked(thread: threading.Thread, core: object) -> object:
    """kill()'s judgement of `thread`, once it is blocked in its lock wait
    with the means to end it (after an interrupted wait, it takes a moment
    to block again)."""
    from threadinject import _wake

    deadline = time.monotonic() + JOIN_TIMEOUT
    while (judged := _wake.unsafe_to_land(thread, core)).wake is None:  # type: ignore[arg-type]
        assert time.monotonic() < deadline, f"never judged in a lock wait it can end: {judged}"
        time.sleep(0.001)
    return judged


@pytest.mark.skipif(not _frames.READABLE, reason="kill()'s one-step end of a lock wait judges by frames, "
                    "which free-threaded builds cannot read (_frames.py): it runs on every GIL build")
@pytest.mark.skipif(not _syscalls.LOCK_WAITS,
                    reason="lock waits are ended where system calls are woken, C backend only")
@pytest.mark.parametrize("kind", sorted(LOCKS))
def test_inject_if_at_ends_a_lock_wait_or_withdraws_the_exception(kind, capfd):
    # kill()'s step for a lock wait: the exception is scheduled and the wait
    # ended in one step (a release in between could hand the lock over and
    # the exception land after acquire() returned True); where the signal
    # does not end that very wait, nothing may stay pending
    from threadinject import _core

    pattern = woken_pattern(kind)
    if pattern is None:
        pytest.skip(f"no {kind} wait is woken on this build (expected_status(): only timed waits on "
                    "CPython's semaphore are, Lock up to 3.13.0 and RLock up to 3.13; keyword calls "
                    "deferred from 3.12): this runs on 3.9-3.13")
    lock, holder, waiter = start_holder_and_waiter(pattern, kind)
    thread = waiter.thread
    try:
        for miss in ("ip", "guard"):
            judged = judged_blocked(thread, _core)
            ip, result, guard_addr, guard_value = judged.wake  # type: ignore[attr-defined]
            if miss == "ip":
                wake = (ip + 1, result, guard_addr, guard_value)  # another return address
            elif guard_addr:
                wake = (ip, result, guard_addr, guard_value ^ 1)  # the guard word does not hold
            else:
                continue
            assert _core._inject_if_at(thread, ThreadKilled, judged.frame, judged.lasti,  # type: ignore[attr-defined]
                                       thread.native_id, judged.syscall, judged.arg0, wake) is False
            assert _core.pending(thread) is None, f"left pending after a {miss} that did not match"
            assert thread.is_alive() and waiter.entered == []
        judged = judged_blocked(thread, _core)
        assert _core._inject_if_at(thread, ThreadKilled, judged.frame, judged.lasti,  # type: ignore[attr-defined]
                                   thread.native_id, judged.syscall, judged.arg0, judged.wake) is True
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive(), "the wait was reported ended, but the waiter did not end"
    finally:
        end_both(holder, waiter)
    assert_lock_intact(lock, holder)
    assert waiter.entered == [] and len(waiter.outcome) == 1 and isinstance(waiter.outcome[0], ThreadKilled)
    assert capfd.readouterr().err == ""


@pytest.mark.skipif(not _frames.READABLE, reason="kill()'s one-step end of a lock wait judges by frames, "
                    "which free-threaded builds cannot read (_frames.py): it runs on every GIL build")
@pytest.mark.skipif(not _syscalls.LOCK_WAITS,
                    reason="lock waits are ended where system calls are woken, C backend only")
def test_inject_if_at_gives_up_on_a_thread_that_does_not_take_the_signal(capfd):
    # A thread that blocks the signal (as one stopped by a debugger would
    # not run the handler): the call waits a bounded time holding the GIL,
    # withdraws the exception, disarms the slot and says so; the signal
    # delivered later changes nothing.
    import signal

    from threadinject import _core

    kind = next((kind for kind in sorted(LOCKS) if woken_pattern(kind) is not None), None)
    if kind is None:
        pytest.skip("no lock wait is woken on this build (only timed waits on CPython's semaphore are: "
                    "Lock up to 3.13.0, RLock up to 3.13): this runs on 3.9-3.13")
    signo = _syscalls.chosen_signal()
    lock = LOCKS[kind]()
    lock.acquire()  # type: ignore[attr-defined]
    unblock = threading.Event()
    outcome: list[object] = []

    def body() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signo})
        try:
            outcome.append(lock.acquire(True, JOIN_TIMEOUT))  # type: ignore[attr-defined]  # a wait wake() ends
            unblock.wait(JOIN_TIMEOUT)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signo})  # the queued signal arrives
            outcome.append("unblocked")
            lock.release()  # type: ignore[attr-defined]
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    try:
        wait_until_blocked(thread, body.__code__)
        judged = judged_blocked(thread, _core)
        assert judged.unsafe  # type: ignore[attr-defined]  # kill() would withhold it: the signal is blocked
        with pytest.raises(TimeoutError, match="did not take the wake signal"):
            _core._inject_if_at(thread, ThreadKilled, judged.frame, judged.lasti,  # type: ignore[attr-defined]
                                thread.native_id, judged.syscall, judged.arg0, judged.wake)
        assert _core.pending(thread) is None
        assert thread.is_alive() and outcome == []
    finally:
        lock.release()  # type: ignore[attr-defined]
        unblock.set()
        thread.join(JOIN_TIMEOUT)
    assert outcome == [True, "unblocked"]
    assert lock.acquire(blocking=False)  # type: ignore[attr-defined]
    assert capfd.readouterr().err == ""
