"""Lock waits (Linux x86-64 and aarch64, C backend): which lock a thread waits for, and
whether its wait can be ended soundly.

``Lock.acquire()`` and ``RLock.acquire()`` (and ``with lock:``) block in a
``futex`` wait, in one of two places, depending on the CPython release:

* the lock's own POSIX semaphore (``sem_wait``; Python/thread_pthread.h):
  Lock up to 3.12, RLock up to 3.13.  The futex word *is* the semaphore,
  whose address the lock object holds;
* CPython's parking lot (``PyMutex``; Python/lock.c, Python/parking_lot.c):
  Lock from 3.13, RLock from 3.14.  The futex word is a semaphore in a
  ``wait_entry`` on the waiting thread's stack, next to the address of the
  mutex it is parked on, which lies inside the lock object.

Which layout applies, and the offsets, are learnt once per process from a
lock of our own (calibrate()): a helper thread blocks on it and we look where
its address shows up.  A wait is then identified exactly: the futex word is a
semaphore held by a lock object that the waiting frame can reach, or a
parking-lot entry whose mutex lies in an object whose type is Lock/RLock.

The only result that ends such a wait is ``-ETIMEDOUT``: the acquire returns
False with the exception pending, which then lands at the call.  Sound
(nothing was acquired, nothing acts on the False before the exception) for a
*timed* wait on a semaphore, the one kind woken.  Not woken:

* an untimed wait on a semaphore: CPython reports the "impossible" status
  with ``perror("sem_wait")`` (thread_pthread.h, 3.9-3.13).  (Posting the
  semaphore from the handler instead, so that CPython's retry takes the lock
  and the kill lands at the call, is silent but unsound: the post can wake
  another waiter of the same lock, which then enters its critical section
  while the holder still holds it.)
* any wait in the parking lot, timed or not: the woken thread takes the GIL
  back (``_PySemaphore_Wait``) *before* ``_PyParkingLot_Park`` takes it off
  the lock's queue (Python/parking_lot.c, 3.13.5 and 3.14).  A holder that
  gets the GIL first and releases hands it the lock (``mutex_unpark``: it
  has waited longer than 1 ms), the acquire returns True with the kill
  pending, and the kill lands at the call, before the ``try`` that would
  release it: the lock is left held for good.  Measured with
  benchmarks/stress_kill.py's shared-lock workloads (150 kills a run): on a
  glibc CPython 3.13.5 built here, 3 of the first 7 runs left the Lock held;
  the same on musl (3.13.5) and in the aarch64 VM (3.13.18); not seen on
  Debian's 3.14.10/3.15.2 in 80 runs of 100 kills on one core, but the
  order of two GIL waiters is nothing anyone can rely on.  (Besides, a
  CPython built with its C assertions aborts there: ``_PyMutex_LockTimed``
  asserts that an untimed wait never times out, Python/lock.c, 3.13.15.)

These waits get UNSAFE_TO_LAND: kill() withdraws its exception while the
thread waits and raises it again once the thread is past the acquire.

``with lock:`` is different: ``__enter__`` returning False does not stop the
block from being entered, and where the pending exception lands *inside* the
block, its ``__exit__`` releases the lock that another thread holds.  Where
that is so (probed once, landing_inside_with()), such a wait is not woken but
deferred: the exception lands once the lock is handed over, inside the block,
and ``__exit__`` releases the thread's own acquisition.
"""

from __future__ import annotations

import gc
import threading
import time
from types import FrameType
from typing import Any, Callable, NamedTuple

from . import _syscalls

__all__ = ["LockWait", "identify", "identify_unseen"]

_ETIMEDOUT = 110


class LockWait(NamedTuple):
    name: str
    """"Lock.acquire" or "RLock.acquire"."""
    parked: bool
    """In the parking lot (else on the lock's semaphore)."""
    timed: bool
    """acquire(timeout=...): the wait has a deadline."""
    guard_addr: int
    """Parked: the entry's word that must still name this lock when the
    signal arrives (0: none needed, the futex word is the lock's own)."""
    guard_value: int
    lock_id: int
    """id() of the lock object waited on."""

    @property
    def wakeable(self) -> bool:
        """Whether -ETIMEDOUT ends this wait soundly and silently: a timed
        wait on a semaphore (see the module's docstring)."""
        return self.timed and not self.parked

    @property
    def result(self) -> int:
        """What the woken futex wait returns."""
        return -_ETIMEDOUT


class _Layout(NamedTuple):
    parked: bool
    offset: int
    """Parked: where the entry holds the mutex address, from the futex word.
    Else: where the lock object holds its semaphore's address."""
    mutex_offset: int
    """Parked: the mutex's offset in the lock object."""
    type_offset: int
    """Where an object's header holds its type."""


_layouts: dict[type, tuple[str, _Layout]] | None = None
_calibration_lock = threading.Lock()


def _lock_factories() -> list[tuple[type, Callable[[], Any], str]]:
    """(type, factory, name) of the C lock types: before 3.13 `_thread.lock`
    cannot be instantiated directly."""
    found: list[tuple[type, Callable[[], Any], str]] = [
        (type(threading.Lock()), threading.Lock, "Lock.acquire"),
    ]
    rlock = type(threading.RLock())
    if rlock.__module__ == "_thread":  # the C RLock, not threading's Python one
        found.append((rlock, threading.RLock, "RLock.acquire"))
    return found


