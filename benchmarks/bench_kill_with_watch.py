"""kill() of threads the watch helps, with the watch and without it.

    python benchmarks/bench_kill_with_watch.py [ROUNDS]    (or: tools/test -s bench; GIL builds)

kill() must not let its exception land where it would leave a lock held or a
waiter queued, and withholds it while the thread is there.  Two kinds of
threads are nearly always there:

* A thread looping on ``event.wait(0)`` runs almost only through threading's
  Event and Condition code: from 3.13 kill() finds it where all its next
  checks are safe about once in 220 looks, and two such threads polling one
  Event keep each other in the condition's lock wait.
* A loop whose only call is in a ``finally`` before its release
  (``while True: lock.acquire(); try: ...; finally: log(); lock.release()``)
  spends nearly all its time in that call; one whose only call there is a
  sleep ("sleep loop") lets the GIL go only in it, so kill() finds it
  nowhere else.

kill() lets the thread raise the kill itself at its next safe Python call,
loop round or return of a C release call once it has withheld it for
_kill._WATCH_AFTER (_monitor.py: sys.monitoring from 3.12, whose loop rounds
count where a probe finds that a raise there runs the loop's handlers; on
3.9-3.11 a trace and a profile function in that thread, which need the C
extension).
Timed here in one process, interleaved: kills with the watch as shipped and
with it turned off (_WATCH_AFTER infinite), of one poller, of each of two
pollers of one Event, and of each loop; a kill not done within LIMIT
seconds counts as LIMIT (the thread is then killed with the watch, not
timed).  Afterwards the Event's and the loops' locks must be free.
Reported: median and maximum per case, and the ratio of the medians.
Ratios only: machines are noisy.
"""

from __future__ import annotations

import statistics
import sys
import sysconfig
import threading
import time

import threadinject
from threadinject import ThreadKilled, _kill, _monitor

LIMIT = 3.0


def _poll(event: threading.Event, running: threading.Barrier) -> None:
    try:
        running.wait()
        while True:
            event.wait(0)
    except ThreadKilled:
        pass


def _cleanup() -> None:
    for _ in range(30):  # where the release loop spends its time
        pass


def _release_loop(lock: threading.Lock, running: threading.Barrier) -> None:
    try:
        running.wait()
        while True:
            lock.acquire()
            try:
                pass
            finally:
                _cleanup()
                lock.release()
    except ThreadKilled:
        pass


def _sleep_loop(lock: threading.Lock, running: threading.Barrier) -> None:
    try:
        running.wait()
        while True:
            lock.acquire()
            try:
                pass
            finally:
                time.sleep(0.001)
                lock.release()
    except ThreadKilled:
        pass


def _kill_each(threads: list[threading.Thread], watch_after: float) -> list[float]:
    """Kill each of `threads` with _WATCH_AFTER = `watch_after`; its time each."""
    times = []
    for thread in threads:
        _kill._WATCH_AFTER = watch_after
        started = time.perf_counter()
        try:
            ended = threadinject.kill(thread, LIMIT)
        finally:
            _kill._WATCH_AFTER = WATCH_AFTER
        times.append(time.perf_counter() - started if ended else LIMIT)
        if not ended and not threadinject.kill(thread, 30):
            raise SystemExit(f"a thread was not killed with the watch either ({sys.version.split()[0]})")
    for thread in threads:
        thread.join(30)
    return times


def _kill_workload(workload: str, watch_after: float) -> list[float]:
    """Start the threads of `workload` ("1 poller", "2 pollers" of one
    Event, "release loop", "sleep loop"), kill each; its time each."""
    count = 2 if workload == "2 pollers" else 1
    running = threading.Barrier(count + 1)
    lock = threading.Lock()
    event = threading.Event()
    loops = {"release loop": _release_loop, "sleep loop": _sleep_loop}
    body, shared = (loops[workload], lock) if workload in loops else (_poll, event)
    threads = [threading.Thread(target=body, args=(shared, running), daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    running.wait()
    time.sleep(0.001)
    times = _kill_each(threads, watch_after)
    held = lock if workload in loops else event._cond._lock  # type: ignore[attr-defined]
    if not held.acquire(False):
        raise SystemExit(f"a kill left the lock held ({workload})")
    held.release()
    return times


WATCH_AFTER = _kill._WATCH_AFTER


def main() -> int:
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        print("nothing to compare here: free-threaded builds use the watch for every kill")
        return 0
    if sys.version_info < (3, 12) and _monitor._thread_tracer() is None:
        print("nothing to compare here: 3.9-3.11 watch a thread through the C extension, "
              "which is not used (THREADINJECT_PURE_PYTHON=1, or not built)")
        return 0
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    workloads = ("1 poller", "2 pollers", "release loop", "sleep loop")
    cases: dict[tuple[str, str], list[float]] = {
        (workload, name): [] for workload in workloads for name in ("watch", "no watch")}
    for _ in range(rounds):
        for (workload, name), times in cases.items():
            times.extend(_kill_workload(workload, WATCH_AFTER if name == "watch" else float("inf")))
    print(f"CPython {sys.version.split()[0]}, backend {threadinject.backend}, {rounds} rounds; "
          f"a kill not done in {LIMIT:g} s counts {LIMIT:g} s")
    print(f"{'workload':>12} {'case':>9} {'kills':>6} {'median s':>9} {'max s':>7} {'not done':>9}")
    medians = {}
    for (workload, name), times in cases.items():
        medians[workload, name] = statistics.median(times)
        print(f"{workload:>12} {name:>9} {len(times):>6} {medians[workload, name]:>9.3f} {max(times):>7.3f} "
              f"{sum(t >= LIMIT for t in times):>9}")
    for workload in workloads:
        print(f"{workload}: median without the watch / with it = "
              f"{medians[workload, 'no watch'] / medians[workload, 'watch']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
