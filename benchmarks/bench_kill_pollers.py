"""kill() of threads polling an Event with wait(0), with and without the watch.

    python benchmarks/bench_kill_pollers.py [ROUNDS]      (or: tools/test -s bench; GIL builds)

A thread looping on ``event.wait(0)`` runs almost only through threading's
Event and Condition code, where kill() must not let its exception land (it
would leave the condition's lock held or a waiter queued): from 3.13 kill()
finds it where all its next checks are safe about once in 220 looks, and two
such threads polling one Event keep each other in the condition's lock wait.
kill() lets the thread raise the kill itself at its next safe Python call
once it has withheld it for _kill._WATCH_AFTER (_monitor.py: sys.monitoring
from 3.12; on 3.9-3.11 a trace function in that thread, which needs the C
extension).
Timed here in one process, interleaved: kills with the watch as shipped and
with it turned off (_WATCH_AFTER infinite), of one poller and of each of two
pollers of one Event; a kill not done within LIMIT seconds counts as LIMIT
(the thread is then killed with the watch, not timed).  Reported: median and
maximum per case, and the ratio of the medians.  Ratios only: machines are
noisy.
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


def _kill_pollers(pollers: int, watch_after: float) -> list[float]:
    """Start `pollers` threads polling one Event, kill each; its time each."""
    event = threading.Event()
    running = threading.Barrier(pollers + 1)
    threads = [threading.Thread(target=_poll, args=(event, running), daemon=True) for _ in range(pollers)]
    for thread in threads:
        thread.start()
    running.wait()
    time.sleep(0.001)
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
            raise SystemExit(f"a poller was not killed with the watch either ({sys.version.split()[0]})")
    for thread in threads:
        thread.join(30)
    if not event._cond._lock.acquire(False):  # type: ignore[attr-defined]
        raise SystemExit("a kill left the Event's lock held")
    event._cond._lock.release()  # type: ignore[attr-defined]
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
    cases = {(pollers, name): [] for pollers in (1, 2) for name in ("watch", "no watch")}
    for _ in range(rounds):
        for (pollers, name), times in cases.items():
            times.extend(_kill_pollers(pollers, WATCH_AFTER if name == "watch" else float("inf")))
    print(f"CPython {sys.version.split()[0]}, backend {threadinject.backend}, {rounds} rounds; "
          f"a kill not done in {LIMIT:g} s counts {LIMIT:g} s")
    print(f"{'pollers':>8} {'case':>9} {'kills':>6} {'median s':>9} {'max s':>7} {'not done':>9}")
    medians = {}
    for (pollers, name), times in cases.items():
        medians[pollers, name] = statistics.median(times)
        print(f"{pollers:>8} {name:>9} {len(times):>6} {medians[pollers, name]:>9.3f} {max(times):>7.3f} "
              f"{sum(t >= LIMIT for t in times):>9}")
    for pollers in (1, 2):
        print(f"{pollers} poller(s): median without the watch / with it = "
              f"{medians[pollers, 'no watch'] / medians[pollers, 'watch']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
