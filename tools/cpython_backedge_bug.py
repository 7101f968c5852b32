"""CPython bugs: an async exception landing on a loop back-edge skips that frame's except/finally.

Two loop shapes, each inside try/except/finally, 100 rounds each:
  - `while not stop.is_set(): pass`: escapes on 3.13 (gh-130279);
  - `while True: pass` on one line as the first statement of the try, a loop
    that is nothing but its back-edge: escapes on 3.11 and 3.12 (gh-108214:
    JUMP_BACKWARD checks the eval breaker after jumping, and the exception
    table is looked up for the instruction before it, here the try's own
    NOP, outside the protected range).
Uses only the plain ctypes recipe, no threadinject: run it with any interpreter
to see whether it is affected.
"""
import _thread
import ctypes
import sys
import threading
import time


def escapes(minimal):
    """Whether one injection into a thread looping inside try/finally skipped the finally."""
    stop = threading.Event()
    idents = []
    ended = threading.Event()

    def body():
        idents.append(threading.get_ident())
        try:
            while not stop.is_set(): pass  # noqa: E701
        except BaseException:
            pass
        finally:
            ended.set()

    def minimal_body():
        idents.append(threading.get_ident())
        try:  # the loop first: the instruction before its back-edge is outside the try
            while True: pass  # noqa: E701
        except BaseException:
            pass
        finally:
            ended.set()

    _thread.start_new_thread(minimal_body if minimal else body, ())
    while not idents:
        time.sleep(0.001)
    time.sleep(0.005)  # well into the loop
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(idents[0]), ctypes.py_object(KeyError))
    escaped = not ended.wait(1)
    stop.set()
    time.sleep(0.01)
    return escaped


sys.unraisablehook = lambda unraisable: None  # an escaped KeyError ends the thread: not reported
for minimal, name in ((False, "while not stop.is_set(): pass"), (True, "while True: pass")):
    count = sum(escapes(minimal) for _ in range(100))
    print(sys.version.split()[0], f"{name!r}: escaped try/finally {count} / 100")
