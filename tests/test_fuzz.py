"""Fuzzing every public function's arguments (hypothesis): only the documented
exceptions come out, and a valid call does exactly what it says.

Documented: TypeError / ValueError with a message naming the argument,
ThreadNotFoundError for a thread that is not running, and whatever an
argument's own methods raise (propagated unchanged).  Never SystemError,
never another exception, never a crash.  Valid injections go to a thread
blocked in Event.wait(), which runs no bytecode, and are withdrawn again, so
nothing lands.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterator

import pytest
from conftest import JOIN_TIMEOUT

from threadinject import ThreadNotFoundError, WakeResult, WakeStatus

hypothesis = pytest.importorskip("hypothesis")  # in the [test] extra: always there in CI
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class RaisingHash(int):
    """An int whose __eq__ and __hash__ raise."""

    def __hash__(self) -> int:
        raise RuntimeError("__hash__ called")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("__eq__ called")


class RaisingEqObject:
    def __hash__(self) -> int:
        raise RuntimeError("__hash__ called")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("__eq__ called")


class OddNew(Exception):
    def __new__(cls, *args: object) -> OddNew:
        raise RuntimeError("__new__ called")


class OddInit(BaseException):
    def __init__(self, *args: object) -> None:
        raise RuntimeError("__init__ called")


class NotAnExceptionMeta(type):
    def __instancecheck__(cls, instance: object) -> bool:
        raise RuntimeError("__instancecheck__ called")

    def __subclasscheck__(cls, subclass: type) -> bool:
        raise RuntimeError("__subclasscheck__ called")


class NotAnException(metaclass=NotAnExceptionMeta):
    pass


class MyValueError(ValueError):
    pass


class StrSubclass(str):
    pass


class ThreadWithStrIdent(threading.Thread):
    def __init__(self) -> None:
        super().__init__()
        self._ident = "not an int"  # type: ignore[assignment]


class ThreadWithRaisingGetattr(threading.Thread):
    def __getattribute__(self, name: str) -> object:
        if name in ("ident", "_ident", "is_alive", "native_id"):
            raise RuntimeError(f"{name} read")
        return super().__getattribute__(name)


finished = threading.Thread(target=lambda: None)
finished.start()
finished.join()


@pytest.fixture(scope="module")
def blocked() -> Iterator[threading.Thread]:
    """A live thread blocked in Event.wait(): it runs no bytecode."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="fuzz-target")
    thread.start()
    yield thread
    stop.set()
    thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive()


class Made:
    """An argument built only inside the test: hypothesis itself never
    touches (hashes, compares) the hostile objects."""

    def __init__(self, make: object, label: str) -> None:
        self.make = make
        self.label = label

    def __repr__(self) -> str:
        return self.label


def made(label: str, make: object) -> st.SearchStrategy[Made]:
    return st.just(Made(make, label))


def build(arg: object) -> object:
    return arg.make() if isinstance(arg, Made) else arg  # type: ignore[operator]


def bad_threads() -> st.SearchStrategy[object]:
    return st.one_of(
        st.integers(min_value=-(2**80), max_value=2**80),
        st.integers(min_value=-(2**70), max_value=2**70).map(
            lambda n: Made(lambda: RaisingHash(n), f"RaisingHash({n})")
        ),
        st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=5), st.binary(max_size=5),
        made("RaisingEqObject()", RaisingEqObject), made("StrSubclass('1')", lambda: StrSubclass("1")),
        made("Thread() not started", threading.Thread), made("finished Thread", lambda: finished),
        made("ThreadWithStrIdent()", ThreadWithStrIdent),
        made("ThreadWithRaisingGetattr()", ThreadWithRaisingGetattr),
        made("threading.Thread class", lambda: threading.Thread), made("object()", object),
        made("[1]", lambda: [1]),
    )


def excs() -> st.SearchStrategy[object]:
    return st.one_of(
        st.sampled_from([
            ValueError, KeyboardInterrupt, SystemExit, BaseException, OddNew, OddInit, MyValueError,
            StopIteration, GeneratorExit, UnicodeDecodeError, OSError,
            getattr(builtins, "BaseExceptionGroup", Exception),
        ]),
        st.builds(MyValueError, st.text(max_size=5)),
        st.builds(ValueError, st.integers()),
        st.just(OSError(2, "gone")),
        st.sampled_from([int, str, object, type]),
        made("NotAnException", lambda: NotAnException),
        made("NotAnExceptionMeta", lambda: NotAnExceptionMeta),
        st.integers(), st.none(), st.text(max_size=3), made("RaisingEqObject()", RaisingEqObject),
        made("NotAnException()", NotAnException), made("StrSubclass('x')", lambda: StrSubclass("x")),
    )


def documented(exc: BaseException, argument: str | None = None) -> bool:
    if isinstance(exc, ThreadNotFoundError):
        return True
    if type(exc) is RuntimeError and str(exc).endswith((" called", " read")):
        # raised by the argument's own hooks above (__hash__, __repr__,
        # __getattribute__...): propagated unchanged, as Python code does
        return True
    if type(exc) in (TypeError, ValueError):
        return argument is None or f"'{argument}'" in str(exc)
    return False


def is_exception_arg(exc: object) -> bool:
    if isinstance(exc, type):
        try:
            return issubclass(exc, BaseException)
        except RuntimeError:
            return False
    return isinstance(exc, BaseException)


@FUZZ
@given(thread=bad_threads(), exc=excs())
def test_inject_bad_thread(api, thread, exc):
    thread, exc = build(thread), build(exc)
    with pytest.raises(Exception) as info:
        api.inject(thread, exc)
    assert documented(info.value), repr(info.value)


@FUZZ
@given(exc=excs())
def test_inject_into_a_live_thread(api, blocked, exc):
    exc = build(exc)
    try:
        api.inject(blocked, exc)
    except BaseException as error:
        assert not is_exception_arg(exc)
        assert documented(error, "exc"), repr(error)
        assert api.pending(blocked) is None
        return
    assert is_exception_arg(exc)
    assert api.pending(blocked) is exc
    assert api.cancel(blocked) is True
    assert api.pending(blocked) is None


@FUZZ
@given(thread=bad_threads())
def test_pending_cancel_wake_bad_thread(api, thread):
    thread = build(thread)
    for function in (api.pending, api.cancel, api.wake):
        try:
            result = function(thread)
        except BaseException as error:
            assert documented(error), (function, repr(error))
        else:
            # only an ident that happens to be a live thread's gets here
            assert isinstance(thread, int) and thread in threading._active  # type: ignore[attr-defined]
            assert result in (None, False, WakeResult(WakeStatus.NOTHING_PENDING))


@FUZZ
@given(thread=bad_threads(), timeout=st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70), st.booleans(), st.text(max_size=2),
))
def test_kill_bad_arguments(api, thread, timeout):
    thread = build(thread)
    try:
        result = api.kill(thread, timeout)
    except BaseException as error:
        assert documented(error), repr(error)
    else:
        assert thread is finished and result is True  # a finished Thread counts as ended
