"""What a kill under way costs the other threads on free-threaded builds (_monitor.py).

    python benchmarks/bench_monitor.py            (CPython 3.12+; the watch is used on free-threaded builds)

While kill() waits for a thread on a free-threaded build, sys.monitoring
calls threadinject's PY_START and JUMP callbacks in every thread, at every
Python call and loop round; they return at once in threads no kill is aimed
at.  Timed here in this one process, interleaved: a bystander's Python work
(a loop that calls a function) with the events off and on, a kill aimed at
another thread that waits on an Event (so it never raises).  Reported: the
median over repeats and the ratio, and what arming and disarming costs (each
stops the world on free-threaded builds); then the same in a child process
with the Python callbacks alone (THREADINJECT_PURE_PYTHON=1, as with the
ctypes backend).  Ratios only: machines are noisy.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import sysconfig
import threading
import time

from threadinject import ThreadKilled, _monitor

REPEATS = 21
ROUNDS = 200_000


def helper(n: int) -> int:
    return n + 1


def work() -> int:
    total = 0
    for n in range(ROUNDS):
        total = helper(total) ^ n
    return total


def timed(function: object) -> float:
    start = time.perf_counter()
    function()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> int:
    if sys.version_info < (3, 12):
        print("sys.monitoring is new in 3.12: nothing to measure here")
        return 0
    stop = threading.Event()
    waiter = threading.Thread(target=stop.wait, daemon=True)
    waiter.start()
    assert waiter.ident is not None
    off, on, arm = [], [], []
    try:
        for _ in range(REPEATS):
            off.append(timed(work))
            start = time.perf_counter()
            assert _monitor._arm(), "no sys.monitoring tool id free"
            arm.append(time.perf_counter() - start)
            _monitor._watches[waiter.ident] = _monitor.Watch(ThreadKilled())
            try:
                on.append(timed(work))
            finally:
                del _monitor._watches[waiter.ident]
                start = time.perf_counter()
                _monitor._disarm()
                arm[-1] += time.perf_counter() - start
    finally:
        stop.set()
        waiter.join(10)
    build = "free-threaded" if sysconfig.get_config_var("Py_GIL_DISABLED") else "GIL"
    off_ms, on_ms = statistics.median(off) * 1e3, statistics.median(on) * 1e3
    print(f"CPython {sys.version.split()[0]} ({build}), {REPEATS} repeats of {ROUNDS:,} loop rounds"
          " with a call")
    print(f"  bystander, no kill under way:  {off_ms:8.2f} ms")
    print(f"  bystander, a kill under way:   {on_ms:8.2f} ms   ratio {on_ms / off_ms:.2f}"
          f"   (JUMP used: {_monitor.covers_loops()})")
    print(f"  arming + disarming the events: {statistics.median(arm) * 1e3:8.3f} ms (median)"
          f"   (callbacks: {'the C filter' if _monitor.callbacks_in_c else 'Python only'})")
    if _monitor.callbacks_in_c:
        # the same with the Python callbacks alone, as with the ctypes backend
        sys.stdout.flush()
        subprocess.run([sys.executable, __file__], env={**os.environ, "THREADINJECT_PURE_PYTHON": "1"},
                       check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
