"""kill() lets the target raise ThreadKilled itself (_monitor.py).

On free-threaded builds no other thread's frames can be read, so a running
thread is not sent an asynchronous exception that could land right after a
lock's acquire(); sys.monitoring's PY_START and JUMP callbacks raise it in
the thread, at a point its own frame shows to be safe.  GIL builds (3.12+)
add the same watch once kill() has withheld its exception for a while
(_kill._WATCH_AFTER; test_next_check.py kills two threads polling one
Event that way).  The probe that decides whether a raise at a loop's jump
runs the enclosing handlers, and the rules of where to raise, are checked
on every CPython with sys.monitoring (3.12+); the kills that rely on the
watch alone for a running thread on free-threaded builds.
"""

from __future__ import annotations

import dis
import sys
import threading
import time
import traceback
import types

import pytest
from conftest import JOIN_TIMEOUT, run_python

from threadinject import ThreadKilled, _backends, _frames, _kill, _monitor

needs_monitoring = pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is new in 3.12")
needs_a_watch = pytest.mark.skipif(
    sys.version_info < (3, 12) and _monitor._thread_tracer() is None,
    reason="3.9-3.11 watch through the C extension's trace function (test_thread_trace.py): not in nox's "
           "no_compiler session nor with THREADINJECT_PURE_PYTHON=1; runs in every other session")
free_threaded = pytest.mark.skipif(
    _frames.READABLE,
    reason="the watch is the only way a running thread is killed where frames cannot be read "
           "(free-threaded builds: 3.13t here); GIL builds judge by frames first (test_kill.py, "
           "test_wake_locks.py) and add the watch only after withholding (test_next_check.py)")

ROUNDS = 30


def _jump_raise_runs_finally() -> bool:
    """Independently of _monitor: does an exception raised by a JUMP
    callback run the `finally` around the loop?"""
    monitoring = sys.monitoring  # type: ignore[attr-defined]
    tool = next(t for t in range(6) if monitoring.get_tool(t) is None)
    ran, escaped = [], []

    class Raised(BaseException):
        pass

    def loop() -> None:
        n = 0
        try:
            while n < 10_000_000:
                n += 1
        finally:
            ran.append(n)

    def on_jump(code: object, source: int, target: int) -> None:
        if code is loop.__code__:
            raise Raised()

    monitoring.use_tool_id(tool, "test")
    try:
        monitoring.register_callback(tool, monitoring.events.JUMP, on_jump)
        monitoring.set_events(tool, monitoring.events.JUMP)
        try:
            loop()
        except Raised:
            escaped.append(True)
        finally:
            monitoring.set_events(tool, 0)
    finally:
        monitoring.free_tool_id(tool)
    assert escaped, "the callback's exception did not come out"
    return bool(ran)


@needs_monitoring
def test_jump_probe_agrees_with_a_direct_check():
    # _arm() runs the probe (in a thread of its own) the first time
    assert _monitor._arm()
    try:
        probed = _monitor.covers_loops()
    finally:
        _monitor._disarm()
    assert probed is _jump_raise_runs_finally()
    if sys.version_info[:3] in ((3, 12, 1), (3, 13, 0)):
        assert not probed  # measured: the frame's handlers are skipped there (_monitor.py)
    if sys.version_info[:3] in ((3, 13, 15), (3, 14, 10), (3, 15, 2)):
        assert probed  # measured: they run (GIL builds and 3.13.15t)


def _backward_jumps(code: types.CodeType) -> list[tuple[int, int]]:
    """(source, target) of each backward jump of `code`, in order."""
    return [(i.offset, i.argval) for i in dis.get_instructions(code)
            if i.opname.startswith("JUMP") and isinstance(i.argval, int) and i.argval < i.offset]


@needs_monitoring
def test_the_jump_of_a_loop_that_takes_or_gives_back_locks_alone_is_never_a_raise_point():
    def take_all(locks: list[threading.Lock]) -> None:
        for lock in locks:
            lock.acquire()
        for lock in locks: lock.release()  # noqa: E701  (one line)

    def take_and_give_back(lock: threading.Lock) -> None:
        while True:
            lock.acquire()
            try:
                pass
            finally:
                lock.release()  # 3.14 puts the loop's jump on this line

    def with_each(lock: threading.Lock, items: list[int]) -> None:
        for _ in items:
            with lock:
                pass

    def no_lock(items: list[int]) -> None:
        for item in items:
            print(item)

    verdicts = {f.__name__: {_monitor._round_takes_or_gives_back_alone(f.__code__, source, target)
                             for source, target in _backward_jumps(f.__code__)}
                for f in (take_all, take_and_give_back, with_each, no_lock)}
    # (a `with` is whole by construction; 3.12 and 3.13 name no __enter__ in it)
    assert verdicts == {"take_all": {True}, "take_and_give_back": {False},
                        "with_each": {False}, "no_lock": {False}}


