"""python -m threadinject.demo: kill the classic stuck threads, with timings.

Non-daemon workers that would keep this program from ever exiting: a busy
loop, the `while True: time.sleep(1)` worker, one in time.sleep(1000000),
one blocked reading a socket, one waiting on a queue.  All are killed from
the main thread, then an exception *instance* is delivered to another.
"""

from __future__ import annotations

import os
import platform
import queue
import socket
import sys
import threading
import time
from typing import Callable

import threadinject


def busy_loop() -> None:
    n = 0
    while True:
        n += 1


def sleep_loop() -> None:
    while True:
        time.sleep(1)


class Deadline(Exception):
    pass


def kill_and_time(name: str, target: Callable[[], object]) -> bool:
    worker = threading.Thread(target=target, name=name)  # non-daemon on purpose
    worker.start()
    time.sleep(0.2)  # let it settle into its loop or call
    start = time.perf_counter()
    ended = threadinject.kill(worker, timeout=5)
    elapsed_ms = (time.perf_counter() - start) * 1000
    print(f"  {name:<38} killed: {ended}  in {elapsed_ms:7.2f} ms")
    return ended


def main() -> None:
    print(f"threadinject {threadinject.__version__}, backend {threadinject.backend!r}, "
          f"{platform.python_implementation()} {platform.python_version()}")
    print("Killing non-daemon workers that would otherwise run forever:")
    reader, writer = socket.socketpair()  # the writer never writes
    jobs: queue.Queue[object] = queue.Queue()
    ended = [
        kill_and_time("busy loop (while True: n += 1)", busy_loop),
        kill_and_time("while True: time.sleep(1)", sleep_loop),
        kill_and_time("time.sleep(1000000)", lambda: time.sleep(1_000_000)),
        kill_and_time("socket.recv() with no data coming", lambda: reader.recv(1024)),
        kill_and_time("queue.Queue().get()", jobs.get),
    ]
    reader.close()
    writer.close()
    if not all(ended):
        print("  Some could not be woken here (see README, 'Backends and platforms');")
        print("  they would keep the program alive, so the demo exits with os._exit(1).")
        sys.stdout.flush()  # os._exit() drops what a pipe's buffer still holds
        os._exit(1)

    received: list[BaseException] = []
    deadline = Deadline("took too long", 42)

    ready = threading.Event()

    def job() -> None:
        try:
            ready.set()
            busy_loop()
        except Deadline as exc:
            received.append(exc)

    worker = threading.Thread(target=job)
    worker.start()
    ready.wait(5)
    threadinject.inject(worker, deadline)
    worker.join(5)
    same = len(received) == 1 and received[0] is deadline
    print(f"Injected Deadline('took too long', 42) into another worker: it arrived as the "
          f"same object: {same}, args {received[0].args if received else None}")
    print(f"Threads still running: {threading.active_count() - 1}. The program exits now.")


if __name__ == "__main__":
    main()
