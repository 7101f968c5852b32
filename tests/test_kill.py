"""kill(): ThreadKilled lands, the thread ends quietly, kill reports it."""

from __future__ import annotations

import _thread
import os
import sys
import textwrap
import threading
import time

import pytest
from conftest import JOIN_TIMEOUT, SLOWDOWN, busy, run_python, sleepy, syscall_of, wait_until_waiting

from threadinject import ThreadKilled, ThreadNotFoundError, _frames, _syscalls

READ = _syscalls.number_of("read")


def test_thread_killed_is_not_an_exception():
    assert issubclass(ThreadKilled, BaseException)
    assert not issubclass(ThreadKilled, Exception)


def test_kill_ends_busy_thread(api, spawn):
    target = spawn(busy)
    assert api.kill(target.thread, JOIN_TIMEOUT) is True
    assert type(target.caught) is ThreadKilled


def test_kill_ends_sleep_loop_thread(api, spawn):
    target = spawn(sleepy)
    assert api.kill(target.thread) is True  # timeout=None waits for the end
    assert type(target.caught) is ThreadKilled


def test_kill_by_ident(api, spawn):
    target = spawn(busy)
    assert api.kill(target.thread.ident, JOIN_TIMEOUT) is True
    assert type(target.caught) is ThreadKilled


def test_except_exception_does_not_swallow_kill(api, spawn):
    swallowed = []

    def body(stop):
        while not stop.is_set():
            try:
                busy(stop)
            except Exception as exc:  # what a careless worker writes
                swallowed.append(exc)

    target = spawn(body)
    assert api.kill(target.thread, JOIN_TIMEOUT) is True
    assert swallowed == [] and type(target.caught) is ThreadKilled


def test_kill_returns_false_when_thread_refuses_to_end(api, spawn):
    refused = threading.Event()

    def body(stop):
        while not stop.is_set():
            try:
                busy(stop)
            except ThreadKilled:
                refused.set()

    target = spawn(body)
    # long enough for kill() to schedule it at least once: a first kill
    # disassembles the code it judges, which took longer than 0.2 s in the
    # aarch64 VM (3.11.2, ~15x slower)
    assert api.kill(target.thread, 0.2 * SLOWDOWN) is False
    assert refused.wait(JOIN_TIMEOUT)
    assert target.thread.is_alive()  # the fixture stops it through its flag


def test_kill_self_raises_thread_killed(api):
    with pytest.raises(ThreadKilled):
        api.kill(threading.current_thread())


def test_kill_thread_not_started_by_threading(api):
    ended = threading.Event()
    stop = threading.Event()
    idents = []
    caught = []

    def body():
        try:
            idents.append(threading.get_ident())
            # the loop sits in a callee: on CPython 3.13 an asynchronous
            # exception that lands on a loop's back-edge skips the handlers of
            # that same frame (a CPython bug, see README "Limits")
            busy(stop)
        except BaseException as exc:
            caught.append(exc)
        finally:
            ended.set()

    _thread.start_new_thread(body, ())
    deadline = time.monotonic() + JOIN_TIMEOUT
    while not idents and time.monotonic() < deadline:
        time.sleep(0.001)
    try:
        assert api.kill(idents[0], JOIN_TIMEOUT) is True
        assert [type(e) for e in caught] == [ThreadKilled]
    finally:
        stop.set()
        assert ended.wait(JOIN_TIMEOUT)


def test_kill_inside_with_lock_releases_the_lock(api, spawn):
    lock = threading.Lock()
    inside = threading.Event()

    def body(stop):
        with lock:
            inside.set()
            busy(stop)

    target = spawn(body)
    assert inside.wait(JOIN_TIMEOUT)
    assert api.kill(target.thread, JOIN_TIMEOUT) is True
    assert lock.acquire(timeout=JOIN_TIMEOUT)  # released by the with-statement
    lock.release()


@pytest.mark.skipif(not _frames.READABLE, reason="withholding at a call is judged by frames, which "
                    "free-threaded builds cannot read (_frames.py): it runs on every GIL build")
