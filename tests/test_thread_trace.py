"""kill()'s watch before sys.monitoring (CPython 3.9-3.11): the C module
sets a trace function in the target thread alone (csrc/thread_trace.c),
and the thread raises the exception itself as a Python function it calls
starts, where its own frames say it may (src/threadinject/_monitor.py,
_on_call: sys.monitoring's PY_START rule).  kill() adds it once it has
withheld its exception for a while (test_next_check.py: two threads
polling one Event, which kill() alone did not end on these versions).
"""

from __future__ import annotations

import sys
import threading
import traceback

import pytest
from conftest import JOIN_TIMEOUT, watched_until_ended

from threadinject import _monitor

tracer = _monitor._thread_tracer()

pytestmark = pytest.mark.skipif(
    tracer is None,
    reason="3.9-3.11 with the C extension only: 3.12+ watch through sys.monitoring (test_monitor.py); "
           "without the C extension (nox's no_compiler session, THREADINJECT_PURE_PYTHON=1) another "
           "thread cannot be traced and kill() does without the watch (README, Limits); runs in CI's "
           "3.9, 3.10 and 3.11 sessions")


class Raised(BaseException):
    pass


def _raised_by_trace(exc: BaseException | None) -> bool:
    assert isinstance(exc, Raised), repr(exc)
    return "_on_call" in [entry.name for entry in traceback.extract_tb(exc.__traceback__)]


def test_a_traced_thread_raises_as_a_function_it_calls_starts_inside_its_handlers(spawn):
    ran = []

    def loop(stop: threading.Event) -> None:
        n = 0
        try:
            while not stop.is_set():  # a function of threading's, called from here: a raise point
                n += 1
        finally:
            ran.append(n)

    caught, watch = watched_until_ended(spawn, loop, Raised())
    assert watch is not None and watch.raised
    assert _raised_by_trace(caught)
    in_loop = [entry.line for entry in traceback.extract_tb(caught.__traceback__) if entry.name == "loop"]
    assert len(in_loop) == 1 and in_loop[0].startswith("while not stop.is_set():")  # out of that call
    assert len(ran) == 1  # the finally around the loop ran


def test_a_traced_thread_is_never_raised_in_at_its_lines(spawn):
    # no line events: a loop that calls no Python function is kill()'s to
    # judge by its frames (the thread would spend its time in the callback)
    def loop(stop: threading.Event) -> None:
        while not stop._flag:  # type: ignore[attr-defined]  # no call
            pass

    target = spawn(loop)
    with _monitor.watching(target.thread.ident, Raised()) as watch:
        assert watch is not None
        target.thread.join(0.2)
        assert target.thread.is_alive() and not watch.raised
    target.stop.set()
    target.join()
    assert target.caught is None and target.returned


def test_a_traced_thread_in_a_c_loop_raises_as_a_python_function_starts(spawn):
    # max() loops in C and calls the key function: no line of a loop of
    # Python's to raise at, only the start of each call
    def running_key(stop: threading.Event) -> None:
        max(range(10**15), key=lambda n: -n)

    caught, _ = watched_until_ended(spawn, running_key, Raised())
    assert _raised_by_trace(caught)


def test_a_generator_resumed_after_a_yield_is_no_start():
    # a "call" event also marks a generator's resumption: raised there, on
    # 3.9 and 3.10 the generator would leave without running the handlers
    # it is suspended in (a `with lock:` around its yield)
    def function() -> None:
        pass

    def generator():
        yield
        yield

    seen: list[tuple[str, bool]] = []

    def trace(frame, event, arg):
        if event == "call" and frame.f_code in (function.__code__, generator.__code__):
            seen.append((frame.f_code.co_name, _monitor._starts_afresh(frame)))

    sys.settrace(trace)
    try:
        function()
        list(generator())
    finally:
        sys.settrace(None)
    assert seen == [("function", True), ("generator", True), ("generator", False), ("generator", False)]


def test_a_thread_with_a_trace_function_of_its_own_is_not_watched(spawn):
    def own(frame, event, arg):
        return None

    traces = []

    def traced(stop: threading.Event) -> None:
        sys.settrace(own)
        try:
            ready.set()
            stop.wait(JOIN_TIMEOUT)
            traces.append(sys.gettrace())
        finally:
            sys.settrace(None)

    ready = threading.Event()
    target = spawn(traced)
    assert ready.wait(JOIN_TIMEOUT)
    with _monitor.watching(target.thread.ident, Raised()) as watch:
        assert watch is None  # kill() judges by frames alone, as it did before the watch
    target.stop.set()
    target.join()
    assert traces == [own] and target.caught is None


def test_the_trace_function_is_taken_away_when_the_watch_ends(spawn):
    asked, answered = threading.Event(), threading.Event()
    traces = []

    def reports(stop: threading.Event) -> None:
        while not stop.is_set():
            if asked.wait(0.001):
                asked.clear()
                traces.append(sys.gettrace())
                answered.set()

    def trace_now():
        answered.clear()
        asked.set()
        assert answered.wait(JOIN_TIMEOUT)
        return traces[-1]

    target = spawn(reports)
    with _monitor.watching(target.thread.ident, Raised()) as watch:
        assert watch is not None and watch.claim()  # kill() delivers it: the thread never raises it
        assert trace_now() is _monitor._on_call
    assert trace_now() is None
    assert target.thread.ident not in _monitor._kills  # no watch of it is left to take it away later
    target.stop.set()
    target.join()
    assert target.caught is None


def test_a_thread_with_a_profile_function_of_its_own_keeps_it(spawn):
    # watched all the same (the trace function), but not at its releases
    def own(frame, event, arg):
        return None

    profiles = []

    def profiled(stop: threading.Event) -> None:
        sys.setprofile(own)
        try:
            ready.set()
            stop.wait(JOIN_TIMEOUT)
            profiles.append(sys.getprofile())
        finally:
            sys.setprofile(None)

    ready = threading.Event()
    target = spawn(profiled)
    assert ready.wait(JOIN_TIMEOUT)
    with _monitor.watching(target.thread.ident, Raised()) as watch:
        assert watch is not None and watch.claim()
        assert not tracer._profile_releases(target.thread.ident, len)
    target.stop.set()
    target.join()
    assert profiles == [own] and target.caught is None


def test_trace_thread_checks_its_arguments():
    me = threading.get_ident()
    for fn in (tracer._trace_thread, tracer._untrace_thread, tracer._profile_releases,
               tracer._unprofile_releases):
        with pytest.raises(TypeError, match="2 positional arguments"):
            fn(me)
        with pytest.raises(TypeError, match="'ident' must be an int"):
            fn("1", len)
        with pytest.raises(TypeError, match="'ident' must be an int"):
            fn(True, len)
        with pytest.raises(ValueError, match="'ident' must be a thread ident"):
            fn(-1, len)
        with pytest.raises(TypeError, match="'callback' must be callable"):
            fn(me, 1)
    assert tracer._untrace_thread(me, len) is False  # not traced by it
    assert tracer._unprofile_releases(me, len) is False  # not profiled by it
    ended = threading.Thread(target=lambda: None)
    ended.start()
    ended.join(JOIN_TIMEOUT)
    assert tracer._trace_thread(ended.ident, len) is False  # no such thread
    assert tracer._profile_releases(ended.ident, len) is False
