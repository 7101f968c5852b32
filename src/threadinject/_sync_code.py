"""Where in threading's and queue's own code an exception may land (GIL builds).

The synchronization primitives of threading and queue keep their state
consistent only if no exception comes between some of their statements
(Lib/threading.py, Lib/queue.py, 3.9-3.15):

* Condition.wait between queueing its waiter and entering its ``try`` (the
  condition's lock released, or the waiter left queued), and in its
  ``finally`` before the lock is taken back and the waiter unqueued;
* Queue.get between taking an item and returning it (the item is lost), and
  Queue.put between adding one and notifying a consumer;
* anywhere right after an ``acquire()``, before the ``try`` or ``with``
  block that would release it (the Python RLock's acquire, Condition's
  ``__enter__``).

The places built to let an exception through are the waits themselves:
Condition.wait's ``waiter.acquire()`` calls (those inside its ``try``, whose
``finally`` restores the lock: the "KeyboardInterrupt" comment there; the
first one, before the waiter is queued, is as harmless), and, while the
wait they called is under way, the other primitives' calls of a
Condition's ``wait()``/``wait_for()`` and of ``wait_for``'s predicate,
whose ``with`` statements release the lock as the exception passes.

An exception raised in a thread stopped anywhere else in that code can
break the primitive for every other thread, and with a GIL a thread killed
while it runs through them can be stopped anywhere: a kill landed in
Condition._release_save right after it had released the condition's lock,
and Queue.get's ``with`` then raised "release unlocked lock" (aarch64 VM,
3.9.2, ctypes backend: 3 of 10 stress runs, 2026-11-27).

kill() therefore does not schedule its exception into a thread that has a
frame of that code at any other position, the innermost one or one further
out (a Queue.get calling a subclass's ``_get``): it withholds it until the
thread has moved on (_wake.unsafe_to_land()).  On free-threaded builds no
frame can be read and the thread raises the kill itself, never in this code
nor at the start of a function it calls (_monitor.py); GIL builds from 3.12
let it do so too once kill() has withheld the kill for a while (_kill.py).
Plain inject() lands wherever the thread is (README, Limits).
"""

from __future__ import annotations

import functools
import queue
import threading
from types import CodeType, FrameType

from . import _frames

__all__ = ["critical_at", "in_critical_code"]

# The primitives whose methods keep shared state between statements; not
# Thread (its run() only calls the target) nor Timer (it waits on an Event)
_CLASSES: tuple[type, ...] = (
    threading.Condition, threading.Semaphore, threading.BoundedSemaphore, threading.Event,
    threading.Barrier, threading._PyRLock,  # type: ignore[attr-defined]
    queue.Queue, queue.LifoQueue, queue.PriorityQueue, queue._PySimpleQueue,  # type: ignore[attr-defined]
)

#: Calls an outer frame of that code may be at: waits still under way in
#: the frames it called (see the docstring)
_WAITS = frozenset({"wait", "wait_for", "predicate"})
#: Calls the innermost frame may be at: Condition.wait's waiter.acquire(), a C
#: call.  (Innermost at a call of wait(), a frame has had that wait return:
#: an exception landing then would swallow the notification it consumed.)
_WAITER_WAITS = frozenset({"acquire"})


def _nested(code: CodeType) -> list[CodeType]:
    """`code` and the code objects inside it (lambdas, comprehensions)."""
    found = [code]
    for const in code.co_consts:
        if isinstance(const, CodeType):
            found.extend(_nested(const))
    return found


@functools.cache
def _codes() -> dict[int, CodeType]:
    """The primitives' code objects by id() (no disassembly: cheap; by id:
    a code object hashes its whole contents on every hash())."""
    codes: set[CodeType] = set()
    for cls in _CLASSES:
        for attribute in vars(cls).values():
            for function in (attribute, getattr(attribute, "__func__", None),
                             getattr(attribute, "fget", None), getattr(attribute, "fset", None)):
                code = getattr(function, "__code__", None)
                if isinstance(code, CodeType):
                    codes.update(_nested(code))
    return {id(code): code for code in codes}


@functools.lru_cache(maxsize=256)
def _landing_calls(code: CodeType) -> tuple[frozenset[int], frozenset[int]]:
    """Where a frame of one of the primitives' code objects may be, when
    innermost and when further out: disassembled the first time a thread
    is found there (all of them at once took seconds on the first kill in
    the aarch64 VM, with tracemalloc on)."""
    if code is threading.Condition.wait.__code__:
        return _frames.calls_naming(code, _WAITER_WAITS), _frames.calls_naming(code, _WAITS)
    return frozenset(), _frames.calls_naming(code, _WAITS)


def in_critical_code(frame: FrameType | None) -> bool:
    """Whether an exception landing in the thread whose innermost frame is
    `frame` could leave a threading or queue primitive broken: a frame of
    their code, this one or one further out, is at a position other than
    one of its waits (GIL builds: `frame` read holding the GIL)."""
    return frame is not None and critical_at(frame, frame.f_lasti)


def critical_at(frame: FrameType, offset: int) -> bool:
    """in_critical_code() for an exception landing in `frame` at `offset`
    (the frames it called having returned), on its way out through the
    frames further out."""
    codes = _codes()
    current: FrameType | None = frame
    while current is not None:
        if codes.get(id(current.f_code)) is current.f_code:
            waits = _landing_calls(current.f_code)
            position = offset if current is frame else current.f_lasti
            if position not in waits[0 if current is frame else 1]:
                return True
        current = current.f_back
    return False
