"""Pure-Python backend: the same primitives as the C extension, through ctypes.

Used where ``threadinject._core`` cannot be built or loaded (PyPy has no
``PyThreadState_SetAsyncExc`` and is refused below), or when
``THREADINJECT_PURE_PYTHON=1``.  It follows ``csrc/`` step by step; the
comments there explain the why.  Differences:

* registration is checked and the exception scheduled while holding
  ``threading._active_limbo_lock`` (Python code can switch threads anywhere);
* on CPython 3.9 to 3.11 the C carrier raises the instance from tp_new.  A
  Python ``__new__`` cannot do that: the exception would carry a traceback of
  its own frame, and normalisation (``PyErr_NormalizeException``) would then
  drop the traceback of the target's frames.  So there the carrier is a
  subclass of the exception's own type (made once per type), whose
  ``__new__`` returns the instance: ``except TheirType`` matches and the
  traceback is intact, but on 3.9 and 3.10 ``sys.exc_info()[0]`` is that
  subclass, which bears the same name.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import weakref
from typing import Any

from . import _frames
from ._errors import ThreadNotFoundError
from ._types import ExcArg, ThreadArg

__all__ = ["cancel", "inject", "pending"]

if sys.implementation.name != "cpython":  # pragma: no cover - CPython runs the suite
    raise ImportError(f"threadinject needs CPython's C API, not {sys.implementation.name}")

# Function objects of our own: ``pythonapi[name]`` makes a new one on every
# call, where ``pythonapi.name`` returns a shared, cached one whose argtypes
# other code in the process may rely on.
_set_async_exc = ctypes.pythonapi["PyThreadState_SetAsyncExc"]
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
_set_async_exc.restype = ctypes.c_int
_clear_async_exc = ctypes.pythonapi["PyThreadState_SetAsyncExc"]
_clear_async_exc.argtypes = (ctypes.c_ulong, ctypes.c_void_p)  # None -> NULL
_clear_async_exc.restype = ctypes.c_int

_MAX_IDENT = 2 ** (8 * ctypes.sizeof(ctypes.c_ulong)) - 1
_DELIVER_BY_RAISING = sys.version_info < (3, 12)

# CPython 3.11: PyThreadState_SetAsyncExc(id, NULL) leaves the eval breaker
# signalled until some thread receives an exception, and meanwhile a thread
# with a trace function never gets past its next function start
# (csrc/withdrawal_signal.c has the details and the measurement).
_WITHDRAWAL_SIGNALS = sys.version_info[:2] == (3, 11)


class _WithdrawalSignal(BaseException):
    """Received by the thread that withdrew an injection, at once (3.11)."""


def _receive_withdrawal_signal() -> None:
    """A Python function: its first check receives the signal."""


def _clear_withdrawal_signal() -> None:
    """Clear the signal a withdrawal left (3.11), the one public way: this
    thread receives an exception of ours at once and drops it.  Called right
    after the withdrawal: this thread has none of its own scheduled, since
    one scheduled while it let the GIL go is received at the check where it
    takes it back, and none was passed since (the csrc counterpart reads
    PyThreadState.async_exc to be sure, which ctypes cannot)."""
    me = threading.get_ident()
    try:
        _set_async_exc(me, _WithdrawalSignal)
        _receive_withdrawal_signal()
    except _WithdrawalSignal:
        return
    except BaseException:  # a signal handler's, raised first: take ours back
        _clear_async_exc(me, None)
        raise
    _clear_async_exc(me, None)  # not received (the first check above rules it out)


# {ident: [exception class or instance, withdrawn]} injected and not yet
# received.  An entry is removed when it is received or replaced; cancel()
# marks it withdrawn in place (the receiving thread may be popping it at that
# moment), for a delivery that had already begun (csrc/pending.c).
# One for a thread that ended without running bytecode again stays until its
# ident is injected into again (see csrc/pending.c for why nothing sweeps it).
_pending: dict[int, list[Any]] = {}
# Serialises the injectors (the receiving thread only pops, atomically).
_lock = threading.Lock()


def _take_pending() -> BaseException:
    """In the target thread: the exception injected into it, as an instance.

    A withdrawn one too: the delivery had begun before cancel() withdrew it
    (see csrc/carrier.c)."""
    entry = _pending.pop(threading.get_ident(), None)
    if entry is None:
        raise RuntimeError(
            "threadinject: this thread received an injection whose exception had "
            "already been delivered (an inject() raced the delivery of an earlier one)"
        )
    exc: ExcArg = entry[0]
    if isinstance(exc, type):
        exc = exc()
        if not isinstance(exc, BaseException):
            raise TypeError(
                "calling the injected exception class should have returned "
                f"a BaseException instance, not {exc!r}"
            )
    return exc


class InjectedException(BaseException):
    """Private: delivers an exception injected by threadinject."""

    def __new__(cls, *args: object) -> BaseException:  # type: ignore[misc]
        exc = _take_pending()
        if _DELIVER_BY_RAISING:  # only for types that cannot be subclassed, see above
            raise exc
        return exc


def _deliver_as_subclass(cls: type, *args: object) -> BaseException:
    if len(args) == 1 and isinstance(args[0], cls.__mro__[1]):
        # CPython normalising again: PyErr_NormalizeException passes the value
        # it already holds, the instance delivered the first time
        return args[0]  # type: ignore[return-value]
    return _take_pending()


#: The code a thread runs between taking an injected exception and receiving
#: it, by id(): matched by identity, as code objects compare by content
_DELIVERY_CODES = {id(code): code for code in (
    InjectedException.__new__.__code__, _deliver_as_subclass.__code__, _take_pending.__code__)}

_carriers: weakref.WeakKeyDictionary[type, type] = weakref.WeakKeyDictionary()


def _carrier_for(exc: ExcArg) -> type:
    """The class to schedule for `exc` (see the module's docstring)."""
    if not _DELIVER_BY_RAISING:
        return InjectedException
    cls = exc if isinstance(exc, type) else type(exc)
    carrier = _carriers.get(cls)
    if carrier is None:
        try:
            carrier = type(cls.__name__, (cls,), {
                "__new__": _deliver_as_subclass,
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
            })
        except Exception:  # a final type, or one whose metaclass refuses: raise instead
            carrier = InjectedException
        _carriers[cls] = carrier
    return carrier


def _target(thread: object, fname: str) -> tuple[threading.Thread | None, int]:
    if isinstance(thread, int) and not isinstance(thread, bool):
        if not 0 <= thread <= _MAX_IDENT:
            raise ValueError(
                f"{fname}() argument 'thread' must be a thread ident between 0 and "
                f"{_MAX_IDENT}, not {thread!r}"
            )
        return None, int(thread)
    if isinstance(thread, threading.Thread):
        try:
            ident = thread._ident  # type: ignore[attr-defined]
        except AttributeError:
            raise ThreadNotFoundError(
                f"thread=<{type(thread).__qualname__} object> has not been started "
                "(Thread.__init__() was not called)"
            ) from None
        if ident is None:
            raise ThreadNotFoundError(f"thread={thread!r} has not been started")
        if type(ident) is not int:
            raise TypeError(f"{fname}() argument 'thread': its _ident must be an int, not {ident!r}")
        return thread, ident
    raise TypeError(
        f"{fname}() argument 'thread' must be a threading.Thread or an int "
        f"thread ident, not {type(thread).__qualname__}"
    )


def _registered(thread: threading.Thread | None, ident: int) -> bool:
    if thread is None:
        return True
    active = threading._active  # type: ignore[attr-defined]
    limbo = threading._limbo  # type: ignore[attr-defined]
    return active.get(ident) is thread or any(t is thread for t in limbo.values())


def _not_found(thread: object, is_thread: bool) -> ThreadNotFoundError:
    why = "is not running (it has finished)" if is_thread else "is not the ident of a running thread"
    return ThreadNotFoundError(f"thread={thread!r} {why}")


def _set_pending(
    thread: threading.Thread | None, ident: int, exc: ExcArg | None
) -> tuple[bool, bool]:
    """Make `exc` the pending exception, or withdraw it (None).

    Returns (target found, an exception was pending)."""
    with threading._active_limbo_lock, _lock:  # type: ignore[attr-defined]
        if not _registered(thread, ident):
            return False, False
        previous = _pending.get(ident)
        was_pending = previous is not None and not previous[1]
        if exc is None:
            if previous is not None:
                previous[1] = True
            found = _clear_async_exc(ident, None) != 0
            if found and _WITHDRAWAL_SIGNALS:
                _clear_withdrawal_signal()
        else:
            _pending[ident] = [exc, False]
            found = _set_async_exc(ident, _carrier_for(exc)) != 0
        if not found:
            _pending.pop(ident, None)
        return found, was_pending


def inject(thread: ThreadArg, exc: ExcArg, /) -> None:
    if not (isinstance(exc, BaseException)
            or (isinstance(exc, type) and issubclass(exc, BaseException))):
        raise TypeError(
            "inject() argument 'exc' must be a BaseException subclass or instance, "
            f"not {type(exc).__qualname__}"
        )
    target, ident = _target(thread, "inject")
    found, _ = _set_pending(target, ident, exc)
    if not found:
        raise _not_found(thread, target is not None)


def _inject_if_at(thread: ThreadArg, exc: ExcArg, frame: object, lasti: int,
                  native_id: int, syscall: int, arg0: int,
                  wake: tuple[int, int, int, int] | None = None, /) -> bool:
    """inject() only if the thread's innermost frame is still `frame` at
    `lasti`.  Python code, unlike the C backend's: the GIL can change hands
    at any call here, so the thread can move on between the check and the
    injection, e.g. into the acquire() of a lock, and take the exception
    right after it succeeds (seen in the aarch64 VM: a Queue's mutex left
    held, the kill landed in Condition.__enter__).  So it looks again after
    injecting and withdraws the exception if the thread has moved.  Moved
    after the injection, it has taken it at its first check, at or right
    after the place judged safe; moved before, it may be blocked in such an
    acquire, and cannot take it before the withdrawal unless the GIL
    changes hands again within these few lines (README, Limits).  True if
    the exception was scheduled and stays so or has been taken.  It
    never reads /proc (the system-call arguments are the C backend's: this
    backend wakes no system call, so kill() never judges by one, nor passes
    `wake`)."""
    if wake is not None:
        raise NotImplementedError("the ctypes backend wakes no lock wait")
    _, ident = _target(thread, "_inject_if_at")
    if not _frames.READABLE:
        raise NotImplementedError(
            "_inject_if_at(): on a free-threaded build another thread's frames cannot be read safely")
    now = _frames.innermost(ident)
    if now is None or now is not frame or now.f_lasti != lasti:
        return False
    inject(thread, exc)
    entry = _pending.get(ident)
    now = _frames.innermost(ident)
    if now is frame and now.f_lasti == lasti:
        return True
    try:
        withdrawn = cancel(thread)
    except ThreadNotFoundError:
        return True  # it has taken it and ended
    # Taken already (it moved by unwinding): scheduled, as the caller must
    # know, or it would schedule a second one into the unwinding.  That
    # includes a delivery under way: between taking the exception and
    # popping it from _pending the thread runs the carrier's Python code,
    # where the GIL can change hands, and a cancel() then is too late (it
    # returns True, the exception is delivered all the same).  Seen in the
    # aarch64 VM (3.9.2): kill() judged again and scheduled a second
    # ThreadKilled, which landed after the thread had handled the first.
    return not withdrawn or _delivering(ident) or _pending.get(ident) is not entry


def _delivering(ident: int) -> bool:
    """Whether the thread `ident` runs a carrier's code: it has taken an
    injected exception and not yet received it (GIL builds)."""
    frame = _frames.innermost(ident)
    while frame is not None:
        if _DELIVERY_CODES.get(id(frame.f_code)) is frame.f_code:
            return True
        frame = frame.f_back
    return False


def cancel(thread: ThreadArg, /) -> bool:
    target, ident = _target(thread, "cancel")
    found, was_pending = _set_pending(target, ident, None)
    if not found:
        raise _not_found(thread, target is not None)
    return was_pending


def pending(thread: ThreadArg, /) -> ExcArg | None:
    target, ident = _target(thread, "pending")
    if target is not None and not _registered(target, ident):
        raise _not_found(thread, True)
    entry = _pending.get(ident)
    exc = None if entry is None or entry[1] else entry[0]
    # nothing pending for a raw ident: is there such a thread (running Python code)?
    if exc is None and target is None and ident not in _frames.current_frames():
        raise _not_found(thread, False)
    return exc
