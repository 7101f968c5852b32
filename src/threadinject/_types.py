"""Types of the public functions, shared by both backends and the stubs."""

from __future__ import annotations

import threading
from typing import Protocol, Union

#: What `thread` arguments accept: a Thread, or an ident as threading.get_ident() returns it.
ThreadArg = Union[threading.Thread, int]
#: What `exc` arguments accept: an exception class (instantiated in the target) or instance.
ExcArg = Union[BaseException, type[BaseException]]


class InjectFn(Protocol):
    def __call__(self, thread: ThreadArg, exc: ExcArg, /) -> None: ...


class CancelFn(Protocol):
    def __call__(self, thread: ThreadArg, /) -> bool: ...


class PendingFn(Protocol):
    def __call__(self, thread: ThreadArg, /) -> ExcArg | None: ...


class InjectIfAtFn(Protocol):
    """A backend's _inject_if_at(thread, exc, frame, lasti, native_id,
    syscall, arg0[, wake]) -> bool: inject only if the thread's innermost
    frame is still `frame` at `lasti` and, unless syscall is -1, /proc shows
    task `native_id` in that system call (-2: in none) with that first
    argument.  With `wake` (a lock wait's ip, result, guard address and
    value; C backend only), end that wait in the same step, and withdraw the
    exception again unless the wait was ended: returns whether it lands
    (TimeoutError, withdrawn, if the thread did not take the signal)."""

    def __call__(self, thread: ThreadArg, exc: ExcArg, frame: object, lasti: int,
                 native_id: int, syscall: int, arg0: int,
                 wake: tuple[int, int, int, int] = ..., /) -> bool: ...


class KillFn(Protocol):
    def __call__(self, thread: ThreadArg, timeout: float | None = None) -> bool: ...
