"""Plain inject() or kill() into threads looping on Event.wait(): does it break the Event?

README, Limits, "Landing in threading's own critical lines": an asynchronous
exception that lands in Condition.__enter__ right after its acquire() leaves
the condition's lock held, one that lands in Condition.wait between queueing
its waiter and its `try` leaves it with a stale waiter or its lock released
twice, whoever injects it.  With a GIL the target only stops at a check or
inside a C call, so it is rare; without one it runs while the exception is
scheduled.  Injects one exception at a time (the next once the last has been
handled), checks the lock after each, and says where the exceptions landed
and how many of them in threading's code anywhere but at a waiter.acquire()
call (its critical lines: the lock or the waiters may be broken even when
the lock is free).  --kill: kill() instead (each kill ends a worker, which
is replaced), which must never land there.  --wait S: Event.wait(S)
(default 0.0002; 0 keeps the workers running through threading's code).

    python tools/inject_critical_lines.py [injections] [--kill] [--wait S]
"""

import collections
import os
import random
import sys
import threading
import time
import traceback

import threadinject


class Injected(Exception):
    pass


EVENT = threading.Event()
stop = False
landed: collections.Counter[str] = collections.Counter()
handled: collections.Counter[int] = collections.Counter()


inside: dict[int, bool] = {}  # whether the worker is inside its try
WAIT = float(sys.argv[sys.argv.index("--wait") + 1]) if "--wait" in sys.argv else 0.0002


def worker() -> None:
    me = threading.get_ident()
    while not stop:
        try:
            inside[me] = True
            while not stop:
                EVENT.wait(WAIT)
        except (Injected, threadinject.ThreadKilled) as exc:
            inside[me] = False
            where = traceback.extract_tb(exc.__traceback__)[-1]
            landed[f"{os.path.basename(where.filename)}:{where.name}:{where.lineno} {where.line}"] += 1
            handled[me] += 1
            if isinstance(exc, threadinject.ThreadKilled):
                return


def in_critical_lines(where: str) -> bool:
    """Whether a landing place (as `landed` names it) is in threading's code
    other than a waiter.acquire() line."""
    return where.startswith("threading.py:") and "waiter.acquire(" not in where


def main() -> int:
    global stop
    kill = "--kill" in sys.argv[1:]
    numbers = [arg for i, arg in enumerate(sys.argv[1:]) if arg not in ("--kill", "--wait")
               and sys.argv[i] != "--wait"]
    injections = int(numbers[0]) if numbers else 5000
    workers = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
    for thread in workers:
        thread.start()
    verdict = f"the Event's lock still free after {injections} {'kills' if kill else 'injections'}"
    for i in range(injections):
        slot = random.randrange(len(workers))
        target = workers[slot]
        while not inside.get(target.ident):  # type: ignore[arg-type]
            time.sleep(0.0001)
        before = handled[target.ident]  # type: ignore[index]
        if kill:
            if not threadinject.kill(target, 5):
                verdict = f"kill {i + 1} did not end its thread within 5 s"
                break
            workers[slot] = threading.Thread(target=worker, daemon=True)
            workers[slot].start()
        else:
            threadinject.inject(target, Injected)
        until = time.monotonic() + 2
        while handled[target.ident] == before and time.monotonic() < until:  # type: ignore[index]
            time.sleep(0.0001)
        lock = EVENT._cond._lock  # type: ignore[attr-defined]
        if not lock.acquire(timeout=1):
            verdict = f"the Event's lock left held after {i + 1} {'kills' if kill else 'injections'}"
            break
        lock.release()
    stop = True
    gil = "on" if getattr(sys, "_is_gil_enabled", lambda: True)() else "off"
    critical = sum(count for where, count in landed.items() if in_critical_lines(where))
    print(f"{sys.version.split()[0]} (GIL {gil}), {threadinject.backend} backend: {verdict}; "
          f"{critical} landed in threading's critical lines; landed at:", flush=True)
    for where, count in landed.most_common():
        print(f"  {count:6} {where}", flush=True)
    if verdict.startswith(("the Event's lock left held", "kill")):
        os._exit(1)  # its waiters can never end
    EVENT.set()
    for thread in workers:
        thread.join(5)
    stale = len(EVENT._cond._waiters)  # type: ignore[attr-defined]
    if stale:
        print(f"{stale} stale waiters left in the Event's Condition", flush=True)
    return 1 if stale or (kill and critical) else 0


if __name__ == "__main__":
    raise SystemExit(main())
