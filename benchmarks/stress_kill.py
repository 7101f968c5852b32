"""Stress: kill threads in mixed workloads, thousands of times, and check nothing breaks.

    python benchmarks/stress_kill.py --kills 10000 --seed 1
    python benchmarks/stress_kill.py --seconds 60 --seed 2 --tracemalloc

Workers busy-loop, sleep, read sockets and pipes, wait on events and queues,
take a shared Lock and RLock (`with` and bare acquire/try/finally, checking
that nobody else is inside while they are), wait for a child process and
allocate.  A killer picks random workers at random times and kills them
(each kill must return True within 5 s, 30 s for a lock waiter, which can
only end once the lock is handed to it), or injects an exception and
withdraws it again with cancel(), or injects one and wakes the thread with
wake(); ended workers are replaced.  Afterwards: every kill and every
delivered injection accounted for by the way its thread ended, no lock
exclusion ever broken, the locks, queue and event still work,
threading.active_count() back to where it was, memory (RSS, and traced
memory with --tracemalloc) flat between 10% and 100% of the run.  Exits
non-zero on any failure.  Where the system-call wake is (README's platform
table) the C backend wakes every workload here; elsewhere use --portable
(busy, Event, Queue, `with lock:` and allocation workloads only).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import os
import queue
import random
import resource
import socket
import subprocess
import sys
import threading
import time
import traceback
import tracemalloc
import weakref
from collections.abc import Iterator
from typing import Callable

import threadinject

SHARED_QUEUE: queue.Queue[int] = queue.Queue()
SHARED_EVENT = threading.Event()
SHARED_LOCK = threading.Lock()
SHARED_RLOCK = threading.RLock()
# ident of the thread inside each lock's critical section
INSIDE: dict[object, int | None] = {SHARED_LOCK: None, SHARED_RLOCK: None}
VIOLATIONS = [0]


class Injected(Exception):
    """What the killer injects when it does not kill."""


# Where CPython takes the scheduled carrier before threadinject's code runs
# (3.9-3.11, free-threaded builds) or that code is Python (the ctypes
# backend), a cancel() can come after the delivery began: it returns True and
# the exception still arrives (README, Limits).  Elsewhere that is a failure.
CANCEL_CAN_BE_TOO_LATE = (
    sys.version_info < (3, 12)
    or not getattr(sys, "_is_gil_enabled", lambda: True)()
    or threadinject.backend == "ctypes"
)


def busy() -> None:
    n = 0
    while True:
        n += 1


def sleeper() -> None:
    while True:
        time.sleep(random.choice((0.001, 10.0, 1e6)))


def reader() -> None:
    a, b = socket.socketpair()
    try:
        a.recv(10)
    finally:
        a.close()
        b.close()


def pipe_reader() -> None:
    r, w = os.pipe()
    try:
        os.read(r, 10)
    finally:
        os.close(r)
        os.close(w)


def allocator() -> None:
    while True:
        [bytearray(100) for _ in range(1000)]


def critical_section(lock: object) -> None:
    """Work under `lock`; count it when another thread gets in too."""
    me = threading.get_ident()
    INSIDE[lock] = me
    time.sleep(random.choice((0, 0.0002, 0.002)))
    if INSIDE[lock] != me:
        VIOLATIONS[0] += 1


def with_lock() -> None:
    while True:
        with SHARED_LOCK:
            critical_section(SHARED_LOCK)
        time.sleep(0.0002)  # work outside the lock: without it a waiter can starve


def bare_lock() -> None:
    while True:
        SHARED_LOCK.acquire()
        try:
            critical_section(SHARED_LOCK)
        finally:
            SHARED_LOCK.release()
        time.sleep(0.0002)


def bookkeeping() -> None:
    """What a finally block may do before its release (write a log line, say)."""
    for _ in range(20):
        pass
    time.sleep(random.choice((0, 0.0002)))


def lock_released_late() -> None:
    while True:
        SHARED_LOCK.acquire()
        try:
            critical_section(SHARED_LOCK)
        finally:
            bookkeeping()  # a kill landing here would skip the release (README, Limits)
            SHARED_LOCK.release()
        time.sleep(0.0002)


def with_rlock() -> None:
    while True:
        with SHARED_RLOCK:
            critical_section(SHARED_RLOCK)
        time.sleep(0.0002)


# A kill can land inside Popen() once the child has started, before the `try`
# that ends it: the child then outlives its worker, here even this process.
# So it holds none of this process's pipes (an orphan holding stdout kept the
# suite's run_python() waiting for an end of file: found in a 10,000-kill run,
# two orphans in 298 Popen.wait kills; a likely cause of the stress test's
# one hang in CI, on 3.15, where the script itself had no stack left to
# dump), and it ends by itself once this process is gone.
CHILD = "import os, sys, time\nwhile os.getppid() == int(sys.argv[1]):\n    time.sleep(0.2)"


def child_wait() -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(os.getpid())], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        child.wait()
    finally:
        child.kill()
        child.wait()


# name -> (workload, weight)
WORKLOADS: dict[str, tuple[Callable[[], object], int]] = {
    "busy": (busy, 4), "sleep": (sleeper, 4), "recv": (reader, 4), "os.read": (pipe_reader, 4),
    "Event.wait": (SHARED_EVENT.wait, 4), "Queue.get": (SHARED_QUEUE.get, 4), "allocate": (allocator, 4),
    "with Lock": (with_lock, 4), "Lock.acquire": (bare_lock, 4), "with RLock": (with_rlock, 4),
    "late release": (lock_released_late, 2), "Popen.wait": (child_wait, 1),
}
PORTABLE = ("busy", "Event.wait", "Queue.get", "allocate", "with Lock")
# An exception injected into a running thread can land between a bare
# acquire() and its try, leaving the lock held (README, Limits: any
# injector).  kill() avoids it: it withholds the exception while the thread is
# at a call that may be an acquire, and raises it once the thread is past it.
# Plain inject() does not, so the bare-acquire workload is only ever killed.
# A kill of a thread waiting for a lock can only land once the lock is handed
# to it (deferred, or withheld until past a bare acquire); CPython's locks are
# not fair, and with busy threads and short switch intervals a waiter was seen
# to wait more than 5 s for its turn.
LOCK_WAITERS = ("with Lock", "Lock.acquire", "with RLock", "late release")
# where the exceptions that ended the last lock workers landed: printed when
# a lock is left held
LANDINGS: collections.deque[str] = collections.deque(maxlen=12)
AT_ACQUIRE: list[str] = []  # ... those that landed at an acquire() call
# where exceptions that ended workers landed in threading's or queue's own
# code (a landing in their critical lines can leave a lock held: README,
# Limits): printed when a kill hangs
IN_THREADING: collections.deque[str] = collections.deque(maxlen=12)
LOCK_KILL_BOUND = 30
KILL_BOUND = 5
#: how much slower than native this runs (--slowdown: the suite's
#: THREADINJECT_TEST_SLOWDOWN, 15 in the aarch64 VM): scales the bounds
SLOWDOWN = 1.0


def kill_bound(name: str) -> float:
    """How long a kill of a `name` worker may take (s)."""
    return (LOCK_KILL_BOUND if name in LOCK_WAITERS else KILL_BOUND) * SLOWDOWN
INJECT_SAFE = ("busy", "sleep", "recv", "os.read", "Event.wait", "Queue.get", "allocate", "with Lock",
               "with RLock")


def _inject_safe() -> tuple[str, ...]:
    """The workloads that plain inject() + wake() may end.  A thread waiting
    to enter `with lock:` among them only where an exception landing there
    lands inside the block (wake() defers it to the hand-over); where it
    lands before the block (3.14 without the fix for gh-148874), wake() ends
    the wait, and a release racing that can hand the lock over first: only
    kill() ends such a wait in one step with the scheduling (README, Limits)."""
    from threadinject import _landing

    try:  # the probe needs the C module's inject(), whichever backend runs
        from threadinject import _core  # type: ignore[attr-defined]
    except ImportError:
        _core = None
    safe = INJECT_SAFE
    if _core is None or not _landing.lands_inside_with(_core):
        safe = tuple(name for name in safe if not name.startswith("with "))
    if not getattr(sys, "_is_gil_enabled", lambda: True)():
        # No GIL: the target runs while inject() schedules, so a plain
        # inject lands anywhere in threading's code, e.g. in
        # Condition.__enter__ right after its acquire(), leaving the
        # Event's or Queue's lock held (README, Limits, "Landing in
        # threading's own critical lines": 1 in 2,789 injections into
        # Event.wait loops on 3.13t, 0 in 5,000 on 3.12).  kill() judges
        # where it schedules; they are only killed.
        safe = tuple(name for name in safe if name not in ("Event.wait", "Queue.get"))
    return safe


# --trace: {thread: [decisions of kill() about it]}
TRACE: weakref.WeakKeyDictionary[threading.Thread, list[str]] = weakref.WeakKeyDictionary()


def install_trace() -> None:
    """Rebuild threadinject.kill on primitives that record what they answer."""
    from threadinject import _frames, _impl, _kill, _monitor, _unsafe_to_land, _wake  # type: ignore[attr-defined]

    def recorded(name: str, fn: Callable[..., object]) -> Callable[..., object]:
        def call(thread: threading.Thread, *rest: object) -> object:
            frame = _frames.innermost(thread.ident)  # None on free-threaded builds
            where = f"{frame.f_code.co_name}:{frame.f_lineno}@{frame.f_lasti}" if frame else "-"
            result = fn(thread, *rest)
            TRACE.setdefault(thread, []).append(f"{time.monotonic():.4f} {name} at {where} -> {result!r}")
            return result
        return call

    if not _frames.READABLE:  # free-threaded builds: what /proc showed, and how it was judged
        judge = _kill.withhold_unseen

        def withhold_unseen(thread: threading.Thread, withheld: object, searched: object) -> object:
            seen = _wake._seen(thread)
            result = judge(thread, withheld, searched)  # type: ignore[arg-type]
            TRACE.setdefault(thread, []).append(f"{time.monotonic():.4f} withhold_unseen({withheld!r}) "
                                                f"seeing {seen!r} -> {result!r}")
            return result
        _kill.withhold_unseen = withhold_unseen  # type: ignore[assignment]
        watching = _monitor.watching

        @contextlib.contextmanager
        def traced_watching(ident: int | None, exc: BaseException) -> Iterator[object]:
            # when the watch was set and taken off, and how it ended
            thread = threading._active.get(ident)  # type: ignore[attr-defined, arg-type]
            note = TRACE.setdefault(thread, []).append if thread is not None else (lambda _: None)
            note(f"{time.monotonic():.4f} watching: arming")
            with watching(ident, exc) as watch:
                note(f"{time.monotonic():.4f} watching: {'armed' if watch else 'no watch'}, "
                     f"events {_monitor._events}")
                try:
                    yield watch
                finally:
                    if watch is not None:
                        note(f"{time.monotonic():.4f} watching: done, claimed {watch._claimed}, "
                             f"raised {watch.raised}, landed {watch.exc.__traceback__ is not None}")
            note(f"{time.monotonic():.4f} watching: disarmed")
        _monitor.watching = traced_watching  # type: ignore[assignment]
    threadinject.kill = _kill.make_kill(
        recorded("inject", _impl.inject), _impl.pending, recorded("cancel", _impl.cancel),
        recorded("wake", threadinject.wake), recorded("unsafe_to_land", _unsafe_to_land),
        recorded("inject_if_at", _impl._inject_if_at),
        recorded("inject_in_call", functools.partial(_wake.inject_in_call, _impl))
        if threadinject.backend == "c" else None)


def diagnose(stuck: threading.Thread, gdb_file: str | None) -> None:
    """Say where every thread is, for a kill that did not end its thread."""
    import faulthandler

    from threadinject import _monitor, _syscalls

    try:
        state = f"pending {threadinject.pending(stuck)!r}, wake(): {threadinject.wake(stuck)}"
    except threadinject.ThreadNotFoundError:
        state = "ended since: the kill was slow, not stuck"
    print(f"DIAGNOSIS of {stuck.name} ({stuck.native_id}): {state}", flush=True)
    if _monitor._tool is not None:  # free-threaded kill's watch (_monitor.py)
        watch = _monitor._kills.get(stuck.ident, (None, 0))[0]  # type: ignore[arg-type]
        print(f"  watch: kills under way {_monitor._armed}, events {_monitor._events} (now "
              f"{sys.monitoring.get_events(_monitor._tool)}), on this thread: "  # type: ignore[attr-defined]
              + ("none" if watch is None else f"claimed {watch._claimed}, raised {watch.raised}"), flush=True)
    if stuck in TRACE:
        every = TRACE[stuck]
        decisions = every if len(every) <= 30 else [*every[:15], "...", *every[-15:]]
        print("  kill()'s decisions about it:\n    " + "\n    ".join(decisions), flush=True)
    for thread in threading.enumerate():
        try:
            blocked = _syscalls.blocked_call(thread.native_id)  # type: ignore[arg-type]
        except OSError:
            blocked = None
        print(f"  {thread.name} {thread.native_id}: {blocked}", flush=True)
    alive = {t.ident for t in threading.enumerate()}
    for name, shared in (("Lock", SHARED_LOCK), ("RLock", SHARED_RLOCK)):
        owner = INSIDE[shared]
        state = "alive" if owner in alive else "ended"
        print(f"  shared {name}: last entered by {owner} ({state})", flush=True)
    print("  lock workers' last landings:\n    " + "\n    ".join(LANDINGS), flush=True)
    print("  ... at an acquire() call:\n    " + "\n    ".join(AT_ACQUIRE), flush=True)
    print("  last landings in threading's and queue's code:\n    " + "\n    ".join(IN_THREADING), flush=True)
    faulthandler.dump_traceback(all_threads=True)
    if gdb_file:  # the C side of every thread too (a debugger may be attached: Linux)
        with open(gdb_file, "w") as out:
            subprocess.run(["gdb", "-p", str(os.getpid()), "-batch", "-ex", "thread apply all bt 25"],
                           stdout=out, stderr=subprocess.STDOUT, check=False)


def rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=2000, help="stop after this many kills")
    parser.add_argument("--seconds", type=float, default=None, help="or after this long")
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--portable", action="store_true")
    parser.add_argument("--workloads", help="comma-separated subset of: " + ", ".join(WORKLOADS))
    parser.add_argument("--tracemalloc", action="store_true", help="also check traced memory")
    parser.add_argument("--slowdown", type=float, default=1.0,
                        help="scale the bounds for a run under emulation (THREADINJECT_TEST_SLOWDOWN)")
    parser.add_argument("--gdb", metavar="FILE",
                        help="when a kill hangs, also write gdb's backtrace of every thread to FILE")
    parser.add_argument("--trace", action="store_true",
                        help="record kill()'s decisions; print the lock workers' when a lock is left held")
    args = parser.parse_args()
    global SLOWDOWN
    SLOWDOWN = args.slowdown
    if args.trace:
        install_trace()
    random.seed(args.seed)
    if args.tracemalloc:
        tracemalloc.start()
    # busy workers hold the GIL for a whole switch interval at a time: with
    # the default 5 ms a kill waits its turn behind each of them
    sys.setswitchinterval(0.0002)
    kinds = args.workloads.split(",") if args.workloads else list(PORTABLE if args.portable else WORKLOADS)
    weights = [WORKLOADS[k][1] for k in kinds]
    baseline = threading.active_count()
    outcome: dict[str, list[str]] = {}
    # how each worker ended; weak: 10,000 ended workers kept alive made every
    # gc.get_objects() search of kill() and wake() slower as a run went on
    ended_by: weakref.WeakKeyDictionary[threading.Thread, str] = weakref.WeakKeyDictionary()
    lock = threading.Lock()
    # workers that have begun their body: a kill that comes as a worker has
    # just called run() can land as body() starts, before its `try` (inside
    # run(), where kill() documents it may land; the watch raises at a
    # function's start on free-threaded builds): it ends with no outcome
    entered: weakref.WeakSet[threading.Thread] = weakref.WeakSet()

    def start(kind: str) -> threading.Thread:
        def body() -> None:
            try:
                run_and_record()
            except threadinject.ThreadKilled as late:
                # It landed while the worker was handling an exception that
                # came before it, so that handler recorded nothing.  The one
                # expected way: kill() picked a worker already dying of an
                # injection whose cancel() came too late (count_killed()).
                earlier = late.__context__
                how = ("injected, then killed" if isinstance(earlier, Injected)
                       else "killed twice" if isinstance(earlier, threadinject.ThreadKilled)
                       else f"killed while handling {earlier!r}")
                with lock:
                    ended_by[threading.current_thread()] = how

        def run_and_record() -> None:
            try:
                entered.add(threading.current_thread())
                WORKLOADS[kind][0]()
                result = "returned"
            except (threadinject.ThreadKilled, Injected) as exc:
                result = "killed" if isinstance(exc, threadinject.ThreadKilled) else "injected"
                last = exc.__traceback__
                while last is not None and last.tb_next is not None:
                    last = last.tb_next
                # where it landed, its source line looked up only where it is
                # kept: formatting it for every worker took the killed thread
                # over the kill's 5 s bound on 3.13t (ctypes backend, with
                # allocating workers forcing stop-the-world collections)
                filename = os.path.basename(last.tb_frame.f_code.co_filename) if last else ""
                if filename in ("threading.py", "queue.py") or kind in LOCK_WAITERS:
                    where = traceback.extract_tb(last)[-1]
                if filename in ("threading.py", "queue.py"):
                    IN_THREADING.append(f"{kind}: {result} at {filename}:{where.lineno} "
                                        f"{where.name}: {where.line}")
                if kind in LOCK_WAITERS:
                    decisions = [d for d in TRACE.get(threading.current_thread(), [])
                                 if "wake at" not in d][-8:]
                    trace = "".join(f"\n      {line}" for line in decisions)
                    landing = f"{kind}: {result} at {where.name}:{where.lineno} {where.line}{trace}"
                    LANDINGS.append(landing)
                    if "acquire()" in (where.line or ""):  # with wake()'s decisions, and when it landed
                        every = "".join(f"\n      {line}"
                                        for line in TRACE.get(threading.current_thread(), [])[-16:])
                        AT_ACQUIRE.append(f"{kind}: {result} at {where.name}:{where.lineno} {where.line} "
                                          f"at {time.monotonic():.4f}{every}")
            with lock:
                outcome.setdefault(kind, []).append(result)
                ended_by[threading.current_thread()] = result

        thread = threading.Thread(target=body, name=kind, daemon=True)
        thread.start()
        return thread

    workers = [start(random.choices(kinds, weights)[0]) for _ in range(args.workers)]
    failures: list[str] = []
    expected = {"killed": 0, "injected": 0}
    actions = {"kill": 0, "inject+cancel": 0, "inject+wake": 0}
    inject_safe = _inject_safe()
    cancelled: set[threading.Thread] = set()  # cancel() returned True for these
    too_late = 0  # ... and they still received the exception
    before_body = 0  # killed as their body started

    def count_killed(worker: threading.Thread) -> None:
        """Account for a worker kill() has ended.  One whose withdrawn
        injection was being delivered may have been dying of it already,
        still alive when picked (seen twice in 10,000 kills on 3.13t), and
        the kill may even land while it handles that injection (seen in the
        aarch64 VM, 3.9.2, ctypes backend, where handlers run slowly): both
        count then."""
        nonlocal too_late, before_body
        if worker not in entered and worker not in ended_by:  # killed as body() started
            before_body += 1
            with lock:
                outcome.setdefault(worker.name, []).append("killed")
                ended_by[worker] = "killed"
        how = ended_by.get(worker)
        if worker in cancelled and CANCEL_CAN_BE_TOO_LATE and how in ("injected", "injected, then killed"):
            too_late += 1
            expected["injected"] += 1
            if how == "injected, then killed":  # the kill landed as it handled that injection
                with lock:
                    outcome.setdefault(worker.name, []).extend(["injected", "killed"])
                expected["killed"] += 1
        else:
            expected["killed"] += 1
            if how is not None and how not in ("killed", "injected"):
                failures.append(f"kill of {worker.name}: it ended {how}")

    memory_at: dict[str, tuple[int, int]] = {}
    began = time.monotonic()
    deadline = None if args.seconds is None else began + args.seconds
    n = 0
    slowest = (0.0, "no kill")

    def memory() -> tuple[int, int]:
        traced = tracemalloc.get_traced_memory()[0] if args.tracemalloc else 0
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, traced

    while (n < args.kills) if deadline is None else (time.monotonic() < deadline):
        i = random.randrange(len(workers))
        worker = workers[i]
        time.sleep(random.random() * 0.001)
        action = random.choices(list(actions), (8, 1, 1))[0]
        if action != "kill" and (worker.name not in inject_safe or worker not in entered):
            # plain inject() into a worker that has not yet entered its body's
            # `try` would land before it (README, Limits, "Raw inject into a
            # thread that has just been started"); seen in the aarch64 VM,
            # whose emulation makes a start take long enough
            action = "kill"
        # a worker whose injection was withdrawn too late dies of it (racing
        # the injection below: it can end after is_alive() said it runs)
        try:
            if not worker.is_alive() and worker in cancelled:
                raise threadinject.ThreadNotFoundError(worker)
            if action != "kill":
                threadinject.inject(worker, Injected("withdrawn" if action == "inject+cancel" else "woken"))
        except threadinject.ThreadNotFoundError:
            if worker not in cancelled:
                raise
            worker.join(5)
            if not CANCEL_CAN_BE_TOO_LATE:
                failures.append(f"{worker.name}: a withdrawn injection was delivered")
                break
            too_late += 1
            expected["injected"] += 1
            cancelled.discard(worker)
            workers[i] = start(random.choices(kinds, weights)[0])
            continue
        actions[action] += 1
        if action == "kill":
            n += 1
            bound = kill_bound(worker.name)
            kill_began = time.monotonic()
            if not threadinject.kill(worker, bound):
                failures.append(f"kill {n}: {worker.name} did not end within {bound} s")
                diagnose(worker, args.gdb)
                break
            took = time.monotonic() - kill_began
            slowest = max(slowest, (took, f"kill {n}, {worker.name}"))
            if took > 1:
                # printed as it happens: a run ended by the suite's timeout
                # (faulthandler's exit) shows whether kills were slow or one hung
                print(f"  slow: kill {n} of {worker.name} took {took:.2f} s, "
                      f"{time.monotonic() - began:.1f} s into the run", flush=True)
            count_killed(worker)
        elif action == "inject+cancel":
            # a thread blocked in a wait never runs bytecode in between, and a
            # running one may take it first: then it ends by it
            try:
                if threadinject.cancel(worker):
                    cancelled.add(worker)
                    continue
            except threadinject.ThreadNotFoundError:
                pass  # it has already received it and ended

            expected["injected"] += 1
        else:
            # one wake() can find the thread running, just before it blocks:
            # repeated, as kill() does
            until = time.monotonic() + KILL_BOUND * SLOWDOWN
            while worker.is_alive() and time.monotonic() < until:
                try:
                    threadinject.wake(worker)
                except threadinject.ThreadNotFoundError:
                    break
                worker.join(0.005)
            expected["injected"] += 1
        worker.join(KILL_BOUND * SLOWDOWN)
        if worker.is_alive():
            failures.append(f"{action} of {worker.name}: it did not end within {KILL_BOUND * SLOWDOWN} s")
            break
        cancelled.discard(worker)
        workers[i] = start(random.choices(kinds, weights)[0])
        if n == args.kills // 10 and "early" not in memory_at and deadline is None:
            memory_at["early"] = memory()
        if deadline is not None and "early" not in memory_at and time.monotonic() > began + args.seconds / 10:
            memory_at["early"] = memory()
        if n and n % 500 == 0 and action == "kill":
            print(f"  {n} kills, {time.monotonic() - began:.0f} s", flush=True)
    memory_at["end"] = memory()
    elapsed = time.monotonic() - began
    for worker in workers:
        worker.join(0.01)
        if not worker.is_alive() and worker in cancelled and CANCEL_CAN_BE_TOO_LATE:
            too_late += 1
            expected["injected"] += 1
            continue
        if not threadinject.kill(worker, kill_bound(worker.name)):
            failures.append(f"final kill of {worker.name} failed")
            if len(failures) == 1:
                diagnose(worker, args.gdb)
        count_killed(worker)
    time.sleep(0.05)
    if threading.active_count() != baseline:
        failures.append(f"{threading.active_count()} threads left, {baseline} expected")
    ended = {r: sum(v.count(r) for v in outcome.values()) for r in ("killed", "injected", "returned")}
    if ended["killed"] != expected["killed"] or ended["injected"] != expected["injected"]:
        failures.append(f"threads ended {ended}, the killer accounts for {expected}")
    if ended["returned"]:
        failures.append(f"{ended['returned']} workers returned by themselves")
    if VIOLATIONS[0]:
        failures.append(f"lock exclusion broken {VIOLATIONS[0]} times")
    for name, shared in (("Lock", SHARED_LOCK), ("RLock", SHARED_RLOCK)):
        if not shared.acquire(timeout=5):
            failures.append(f"the shared {name} was left held; the last lock workers ended at:\n  "
                            + "\n  ".join(LANDINGS) + "\n  and those at an acquire() call:\n  "
                            + "\n  ".join(AT_ACQUIRE))
        else:
            shared.release()
    in_threading = "; last landings in threading's and queue's code:\n  " + "\n  ".join(IN_THREADING)
    SHARED_QUEUE.put(1)
    if SHARED_QUEUE.get(timeout=5) != 1:
        failures.append("the shared queue no longer works" + in_threading)
    if SHARED_QUEUE.not_empty._waiters:  # type: ignore[attr-defined]
        failures.append("stale waiters in the shared queue")
    SHARED_EVENT.set()
    if not SHARED_EVENT.wait(5):
        failures.append("the shared event no longer works" + in_threading)
    early = memory_at.get("early", memory_at["end"])
    rss_growth = memory_at["end"][0] - early[0]
    traced_growth = (memory_at["end"][1] - early[1]) // 1024
    if rss_growth > 50_000:
        failures.append(f"RSS grew by {rss_growth} KiB over the last 90% of the run")
    if traced_growth > 10_000:
        failures.append(f"traced memory grew by {traced_growth} KiB over the last 90% of the run")
    print(f"{n} kills in {elapsed:.1f} s (slowest {slowest[0]:.3f} s: {slowest[1]}), actions {actions}, "
          f"threads ended: {ended}, "
          f"per workload: { {k: len(v) for k, v in sorted(outcome.items())} }, "
          f"cancels too late for a begun delivery: {too_late}, kills as a body started: {before_body}, "
          f"growth over the last 90%: RSS {rss_growth} KiB"
          + (f", traced {traced_growth} KiB" if args.tracemalloc else "")
          + f", lock exclusion violations {VIOLATIONS[0]}, backend {threadinject.backend!r}, "
          f"CPython {sys.version.split()[0]}")
    for failure in failures:
        print("FAILURE:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
