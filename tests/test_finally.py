"""kill() of a thread inside a ``finally`` block that has a release ahead.

``lock.acquire(); try: ...; finally: log(); lock.release()``: an exception
landing in ``log()`` skips the release and leaves the lock held for good.
Any injector does that, the ctypes recipe included; a thread that spends
its time in such a ``finally`` was caught there by most kills (a loop
killed 100 times kept its lock 92 times on 3.9.18, 88 on 3.12.1, 23 on
3.13.0 and 83 on 3.13.15t, 2026-11-27).  kill() holds its exception back
while any frame of the thread is in a ``finally`` block before its release
(_landing.before_finally_release()) or in a Python ``release()`` or
``__exit__`` a frame further out called, and raises it once the thread is
past them: GIL builds judge the frames as read (_wake.py), free-threaded
builds let the thread raise it only outside them (_monitor.py).
"""

from __future__ import annotations

import dis
import functools
import sys
import threading
import time

import pytest
from conftest import kill_each, lock_is_free

from threadinject import ThreadKilled, _frames, _landing, _monitor, _syscalls


def _cleanup():
    for _ in range(30):  # where the thread spends most of its time
        pass


def _release_loop(lock, in_finally):
    """A kill_each() body: `lock` taken round after round and released in a
    ``finally`` block that calls `in_finally()` before the release."""

    def body(ended, running):
        try:
            running.set()
            while True:
                lock.acquire()
                try:
                    pass
                finally:
                    in_finally()
                    lock.release()
        except ThreadKilled as exc:
            ended.append(exc)

    return body


def test_kill_never_skips_a_release_a_finally_block_has_ahead(api):
    lock = threading.Lock()
    kill_each(api, _release_loop(lock, _cleanup), lock_is_free(lock), 30)


def _needs_frames_at_calls(api):
    if not _frames.READABLE and (api.name != "c" or not _syscalls.SUPPORTED):
        pytest.skip("free-threaded: only the C backend's kill() reads a blocked thread's frames (while "
                    "the wake signal's handler holds it: Linux x86-64/aarch64); the ctypes fallback wakes "
                    "it and the kill lands in the block (README, Limits); runs on every GIL build")


def test_kill_waits_for_a_thread_asleep_in_a_finally_block_before_its_release(api):
    # Blocked in a system call there, the thread is woken by kill() only once
    # judged: free-threaded builds read its frames while the wake signal's
    # handler holds it at that call (_kill._JudgeAtCall); without that, the
    # kill woke the sleep and landed in the block (3.13.15t, every time).
    _needs_frames_at_calls(api)
    lock = threading.Lock()

    def body(ended, running):
        try:
            lock.acquire()
            try:
                running.set()
            finally:
                time.sleep(0.2)  # killed during this sleep
                lock.release()
            threading.Event().wait(60)  # ... and lands here (a wait every backend ends)
        except ThreadKilled as exc:
            ended.append(exc)

    kill_each(api, body, lock_is_free(lock), 5)


def test_kill_never_skips_a_release_a_finally_block_sleeps_before(api):
    _needs_frames_at_calls(api)
    lock = threading.Lock()

    def body(ended, running):
        try:
            running.set()
            while True:
                lock.acquire()
                try:
                    pass
                finally:
                    time.sleep(0.001)  # where the thread spends half its time
                    lock.release()
                # and the other half, where kill() may wake it (with a GIL
                # it sees the thread only where it lets the GIL go; one that
                # does so only in its finally block is the next test's)
                time.sleep(0.001)
        except ThreadKilled as exc:
            ended.append(exc)

    kill_each(api, body, lock_is_free(lock), 20)


def test_kill_ends_a_loop_whose_one_blocking_call_sleeps_in_its_finally_before_the_release(api):
    # With a GIL, kill() meets this thread only in that sleep, where it must
    # withhold: the watch raises as the release returns (_monitor.py; loops'
    # jumps are no raise point on 3.9-3.13.0).  Up to 2026-11-28 kill()
    # returned False there on 3.9.18-3.13.0; free-threaded builds judge
    # the thread held at its sleep and raise at the loop's jump.
    _needs_frames_at_calls(api)
    if sys.version_info < (3, 12) and _monitor._thread_tracer() is None:
        pytest.skip("3.9-3.11 without the C extension: no watch, so kill() returns False here (README, "
                    "Limits); runs in every other session")
    lock = threading.Lock()
    kill_each(api, _release_loop(lock, functools.partial(time.sleep, 0.001)), lock_is_free(lock), 10)


class _SlowLock:
    """A lock whose release() and __exit__ do their bookkeeping before they
    let go (__exit__ on its own: not through release())."""

    def __init__(self):
        self.lock = threading.Lock()

    def acquire(self):
        self.lock.acquire()

    def release(self):
        _cleanup()
        self.lock.release()

    __enter__ = acquire

    def __exit__(self, *exc_info):
        _cleanup()
        self.lock.release()


def test_kill_never_lands_in_a_python_release_before_it_lets_go(api):
    slow = _SlowLock()

    def body(ended, running):
        try:
            running.set()
            while True:
                slow.acquire()
                try:
                    pass
                finally:
                    slow.release()
        except ThreadKilled as exc:
            ended.append(exc)

    kill_each(api, body, lock_is_free(slow.lock), 30)


def test_kill_never_lands_in_a_python_exit_before_it_lets_go(api):
    slow = _SlowLock()

    def body(ended, running):
        try:
            running.set()
            while True:
                with slow:
                    pass
        except ThreadKilled as exc:
            ended.append(exc)

    kill_each(api, body, lock_is_free(slow.lock), 30)


def _cleanup_shapes(lock, a, x, y, items):
    while a:
        try:
            x()
        finally:
            if a:
                x()
            else:
                y()
            for item in items:
                item.close()
            lock.release()
            y()


def test_before_finally_release_covers_each_copy_of_the_block_up_to_its_release():
    code = _cleanup_shapes.__code__
    before = _landing.before_finally_release(code)
    calls = [i for i in dis.get_instructions(code) if i.opname == "CALL" or i.opname.startswith("CALL_")]

    starts = sorted(dis.findlinestarts(code))

    def offsets(line_offset):
        line = code.co_firstlineno + line_offset
        return [i.offset for i in calls if max(s for s in starts if s[0] <= i.offset)[1] == line]

    x_in_try, x_in_finally = offsets(3)[:1], offsets(6)
    y_in_else, closes, releases, y_after = offsets(8), offsets(10), offsets(11), offsets(12)
    # the normal path's copy and the exceptional path's, each
    assert len(x_in_finally) == len(y_in_else) == len(closes) == len(releases) == len(y_after) == 2
    assert all(offset in before for offset in x_in_finally + y_in_else + closes)  # both branches, the loop
    assert not any(offset in before for offset in x_in_try + releases + y_after)
