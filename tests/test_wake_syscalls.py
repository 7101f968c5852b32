"""kill() of threads blocked in system calls and lock waits: Linux x86-64
and aarch64, C backend, where README's platform table says so.

Each kind of call runs in its own interpreter (a crash or hang is caught
there), ROUNDS kills in a row; the interpreter must then run more code and
exit cleanly with nothing on stderr.  With the ctypes backend, and for the
calls not supported yet, kill() must report False (documented).
"""

from __future__ import annotations

import os
import sys
import textwrap

import pytest
from conftest import run_python

from threadinject import _frames, _syscalls

ROUNDS = 20

SETUP = {
    "time.sleep": "call = lambda: time.sleep(1e6)",
    "socket.recv": "a, b = socket.socketpair(); call = lambda: a.recv(10)",
    "os.read": "r, w = os.pipe(); call = lambda: os.read(r, 10)",
    "select.select": "r, w = os.pipe(); call = lambda: select.select([r], [], [])",
    "selectors": (
        "sel = selectors.DefaultSelector(); r, w = os.pipe(); "
        "sel.register(r, selectors.EVENT_READ); call = sel.select"
    ),
    "Popen.wait": (
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1000)']); "
        "call = child.wait"
    ),
}
# held by the main thread for the whole run; every worker is killed waiting
HELD_LOCK = "lock = threading.{}(); lock.acquire(); "
LOCK_WAITS = {
    # positional: a keyword call run for the first time is deferred on 3.14+
    # (_landing.py; tests/test_wake_locks.py covers it)
    "Lock.acquire(timeout)": HELD_LOCK.format("Lock") + "call = lambda: lock.acquire(True, 1e9)",
    "RLock.acquire(timeout)": HELD_LOCK.format("RLock") + "call = lambda: lock.acquire(True, 1e9)",
    "Lock.acquire": HELD_LOCK.format("Lock") + "call = lock.acquire",
    "RLock.acquire": HELD_LOCK.format("RLock") + "call = lock.acquire",
}
# Calls no substitute fits (any result is an error or a success the caller
# acts on): woken from 3.15 only, where CPython raises the pending exception
# after EINTR (gh-144748; _syscalls.py).  connect is in that list too; a
# blocking connect needs a peer that never answers, which this machine's
# sandbox cannot provide, so it is not tested.
ENDED_BY_EINTR_FROM_315 = {
    "socket.accept": (
        "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(); call = srv.accept"
    ),
    "socket.sendall": (
        "a, b = socket.socketpair(); call = lambda: a.sendall(bytes(1 << 24))"
    ),
    "os.write": (
        "r, w = os.pipe(); call = lambda: os.write(w, bytes(1 << 20))"
    ),
    "fcntl.flock": (
        "import fcntl, tempfile; f = tempfile.TemporaryFile(); fcntl.flock(f, fcntl.LOCK_EX); "
        "g = open(f'/proc/self/fd/{f.fileno()}', 'rb'); "
        "call = lambda: fcntl.flock(g, fcntl.LOCK_EX)"
    ),
}
# What a program closes when its rounds are done: debug builds report what is
# left to the collector (ResourceWarning).
CLEANUP = {"Popen.wait": "child.kill(); child.wait()", "socket.recv": "a.close(); b.close()",
           "socket.accept": "srv.close()", "socket.sendall": "a.close(); b.close()",
           "os.write": "os.close(r); os.close(w)", "fcntl.flock": "g.close(); f.close()"}

PROGRAM = textwrap.dedent("""
    import os, select, selectors, socket, subprocess, sys, threading, time
    import threadinject
    from threadinject import ThreadKilled
    {setup}
    results = []
    for _ in range({rounds}):
        outcome = []
        ready = threading.Event()
        def body():
            try:
                ready.set()
                call()
                outcome.append("returned")
            except ThreadKilled:
                outcome.append("killed")
        worker = threading.Thread(target=body)
        worker.start()
        ready.wait()
        time.sleep(0.005)  # into the call; kill() works wherever it is, this makes it the blocked case
        results.append((threadinject.kill(worker, {timeout}), tuple(outcome)))
        if worker.is_alive():
            break
    print(results.count((True, ("killed",))), "of", len(results), "killed;", sorted(set(results)))
    {cleanup}
    print("more code runs:", sum(range(10)))
""")


def program(setup: str, rounds: int, timeout: float, cleanup: str = "") -> str:
    return PROGRAM.format(setup=setup, rounds=rounds, timeout=timeout, cleanup=cleanup)


