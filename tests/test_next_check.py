"""kill() of a thread it finds stopped at a check to give up the GIL: from
3.13 an exception scheduled then lands at the thread's *next* check
(src/threadinject/_landing.py), which may be the end of an acquire() the
thread has yet to make.  kill() judges those next checks too.

Threads that take and release a lock in a tight loop, or poll an Event,
are stopped at such checks all the time: before the rule, killing the
first kind left the lock held 14 times in 200 on 3.13.0 (15 on 3.14.10 and
3.15.2), and a kill of the second landed in Condition._acquire_restore
before it took the condition's lock back.  On 3.9-3.12 the exception lands
at the check the thread is stopped at, and these tests check the same
outcome there; on 3.9, which checks at nearly every instruction, the lock
loop's kill landed in its finally's normal path, after POP_BLOCK and before
release(), 77 times in 200 (_landing.unprotected_cleanup()).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

import pytest
from conftest import JOIN_TIMEOUT, end_anyhow, kill_each, lock_is_free

from threadinject import ThreadKilled, _frames, _landing, _monitor

pytestmark = pytest.mark.skipif(
    not _frames.READABLE,
    reason="kill() judges a running thread by its frames on GIL builds only; free-threaded builds never "
           "schedule into one (the thread raises the kill itself: _monitor.py, tests/test_monitor.py)")

def test_kill_never_leaves_held_a_lock_a_running_thread_takes_and_releases(api):
    lock = threading.Lock()

    def body(ended, running):
        try:
            running.set()
            while True:
                lock.acquire()
                try:
                    pass
                finally:
                    lock.release()
        except ThreadKilled as exc:
            ended.append(exc)

    kill_each(api, body, lock_is_free(lock), 60)


def _polling(event: threading.Event) -> Callable[[list[BaseException], threading.Event], None]:
    """A kill_each() body that polls `event` with wait(0) for ever."""
    def body(ended: list[BaseException], running: threading.Event) -> None:
        try:
            running.set()
            while True:
                event.wait(0)
        except ThreadKilled as exc:
            ended.append(exc)

    return body


def _is_whole(event: threading.Event) -> Callable[[], None]:
    """A kill_each() after(): `event`'s lock free, no waiter left queued."""
    def check() -> None:
        cond = event._cond  # type: ignore[attr-defined]
        assert cond.acquire(False), "a kill left the Event's lock held"
        try:
            assert not cond._waiters, "a kill left a waiter queued"
        finally:
            cond.release()

    return check


def test_kill_of_a_thread_polling_an_event_leaves_the_event_whole(api):
    event = threading.Event()
    # few: kill() finds such a thread where its exception may land only in
    # about 1 look in 220 on 3.13.0; from 3.12 the thread raises the kill
    # itself at its next Event.wait() once kill() has withheld it for 20 ms
    # (_monitor.py; README, Limits)
    kill_each(api, _polling(event), _is_whole(event), 5)


@pytest.mark.skipif(sys.version_info < (3, 12) and _monitor._thread_tracer() is None,
                    reason="needs the watch: sys.monitoring (3.12+), or the C extension's trace function "
                    "(3.9-3.11); without it two threads polling one Event keep each other where kill() may "
                    "not land, and it returns False (README, Limits); runs in every session but no_compiler")
def test_kill_of_threads_polling_one_event_ends_each_and_leaves_the_event_whole(api):
    # Each poller is mostly in Event.wait's `with` or waiting for the
    # condition's lock the other holds: on 3.12.1 and 3.13.0 kill() found
    # neither where its exception may land within 10 s (3 s on 3.9-3.11),
    # until the thread was left to raise it itself at its next Event.wait()
    # (_monitor.py; before 3.12, through its trace function)
    event = threading.Event()
    poll = _polling(event)
    for _ in range(5):
        ended: list[BaseException] = []
        running = [threading.Event(), threading.Event()]
        pollers = [threading.Thread(target=poll, args=(ended, started), daemon=True) for started in running]
        for poller in pollers:
            poller.start()
        try:
            assert all(started.wait(JOIN_TIMEOUT) for started in running)
            time.sleep(0.001)
            for poller in pollers:
                assert api.kill(poller, JOIN_TIMEOUT) is True
        finally:
            for poller in pollers:
                end_anyhow(api, poller)
        assert not any(poller.is_alive() for poller in pollers)
        assert [type(e) for e in ended] == [ThreadKilled, ThreadKilled], ended
        _is_whole(event)()


def _looping(lock):
    while True:
        lock.acquire()
        try:
            pass
        finally:
            lock.release()


@pytest.mark.skipif(not _landing.LANDS_AT_NEXT_CHECK, reason="3.13+ only: earlier an exception lands at "
                    "the check the thread is stopped at, and next checks are never looked for")
def test_next_checks_of_a_loop_reach_its_acquire_from_its_back_edge():
    import dis

    instructions = list(dis.get_instructions(_looping))
    back_edge = next(i.offset for i in instructions if i.opname == "JUMP_BACKWARD")
    calls = [i.offset for i in instructions if i.opname.startswith("CALL")]
    acquire, release = calls[0], calls[1]  # the first release is the normal path's
    checks, leaves, raises = _landing._checks_after(_looping.__code__, back_edge)
    assert checks == {acquire} and not leaves and not raises
    checks, leaves, raises = _landing._checks_after(_looping.__code__, release)
    assert checks == {back_edge} and not leaves and not raises


@pytest.mark.skipif(not _landing.LANDS_AT_NEXT_CHECK, reason="3.13+ only, as above")
def test_next_checks_follow_a_return_into_the_caller():
    import dis

    found = []

    def record():
        # inner() is at its call of record(), which a return follows
        caller = sys._getframe(1)
        checks = _landing.next_checks(caller, caller.f_lasti)
        assert checks is not None
        found.extend((f.f_code.co_name, offset) for f, offset in checks)

    def inner():
        record()
        return 1

    def outer():
        inner()
        sys.getrecursionlimit()

    outer()
    calls = [i.offset for i in dis.get_instructions(outer) if i.opname.startswith("CALL")]
    assert found == [("outer", calls[1])]  # the call after inner()'s, in outer()
