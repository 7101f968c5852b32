"""A small program checked with mypy --strict (nox -s lint): the public API's types."""

from __future__ import annotations

import threading
import time

import threadinject


class Deadline(Exception):
    pass


def worker(stop: threading.Event) -> None:
    while not stop.is_set():
        time.sleep(0.01)


def main() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=worker, args=(stop,))
    thread.start()
    threadinject.inject(thread, Deadline("too slow"))
    found: BaseException | type[BaseException] | None = threadinject.pending(thread)
    was_pending: bool = threadinject.cancel(thread)
    ended: bool = threadinject.kill(thread, timeout=5.0)
    assert ended, (found, was_pending)
    backend: str = threadinject.backend
    print(backend, threadinject.ThreadKilled.__name__)


if __name__ == "__main__":
    main()