def test_kill_withheld_at_a_call_the_thread_then_blocks_in_still_lands(api, spawn):
    # kill() withholds ThreadKilled from a thread *running* at a call that may
    # be a lock's acquire.  If the thread then blocks in that very call, in a
    # wait wake() can end (here Event.wait's timed waiter lock), its position
    # no longer changes: kill() must judge the wait, not wait to move past it.
    from threadinject._kill import make_kill

    event = threading.Event()
    target = spawn(lambda stop: event.wait(JOIN_TIMEOUT))
    wait_until_waiting(target.thread)
    answers = [True]  # first: "running at an acquire-like call"

    def unsafe(thread):
        judged = api.unsafe_to_land(thread)
        return judged._replace(unsafe=answers.pop()) if answers else judged

    kill = make_kill(api.inject, api.pending, api.cancel, api.wake, unsafe, api.inject_if_at)
    assert kill(target.thread, JOIN_TIMEOUT) is True
    assert isinstance(target.caught, ThreadKilled)


@pytest.mark.skipif(not _frames.READABLE, reason="positions are judged by frames, which free-threaded "
                    "builds cannot read (_frames.py): it runs on every GIL build")
def test_a_thread_that_moves_while_judged_is_judged_unsafe(api, spawn, monkeypatch):
    # Judging a thread can let the GIL go (reading /proc, identifying a
    # lock wait); the thread runs on meanwhile.  A verdict on where it was
    # read is then about a place it has left (in the aarch64 VM a thread
    # read at its acquire() took the kill just after the acquire returned):
    # unsafe_to_land() must answer unsafe, to be asked again at the next poll.
    from threadinject import _wake

    go: list[bool] = []
    moved = threading.Event()

    def body(stop):
        while not go:  # spins with no call: read here, a place safe to land
            pass
        moved.set()
        stop.wait(JOIN_TIMEOUT)

    judge = _wake._lands_soundly

    def lands_soundly_while_the_thread_moves(frame, lasti, blocked):
        if not go:
            go.append(True)
            assert moved.wait(JOIN_TIMEOUT)  # lets the GIL go, as _locks.identify() may
        return judge(frame, lasti, blocked)

    target = spawn(body)
    monkeypatch.setattr(_wake, "_lands_soundly", lands_soundly_while_the_thread_moves)
    try:
        judged = api.unsafe_to_land(target.thread)
    finally:
        go.append(True)  # however the judgement went, the thread stops spinning
    assert len(go) == 2, "the thread was not judged by its position"
    assert judged.frame is not None and judged.frame.f_code is body.__code__  # read while spinning
    assert judged.unsafe is True
    monkeypatch.undo()
    assert api.kill(target.thread, JOIN_TIMEOUT) is True
    assert isinstance(target.caught, ThreadKilled)


def _core_wakes() -> bool:
    from threadinject import _core

    return bool(_core.WAKE_SUPPORTED)


def test_inject_if_at_refuses_to_read_frames_on_free_threaded_builds(api, spawn):
    # kill() does not call it there (_frames.py); a direct call must not
    # read the running thread's frames
    target = spawn(busy)
    if _frames.READABLE:
        frame = _frames.current_frames()[target.thread.ident]
        assert api.inject_if_at(target.thread, KeyError, frame, 10**6, 0, -1, 0) is False  # not there
    else:
        with pytest.raises(NotImplementedError, match="free-threaded"):
            api.inject_if_at(target.thread, KeyError, None, 0, 0, -1, 0)
    assert api.pending(target.thread) is None


@pytest.mark.skipif(READ is None, reason="waits through /proc for the thread to block in read(): Linux "
                    "x86-64 and aarch64; other platforms have no system-call state to compare")
@pytest.mark.skipif(not _frames.READABLE, reason="reads the thread's frames, which free-threaded builds "
                    "do not allow (_frames.py; the test above runs there); runs on every GIL build")
