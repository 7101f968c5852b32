"""Plain inject() into threads looping on Event.wait(): does it leave the Event's lock held?

README, Limits, "Landing in threading's own critical lines": an asynchronous
exception that lands in Condition.__enter__ right after its acquire() leaves
the condition's lock held, whoever injects it.  With a GIL the target only
stops at a check or inside a C call, so it is rare; without one it runs
while the exception is scheduled.  Injects one exception at a time (the
next once the last has been handled), checks the lock after each, and says
where the exceptions landed.

    python tools/inject_critical_lines.py [injections]
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


def worker() -> None:
    me = threading.get_ident()
    while not stop:
        try:
            inside[me] = True
            while not stop:
                EVENT.wait(0.0002)
        except Injected as exc:
            inside[me] = False
            where = traceback.extract_tb(exc.__traceback__)[-1]
            landed[f"{where.name}:{where.lineno} {where.line}"] += 1
            handled[me] += 1


def main() -> int:
    global stop
    injections = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    workers = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
    for thread in workers:
        thread.start()
    verdict = f"the Event's lock still free after {injections} injections"
    for i in range(injections):
        target = random.choice(workers)
        while not inside.get(target.ident):  # type: ignore[arg-type]
            time.sleep(0.0001)
        before = handled[target.ident]  # type: ignore[index]
        threadinject.inject(target, Injected)
        until = time.monotonic() + 2
        while handled[target.ident] == before and time.monotonic() < until:  # type: ignore[index]
            time.sleep(0.0001)
        lock = EVENT._cond._lock  # type: ignore[attr-defined]
        if not lock.acquire(timeout=1):
            verdict = f"the Event's lock left held after {i + 1} injections"
            break
        lock.release()
    stop = True
    gil = "on" if getattr(sys, "_is_gil_enabled", lambda: True)() else "off"
    print(f"{sys.version.split()[0]} (GIL {gil}): {verdict}; landed at:", flush=True)
    for where, count in landed.most_common():
        print(f"  {count:6} {where}", flush=True)
    if verdict.startswith("the Event's lock left held"):
        os._exit(1)  # its waiters can never end
    EVENT.set()
    for thread in workers:
        thread.join(5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
