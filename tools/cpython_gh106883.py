"""CPython gh-106883: sys._current_frames() can hang the whole process on 3.11.0-3.11.11.

    python tools/cpython_gh106883.py [plain|threadinject] [SECONDS]

sys._current_frames() holds the runtime's thread-list lock while it makes
frame objects.  On 3.11 an allocation can start a collection right there; a
collection runs finalizers (here a weakref callback: Python code), Python code
lets the GIL go when another thread asks for it, and a thread that starts or
ends then takes the GIL and waits for the lock: the caller waits for the GIL,
the other thread for the lock, for good.  3.11.12 pauses the collector inside
the call (Python 3.11.12 changelog); 3.12 starts collections only between
instructions, 3.9 and 3.10 make no object the collector tracks there.

Here: three threads make cyclic garbage with weakref callbacks and call
functions (fresh frames to make objects for), two start and join short
threads, the main thread calls sys._current_frames() in a loop, with a short
switch interval so that the GIL changes hands often.  "plain" calls it as is,
"threadinject" through threadinject._frames.current_frames(), which pauses the
collector where the bug is.  A hang ends the process after SECONDS + 15 s with
every thread's stack (faulthandler) and exit status 1; measured 2026-11-28:
plain hangs on 3.11.7 in 3 runs of 3 (within seconds), and on none of
3.9.18, 3.10.13, 3.12.1, 3.13.0; threadinject's does not hang on 3.11.7.
"""
import faulthandler
import sys
import threading
import time
import weakref

MODE = sys.argv[1] if len(sys.argv) > 1 else "plain"
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0


class Node:
    pass


def finalizer(ref):
    for _ in range(50):  # Python code, run by the collector
        pass


def deep(n):
    return deep(n - 1) if n else 0


def main():
    if MODE == "threadinject":
        from threadinject import _frames
        read = _frames.current_frames
    elif MODE == "plain":
        read = sys._current_frames
    else:
        raise SystemExit(f"mode must be plain or threadinject, not {MODE!r}")
    faulthandler.dump_traceback_later(SECONDS + 15, exit=True)
    sys.setswitchinterval(1e-5)
    stop = []

    def garbage():
        kept = []
        while not stop:
            a, b = Node(), Node()
            a.other, b.other = b, a  # a cycle: only the collector frees it
            kept.append(weakref.ref(a, finalizer))
            if len(kept) > 1000:
                kept.clear()
            deep(5)

    def spawner():
        while not stop:
            thread = threading.Thread(target=deep, args=(3,))
            thread.start()
            thread.join()

    threads = [threading.Thread(target=garbage) for _ in range(3)]
    threads += [threading.Thread(target=spawner) for _ in range(2)]
    for thread in threads:
        thread.start()
    calls = 0
    end = time.monotonic() + SECONDS
    while time.monotonic() < end:
        read()
        calls += 1
    stop.append(True)
    for thread in threads:
        thread.join()
    print(f"{sys.version.split()[0]}, {MODE}: no hang in {SECONDS:g} s, {calls} calls")


if __name__ == "__main__":
    main()
