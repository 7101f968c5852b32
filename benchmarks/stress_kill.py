"""Stress: kill threads in mixed workloads, thousands of times, and check nothing breaks.

    python benchmarks/stress_kill.py --kills 10000 --seed 1

Workers busy-loop, sleep, read sockets and pipes, wait on events and queues
and allocate; a killer kills random ones (each kill must return True within
5 s) and starts replacements.  Afterwards: every kill accounted for, the
queues and locks still work, threading.active_count() is back to where it
was, and memory (RSS) has not grown with the number of kills.  Exits non-zero
on any failure.  Linux x86-64 with the C backend wakes every workload here;
elsewhere use --portable (busy, Event, Queue and allocation workloads only).
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import resource
import socket
import sys
import threading
import time
from typing import Callable

import threadinject
from threadinject import ThreadKilled

SHARED_QUEUE: queue.Queue[int] = queue.Queue()
SHARED_EVENT = threading.Event()


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


WORKLOADS: dict[str, Callable[[], object]] = {
    "busy": busy, "sleep": sleeper, "recv": reader, "os.read": pipe_reader,
    "Event.wait": SHARED_EVENT.wait, "Queue.get": SHARED_QUEUE.get, "allocate": allocator,
}
PORTABLE = ("busy", "Event.wait", "Queue.get", "allocate")


def rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--portable", action="store_true")
    args = parser.parse_args()
    random.seed(args.seed)
    # busy workers hold the GIL for a whole switch interval at a time: with
    # the default 5 ms a kill waits its turn behind each of them
    sys.setswitchinterval(0.0002)
    kinds = list(PORTABLE if args.portable else WORKLOADS)
    baseline = threading.active_count()
    outcome: dict[str, list[str]] = {}

    def start(kind: str) -> threading.Thread:
        def body() -> None:
            try:
                WORKLOADS[kind]()
                result = "returned"
            except ThreadKilled:
                result = "killed"
            outcome.setdefault(kind, []).append(result)

        thread = threading.Thread(target=body, name=kind, daemon=True)
        thread.start()
        return thread

    workers = [start(random.choice(kinds)) for _ in range(args.workers)]
    failures: list[str] = []
    rss_at = {}
    began = time.monotonic()
    for n in range(1, args.kills + 1):
        i = random.randrange(len(workers))
        time.sleep(random.random() * 0.001)
        if not threadinject.kill(workers[i], 5):
            failures.append(f"kill {n}: {workers[i].name} did not end within 5 s")
            break
        workers[i] = start(random.choice(kinds))
        if n in (args.kills // 10, args.kills):
            rss_at[n] = rss_kib()
        if n % 500 == 0:
            print(f"  {n} kills, {time.monotonic() - began:.0f} s", flush=True)
    elapsed = time.monotonic() - began
    for worker in workers:
        if not threadinject.kill(worker, 5):
            failures.append(f"final kill of {worker.name} failed")
    time.sleep(0.05)
    if threading.active_count() != baseline:
        failures.append(f"{threading.active_count()} threads left, {baseline} expected")
    SHARED_QUEUE.put(1)
    if SHARED_QUEUE.get(timeout=5) != 1:
        failures.append("the shared queue no longer works")
    if SHARED_QUEUE.not_empty._waiters:  # type: ignore[attr-defined]
        failures.append("stale waiters in the shared queue")
    SHARED_EVENT.set()
    if not SHARED_EVENT.wait(5):
        failures.append("the shared event no longer works")
    killed = sum(v.count("killed") for v in outcome.values())
    total = sum(len(v) for v in outcome.values())
    growth = rss_at.get(args.kills, 0) - rss_at.get(args.kills // 10, 0)
    if growth > 50_000:
        failures.append(f"RSS grew by {growth} KiB between 10% and 100% of the kills")
    print(f"{args.kills} kills in {elapsed:.1f} s, {killed}/{total} threads ended by ThreadKilled, "
          f"per workload: { {k: len(v) for k, v in sorted(outcome.items())} }, "
          f"RSS growth over the last 90%: {growth} KiB, backend {threadinject.backend!r}")
    for failure in failures:
        print("FAILURE:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