def test_inject_if_at_schedules_only_where_the_thread_still_is(api, spawn):
    # kill()'s last step before scheduling: the thread must still be in the
    # state it was judged in (it could be back at an acquire by then)
    from threadinject._wake import RUNNING, UNREAD

    r, w = os.pipe()
    target = spawn(lambda stop: os.read(r, 1))
    try:
        thread = target.thread
        tid = thread.native_id
        deadline = time.monotonic() + JOIN_TIMEOUT
        while not ((frame := _frames.current_frames().get(thread.ident))
                   and frame.f_code.co_name == "<lambda>"
                   and (syscall := syscall_of(thread)) is not None and syscall[0] == READ):
            assert time.monotonic() < deadline, "the thread never blocked in read()"
            time.sleep(0.001)

        def at(where, lasti, syscall=UNREAD, arg0=0):
            return api.inject_if_at(thread, KeyError, where, lasti, tid, syscall, arg0)

        assert at(frame, frame.f_lasti + 2) is False
        assert at(frame.f_back, frame.f_lasti) is False
        if api.name == "c" and sys.platform.startswith("linux"):
            assert at(frame, frame.f_lasti, RUNNING) is False  # it is in read()
            assert at(frame, frame.f_lasti, READ, r + 1) is False  # ... of another fd
            assert api.pending(thread) is None
            assert at(frame, frame.f_lasti, READ, r) is True
        else:
            assert api.pending(thread) is None
            assert at(frame, frame.f_lasti) is True
        assert api.pending(thread) is KeyError
        assert api.cancel(thread)
        with pytest.raises(TypeError, match="exc"):
            api.inject_if_at(thread, "KeyError", frame, frame.f_lasti, tid, UNREAD, 0)
        if api.name == "c":
            with pytest.raises(TypeError, match="argument 4"):
                api.inject_if_at(thread, KeyError, frame, float(frame.f_lasti), tid, UNREAD, 0)
        here = (thread, KeyError, frame, frame.f_lasti, tid, UNREAD, 0)
        if api.name == "c" and _core_wakes():
            for wake in ((1, 2, 3), [1, 2, 3, 4], "wake"):
                with pytest.raises(TypeError, match="argument 'wake' must be a tuple"):
                    api.inject_if_at(*here, wake)
            with pytest.raises(OverflowError):
                api.inject_if_at(*here, (-1, 0, 0, 0))
            with pytest.raises(TypeError, match=r"takes 7 positional arguments \(.*\[, wake\]\) but 9"):
                api.inject_if_at(*here, (0, 0, 0, 0), None)
        elif api.name == "c":
            with pytest.raises(NotImplementedError, match="cannot wake"):
                api.inject_if_at(*here, (0, 0, 0, 0))
        else:
            with pytest.raises(NotImplementedError, match="wakes no lock wait"):
                api.inject_if_at(*here, (0, 0, 0, 0))
        assert api.pending(thread) is None
    finally:
        os.write(w, b"x")  # read() returns
        target.join()
        os.close(r)
        os.close(w)


@pytest.mark.skipif(not _frames.READABLE, reason="reads the thread's frames, which free-threaded builds "
                    "do not allow (_frames.py); runs on every GIL build")
def test_ctypes_inject_if_at_withdraws_when_the_thread_moved_before_the_injection(monkeypatch):
    # the ctypes backend's check and injection are Python code, between
    # which the GIL can change hands: a thread judged at one wait that has
    # moved into another (an acquire, in the aarch64 VM) by the time the
    # exception is scheduled must not keep it
    from threadinject import _ctypes_backend

    first, second = threading.Event(), threading.Event()
    thread = threading.Thread(target=lambda: first.wait(JOIN_TIMEOUT) and second.wait(JOIN_TIMEOUT))
    thread.start()
    try:
        wait_until_waiting(thread)
        judged = _frames.current_frames()[thread.ident]
        real_inject = _ctypes_backend.inject

        def inject_once_moved(target, exc):
            first.set()  # the thread moves on to its second wait meanwhile
            deadline = time.monotonic() + JOIN_TIMEOUT
            while _frames.current_frames()[thread.ident] is judged:
                assert time.monotonic() < deadline, "the thread never moved on"
                time.sleep(0.001)
            wait_until_waiting(thread)
            real_inject(target, exc)

        monkeypatch.setattr(_ctypes_backend, "inject", inject_once_moved)
        assert _ctypes_backend._inject_if_at(thread, KeyError, judged, judged.f_lasti, 0, -1, 0) is False
        assert _ctypes_backend.pending(thread) is None
    finally:
        first.set()
        second.set()
        thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive()


def _spinning_until_key_error(ended: list[str]) -> threading.Thread:
    """A started thread spinning (no call) until a KeyError, which it records in `ended`."""
    def spin():
        try:
            while True:
                pass
        except KeyError:
            ended.append("KeyError")

    thread = threading.Thread(target=spin)
    thread.start()
    return thread


