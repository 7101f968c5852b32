"""CPython free-threaded bug: walking another running thread's frames crashes.

On a free-threaded build (3.13t), a frame from sys._current_frames() of a
thread that keeps running can be used after it was freed: following its
f_back makes CPython write a frame object into an interpreter frame that
is gone (python/cpython#152355).  threadinject's kill()/wake() read other
threads' frames this way; a 10,000-kill stress run on 3.13.15 crashed once
at about 8,500 kills, in _PyFrame_MakeAndSetFrameObject in the killer
thread.  This script uses no threadinject: run it with any interpreter to
see whether it is affected (GIL builds are not: 3.12.1 walked 6.9 million
stacks in 15 s here; 3.13.15t crashed within seconds, four runs of four).
Reading only f_lasti and f_code of the frames, without f_back, crashed
3.13.15t too, less often (2 of 4 runs of 40 s).

    python tools/cpython_ft_frames_bug.py [seconds]
"""
import sys
import threading
import time


def deep(n):
    if n:
        return deep(n - 1)
    time.sleep(0)
    return 0


def worker():
    for _ in range(50):
        deep(30)


stop = time.monotonic() + (float(sys.argv[1]) if len(sys.argv) > 1 else 20)
walks = 0
threads = []
while time.monotonic() < stop:
    threads = [t for t in threads if t.is_alive()]
    while len(threads) < 4:
        thread = threading.Thread(target=worker)
        thread.start()
        threads.append(thread)
    for frame in list(sys._current_frames().values()):
        while frame is not None:
            frame = frame.f_back
        walks += 1
for thread in threads:
    thread.join()
print(sys.version.split()[0], "no crash, stacks walked:", walks)