def _untimed_futex_wait(native_id: int, deadline: float) -> _syscalls.Blocked | None:
    """Wait until the thread sits in an untimed futex wait (not the GIL's:
    that one has a timeout)."""
    while time.monotonic() < deadline:
        blocked = _syscalls.blocked_call(native_id)
        if blocked is not None and blocked.number == _syscalls.FUTEX and blocked.args[3] == 0:
            return blocked
        time.sleep(0.0005)
    return None


def _calibrate(lock_type: type, factory: Callable[[], Any]) -> _Layout | None:
    lock = factory()
    lock.acquire()
    waiter = threading.Thread(target=lambda: lock.acquire() and lock.release(),
                              name="threadinject-lock-calibration", daemon=True)
    try:
        waiter.start()
    except RuntimeError:  # "can't create new thread at interpreter shutdown"
        lock.release()
        raise
    try:
        blocked = _untimed_futex_wait(waiter.native_id, time.monotonic() + 5.0)  # type: ignore[arg-type]
        header = _syscalls.read_memory(id(lock), 64)
        if blocked is None or header is None:
            return None
        fields = _syscalls.words(header)
        if id(lock_type) not in fields:
            return None
        type_offset = 8 * fields.index(id(lock_type))
        if blocked.arg0 in fields:
            return _Layout(False, 8 * fields.index(blocked.arg0), 0, type_offset)
        entry = _syscalls.read_memory(blocked.arg0 - 64, 128)
        for i, word in enumerate(_syscalls.words(entry or b"")):
            if id(lock) <= word < id(lock) + 64:
                return _Layout(True, 8 * i - 64, word - id(lock), type_offset)
        return None
    finally:
        lock.release()
        waiter.join(5.0)


def layouts() -> dict[type, tuple[str, _Layout]]:
    """How each lock type waits (and its acquire's name), learnt on first use."""
    global _layouts
    with _calibration_lock:
        if _layouts is None:
            found = {}
            try:
                for lock_type, factory, name in _lock_factories():
                    layout = _calibrate(lock_type, factory)
                    if layout is not None:
                        found[lock_type] = (name, layout)
            except RuntimeError:
                return {}  # no thread can be started (interpreter exit): no lock is identified
            _layouts = found
        return _layouts


def _reachable(frame: FrameType) -> list[object]:
    """Objects the frame names: its locals, their attributes, its globals."""
    found: list[object] = []
    for value in list(frame.f_locals.values()):
        found.append(value)
        attributes = getattr(value, "__dict__", None)
        if isinstance(attributes, dict):
            found.extend(list(attributes.values()))
    found.extend(list(frame.f_globals.values()))
    return found


def identify_unseen(blocked: _syscalls.Blocked, searched: dict[int, LockWait | None]) -> LockWait | None:
    """identify() where no frame can be read (free-threaded builds): a
    semaphore wait is matched against every lock object of a semaphore
    layout (the C RLock of 3.13, which the gc tracks) that gc.get_objects()
    lists, once per futex word.  `searched`: what earlier calls of the same
    caller found for each futex word they searched (None: no lock's: the
    word of tracemalloc's lock, an io buffer's...); the caller keeps it only
    as long as a word is unlikely to be freed and taken by a new lock (one
    kill())."""
    found = identify(None, blocked)  # parked: exact, and cheap
    if found is not None or blocked.number != _syscalls.FUTEX:
        return found
    if blocked.arg0 not in searched:
        semaphores = {lock_type: (name, layout) for lock_type, (name, layout) in layouts().items()
                      if not layout.parked}
        searched[blocked.arg0] = next(
            (LockWait(semaphores[type(o)][0], False, False, 0, 0, id(o)) for o in gc.get_objects()
             if type(o) in semaphores
             and _syscalls.read_word(id(o) + semaphores[type(o)][1].offset) == blocked.arg0),
            None) if semaphores else None
    found = searched[blocked.arg0]
    return None if found is None else found._replace(timed=blocked.args[3] != 0)


def identify(frame: FrameType | None, blocked: _syscalls.Blocked) -> LockWait | None:
    """The Lock/RLock wait the thread is blocked in, or None if it is not one
    (or not one we can prove)."""
    if blocked.number != _syscalls.FUTEX:
        return None
    timed = blocked.args[3] != 0
    candidates: list[object] | None = None
    for lock_type, (name, layout) in layouts().items():
        if layout.parked:
            guard = blocked.arg0 + layout.offset
            key = _syscalls.read_word(guard)
            if key is None:
                continue
            if _syscalls.read_word(key - layout.mutex_offset + layout.type_offset) == id(lock_type):
                return LockWait(name, True, timed, guard, key, key - layout.mutex_offset)
            continue
        if candidates is None:
            candidates = _reachable(frame) if frame is not None else []
        for candidate in candidates:
            if type(candidate) is lock_type and (
                _syscalls.read_word(id(candidate) + layout.offset) == blocked.arg0
            ):
                return LockWait(name, False, timed, 0, 0, id(candidate))
    return None