def _inject_if_at_where_it_spins(thread: threading.Thread, injected: list[object]) -> bool:
    """The ctypes _inject_if_at() of a KeyError at the position `thread` is
    read at, tried until its (patched) inject() has run, which appends to
    `injected`: the thread can move between the look and the check."""
    from threadinject import _ctypes_backend

    deadline = time.monotonic() + JOIN_TIMEOUT
    while True:
        assert time.monotonic() < deadline, "never found where it was looked at"
        judged = _frames.current_frames()[thread.ident]  # type: ignore[index]
        scheduled = _ctypes_backend._inject_if_at(thread, KeyError, judged, judged.f_lasti, 0, -1, 0)
        if injected:
            return bool(scheduled)


@pytest.mark.skipif(not _frames.READABLE, reason="reads the thread's frames, which free-threaded builds "
                    "do not allow (_frames.py); runs on every GIL build")
def test_ctypes_inject_if_at_reports_an_exception_taken_before_it_looked_again(monkeypatch):
    # moved on because it took the exception and is unwinding (or gone): it
    # was scheduled; kill() would otherwise send a second one into the unwinding
    from threadinject import _ctypes_backend

    ended: list[str] = []
    thread = _spinning_until_key_error(ended)
    real_inject = _ctypes_backend.inject
    injected = []

    def inject_and_let_it_land(target, exc):
        real_inject(target, exc)
        injected.append(exc)
        thread.join(JOIN_TIMEOUT)  # lets the GIL go: the thread takes it and ends

    monkeypatch.setattr(_ctypes_backend, "inject", inject_and_let_it_land)
    try:
        assert _inject_if_at_where_it_spins(thread, injected) is True
    finally:
        if thread.is_alive():
            real_inject(thread, KeyError)
        thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive() and ended == ["KeyError"]


@pytest.mark.skipif(not _frames.READABLE, reason="reads the thread's frames, which free-threaded builds "
                    "do not allow (_frames.py); runs on every GIL build")
def test_ctypes_inject_if_at_counts_a_delivery_under_way_as_scheduled(monkeypatch):
    # moved on because it is receiving the exception: the carrier's Python
    # code runs between taking it and popping it, the GIL can change hands
    # there, and a cancel() then returns True although the exception is
    # delivered all the same; reported withdrawn, kill() would schedule a
    # second ThreadKilled (seen in the aarch64 VM, 3.9.2)
    from threadinject import _ctypes_backend

    ended: list[str] = []
    taking, taken = threading.Event(), threading.Event()
    real_take = _ctypes_backend._take_pending

    def take_slowly():
        taking.set()
        taken.wait(JOIN_TIMEOUT)  # lets the GIL go inside the carrier
        return real_take()

    monkeypatch.setattr(_ctypes_backend, "_take_pending", take_slowly)
    thread = _spinning_until_key_error(ended)
    real_inject = _ctypes_backend.inject
    injected = []

    def inject_and_let_it_begin(target, exc):
        real_inject(target, exc)
        injected.append(exc)
        assert taking.wait(JOIN_TIMEOUT)  # lets the GIL go: the thread takes it, in the carrier

    monkeypatch.setattr(_ctypes_backend, "inject", inject_and_let_it_begin)
    try:
        assert _inject_if_at_where_it_spins(thread, injected) is True
    finally:
        taken.set()
        thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive() and ended == ["KeyError"]


def test_kill_runs_finally_blocks(api, spawn):
    cleaned = threading.Event()

    def body(stop):
        try:
            busy(stop)
        finally:
            cleaned.set()

    target = spawn(body)
    assert api.kill(target.thread, JOIN_TIMEOUT) is True
    assert cleaned.is_set()


KILL_QUIETLY = textwrap.dedent("""
    import threading, time, threadinject
    seen = []
    threading.excepthook = lambda args: seen.append(args.exc_type.__name__)
    def loop():
        while True:
            time.sleep(0.01)
    workers = [threading.Thread(target=loop) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        assert threadinject.kill(w, 10), "not killed"
    # other exceptions still reach the user's hook
    failing = threading.Thread(target=lambda: 1 / 0)
    failing.start(); failing.join(10)
    print("hook saw", seen)
""")