@pytest.mark.skipif(not _syscalls.SUPPORTED, reason="system-call wake exists on Linux x86-64 and "
                    "aarch64 (README's platform table); elsewhere kill() of such a thread returns False, "
                    "as the ctypes case below checks")
@pytest.mark.parametrize("call", sorted(SETUP))
def test_kill_lands_in_blocked_system_call(call):
    result = run_python(program(SETUP[call], ROUNDS, 5, CLEANUP.get(call, "")), "c")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{ROUNDS} of {ROUNDS} killed; [(True, ('killed',))]", "more code runs: 45"
    ], result.stderr
    assert result.stderr == ""


def lock_wait_wakeable(call: str) -> bool:
    """Only timed waits on CPython's semaphore are woken (_locks.py), and no
    lock wait on a free-threaded build (no frame to judge it by: _frames.py)."""
    if not _frames.READABLE or "(timeout)" not in call:
        return False
    from threadinject import _locks

    parked = {name: layout.parked for name, layout in _locks.layouts().values()}
    return not parked[call.replace("(timeout)", "")]


@pytest.mark.skipif(not _syscalls.LOCK_WAITS, reason="lock waits are told apart where system calls are woken")
@pytest.mark.parametrize("call", sorted(LOCK_WAITS))
def test_kill_lands_in_lock_waits(call):
    if not lock_wait_wakeable(call):
        # the worker stays blocked: the program ends it by exiting (os._exit)
        code = program(LOCK_WAITS[call], 1, 0.2, "") + "\nsys.stdout.flush(); os._exit(0)\n"
        result = run_python(code, "c")
        assert result.stdout.splitlines()[0] == "0 of 1 killed; [(False, ())]", result.stderr
    else:
        result = run_python(program(LOCK_WAITS[call], ROUNDS, 5), "c")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            f"{ROUNDS} of {ROUNDS} killed; [(True, ('killed',))]", "more code runs: 45"
        ], result.stderr
    assert result.stderr == ""


@pytest.mark.skipif(not _syscalls.SUPPORTED, reason="system-call wake: where it is enabled (README)")
@pytest.mark.parametrize("call", sorted(ENDED_BY_EINTR_FROM_315))
def test_calls_only_cpython_315_ends_are_killed_there_and_reported_before(call):
    if sys.version_info >= (3, 15):
        result = run_python(program(ENDED_BY_EINTR_FROM_315[call], ROUNDS, 5, CLEANUP[call]), "c")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            f"{ROUNDS} of {ROUNDS} killed; [(True, ('killed',))]", "more code runs: 45"
        ], result.stderr
    else:
        # the worker stays blocked: the program ends it by exiting (os._exit)
        code = program(ENDED_BY_EINTR_FROM_315[call], 1, 0.2, "") + "\nsys.stdout.flush(); os._exit(0)\n"
        result = run_python(code, "c")
        assert result.stdout.splitlines()[0] == "0 of 1 killed; [(False, ())]", result.stderr
    assert result.stderr == ""


def test_ctypes_backend_cannot_wake_system_calls():
    code = program(SETUP["time.sleep"], 1, 0.2, "") + "\nsys.stdout.flush(); os._exit(0)\n"
    result = run_python(code, "ctypes")
    assert result.stdout.splitlines()[0] == "0 of 1 killed; [(False, ())]", result.stderr
    assert result.stderr == ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the C library is named on Linux only")
def test_the_c_library_is_told_by_what_the_interpreter_runs_on():
    # checked another way: the program interpreter (PT_INTERP) the python
    # binary names, in its first pages: musl's loader is its C library
    with open(os.path.realpath(sys.executable), "rb") as f:
        head = f.read(1 << 16)
    assert b"/ld-linux" in head or b"/ld-musl-" in head, "no program interpreter found"
    assert _syscalls._LIBC == ("musl" if b"/ld-musl-" in head else "glibc")


def test_musl_is_recognised_by_the_paths_it_is_mapped_at():
    assert _syscalls._is_musl("/lib/ld-musl-x86_64.so.1")  # Alpine
    assert _syscalls._is_musl("/lib/libc.musl-aarch64.so.1")
    assert _syscalls._is_musl("/usr/lib/x86_64-linux-musl/libc.so")  # Debian's musl
    assert not _syscalls._is_musl("/usr/lib/x86_64-linux-gnu/libc.so.6")
    assert not _syscalls._is_musl("/lib64/ld-linux-x86-64.so.2")
    assert not _syscalls._is_musl("[stack]")


