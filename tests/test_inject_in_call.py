"""_core._inject_in_call: schedule an exception while the wake signal's
handler holds the thread at its system call (Linux x86-64, C backend).

Free-threaded kill() uses it for a thread it finds in a system call: no GIL
keeps the thread there between a /proc read and the scheduling, and an
exception scheduled just after it left a sleep was seen to land right after
the bare acquire() that followed, leaving the lock held.  Held at the call,
the thread takes the exception at that call and nowhere further on.
"""

from __future__ import annotations

import threading
import time
import traceback

import pytest
from conftest import JOIN_TIMEOUT, SLOWDOWN

import threadinject
from threadinject import ThreadKilled, _backends, _kill, _syscalls, _wake

pytestmark = pytest.mark.skipif(
    not _syscalls.SUPPORTED or "c" not in _backends.NAMES,
    reason="the wake signal exists where the system-call wake is enabled, C backend; elsewhere "
           "free-threaded kill() schedules and re-checks (README, Limits)")

class Boom(Exception):
    pass


@pytest.fixture
def core():  # type: ignore[no-untyped-def]
    module = _backends.load("c")
    _syscalls.chosen_signal()  # installs the handler
    return module


def _sleeping_call(thread: threading.Thread) -> _syscalls.Blocked:
    """The system call time.sleep() has `thread` blocked in, once it is
    (clock_nanosleep; select before 3.11)."""
    deadline = time.monotonic() + JOIN_TIMEOUT
    while True:
        blocked = _syscalls.blocked_call(thread.native_id)  # type: ignore[arg-type]
        if blocked is not None and blocked.number != _syscalls.FUTEX:
            return blocked
        assert time.monotonic() < deadline, "the thread never slept"
        time.sleep(0.0002)


def _landed(thread_body_lines: list[str], thread: threading.Thread) -> str:
    thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive()
    assert len(thread_body_lines) == 1
    return thread_body_lines[0]


def _inject_once_held(core, thread: threading.Thread, exc: BaseException) -> None:  # type: ignore[no-untyped-def]
    """inject_in_call() until the thread is found held at its sleep (it can
    be between two)."""
    deadline = time.monotonic() + JOIN_TIMEOUT
    while not _wake.inject_in_call(core, thread, exc, _sleeping_call(thread)):
        assert time.monotonic() < deadline, "never held at its sleep"


def _start_sleeper() -> tuple[threading.Thread, list[str]]:
    """A thread in time.sleep(1e6), and the list it puts the line a Boom
    landed at in."""
    lines: list[str] = []

    def sleeper() -> None:
        try:
            time.sleep(1e6)
        except Boom as exc:
            lines.append(traceback.extract_tb(exc.__traceback__)[-1].line or "")

    thread = threading.Thread(target=sleeper, daemon=True)
    thread.start()
    return thread, lines


def test_the_exception_lands_at_the_call_the_thread_is_held_at(core):
    thread, lines = _start_sleeper()
    assert _wake.inject_in_call(core, thread, Boom("held"), _sleeping_call(thread)) is True
    assert _landed(lines, thread) == "time.sleep(1e6)"


def test_nothing_is_scheduled_in_a_thread_not_at_that_call(core):
    thread, lines = _start_sleeper()
    blocked = _sleeping_call(thread)
    # the same call returning elsewhere: the handler finds it not there
    assert core._inject_in_call(thread, Boom, thread.native_id, blocked.ip + 1, blocked.arg0,
                                0, False, True) is False
    assert core.pending(thread) is None
    # interrupted, CPython went back to sleep: still there to be ended
    _inject_once_held(core, thread, Boom("end"))
    assert _landed(lines, thread) == "time.sleep(1e6)"


@pytest.mark.parametrize("bad, message", [
    ((threading.current_thread(), ValueError, "1", 0, 0, 0, False, True), "int"),
    ((threading.current_thread(), "boom", 1, 0, 0, 0, False, True), "exc"),
    ((threading.current_thread(), ValueError, 1, 0, 0), "arguments"),
    (("thread", ValueError, 1, 0, 0, 0, False, True), "thread"),
])
def test_bad_arguments_are_type_errors(core, bad, message):
    with pytest.raises(TypeError, match=message):
        core._inject_in_call(*bad)


def _start_lock_looper(lock: threading.Lock,
                       caught: type[BaseException] = Boom) -> tuple[threading.Thread, list[str]]:
    """A thread looping: sleep, bare acquire(), release; the list it puts
    the line a `caught` landed at in."""
    lines: list[str] = []
    # most of a round asleep, as on the host, also under emulation (the
    # aarch64 VM), where the rest of a round takes ~15x longer
    nap = 0.0005 * SLOWDOWN

    def worker() -> None:
        try:
            while True:
                time.sleep(nap)
                lock.acquire()
                try:
                    pass
                finally:
                    lock.release()
        except caught as exc:
            lines.append(traceback.extract_tb(exc.__traceback__)[-1].line or "")

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    return thread, lines


