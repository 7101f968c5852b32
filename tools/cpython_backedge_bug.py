"""CPython 3.13 bug: an async exception landing on a loop back-edge skips that frame's except/finally.

Uses only the plain ctypes recipe, no threadinject: run it with any interpreter to see whether it is affected.
"""
import ctypes, _thread, threading, time, sys
escaped = 0
def round():
    global escaped
    stop=threading.Event(); idents=[]; caught=[]; ended=threading.Event()
    def body():
        try:
            idents.append(threading.get_ident())
            while not stop.is_set(): pass
        except BaseException as e:
            caught.append(e)
        finally:
            ended.set()
    _thread.start_new_thread(body, ())
    while not idents: time.sleep(0.001)
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(idents[0]), ctypes.py_object(KeyError))
    if not ended.wait(1):
        escaped += 1
    stop.set()
    time.sleep(0.01)
sys.unraisablehook = lambda a: None
for i in range(100): round()
print(sys.version.split()[0], "escaped try/finally:", escaped, "/ 100")
