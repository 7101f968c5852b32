"""How kill() judges a thread whose frames it cannot read (free-threaded builds).

There, /proc is all it has (_wake.withhold_unseen): a thread seen in a Lock
or RLock wait may return from acquire() any moment, so the kill is withheld
until the thread has used _wake.PAST_CALL_CPU_NS of CPU since; a futex wait
of anything else (tracemalloc's lock, an io buffer's, a contended dict's)
counts as running, or a thread contending for one all the time would never
be killed (seen in stress runs with --tracemalloc on 3.13t).  These checks
read /proc only, so they run on every x86-64 build where _syscalls.LOCK_WAITS.
"""

from __future__ import annotations

import gc
import os
import select
import threading
import time
from collections.abc import Iterator

import pytest
from conftest import JOIN_TIMEOUT, settled_in_futex_wait, syscall_of

from threadinject import _locks, _syscalls, _wake

pytestmark = pytest.mark.skipif(
    not (_syscalls.LOCK_WAITS and _syscalls._MACHINE == "x86_64"),
    reason="free-threaded kill()'s judging by /proc and futex words, which runs where lock waits are "
           "told apart on x86-64 (elsewhere it has nothing to judge by: README, Limits; on aarch64 no "
           "free-threaded build is supported, and its start-up shortcut, 10 ms of CPU, is no sign of "
           "anything under the VM's emulation)")


def _wait_for(condition: object, what: str) -> None:
    deadline = threading.Event()
    timer = threading.Timer(JOIN_TIMEOUT, deadline.set)
    timer.start()
    try:
        while not condition():  # type: ignore[operator]
            assert not deadline.wait(0.002), f"{what} never happened"
    finally:
        timer.cancel()
        timer.join(JOIN_TIMEOUT)


def _gc_tracked(kind: str) -> bool:
    return gc.is_tracked(getattr(threading, kind)())


@pytest.fixture(params=["Lock", "RLock"])
def lock_waiter(request: pytest.FixtureRequest) -> Iterator[tuple[threading.Thread, object, str]]:
    """A thread waiting for a Lock or RLock this test holds."""
    kind = request.param
    if not _gc_tracked(kind):
        pytest.skip(f"the gc tracks {kind} objects from 3.10: identify_unseen() finds a lock's "
                    "semaphore through them, for free-threaded builds (3.13t+) only")
    lock = getattr(threading, kind)()
    lock.acquire()
    waiter = threading.Thread(target=lambda: lock.acquire() and lock.release(), daemon=True)
    waiter.start()
    try:
        _wait_for(lambda: settled_in_futex_wait(waiter), "the lock wait")
        yield waiter, lock, kind
    finally:
        lock.release()
        waiter.join(JOIN_TIMEOUT)
        assert not waiter.is_alive()


@pytest.fixture
def io_buffer_waiter() -> Iterator[threading.Thread]:
    """A thread waiting for the lock of a BufferedWriter, which another
    thread holds while it blocks writing to a full pipe: a futex wait of no
    Lock or RLock."""
    r, w = os.pipe()
    writer = os.fdopen(w, "wb", buffering=4096)
    holder = threading.Thread(target=writer.write, args=(b"x" * (1 << 20),), daemon=True)
    waiter = threading.Thread(target=writer.write, args=(b"y",), daemon=True)
    drained: list[int] = []

    def drain() -> None:
        while chunk := os.read(r, 1 << 16):
            drained.append(len(chunk))

    drainer = threading.Thread(target=drain, daemon=True)
    holder.start()
    try:
        write = _syscalls.number_of("write")
        _wait_for(lambda: (syscall_of(holder) or (None,))[0] == write, "the holder's write")
        waiter.start()
        _wait_for(lambda: settled_in_futex_wait(waiter), "the buffer lock wait")
        yield waiter
    finally:
        drainer.start()
        for thread in (holder, waiter):
            if thread.ident is not None:
                thread.join(JOIN_TIMEOUT)
        writer.close()  # flushes the rest, then the drainer reads the end of file
        drainer.join(JOIN_TIMEOUT)
        os.close(r)
        assert not (holder.is_alive() or waiter.is_alive() or drainer.is_alive())
        assert sum(drained) == (1 << 20) + 1