@pytest.mark.parametrize("backend", ["c", "ctypes"])
def test_killed_threads_end_quietly_and_user_hook_still_works(backend):
    result = run_python(KILL_QUIETLY, backend)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hook saw ['ZeroDivisionError']"
    assert result.stderr == ""


DEFAULT_HOOK_SILENT = textwrap.dedent("""
    import threading, threadinject
    def loop():
        while True:
            pass
    worker = threading.Thread(target=loop)  # non-daemon: would keep the program alive
    worker.start()
    assert threadinject.kill(worker, 10)
    print("exiting")
""")


@pytest.mark.parametrize("backend", ["c", "ctypes"])
def test_interpreter_exits_cleanly_after_kill(backend):
    result = run_python(DEFAULT_HOOK_SILENT, backend)
    assert (result.returncode, result.stdout, result.stderr) == (0, "exiting\n", "")


BACK_EDGE_ONLY_LOOP = textwrap.dedent("""
    import sys, threading, threadinject
    handled = []
    def loop():
        try:
            while True: pass
        except BaseException as exc:
            handled.append(type(exc).__name__)
    worker = threading.Thread(target=loop)
    worker.start()
    assert threadinject.kill(worker, 10)
    print(handled)
""")


@pytest.mark.parametrize("backend", ["c", "ctypes"])
def test_a_back_edge_only_loop_is_killed_quietly_even_where_cpython_skips_its_handler(backend):
    # CPython 3.11/3.12 (gh-108214) skip the handler of a loop that is nothing
    # but its back-edge, first in its try (README, Limits;
    # tools/cpython_backedge_bug.py): no injector can land elsewhere in it.
    # The thread must still end, quietly; where the handler runs, it sees it.
    result = run_python(BACK_EDGE_ONLY_LOOP, backend)
    assert (result.returncode, result.stderr) == (0, "")
    if (3, 11) <= sys.version_info[:2] <= (3, 12):
        assert result.stdout in ("[]\n", "['ThreadKilled']\n")  # [] on 3.11.7 and 3.12.1
    else:
        assert result.stdout == "['ThreadKilled']\n"


def test_kill_does_not_mistake_a_thread_running_no_python_code_for_ended(api):
    # A raw thread whose function is C code has no Python frame, so it is
    # missing from sys._current_frames() although it runs.
    lock = threading.Lock()
    lock.acquire()
    baseline = _thread._count()
    ident = _thread.start_new_thread(lock.acquire, ())
    try:
        deadline = time.monotonic() + JOIN_TIMEOUT
        while True:  # until its thread state exists
            try:
                api.inject(ident, KeyError)
                break
            except ThreadNotFoundError:
                assert time.monotonic() < deadline
                time.sleep(0.001)
        assert api.kill(ident, 0.1) is False  # blocked in acquire(): not ended
        assert api.pending(ident) is ThreadKilled
        assert api.cancel(ident) is True
    finally:
        lock.release()
        deadline = time.monotonic() + JOIN_TIMEOUT
        while _thread._count() > baseline and time.monotonic() < deadline:
            time.sleep(0.001)
        assert _thread._count() == baseline


STUCK_AT_EXIT = textwrap.dedent("""
    import threading, time, threadinject
    def stuck():
        {body}
    worker = threading.Thread(target=stuck)  # non-daemon: exit would wait for it for ever
    worker.start()
    threadinject.kill_at_exit(worker, timeout=10)
    print("main done")
""")


@pytest.mark.parametrize("backend", ["c", "ctypes"])
@pytest.mark.parametrize("body", ["while True: pass", "time.sleep(1e6)"])
def test_kill_at_exit_lets_the_program_end(backend, body):
    if body.startswith("time.sleep") and (backend == "ctypes" or not _syscalls.SUPPORTED):
        pytest.skip("waking time.sleep needs the C backend and the system-call wake (README, Limits)")
    result = run_python(STUCK_AT_EXIT.format(body=body), backend)
    assert (result.returncode, result.stdout, result.stderr) == (0, "main done\n", "")


def test_kill_at_exit_checks_its_arguments():
    import threadinject

    with pytest.raises(TypeError, match=r"kill_at_exit\(\) argument 'thread'"):
        threadinject.kill_at_exit(123)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"kill_at_exit\(\) argument 'timeout'"):
        threadinject.kill_at_exit(threading.current_thread(), -1)
