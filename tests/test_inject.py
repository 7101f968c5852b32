"""inject(), cancel() and pending() on real threads, on both backends."""

from __future__ import annotations

import gc
import importlib.util
import sys
import textwrap
import threading
import time
import traceback
import types
import weakref

import pytest
from conftest import JOIN_TIMEOUT, busy, run_python, sleepy, wait_until_waiting

import threadinject


class Custom(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code


def test_class_arrives_in_busy_loop(api, spawn):
    target = spawn(busy)
    api.inject(target.thread, KeyError)
    target.join()
    assert type(target.caught) is KeyError


def test_classic_sleep_loop_worker_receives_it(api, spawn):
    target = spawn(sleepy)
    api.inject(target.thread, RuntimeError)
    target.join()
    assert type(target.caught) is RuntimeError


def test_instance_arrives_as_same_object(api, spawn):
    exc = Custom(7, "stop now")
    exc.extra = {"why": "test"}
    target = spawn(busy)
    api.inject(target.thread, exc)
    target.join()
    assert target.caught is exc
    assert target.caught.args == (7, "stop now")
    assert target.caught.code == 7 and target.caught.extra == {"why": "test"}


def test_except_their_type_matches_and_exc_info_shows_it(api, spawn):
    seen = []

    def body(stop):
        try:
            busy(stop)
        except Custom:
            seen.append(sys.exc_info()[0])
            raise

    target = spawn(body)
    api.inject(target.thread, Custom(1, "x"))
    target.join()
    assert type(target.caught) is Custom
    if api.name == "ctypes" and sys.version_info < (3, 11):
        # documented: there the ctypes backend's carrier is a same-named subclass
        assert issubclass(seen[0], Custom) and seen[0].__name__ == "Custom"
    else:
        assert seen == [Custom]


def spin_in_named_function(stop):
    while not stop.is_set():
        pass


def test_traceback_points_into_target_code(api, spawn):
    target = spawn(spin_in_named_function)
    api.inject(target.thread, Custom(2, "tb"))
    target.join()
    frames = traceback.extract_tb(target.caught.__traceback__)
    names = [frame.name for frame in frames]
    assert "spin_in_named_function" in names
    # below the target's function, only what it called (stop.is_set), never
    # threadinject, apart from the ctypes backend's Python carrier on 3.9/3.10
    inner = frames[names.index("spin_in_named_function") + 1:]
    assert all(f.name == "is_set" for f in inner)
    assert not any("threadinject" in f.filename for f in frames)


def test_context_is_the_exception_being_handled(api, spawn):
    def body(stop):
        try:
            raise OSError("being handled")
        except OSError:
            busy(stop)

    for exc in (Custom(3, "ctx"), ValueError):
        target = spawn(body)
        api.inject(target.thread, exc)
        target.join()
        assert isinstance(target.caught.__context__, OSError)
        assert str(target.caught.__context__) == "being handled"


def test_no_context_outside_a_handler(api, spawn):
    target = spawn(busy)
    api.inject(target.thread, Custom(4, "plain"))
    target.join()
    assert target.caught.__context__ is None
    assert not any("Normalization failed" in n for n in getattr(target.caught, "__notes__", []))


def test_ident_is_accepted_like_the_thread(api, spawn):
    target = spawn(busy)
    api.inject(target.thread.ident, LookupError)
    target.join()
    assert type(target.caught) is LookupError


def test_inject_into_self_raises_at_next_check(api):
    exc = Custom(5, "self")
    with pytest.raises(Custom) as info:
        api.inject(threading.current_thread(), exc)
        for _ in range(1000):  # any bytecode check delivers it
            pass
        pytest.fail("the injection did not arrive")
    assert info.value is exc


def test_every_one_of_200_threads_receives_its_own(api, spawn):
    # sleeping loops: 200 busy threads would starve the injecting thread of the GIL
    targets = [spawn(sleepy) for _ in range(200)]
    excs = [Custom(i, "many") for i in range(200)]
    for target, exc in zip(targets, excs):
        api.inject(target.thread, exc)
    for target, exc in zip(targets, excs):
        target.join()
        assert target.caught is exc


def test_later_injection_replaces_pending_one(api, spawn):
    gate = threading.Event()
    first, second = Custom(1, "first"), Custom(2, "second")

    def body(stop):
        gate.wait(JOIN_TIMEOUT)  # blocked in C: the injection stays pending
        busy(stop)

    target = spawn(body)
    wait_until_waiting(target.thread)
    api.inject(target.thread, first)
    assert api.pending(target.thread) is first
    api.inject(target.thread, second)
    assert api.pending(target.thread) is second
    gate.set()
    target.join()
    assert target.caught is second


def test_cancel_withdraws_pending_injection(api, spawn):
    gate = threading.Event()
    delivered = []

    def body(stop):
        gate.wait(JOIN_TIMEOUT)
        for _ in range(10000):  # many bytecode checks: a pending exception would land here
            pass
        delivered.append("ran to the end")

    target = spawn(body)
    wait_until_waiting(target.thread)
    api.inject(target.thread, Custom(6, "withdrawn"))
    assert api.cancel(target.thread) is True
    assert api.pending(target.thread) is None
    assert api.cancel(target.thread) is False
    gate.set()
    target.join()
    assert target.caught is None and delivered == ["ran to the end"]


def test_a_thread_with_a_trace_function_runs_on_after_a_cancel(api, spawn):
    # CPython 3.11 leaves the eval breaker signalled after a withdrawal,
    # and a thread with a trace function (a debugger's, coverage's) then
    # never got past its next function start: the calls stopped for good
    # on 3.11.7 with both backends before cancel() cleared it
    # (csrc/withdrawal_signal.c); the other versions never stopped
    calls = [0]

    def tick() -> None:
        calls[0] += 1

    def traced(stop: threading.Event) -> None:
        sys.settrace(lambda frame, event, arg: None)
        try:
            while not stop._flag:  # type: ignore[attr-defined]  # no call of threading's: only tick()
                tick()
        finally:
            sys.settrace(None)

    idle = spawn(lambda stop: stop.wait(JOIN_TIMEOUT))  # an exception for it stays scheduled
    wait_until_waiting(idle.thread)
    target = spawn(traced)
    for _ in range(3):
        api.inject(idle.thread, Custom(7, "withdrawn"))
        assert api.cancel(idle.thread) is True
        seen = calls[0]
        deadline = time.monotonic() + JOIN_TIMEOUT
        while calls[0] == seen and time.monotonic() < deadline:
            time.sleep(0.001)
        assert calls[0] > seen, "the traced thread stopped calling after cancel()"
    target.stop.set()
    target.join()
    idle.join()
    assert target.caught is None and idle.caught is None


def _carrier(api, exc):
    """The private class a backend schedules with PyThreadState_SetAsyncExc."""
    if api.name == "c":
        from threadinject import _core
        return _core._InjectedException
    from threadinject import _ctypes_backend
    return _ctypes_backend._carrier_for(exc)


def test_cancel_too_late_for_a_begun_delivery_delivers_the_users_exception(api, spawn):
    # Where CPython takes the scheduled carrier before it runs (3.9-3.11,
    # free-threaded builds), a cancel() can come in between.  The target then
    # calls the carrier as below; it must get the withdrawn exception, not fail.
    exc = Custom(8, "withdrawn too late")
    carrier = _carrier(api, exc)
    gate = threading.Event()
    got = []

    def body(stop):
        gate.wait(JOIN_TIMEOUT)
        for _ in range(2):
            try:
                raise carrier()  # what CPython does with a scheduled class
            except BaseException as e:  # recording what arrives
                got.append(e)

    target = spawn(body)
    wait_until_waiting(target.thread)
    api.inject(target.thread, exc)
    assert api.cancel(target.thread) is True
    assert api.pending(target.thread) is None
    gate.set()
    target.join()
    assert target.caught is None
    assert got[0] is exc
    # a second carrier for one exception (an inject() that raced the delivery)
    assert type(got[1]) is RuntimeError and "already been delivered" in str(got[1])


def test_pending_is_none_after_delivery(api, spawn):
    target = spawn(busy)
    assert api.pending(target.thread) is None
    api.inject(target.thread, KeyError)
    target.join()
    assert type(target.caught) is KeyError


def test_class_is_instantiated_in_target_thread(api, spawn):
    made_in = []

    class Marker(Exception):
        def __init__(self) -> None:
            super().__init__()
            made_in.append(threading.get_ident())

    target = spawn(busy)
    api.inject(target.thread, Marker)
    target.join()
    assert type(target.caught) is Marker
    assert made_in == [target.thread.ident]


def test_class_that_cannot_be_built_without_arguments_reports_why(api, spawn):
    target = spawn(busy)
    api.inject(target.thread, UnicodeDecodeError)  # needs 5 arguments
    target.join()
    assert type(target.caught) is TypeError


def test_recycled_ident_never_receives_an_old_threads_injection(api, spawn):
    # glibc reuses the stack (and so the pthread_t ident) of a joined thread:
    # find a pair of Threads with the same ident, then aim at the first.  The
    # first is aimed at while it runs too, so the C backend remembers its
    # ident (inject.c, remembered()) and the last inject() starts from that.
    for _ in range(200):
        gate = threading.Event()
        first = threading.Thread(target=gate.wait, args=(JOIN_TIMEOUT,))
        first.start()
        assert api.cancel(first) is False  # found running: remembered
        gate.set()
        first.join(JOIN_TIMEOUT)
        second = spawn(busy)
        if second.thread.ident == first.ident:
            break
    else:
        pytest.skip("the OS did not reuse a thread ident in 200 tries (only glibc does reliably)")
    with pytest.raises(threadinject_not_found()):
        api.inject(first, KeyError)
    assert api.pending(second.thread) is None
    time.sleep(0.05)  # the newer thread keeps running untouched
    assert second.thread.is_alive() and second.caught is None


def threadinject_not_found():
    import threadinject

    return threadinject.ThreadNotFoundError


def test_a_thread_registered_under_a_new_ident_is_aimed_at_there(api, spawn):
    # In a forked child, threading._after_fork() gives the surviving Thread
    # the child's ident: it sets _ident and re-registers it in _active.  Do
    # the same here with two live threads (a's Thread object now names b's OS
    # thread): the C backend, which remembered a's old ident when it injected
    # into a, must follow the registry.
    gate = threading.Event()
    a = spawn(lambda stop: gate.wait(JOIN_TIMEOUT))
    b = spawn(lambda stop: gate.wait(JOIN_TIMEOUT))
    wait_until_waiting(a.thread)
    wait_until_waiting(b.thread)
    old, new = a.thread.ident, b.thread.ident
    assert old is not None and new is not None
    api.inject(a.thread, KeyError)
    assert api.cancel(a.thread) is True
    active = threading._active  # type: ignore[attr-defined]
    with threading._active_limbo_lock:  # type: ignore[attr-defined]
        del active[old]
        a.thread._ident = new  # type: ignore[attr-defined]
        active[new] = a.thread
    try:
        api.inject(a.thread, IndexError)
        assert api.pending(new) is IndexError
        assert api.pending(old) is None
    finally:
        api.cancel(new)
        with threading._active_limbo_lock:  # type: ignore[attr-defined]
            active[new] = b.thread
            a.thread._ident = old  # type: ignore[attr-defined]
            active[old] = a.thread
    gate.set()
    a.join()
    b.join()
    assert a.caught is None and b.caught is None


def injected_then_finished(api):
    """A Thread that was found running (inject() and cancel() into it while
    it blocked in C), then finished and was joined."""
    gate = threading.Event()
    thread = threading.Thread(target=gate.wait, args=(JOIN_TIMEOUT,))
    thread.start()
    wait_until_waiting(thread)  # blocked in C: the injection stays pending
    api.inject(thread, KeyError)
    assert api.cancel(thread) is True
    gate.set()
    thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive()
    return thread


@pytest.mark.parametrize("spoil", ["ident of the wrong type", "ident removed"])
def test_the_thread_inject_remembers_is_checked_afresh_when_spoilt(api, spoil):
    # The C backend remembers the last Thread found running (by address) and
    # its ident; an inject() aimed at the same object once the registry has
    # changed must read the object afresh, errors included (a crash before:
    # the fuzz test met it with a new object at a freed Thread's address).
    thread = injected_then_finished(api)
    if spoil == "ident of the wrong type":
        thread._ident = "not an int"  # type: ignore[attr-defined]
        with pytest.raises(TypeError, match=r"inject\(\) argument 'thread': its _ident must be an int"):
            api.inject(thread, KeyError)
    else:
        del thread.__dict__["_ident"]
        with pytest.raises(threadinject_not_found(), match=r"Thread.__init__\(\) was not called"):
            api.inject(thread, KeyError)


def test_inject_keeps_no_reference_to_the_thread(api):
    thread = injected_then_finished(api)
    ref = weakref.ref(thread)
    del thread
    gc.collect()
    assert ref() is None


def test_a_pending_injection_outlives_many_delivered_ones(api, spawn):
    # The C backend drops the slots of threads that hold no pending exception
    # once there are 64 (csrc/pending.c): a pending one must survive that.
    gate = threading.Event()
    # blocked for the whole test (150 threads take over 10 s under CPU load),
    # and still bounded: the gate opens at the end, or pytest-timeout fires
    keeper = spawn(lambda stop: gate.wait(6 * JOIN_TIMEOUT))
    wait_until_waiting(keeper.thread)
    kept = Custom(-1, "kept")
    api.inject(keeper.thread, kept)
    for i in range(150):
        target = spawn(sleepy)
        exc = Custom(i, "delivered")
        api.inject(target.thread, exc)
        target.join()
        assert target.caught is exc
    assert api.pending(keeper.thread) is kept
    gate.set()
    keeper.join()
    assert keeper.caught is kept


def load_core_instance() -> types.ModuleType:
    """A new instance of threadinject._core (a module state of its own), not
    put in sys.modules."""
    from threadinject import _core

    spec = importlib.util.spec_from_file_location("threadinject._core", _core.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ACTIVE_CHECK = (
    getattr(threadinject._backends.load("c"), "_ACTIVE_CHECK", "") if threadinject.backend == "c" else ""
)
watching_active = pytest.mark.skipif(
    ACTIVE_CHECK != "watcher",
    reason="only the version-specific 3.12+ GIL builds watch threading._active (csrc/active_watch.h); "
    "3.9-3.11 read its version, the abi3 build looks it up: the other tests here cover both",
)


@watching_active
def test_with_no_dict_watcher_left_inject_still_finds_finished_threads():
    # Each module instance takes one of the interpreter's 8 dict watcher ids.
    # One that finds none left must look threading._active up each time:
    # aimed at a Thread it remembers, after that Thread has finished, it
    # reports so.  Dropping the instances gives the ids back.
    instances = [load_core_instance()]
    try:
        while instances[-1]._ACTIVE_CHECK == "watcher":
            assert len(instances) <= 8
            instances.append(load_core_instance())
        core = instances[-1]
        gate = threading.Event()
        thread = threading.Thread(target=gate.wait, args=(JOIN_TIMEOUT,))
        thread.start()
        wait_until_waiting(thread)
        core.inject(thread, KeyError)  # remembered
        assert core.cancel(thread) is True
        gate.set()
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive()
        with pytest.raises(threadinject.ThreadNotFoundError):
            core.inject(thread, KeyError)
    finally:
        del instances
        gc.collect()
    assert load_core_instance()._ACTIVE_CHECK == "watcher"


@watching_active
@pytest.mark.skipif(
    importlib.util.find_spec("_testcapi") is None,
    reason="takes the dict watcher ids with _testcapi, which this CPython lacks; "
    "runs on every 3.12+ GIL build here (pyenv's, the debug 3.13, Debian's 3.14 and 3.15)",
)
def test_with_no_dict_watcher_at_all_a_recycled_ident_is_not_aimed_at():
    # When no watcher watches threading._active (every id taken before
    # threadinject loads), nothing counts its changes: inject() into a
    # remembered Thread must look it up, or it would aim at a newer thread
    # that got the finished one's ident.
    code = textwrap.dedent("""
        import _testcapi, threading
        while True:
            try:
                _testcapi.add_dict_watcher(0)
            except RuntimeError:
                break
        import threadinject
        from threadinject import _core
        assert _core._ACTIVE_CHECK == "look-up"
        stop = threading.Event()
        for tries in range(200):
            gate = threading.Event()
            first = threading.Thread(target=gate.wait, args=(10,))
            first.start()
            assert _core.cancel(first) is False  # found running: remembered
            gate.set()
            first.join(10)
            second = threading.Thread(target=stop.wait, args=(10,))
            second.start()
            if second.ident == first.ident:
                break
            stop.set()
            second.join(10)
            stop.clear()
        else:
            raise SystemExit("no ident reused")
        try:
            _core.inject(first, KeyError)
        except threadinject.ThreadNotFoundError:
            print("not found", _core.pending(second))
        stop.set()
        second.join(10)
    """)
    result = run_python(code, "c")
    assert (result.stdout, result.stderr) == ("not found None\n", "")