def _blocked(thread: threading.Thread) -> _syscalls.Blocked:
    blocked = _syscalls.blocked_call(thread.native_id)  # type: ignore[arg-type]
    assert blocked is not None and blocked.number == _syscalls.FUTEX
    return blocked


def test_identify_unseen_finds_the_lock_a_thread_waits_for(lock_waiter):
    waiter, lock, kind = lock_waiter
    searched: dict[int, _locks.LockWait | None] = {}
    wait = _locks.identify_unseen(_blocked(waiter), searched)
    assert wait is not None
    assert (wait.name, wait.lock_id) == (f"{kind}.acquire", id(lock))
    assert _locks.identify_unseen(_blocked(waiter), searched) == wait


def test_identify_unseen_finds_no_lock_in_an_io_buffer_wait_and_searches_once(io_buffer_waiter, monkeypatch):
    searched: dict[int, _locks.LockWait | None] = {}
    assert _locks.identify_unseen(_blocked(io_buffer_waiter), searched) is None

    def no_second_search() -> list[object]:
        raise AssertionError("searched the gc again for a word searched before")

    monkeypatch.setattr(_locks.gc, "get_objects", no_second_search)
    assert _locks.identify_unseen(_blocked(io_buffer_waiter), searched) is None


def _long_past(thread: threading.Thread) -> _wake.Withheld:
    """What withhold_unseen() would have answered PAST_CALL_CPU_NS of the
    thread's CPU time ago, seeing it run."""
    cpu_ns, resolution_ns = _syscalls.cpu_time(thread.native_id)  # type: ignore[arg-type]
    return _wake.Withheld(None, cpu_ns - max(_wake.PAST_CALL_CPU_NS, 2 * resolution_ns), resolution_ns)


def test_withhold_unseen_counts_a_wait_of_no_lock_as_running(io_buffer_waiter):
    # past any acquire() by its CPU time: the futex wait it is in now is no
    # lock's, so the kill may be scheduled (it lands once the write returns)
    assert _wake.withhold_unseen(io_buffer_waiter, _long_past(io_buffer_waiter), {}) == (None, None)
    # first seen there: its CPU time is counted from now
    withheld, seen = _wake.withhold_unseen(io_buffer_waiter, None, {})
    assert seen is None and withheld is not None and withheld.wait is None


def test_withhold_unseen_withholds_from_a_lock_wait_whatever_came_before(lock_waiter):
    waiter, _, _ = lock_waiter
    withheld, seen = _wake.withhold_unseen(waiter, _long_past(waiter), {})
    assert seen is None and withheld is not None
    assert withheld.wait is not None and withheld.wait[0] == _blocked(waiter).arg0


def _lock_waits_parked() -> bool:
    found = _locks.layouts().get(type(threading.Lock()))
    return found is not None and found[1].parked


@pytest.mark.skipif(not _lock_waits_parked(),
                    reason="a Lock waits on a semaphore up to 3.13.0: no parked waiter lock to find "
                           "(GIL builds read frames instead); runs on 3.13t, 3.14, 3.15 and the debug 3.13")
