"""kill() never lands its exception inside the critical lines of threading's
and queue's own code (src/threadinject/_sync_code.py), on GIL builds.

A thread runs through those lines in microseconds, so each test holds one
there: an attribute of the primitive is replaced by a C callable that
blocks (with the GIL released, the innermost Python frame stays the
primitive's own, at that call) until the test lets it go.  Meanwhile
kill() has judged the thread several times; the test then checks where
the exception landed and that the primitive still works.  Before
_sync_code.py, kill() scheduled the exception at once into both threads
and it landed right after the held call: the queue's item was lost, and the
Condition's waiter was left queued (a stale waiter swallows a later
notify()).
"""

from __future__ import annotations

import collections
import functools
import linecache
import os
import queue
import threading

import pytest
from conftest import JOIN_TIMEOUT, wait_until

from threadinject import ThreadKilled, _frames
from threadinject._kill import make_kill

pytestmark = pytest.mark.skipif(
    not _frames.READABLE,
    reason="kill() judges by frames on GIL builds only; on free-threaded builds the thread raises the kill "
           "itself and never in threading's or queue's code (_monitor.py, tests/test_monitor.py)")


def _counting_kill(api):
    """api.kill, and a list that grows by one at each of its judgements."""
    judged = []

    def unsafe(thread):
        judged.append(None)
        return api.unsafe_to_land(thread)

    return make_kill(api.inject, api.pending, api.cancel, api.wake, unsafe, api.inject_if_at), judged


def _at_line(thread, code, text):
    """Whether the innermost frame of `thread` runs `code` on a line containing `text`."""
    frame = _frames.innermost(thread.ident)
    return (frame is not None and frame.f_code is code
            and text in linecache.getline(code.co_filename, frame.f_lineno))


def _landed_at(exc):
    """(code, source line) where `exc` was raised."""
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return code, linecache.getline(code.co_filename, tb.tb_lineno).strip()


def _kill_held(api, spawn, body, held_at, let_go):
    """Start `body`, wait until held_at(thread), kill it from another thread,
    let it go once kill() has judged it three times; the ended target."""
    target = spawn(body)
    wait_until(lambda: held_at(target.thread), "the thread did not reach the held call")
    kill, judged = _counting_kill(api)
    result = []
    killer = threading.Thread(target=lambda: result.append(kill(target.thread, JOIN_TIMEOUT)))
    killer.start()
    try:
        # (or kill() has ended it already: the checks below say where it landed)
        wait_until(lambda: len(judged) >= 3 or not killer.is_alive(), "kill() did not judge the thread")
    finally:
        let_go()
        killer.join(JOIN_TIMEOUT)
    assert not killer.is_alive()
    assert result == [True]
    assert isinstance(target.caught, ThreadKilled), target.caught
    return target


def test_kill_does_not_land_between_taking_a_queue_item_and_returning_it(api, spawn):
    q: queue.Queue[object] = queue.Queue()
    q.put("placeholder")  # Queue.get finds an item and calls _get()
    r, w = os.pipe()
    q._get = functools.partial(os.read, r, 1)  # type: ignore[method-assign]  # takes the item: held
    got = []

    def body(stop):
        got.append(q.get())
        stop.wait()

    try:
        target = _kill_held(api, spawn, body,
                            lambda thread: _at_line(thread, queue.Queue.get.__code__, "self._get()"),
                            lambda: os.write(w, b"x"))
    finally:
        os.close(r)
        os.close(w)
    assert got == [b"x"]  # the item taken was returned before the kill landed
    assert _landed_at(target.caught)[0] is threading.Condition.wait.__code__  # in stop.wait()
    assert q.mutex.acquire(False)
    q.mutex.release()


def test_kill_does_not_land_between_queueing_a_condition_waiter_and_waiting(api, spawn):
    gate: queue.SimpleQueue[None] = queue.SimpleQueue()

    class HeldWaiters(collections.deque):  # type: ignore[type-arg]
        # Condition.wait's self._waiters.append(waiter) blocks in
        # gate.get(block=waiter) instead (a bound C method: no frame of its
        # own); the waiter is then not queued, so the wait ends at its timeout
        append = gate.get

    cond = threading.Condition()
    cond._waiters = HeldWaiters()  # type: ignore[attr-defined]

    def body(stop):
        while not stop.is_set():
            with cond:
                cond.wait(0.05)

    def let_go():
        for _ in range(1000):  # every later append() returns at once
            gate.put(None)

    target = _kill_held(api, spawn, body,
                        lambda thread: _at_line(thread, threading.Condition.wait.__code__, "_waiters.append"),
                        let_go)
    code, line = _landed_at(target.caught)
    assert code is threading.Condition.wait.__code__ and "waiter.acquire(" in line, (code, line)
    assert cond.acquire(False)  # the with statement released it
    cond.release()
    assert not cond._waiters  # type: ignore[attr-defined]