def test_a_thread_that_runs_on_into_a_lock_never_takes_it_after_the_acquire(core):
    # Each round holds the thread in a short sleep that is followed by a
    # bare acquire(); the exception must land at the sleep every time.
    lock = threading.Lock()
    for _ in range(30):
        thread, lines = _start_lock_looper(lock)
        _inject_once_held(core, thread, Boom("round"))
        assert _landed(lines, thread) == "time.sleep(nap)"
        assert not lock.locked()


def _judged_running(thread: threading.Thread, call: _syscalls.Blocked) -> _wake.Withheld:
    """A thread kill() has watched run for PAST_CALL_CPU_NS, seen in `call` on the way."""
    cpu_ns, resolution_ns = _syscalls.cpu_time(thread.native_id)  # type: ignore[arg-type]
    return _wake.Withheld(None, cpu_ns - max(_wake.PAST_CALL_CPU_NS, 2 * resolution_ns), resolution_ns, call)


def _no_plain_inject(thread: object, exc: object) -> None:
    raise AssertionError("scheduled into the running thread")


def test_a_thread_judged_running_is_held_at_the_call_it_was_seen_in(core, monkeypatch):
    # The kill of a worker that sleeps and takes a free lock: /proc mostly
    # catches it moving, so it counts as running; scheduled as it ran, the
    # exception once landed right after its acquire() (3.13t stress run).
    # Held at the sleep it was seen in, it lands at the sleep.
    monkeypatch.setattr(_kill, "withhold_unseen", lambda thread, withheld, searched: (None, None))
    lock = threading.Lock()
    for _ in range(10):
        thread, lines = _start_lock_looper(lock, ThreadKilled)
        withheld: _wake.Withheld | None = _judged_running(thread, _sleeping_call(thread))
        tried = []

        def inject_in_call(thread: threading.Thread, exc: BaseException, call: _syscalls.Blocked,
                           rewrite: bool = True,
                           judge: _wake.Judge | None = None) -> bool | None:
            # a call seen a while ago: interrupted, never given a fake result
            tried.append((call, rewrite))
            return _wake.inject_in_call(core, thread, exc, call, rewrite, judge)

        killed = ThreadKilled()
        while withheld is not None:
            assert withheld.tries < _wake.HELD_TRIES, "never found in its sleep"
            withheld = _kill._schedule_unseen(thread, _no_plain_inject, core.pending, core.cancel, killed,
                                              withheld, {}, inject_in_call)
            # as kill() polls: with a GIL, tries back to back kept the
            # worker waiting for the GIL, not in its sleep (1 run in ~25 on 3.15)
            time.sleep(0.001)
        assert _landed(lines, thread) == "time.sleep(nap)"
        assert not lock.locked()
        assert tried and all(rewrite is False for _, rewrite in tried)


def test_a_thread_never_found_at_that_call_is_scheduled_into_after_the_tries(core, monkeypatch):
    monkeypatch.setattr(_kill, "withhold_unseen", lambda thread, withheld, searched: (None, None))
    thread, lines = _start_sleeper()
    withheld: _wake.Withheld | None = _judged_running(thread, _sleeping_call(thread))
    injected = []

    def inject(thread: threading.Thread, exc: BaseException) -> None:
        injected.append(exc)
        core.inject(thread, Boom("scheduled"))

    attempts = 0
    while withheld is not None:
        attempts += 1
        withheld = _kill._schedule_unseen(thread, inject, core.pending, core.cancel, ThreadKilled(),
                                          withheld, {}, lambda *args: False)  # never found there
        assert attempts <= _wake.HELD_TRIES + 1
    assert attempts == _wake.HELD_TRIES + 1 and len(injected) == 1
    threadinject.wake(thread)  # it sleeps in time.sleep(1e6) with Boom pending
    assert _landed(lines, thread) == "time.sleep(1e6)"


def test_held_without_rewriting_the_call_goes_on_and_the_exception_lands_as_it_returns(core):
    # kill() holds a thread at a call it saw some time ago without faking a
    # result (the call may be another library's by then): interrupted, the
    # interpreter's sleep goes on, the exception pending, until it returns
    # or wake() ends it
    thread, lines = _start_sleeper()
    deadline = time.monotonic() + JOIN_TIMEOUT
    while not _wake.inject_in_call(core, thread, Boom("held"), _sleeping_call(thread), rewrite=False):
        assert time.monotonic() < deadline, "never held at its sleep"
    if not _syscalls.CPYTHON_RAISES_AFTER_EINTR:  # 3.15+ raises it after the interruption
        assert _sleeping_call(thread).number != _syscalls.FUTEX
        assert lines == [] and core.pending(thread) is not None
        threadinject.wake(thread)
    assert _landed(lines, thread) == "time.sleep(1e6)"
