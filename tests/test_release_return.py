"""The watch's raise point at the return of a C ``release()`` (_monitor.py).

A loop whose one blocking call is in a ``finally`` block before its release
(``lock.acquire(); try: ...; finally: time.sleep(0.001); lock.release()``)
lets the GIL go only in that sleep, where kill() must withhold; up to
2026-11-28 the watch had no raise point in it on 3.9-3.13.0 (no loop jumps
there) and such a thread was not killed.  It now raises as the release
returns, the lock let go, if no other release is ahead: sys.monitoring's
C_RETURN (local events on the code objects on the thread's stack that have
such a block, 3.12+), a profile function in the thread on 3.9-3.11 (the C
extension: csrc/thread_trace.c).  Only loop jumps are switched off here, so
that the raise can come from nowhere else (where they are sound they would
raise at the loop's end too).
"""

from __future__ import annotations

import sys
import threading
import time
import traceback

import pytest
from conftest import wait_until, watched_until_ended

from threadinject import _frames, _landing, _monitor

pytestmark = [
    pytest.mark.skipif(
        sys.version_info < (3, 12) and _monitor._thread_tracer() is None,
        reason="3.9-3.11 watch through the C extension's trace and profile functions: not in nox's "
               "no_compiler session nor with THREADINJECT_PURE_PYTHON=1 (no watch there: README, "
               "Limits); runs in every other session"),
    pytest.mark.skipif(
        not _frames.READABLE,
        reason="free-threaded builds read no other thread's frames, so the code objects to watch are "
               "not known; a thread blocked in such a block is judged while held at its call instead "
               "(test_finally.py); runs on every GIL build"),
]

_CALLBACKS = {"_on_release_return", "_on_traced_release"}


class Raised(BaseException):
    pass


@pytest.fixture
def no_jumps(monkeypatch):
    """Loop jumps are no raise point during the test."""
    if sys.version_info >= (3, 12):
        assert _monitor._arm()  # the jump probe has run
        _monitor._disarm()
        monkeypatch.setattr(_monitor, "_events", sys.monitoring.events.PY_START)  # type: ignore[attr-defined]


def _raised_by(exc: BaseException | None) -> set[str]:
    assert isinstance(exc, Raised), repr(exc)
    return _CALLBACKS & {entry.name for entry in traceback.extract_tb(exc.__traceback__)}


def test_a_watched_thread_raises_as_its_release_in_a_finally_block_returns(spawn, no_jumps):
    lock = threading.Lock()
    rounds = []
    ended = []

    def loop(stop: threading.Event) -> None:
        try:
            while not stop._flag:  # type: ignore[attr-defined]  # no Python call: stop.is_set() is one
                lock.acquire()
                try:
                    rounds.append(None)
                finally:
                    time.sleep(0.001)
                    lock.release()
        finally:
            ended.append(len(rounds))

    # watched once inside the loop (its frame's code is the one watched)
    caught, watch = watched_until_ended(spawn, loop, Raised(), lambda: rounds)
    assert watch is not None and watch.raised
    assert _raised_by(caught)
    assert ended and not lock.locked()


def test_never_raised_as_a_release_returns_with_another_release_ahead(spawn, no_jumps):
    # raised at `first.release()`, the exception would skip `second.release()`
    first, second = threading.Lock(), threading.RLock()
    at_first = []

    def loop(stop: threading.Event) -> None:
        while not stop._flag:  # type: ignore[attr-defined]
            first.acquire()
            second.acquire()
            try:
                pass
            finally:
                time.sleep(0.001)
                first.release()
                at_first.append(not second._is_owned())  # type: ignore[attr-defined]
                second.release()

    for _ in range(5):
        rounds = len(at_first)
        caught, _ = watched_until_ended(spawn, loop, Raised(), lambda: len(at_first) > rounds)
        assert _raised_by(caught)
        assert not first.locked()
        assert second.acquire(False), "the RLock was left held"
        second.release()
    assert not any(at_first)


def test_released_soundly_only_at_the_last_release_a_finally_block_has():
    def body(first, second):
        first.acquire()
        try:
            pass
        finally:
            time.sleep(0)
            first.release()
            second.release()

    code = body.__code__
    # the calls of the two releases, in their normal-path copy of the block
    calls = sorted(offset for offset in _landing.release_calls(code)
                   if offset in _landing._releases(code).after)
    frame = sys._getframe()  # a frame further out that skips nothing
    assert len(calls) >= 2

    class At:  # a frame of `code` at `offset`, called from here
        f_code = code
        f_back = frame

    verdicts = [_landing.released_soundly(At(), offset) for offset in calls]  # type: ignore[arg-type]
    # the first release of each copy has the second ahead; the second nothing
    assert verdicts[:2] == [False, True], verdicts
    assert not _landing.released_soundly(At(), 0)  # type: ignore[arg-type]  # not a release call


def test_the_release_calls_are_watched_only_while_a_kill_is(spawn, no_jumps):
    lock = threading.Lock()
    profiles = []  # the thread's profile function, as it saw it round after round
    after = []

    def loop(stop: threading.Event) -> None:
        while not stop._flag:  # type: ignore[attr-defined]
            lock.acquire()
            try:
                profiles.append(sys.getprofile())
            finally:
                time.sleep(0.001)
                lock.release()
        after.append(sys.getprofile())

    target = spawn(loop)
    wait_until(lambda: profiles, "the thread never went round its loop")
    with _monitor.watching(target.thread.ident, Raised()) as watch:
        assert watch is not None and watch.claim()  # as kill() does before it schedules: no raise
        if sys.version_info >= (3, 12):
            monitoring = sys.monitoring  # type: ignore[attr-defined]
            assert monitoring.get_local_events(_monitor._tool, loop.__code__) == monitoring.events.CALL
        rounds = len(profiles)
        wait_until(lambda: len(profiles) > rounds + 1, "no round watched")  # one begun before, one whole
    profiles_seen = set(profiles)
    if sys.version_info >= (3, 12):
        assert sys.monitoring.get_local_events(_monitor._tool, loop.__code__) == 0  # type: ignore[attr-defined]
        assert not _monitor._releases_watched
        assert profiles_seen == {None}
    else:  # the C extension's profile function, while watched (CPython reports its callback)
        assert profiles_seen == {None, _monitor._on_traced_release}
    target.stop.set()
    target.join()
    assert target.caught is None and after == [None]
