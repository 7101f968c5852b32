"""A kill that lands in a weakref callback or finalizer is delivered again (_swallowed.py).

CPython runs such callbacks from C and reports an exception raised in them
to sys.unraisablehook ("Exception ignored in: ..."), then goes on: the
thread was not killed.  Until 2026-11-28 kill() then waited in vain: a loop
dropping a WeakKeyDictionary key in a C call survived 3-10 of 20 kills on
3.9.18, 3.12.1 and 3.13.15.  kill() now takes such a report of a
ThreadKilled in a thread it is killing, prints nothing, and delivers the
kill again.
"""

from __future__ import annotations

import sys
import threading
import weakref

import pytest
from conftest import JOIN_TIMEOUT, end_anyhow

from threadinject import ThreadKilled, _swallowed


class _Key:
    pass


class _Recorder(list):
    """A sys.unraisablehook that keeps what reaches it."""

    def __call__(self, unraisable: object) -> None:
        self.append(unraisable)


@pytest.fixture
def reported(monkeypatch):
    """What reaches sys.unraisablehook (the hook kill() hands the rest to)."""
    recorder = _Recorder()
    monkeypatch.setattr(sys, "unraisablehook", recorder)
    return recorder


def test_kill_ends_a_thread_whose_weakref_callbacks_catch_it(api, reported):
    keys: weakref.WeakKeyDictionary[_Key, int] = weakref.WeakKeyDictionary()

    def loop(ended: list[BaseException]) -> None:
        keep = []
        try:
            while True:
                key = _Key()
                keys[key] = 1
                keep.append(key)
                del key
                keep.clear()  # the key's last reference goes in a C call: keys' remove() runs here
        except ThreadKilled as exc:
            ended.append(exc)

    for _ in range(20):
        ended: list[BaseException] = []
        thread = threading.Thread(target=loop, args=(ended,), daemon=True)
        thread.start()
        try:
            assert api.kill(thread, JOIN_TIMEOUT) is True
        finally:
            end_anyhow(api, thread)
        assert [type(e) for e in ended] == [ThreadKilled]
    assert reported == []  # nothing printed ("Exception ignored in: ...")
    assert sys.unraisablehook is reported  # put back


def _report(exc: BaseException, here: bool = True) -> list[str]:
    """`exc` raised in a weakref callback, in this thread or (`here` False)
    another; which thread ran it, once it has."""
    ran: list[str] = []

    def raising(_: object) -> None:
        ran.append(threading.current_thread().name)
        raise exc

    def drop() -> None:
        key = _Key()
        ref = weakref.ref(key, raising)
        del key
        assert ref() is None

    if here:
        drop()
    else:
        other = threading.Thread(target=drop, name="other")
        other.start()
        other.join(JOIN_TIMEOUT)
    return ran


def test_only_a_threadkilled_in_a_thread_being_killed_is_taken(reported):
    me = threading.get_ident()
    with _swallowed.expecting(me):
        assert sys.unraisablehook is not reported
        _report(ThreadKilled())
        assert _swallowed.take(me) and not _swallowed.take(me)
        _report(ValueError("not a kill"))
        other = _report(ThreadKilled(), here=False)  # in a thread no kill is aimed at
        assert other == ["other"] and not _swallowed.take(me)
    assert [type(r.exc_value) for r in reported] == [ValueError, ThreadKilled]
    assert sys.unraisablehook is reported
    _report(ThreadKilled())  # no kill under way: reported as before
    assert len(reported) == 3 and not _swallowed.take(me)


def test_the_hook_stays_while_any_kill_is_under_way(reported):
    me = threading.get_ident()
    with _swallowed.expecting(me):
        with _swallowed.expecting(me):
            hook = sys.unraisablehook
        assert sys.unraisablehook is hook is not reported
    assert sys.unraisablehook is reported


def test_a_hook_set_meanwhile_is_left_in_place(reported):
    def other(unraisable: object) -> None:
        pass

    with _swallowed.expecting(threading.get_ident()):
        sys.unraisablehook = other
    assert sys.unraisablehook is other
