"""kill() until joined, per blocking call: median and p99 over ROUNDS kills.

    python benchmarks/bench_kill.py            (or: tools/test -s bench)

The ctypes recipe is run once per call with a 1 s limit, to show what it does
there (never returns for blocked calls: it cannot wake them).

Every round closes the pipes and sockets it opened: when they were left open,
one kill in the run took 10-20 ms, the one whose open() of /proc/.../syscall
made the process's file table grow past 512 entries (Linux then waits for an
RCU grace period in a multi-threaded process): a cost of leaking descriptors,
not of kill().
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Callable

import threadinject
from threadinject import ThreadKilled

ROUNDS = 100


Factory = Callable[[contextlib.ExitStack], Callable[[], object]]


def pipe(resources: contextlib.ExitStack) -> tuple[int, int]:
    r, w = os.pipe()
    resources.callback(os.close, r)
    resources.callback(os.close, w)
    return r, w


def calls() -> dict[str, Factory]:
    """name -> factory of a blocking call, given the round's resources to
    register what it opens."""

    def sleep(resources: contextlib.ExitStack) -> Callable[[], object]:
        return lambda: time.sleep(1e6)

    def recv(resources: contextlib.ExitStack) -> Callable[[], object]:
        a, b = socket.socketpair()
        resources.enter_context(a)
        resources.enter_context(b)
        return lambda: a.recv(10)

    def pipe_read(resources: contextlib.ExitStack) -> Callable[[], object]:
        r, _ = pipe(resources)
        return lambda: os.read(r, 10)

    def select_(resources: contextlib.ExitStack) -> Callable[[], object]:
        r, _ = pipe(resources)
        return lambda: select.select([r], [], [])

    def selector(resources: contextlib.ExitStack) -> Callable[[], object]:
        sel = resources.enter_context(selectors.DefaultSelector())
        r, _ = pipe(resources)
        sel.register(r, selectors.EVENT_READ)
        return sel.select

    def event(resources: contextlib.ExitStack) -> Callable[[], object]:
        return threading.Event().wait

    def queue_get(resources: contextlib.ExitStack) -> Callable[[], object]:
        import queue

        return queue.Queue().get

    def held(factory: Callable[[], object]) -> object:
        lock = factory()
        lock.acquire()  # type: ignore[attr-defined]
        return lock

    # timed: ended where the lock waits on a semaphore (below)
    def lock_timed(resources: contextlib.ExitStack) -> Callable[[], object]:
        lock = held(threading.Lock)
        return lambda: lock.acquire(timeout=1e6)  # type: ignore[attr-defined]

    def rlock_timed(resources: contextlib.ExitStack) -> Callable[[], object]:
        lock = held(threading.RLock)
        return lambda: lock.acquire(timeout=1e6)  # type: ignore[attr-defined]

    found: dict[str, Factory] = {"time.sleep": sleep, "socket.recv": recv, "os.read": pipe_read,
             "select.select": select_, "selectors": selector, "Event.wait": event, "Queue.get": queue_get}
    from threadinject import _frames, _locks

    if not _frames.READABLE:
        # free-threaded builds wake no lock wait (README, Limits): a kill
        # there lands once the holder releases, which it never does here
        return found
    # Only timed waits on CPython's semaphore are woken (Lock up to 3.13.0,
    # RLock up to 3.13); untimed ones and any in the parking lot are withheld
    # until the lock is handed over (README, wake), which never happens here.
    parked = {name: layout.parked for name, layout in _locks.layouts().values()}
    if not parked.get("Lock.acquire"):
        found["Lock(timeout)"] = lock_timed
    if not parked.get("RLock.acquire"):
        found["RLock(timeout)"] = rlock_timed
    return found


def start(call: Callable[[], object]) -> threading.Thread:
    def body() -> None:
        try:
            call()
        except ThreadKilled:
            pass

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    time.sleep(0.002)  # into the call
    return thread


def recipe_kills(factory: Factory) -> bool:
    with contextlib.ExitStack() as resources:
        return _recipe_kills(factory(resources))


def _recipe_kills(call: Callable[[], object]) -> bool:
    thread = start(call)
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(ThreadKilled))
    thread.join(1.0)
    ended = not thread.is_alive()
    if not ended:
        threadinject.kill(thread, 5)
    return ended


def main() -> None:
    print(f"CPython {sys.version.split()[0]}, backend {threadinject.backend!r}: kill() until joined, "
          f"{ROUNDS} kills per call")
    print(f"{'call':<16}{'median ms':>10}{'p99 ms':>9}{'max ms':>9}{'killed':>8}  ctypes recipe within 1 s")
    for name, factory in calls().items():
        times, killed = [], 0
        for _ in range(ROUNDS):
            with contextlib.ExitStack() as resources:
                thread = start(factory(resources))
                begin = time.perf_counter()
                killed += threadinject.kill(thread, 5)
                times.append((time.perf_counter() - begin) * 1000)
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        recipe = "yes" if recipe_kills(factory) else "no"
        print(f"{name:<16}{statistics.median(times):10.3f}{p99:9.3f}{times[-1]:9.3f}"
              f"{killed:>5}/{ROUNDS}  {recipe}")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)"])
    thread = start(child.wait)
    begin = time.perf_counter()
    ok = threadinject.kill(thread, 5)
    print(f"{'Popen.wait':<16}{(time.perf_counter() - begin) * 1000:10.3f}{'':>18}{int(ok):>5}/1")
    child.kill()
    child.wait()


if __name__ == "__main__":
    main()