def _raised_by_watch(exc: BaseException | None) -> bool:
    """Whether `exc` was raised by one of _monitor's callbacks (its frame
    is in the traceback) rather than scheduled by kill()."""
    assert isinstance(exc, ThreadKilled), repr(exc)
    return any(entry.filename == _monitor.__file__ for entry in traceback.extract_tb(exc.__traceback__))


@free_threaded
def test_a_running_thread_raises_the_kill_itself(api, spawn):
    def busy(stop: threading.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1

    target = spawn(busy)
    assert api.kill(target.thread, JOIN_TIMEOUT)
    assert _raised_by_watch(target.caught)
    assert sys.monitoring.get_events(_monitor._tool) == 0  # type: ignore[attr-defined]  # disarmed


@free_threaded
def test_a_thread_that_has_raised_the_kill_is_watched_no_more(api, spawn):
    # as it unwinds, its events cost it what they cost any other thread
    # (the C filter's answer), not a call of the Python policy each
    watched_while_unwinding = []

    def busy(stop: threading.Event) -> None:
        n = 0
        try:
            while not stop.is_set():
                n += 1
        finally:
            watched_while_unwinding.append(threading.get_ident() in _monitor._watches)

    target = spawn(busy)
    assert api.kill(target.thread, JOIN_TIMEOUT)
    assert _raised_by_watch(target.caught)
    assert watched_while_unwinding == [False]


@free_threaded
def test_a_thread_in_a_c_loop_raises_the_kill_as_a_python_function_starts(api, spawn):
    # max() loops in C and calls the key function: no loop jump of Python's
    # to raise at, only the start of each call (PY_START); max() passes the
    # exception on
    def running_key(stop: threading.Event) -> None:
        max(range(10**15), key=lambda n: -n)

    target = spawn(running_key)
    assert api.kill(target.thread, JOIN_TIMEOUT)
    assert _raised_by_watch(target.caught)
    assert "_on_start" in [entry.name for entry in traceback.extract_tb(target.caught.__traceback__)]


@free_threaded
def test_a_kill_given_up_on_a_long_c_call_is_left_scheduled_as_without_the_watch(api, spawn):
    # sum() over a range is one C call: no safe point to raise at until it
    # returns.  kill() gives up at its timeout and, as it documents (and did
    # before the watch), leaves the exception scheduled, judged by /proc:
    # it lands as the thread is back in Python code.  The events are kept
    # on around the kill: turning them on or off stops the world, which
    # would wait for that C call to end (README, kill).
    def long_c_call(stop: threading.Event) -> None:
        sum(range(10**8))  # about 1.3 s on this VM (3.13.15t): timed below
        while not stop.is_set():
            pass

    import time

    began = time.perf_counter()
    sum(range(10**8))
    took = time.perf_counter() - began  # the kill gives up well within the call, on any machine
    assert _monitor._arm()
    try:
        target = spawn(long_c_call)
        assert not api.kill(target.thread, took / 4)
        assert isinstance(api.pending(target.thread), ThreadKilled)
        target.join()
    finally:
        _monitor._disarm()
    assert isinstance(target.caught, ThreadKilled) and not _raised_by_watch(target.caught)


@free_threaded
def test_where_a_jump_raise_would_skip_handlers_a_loop_is_killed_as_before(api, spawn, monkeypatch):
    # what kill() does where the probe finds a raise at a loop's jump skips
    # the loop's handlers (3.12.1 and 3.13.0 GIL builds measured so): only
    # PY_START is enabled, and a thread looping without calling a Python
    # function of its own is judged by /proc and scheduled into, as before
    # the watch; the claim keeps the two deliveries apart
    assert _monitor._arm()  # the probe has run
    _monitor._disarm()
    monkeypatch.setattr(_monitor, "_events", sys.monitoring.events.PY_START)  # type: ignore[attr-defined]
    assert not _monitor.covers_loops()

    def busy(stop: threading.Event) -> None:
        while not stop._flag:  # type: ignore[attr-defined]  # no Python call: stop.is_set() starts one
            pass

    target = spawn(busy)
    assert api.kill(target.thread, JOIN_TIMEOUT)
    assert isinstance(target.caught, ThreadKilled) and not _raised_by_watch(target.caught)


@free_threaded
def test_a_kill_never_lands_between_acquire_and_try(api, spawn):
    # the thread takes a free lock and otherwise only computes: no wait, no
    # system call kill() could hold it at (README, Limits, before the watch)
    lock = threading.Lock()

    def take_and_give_back(stop: threading.Event) -> None:
        n = 0
        while not stop.is_set():
            lock.acquire()
            try:
                n += 1
            finally:
                lock.release()

    for _ in range(3 * ROUNDS):  # the kill landed there within 100 rounds before the watch
        target = spawn(take_and_give_back)
        assert api.kill(target.thread, JOIN_TIMEOUT)
        assert lock.acquire(timeout=JOIN_TIMEOUT), "the killed thread left the lock held"
        lock.release()
        assert _raised_by_watch(target.caught)


@free_threaded
def test_a_thread_that_waits_for_a_lock_and_works_in_bursts_is_killed(api, spawn):
    # Another thread holds the lock most of the time (it sleeps inside):
    # the target spends its time in lock waits and bursts of microseconds
    # inside the lock, where the watch raises at its loop's jump.  (This
    # also passes with the watch turned off, through kill()'s /proc judging:
    # it checks the behaviour, not which way it came.)
    import time

    lock = threading.Lock()
    entered = [0]

    def holds(stop: threading.Event) -> None:
        while not stop.is_set():
            with lock:
                time.sleep(0.0005)

    def waits_and_bursts(stop: threading.Event) -> None:
        while not stop.is_set():
            with lock:
                entered[0] += 1

    holder = spawn(holds)
    for _ in range(ROUNDS):
        target = spawn(waits_and_bursts)
        assert api.kill(target.thread, JOIN_TIMEOUT)
        assert isinstance(target.caught, ThreadKilled)
    assert entered[0] > 0 and holder.thread.is_alive()
    holder.stop.set()
    holder.join()
    assert lock.acquire(False), "a killed thread left the lock held"
    lock.release()


@free_threaded
def test_never_raised_in_threading_code_nor_at_a_python_release(api, spawn):
    # Event.wait(tiny) runs Condition.wait's lines all the time; a raise
    # between its acquire() and its try would leave the Event's lock held
    # (README, Limits, "Landing in threading's own critical lines": seen
    # with plain injection on 3.13t).  A lock written in Python gives its
    # lock back in a `release` the watch must not raise at the start of,
    # nor at the start of what its `__exit__` calls first.
    event = threading.Event()

    class PyLock:
        def __init__(self) -> None:
            self.inner = threading.Lock()

        def __enter__(self) -> None:
            self.inner.acquire()

        def __exit__(self, *exc_info: object) -> None:
            self.note()  # a Python call before the lock is given back
            self.release()

        def note(self) -> None:
            pass

        def release(self) -> None:
            self.inner.release()

    pylock = PyLock()

    def waits(stop: threading.Event) -> None:
        while not stop.is_set():
            event.wait(0.0001)
            with pylock:
                pass

    for _ in range(ROUNDS):
        target = spawn(waits)
        assert api.kill(target.thread, JOIN_TIMEOUT)
        assert isinstance(target.caught, ThreadKilled)
        assert event._cond._lock.acquire(False), "the Event's lock was left held"  # type: ignore[attr-defined]
        event._cond._lock.release()  # type: ignore[attr-defined]
        assert not event._cond._waiters  # type: ignore[attr-defined]
        assert pylock.inner.acquire(False), "the Python lock was left held"
        pylock.inner.release()


def test_a_calling_frame_is_read_as_at_its_call_on_every_version():
    # PY_START raises only at a call instruction of the caller; 3.12 puts a
    # calling frame's f_lasti on the call's last inline cache entry (3.13 on
    # the call), and read as is that made every call look implicit there
    def callee(*args: object, **kwargs: object) -> str:
        caller = sys._getframe(1)
        return _monitor._instruction_at(caller.f_code.co_code, caller.f_lasti)

    assert callee() == ("CALL_FUNCTION" if sys.version_info < (3, 11) else "CALL")
    assert callee(k=1) == ("CALL_FUNCTION_KW" if sys.version_info < (3, 11) else
                           "CALL" if sys.version_info < (3, 13) else "CALL_KW")
    assert callee(*[1]) == "CALL_FUNCTION_EX"
    frame_of_property = []

    class Reads:
        @property
        def value(self) -> None:  # called implicitly: by an attribute's look-up
            caller = sys._getframe(1)
            frame_of_property.append(_monitor._instruction_at(caller.f_code.co_code, caller.f_lasti))

    Reads().value  # noqa: B018
    assert {callee(), callee(k=1), callee(*[1])} <= _monitor._CALLS
    assert frame_of_property[0] not in _monitor._CALLS


class _PyLock:
    """A Lock written in Python: a Condition on it takes it back in
    Condition.wait's `finally` by calling its acquire() (_acquire_restore)."""

    def __init__(self) -> None:
        self.inner = threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self.inner.acquire(blocking, timeout)

    def release(self) -> None:
        self.inner.release()

    def locked(self) -> bool:  # Condition takes it from 3.14
        return self.inner.locked()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


@needs_a_watch
def test_never_raised_at_the_start_of_what_threading_calls(api, spawn, monkeypatch):
    # A Condition on a lock written in Python takes it back in Condition.wait's
    # `finally` (_acquire_restore calls its acquire()): a raise at the start
    # of that acquire() would leave the `with` to release a lock not held.
    # Event.wait's and Condition.wait's own starts, called from here, are
    # raise points (nothing is taken yet).  On GIL builds the watch is added
    # as soon as kill() withholds (_kill._WATCH_AFTER), else the kill would
    # nearly always be scheduled by kill() itself (test_kill.py).
    monkeypatch.setattr(_kill, "_WATCH_AFTER", 0.0)

    pylock = _PyLock()
    cond = threading.Condition(pylock)  # type: ignore[arg-type]
    event = threading.Event()

    def waits(stop: threading.Event) -> None:
        while not stop.is_set():
            with cond:
                cond.wait(0.0001)
            event.wait(0)

    for _ in range(ROUNDS):
        target = spawn(waits)
        assert api.kill(target.thread, JOIN_TIMEOUT)
        assert isinstance(target.caught, ThreadKilled), repr(target.caught)
        assert pylock.inner.acquire(False), "the Python lock was left held"
        pylock.inner.release()
        assert not cond._waiters  # type: ignore[attr-defined]


@pytest.mark.skipif(not _frames.READABLE, reason="kill() judges by frames on GIL builds only; free-threaded "
                    "builds let the thread raise the kill itself (the tests above)")
@pytest.mark.skipif(sys.version_info < (3, 12) and _backends.c_extension() is None,
                    reason="3.9-3.11 watch a thread through the C extension's trace function, not used here "
                    "(nox's no_compiler session, THREADINJECT_PURE_PYTHON=1); runs in CI's 3.9-3.11 sessions")
@pytest.mark.parametrize("event", ["_acquire_restore", "acquire"])
def test_a_kill_is_withheld_while_a_callback_runs_for_threadings_own_calls(event, monkeypatch):
    # An exception kill() schedules while the target runs one of the watch's
    # callbacks lands in the callback and comes out at its event: here the
    # start of Condition._acquire_restore in Condition.wait's `finally`, or
    # of the Python lock's acquire() it calls, which would leave the
    # condition's lock not taken back.  The target is held inside the
    # callback for that event, and kill()'s judgement read.
    from threadinject import _wake

    cond = threading.Condition(_PyLock())  # type: ignore[arg-type]
    stop = threading.Event()
    held, let_go = threading.Event(), threading.Event()
    target_ident: list[int | None] = [None]

    real_watched = _monitor._watched

    def watched() -> _monitor.Watch | None:  # _monitor._watched() in the callbacks
        if threading.get_ident() != target_ident[0]:
            return real_watched()  # the probe of _jumps_sound raises through it
        starting = sys._getframe(2)  # 0: here, 1: the callback, 2: the function that starts
        if starting.f_code.co_name == event and not held.is_set():
            held.set()
            deadline = time.monotonic() + JOIN_TIMEOUT
            while not let_go.is_set() and time.monotonic() < deadline:
                time.sleep(0.001)  # no Python wait: kill() would judge that wait's frames
        return None  # never raise: only kill()'s judgement is looked at

    def waits() -> None:
        while not stop.is_set():
            with cond:
                cond.wait(0.0001)

    monkeypatch.setattr(_monitor, "_watched", watched)
    thread = threading.Thread(target=waits)
    thread.start()
    try:
        target_ident[0] = thread.ident
        with _monitor.watching(thread.ident, ThreadKilled()) as watch:
            try:
                assert watch is not None
                assert held.wait(JOIN_TIMEOUT), f"the target never started {event}()"
                judgement = _wake._unsafe_as_read(thread, _backends.c_extension())
                assert judgement.unsafe, judgement
            finally:
                let_go.set()  # before the watch ends: that waits for the callback to return
    finally:
        stop.set()
        let_go.set()
        thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive()


KILL_WITHOUT_A_TOOL_ID = """
import sys, threading, threadinject
from threadinject import _monitor
for tool in (3, 4):
    sys.monitoring.use_tool_id(tool, "someone else")
ran = threading.Event()
def busy():
    ran.set()
    n = 0
    while True:
        n += 1
worker = threading.Thread(target=busy)
worker.start()
ran.wait()
print(threadinject.kill(worker, 10), _monitor._tool, sys.monitoring.get_tool(4))
"""


@free_threaded
@pytest.mark.parametrize("backend", ["c", "ctypes"])
def test_without_a_free_tool_id_kill_judges_by_proc_as_before(backend):
    result = run_python(KILL_WITHOUT_A_TOOL_ID, backend)
    assert (result.returncode, result.stdout, result.stderr) == (0, "True None someone else\n", "")


KILL_WITH_PYTHON_CALLBACKS = """
import threading, threadinject
from threadinject import _monitor
lock = threading.Lock()
ran = threading.Event()
def take_and_give_back():
    ran.set()
    n = 0
    while True:
        lock.acquire()
        try:
            n += 1
        finally:
            lock.release()
workers = [threading.Thread(target=take_and_give_back) for _ in range(20)]
killed = 0
for worker in workers:
    ran.clear()
    worker.start()
    ran.wait()
    killed += threadinject.kill(worker, 10)
    assert lock.acquire(timeout=10), "the killed thread left the lock held"
    lock.release()
print(killed, threadinject.backend, _monitor.callbacks_in_c)
"""


@free_threaded
@pytest.mark.parametrize("backend", ["c", "ctypes"])
def test_the_callbacks_are_the_c_filters_unless_the_c_extension_is_not_used(backend):
    result = run_python(KILL_WITH_PYTHON_CALLBACKS, backend)
    in_c = backend == "c"
    assert (result.returncode, result.stdout, result.stderr) == (0, f"20 {backend} {in_c}\n", "")


def test_the_watch_skips_every_private_module_of_the_package_and_no_other():
    # named, not listed at import (a zip import has no directory to list):
    # this keeps the names in step with the files
    import pathlib

    package = pathlib.Path(_monitor.__file__).parent
    assert set(_monitor._PRIVATE_MODULES) == {path.stem for path in package.glob("_*.py")}
    assert str(package / "demo.py") not in _monitor._SKIPPED_FILES


def test_a_watch_is_not_raised_by_a_thread_that_got_its_ident_after_it_ended():
    # the OS gives an ended thread's ident to the next one at once; kill()
    # lets the watch go only when it sees the target ended, and a thread
    # started meanwhile must not raise the kill
    me = threading.get_ident()
    ended = threading.Thread(target=lambda: None)  # stands for the target that had this ident
    watch = _monitor.Watch(ThreadKilled(), ended)
    _monitor._watches[me] = watch
    try:
        assert _monitor._watched() is None
        watch.owner = threading.current_thread()
        assert _monitor._watched() is watch
    finally:
        _monitor._watches.pop(me, None)


@needs_a_watch
def test_a_watch_belongs_to_the_thread_registered_under_its_ident(spawn):
    target = spawn(lambda stop: stop.wait(JOIN_TIMEOUT))
    with _monitor.watching(target.thread.ident, ThreadKilled()) as watch:
        assert watch is not None and watch.owner is target.thread
        assert watch.claim()  # delivered by no one: the thread is let go
    target.stop.set()
    target.join()