FOREIGN_FUTEX = textwrap.dedent("""
    import ctypes, threading, time
    import threadinject
    # a futex word inside a C structure that is no lock: every word around
    # it holds a value that, read as an address, lies above 2**63
    words = (ctypes.c_uint64 * 129)(*([0xFFFF_FFFF_FFFF_FFF0] * 129))
    words[64] = 0
    futex = ctypes.addressof(words) + 64 * 8
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    SYS_futex, FUTEX_WAIT, FUTEX_WAKE = SYS_FUTEX_NUMBER, 0, 1
    def wait():
        libc.syscall(SYS_futex, ctypes.c_void_p(futex), FUTEX_WAIT, 0, None)
    def blocked_in():
        with open(f"/proc/self/task/{worker.native_id}/syscall") as f:
            return f.read().split()[0]
    worker = threading.Thread(target=wait)
    worker.start()
    while blocked_in() != str(SYS_futex):
        time.sleep(0.001)
    try:
        threadinject.inject(worker, threadinject.ThreadKilled)
        print(threadinject.wake(worker))
        print(threadinject.cancel(worker))
    finally:
        while worker.is_alive():
            libc.syscall(SYS_futex, ctypes.c_void_p(futex), FUTEX_WAKE, 1)
            worker.join(0.01)
""")


@pytest.mark.skipif(not _syscalls.LOCK_WAITS, reason="lock waits are told apart where system calls are woken")
def test_a_futex_wait_that_is_no_lock_is_reported_not_misread():
    result = run_python(FOREIGN_FUTEX.replace("SYS_FUTEX_NUMBER", str(_syscalls.FUTEX)), "c")
    assert result.returncode == 0, result.stderr
    if _frames.READABLE:
        reported = "WakeResult(status=<WakeStatus.UNSUPPORTED_CALL: 'unsupported call'>, call='futex')"
    else:  # no lock's name: any futex wait is withheld from there (_wake.py)
        reported = ("WakeResult(status=<WakeStatus.UNSAFE_TO_LAND: 'unsafe to land'>, "
                    "call='futex (free-threaded build: no frame to judge it by)')")
    assert result.stdout.splitlines() == [reported, "True"], result.stdout + result.stderr
    assert result.stderr == ""


HAMMER = textwrap.dedent("""
    import threading, time
    from threadinject import _core, _syscalls
    _syscalls.chosen_signal()
    result, sleeps = [], []
    def compute():
        total = 0
        for i in range(3_000_000):
            total += i * i % 7
        result.append(total)
    def nap():
        for _ in range(200):
            time.sleep(0.0005)   # interrupted, retried by CPython: no rewrite matches
        sleeps.append("done")
    workers = [threading.Thread(target=compute), threading.Thread(target=nap)]
    for w in workers:
        w.start()
    sent = 0
    while any(w.is_alive() for w in workers) and sent < 10_000:
        for w in workers:
            # armed for a call at address 1: the handler never finds it, so it
            # may only interrupt, never change anything
            if w.is_alive() and _core._wake_send(w.native_id, 1, 0, 0, False, True, 0, 0):
                sent += 1
    for w in workers:
        w.join()
    expected = sum(i * i % 7 for i in range(3_000_000))
    print(result == [expected], sleeps == ["done"], sent > 1000)
""")


@pytest.mark.skipif(not _syscalls.SUPPORTED, reason="the wake signal exists where the wake is enabled")
def test_threads_hammered_with_the_signal_compute_correct_results():
    result = run_python(HAMMER, "c", timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (0, "True True True\n", "")


OWN_HANDLER = textwrap.dedent("""
    import os, signal, threading, time
    signo = signal.SIGRTMAX - 1
    os.environ["THREADINJECT_SIGNAL"] = str(signo)
    got = []
    signal.signal(signo, lambda n, frame: got.append(n))   # the program's own handler
    import threadinject
    worker = threading.Thread(target=lambda: time.sleep(1e6))
    worker.start()
    time.sleep(0.01)
    killed = threadinject.kill(worker, 5)    # installs ours on the same signal
    os.kill(os.getpid(), signo)              # a signal that is not ours
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.001)
    print(killed, got == [signo])
""")


@pytest.mark.skipif(not _syscalls.SUPPORTED, reason="the wake signal exists where the wake is enabled")
def test_signals_that_are_not_ours_reach_the_handler_installed_before():
    result = run_python(OWN_HANDLER, "c")
    assert (result.returncode, result.stdout, result.stderr) == (0, "True True\n", "")