def test_a_thread_in_a_condition_wait_is_past_threadings_start_up() -> None:
    # kill() on a free-threaded build waits for a new thread to reach run()
    # (_kill._wait_until_run_called); one parked as a Condition's waiter is
    # there (threading's start-up waits on no Condition once the thread has
    # left _limbo), one in a bare lock wait cannot be told from a contended
    # lock in the start-up: given the benefit of the doubt, 20 ms
    from threadinject import _kill

    gate = threading.Event()
    held = threading.Lock()
    held.acquire()
    in_event = threading.Thread(target=gate.wait, args=(JOIN_TIMEOUT,))
    in_lock = threading.Thread(target=held.acquire, args=(True, JOIN_TIMEOUT))
    try:
        in_event.start()
        in_lock.start()
        _wait_for(lambda: settled_in_futex_wait(in_event) and settled_in_futex_wait(in_lock),
                  "both threads waiting")
        assert _kill._past_bootstrap(in_event)
        assert not _kill._past_bootstrap(in_lock)
    finally:
        gate.set()
        held.release()
        in_event.join(JOIN_TIMEOUT)
        in_lock.join(JOIN_TIMEOUT)
    assert not in_event.is_alive() and not in_lock.is_alive()


def test_kill_keeps_an_exception_whose_call_it_ended() -> None:
    # Free-threaded kill(): once the thread's blocked call has been ended
    # with the exception scheduled (held at the call, its result rewritten),
    # the exception lands as that call returns.  On its way back the thread
    # can meet a futex wait (CPU load, a collection stopping the world) that
    # wake() reports as UNSAFE_TO_LAND; kill() used to cancel() the
    # exception then, and the caller acted on the fake result (seen on
    # 3.13t under load).  Here the backend is faked: the thread stays in
    # its select() and wake() always says UNSAFE_TO_LAND.
    from threadinject import _kill
    from threadinject._errors import ThreadKilled

    r, w = os.pipe()
    waiter = threading.Thread(target=lambda: select.select([r], [], []), daemon=True)
    waiter.start()
    try:
        _wait_for(lambda: (syscall_of(waiter) or (None,))[0] not in (None, _syscalls.FUTEX),
                  "the select() call")
        scheduled: list[BaseException] = []
        cancelled: list[threading.Thread] = []

        def inject_in_call(thread: threading.Thread, exc: BaseException, blocked: object,
                           rewrite: bool = True, judge: object = None) -> bool:
            scheduled.append(exc)
            return True  # as if held at the call and let go with its result rewritten

        def cancel(thread: object) -> bool:
            cancelled.append(thread)  # type: ignore[arg-type]
            return True

        def fail(*args: object) -> None:
            raise AssertionError("scheduled without holding the thread at its call")

        _kill._kill_unseen(
            waiter, fail, lambda thread: scheduled[-1] if scheduled else None, cancel,
            lambda thread: _wake.WakeResult(_wake.WakeStatus.UNSAFE_TO_LAND), inject_in_call,
            deadline=time.monotonic() + 0.2)
        assert len(scheduled) == 1 and isinstance(scheduled[0], ThreadKilled)
        assert cancelled == []
    finally:
        os.write(w, b"x")
        waiter.join(JOIN_TIMEOUT)
        os.close(r)
        os.close(w)
    assert not waiter.is_alive()


def test_the_condition_search_is_not_repeated_for_the_same_waiter(monkeypatch) -> None:
    # A free-threaded kill asks twice which Condition queued a parked lock
    # (past start-up? then wake): the second answer comes from the first,
    # checked, without walking every tracked object again.
    searches = []
    real_get_objects = gc.get_objects

    def counting_get_objects(*args: object) -> list[object]:
        searches.append(1)
        return real_get_objects(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(gc, "get_objects", counting_get_objects)
    first, second = threading.Condition(), threading.Condition()
    waiter = threading.Lock()  # as Condition.wait() queues one
    first._waiters.append(waiter)  # type: ignore[attr-defined]
    assert _wake._condition_queueing(id(waiter)) is first
    assert _wake._condition_queueing(id(waiter)) is first
    assert len(searches) == 1
    # moved to another queue: the remembered answer no longer holds
    first._waiters.remove(waiter)  # type: ignore[attr-defined]
    second._waiters.append(waiter)  # type: ignore[attr-defined]
    assert _wake._condition_queueing(id(waiter)) is second
    assert len(searches) == 2
    second._waiters.remove(waiter)  # type: ignore[attr-defined]
    assert _wake._condition_queueing(id(waiter)) is None
