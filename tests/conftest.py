"""Fixtures shared by the suite: both backends, and threads that are always ended and joined."""

from __future__ import annotations

import faulthandler
import functools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Callable

import pytest

from threadinject import ThreadKilled, _backends, _frames, _monitor, _syscalls, _wake
from threadinject._kill import make_kill
from threadinject._wake import inject_in_call, make_wake, unsafe_to_land

# Bounds for CI, never timing claims.  THREADINJECT_TEST_SLOWDOWN scales them
# for runs under a tool that slows everything down (nox -s valgrind: 40).
SLOWDOWN = float(os.environ.get("THREADINJECT_TEST_SLOWDOWN", "1"))
JOIN_TIMEOUT = 10.0 * SLOWDOWN


@pytest.fixture(params=_backends.NAMES)
def api(request: pytest.FixtureRequest) -> SimpleNamespace:
    """The public functions, bound to one backend (each test runs on both)."""
    backend = _backends.load(request.param)
    core = backend if request.param == "c" else None
    wake = make_wake(backend.pending, core)

    def unsafe(thread: threading.Thread) -> bool:
        return unsafe_to_land(thread, core)

    return SimpleNamespace(
        name=request.param,
        inject=backend.inject,
        cancel=backend.cancel,
        pending=backend.pending,
        wake=wake,
        unsafe_to_land=unsafe,
        inject_if_at=backend._inject_if_at,
        kill=make_kill(backend.inject, backend.pending, backend.cancel, wake, unsafe,
                       backend._inject_if_at, functools.partial(inject_in_call, core) if core else None),
    )


class Target:
    """A thread running `body(stop)`; records the exception that ended it."""

    def __init__(self, body: Callable[[threading.Event], object], stop: threading.Event) -> None:
        self.body = body
        self.stop = stop
        self.caught: BaseException | None = None
        self.returned = False
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            # inside the try: an injection may land as soon as `started` is set
            self.started.set()
            self.body(self.stop)
            self.returned = True
        except BaseException as exc:  # the point of the suite
            self.caught = exc

    def join(self) -> None:
        self.thread.join(JOIN_TIMEOUT)
        assert not self.thread.is_alive(), "target thread did not end"


@pytest.fixture
def spawn() -> Iterator[Callable[[Callable[[threading.Event], object]], Target]]:
    """spawn(body) starts a Target; at teardown every one is stopped and joined with a bound."""
    stop = threading.Event()
    targets: list[Target] = []

    def start(body: Callable[[threading.Event], object]) -> Target:
        target = Target(body, stop)
        targets.append(target)
        target.thread.start()
        assert target.started.wait(JOIN_TIMEOUT)
        return target

    yield start
    stop.set()
    for target in targets:
        target.thread.join(JOIN_TIMEOUT)
    stuck = [t.thread for t in targets if t.thread.is_alive()]
    assert not stuck, f"threads still running after the test: {stuck}"


def kill_each(api: SimpleNamespace, body: Callable[[list[BaseException], threading.Event], object],
              after: Callable[[], object], kills: int) -> None:
    """Start `body(ended, running)` in a thread `kills` times, kill it once
    it has set `running` and run a moment, and call after() once it has
    ended; `body` records in `ended` how it ended (one ThreadKilled)."""
    for _ in range(kills):
        ended: list[BaseException] = []
        running = threading.Event()
        thread = threading.Thread(target=body, args=(ended, running), daemon=True)
        thread.start()
        try:
            assert running.wait(JOIN_TIMEOUT)
            time.sleep(0.001)  # round its loop a while
            assert api.kill(thread, JOIN_TIMEOUT) is True
            thread.join(JOIN_TIMEOUT)
        finally:
            end_anyhow(api, thread)
        assert not thread.is_alive()
        assert [type(e) for e in ended] == [ThreadKilled], ended
        after()


def end_anyhow(api: SimpleNamespace, thread: threading.Thread) -> None:
    """After a kill() that may have failed: inject ThreadKilled until
    `thread` ends, for JOIN_TIMEOUT at most."""
    deadline = time.monotonic() + JOIN_TIMEOUT
    while thread.is_alive() and time.monotonic() < deadline:
        api.inject(thread, ThreadKilled)
        thread.join(0.1)


def lock_is_free(lock: threading.Lock) -> Callable[[], None]:
    """An after() for kill_each(): `lock` must not have been left held."""
    def check() -> None:
        assert lock.acquire(False), "the kill left the lock held"
        lock.release()

    return check


def busy(stop: threading.Event) -> None:
    while not stop.is_set():
        pass


def sleepy(stop: threading.Event) -> None:
    """The classic stuck worker: `while True: time.sleep(...)`."""
    while not stop.is_set():
        time.sleep(0.05)


def frame_of(thread: threading.Thread, code: object) -> object | None:
    """The frame of `thread` running `code`, if any (GIL builds: reading
    another thread's frames is unsafe on free-threaded ones, _frames.py)."""
    assert _frames.READABLE, "reads another thread's frames: GIL builds only"
    frame = _frames.current_frames().get(thread.ident)  # type: ignore[arg-type]
    while frame is not None:
        if frame.f_code is code:
            return frame
        frame = frame.f_back
    return None


def blocked_in(thread: threading.Thread, code: object) -> bool:
    return frame_of(thread, code) is not None


def syscall_of(thread: threading.Thread) -> tuple[int, int] | None:
    """The system call (number, first argument) Linux's /proc shows `thread`
    sleeping in; None while it runs or sleeps outside one."""
    with open(f"/proc/self/task/{thread.native_id}/syscall") as f:
        fields = f.read().split()
    if fields[0] == "running" or int(fields[0]) < 0:
        return None
    return int(fields[0]), int(fields[1], 16)


def settled_in_futex_wait(thread: threading.Thread) -> bool:
    """Whether /proc shows `thread` in a futex wait on two reads 10 ms apart:
    how tests on free-threaded builds, which cannot read its frames, tell it
    has reached a lock wait it starts with."""
    for _ in range(2):
        syscall = syscall_of(thread)
        if syscall is None or syscall[0] != _syscalls.FUTEX:
            return False
        time.sleep(0.01)
    return True


def _queued_in_a_condition(thread: threading.Thread) -> bool:
    """Whether `thread` is parked on a lock that a Condition has queued as
    its waiter: blocked in Condition.wait, told without reading its frames
    (free-threaded builds; where _locks identifies lock waits)."""
    try:
        blocked = _syscalls.blocked_call(thread.native_id)  # type: ignore[arg-type]
    except OSError:
        return False
    return blocked is not None and _wake.in_condition_wait(blocked)


def wait_until(condition: Callable[[], object], what: str) -> None:
    """Poll `condition` until it is true, for JOIN_TIMEOUT at most (`what`:
    the failure's message)."""
    deadline = time.monotonic() + JOIN_TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


def watched_until_ended(spawn: Callable[[Callable[[threading.Event], object]], Target],
                        body: Callable[[threading.Event], object], exc: BaseException,
                        ready: Callable[[], object] | None = None) -> tuple[BaseException | None, object]:
    """Run `body` in a spawned thread, wait until ready() if given, and
    watch it (_monitor.watching(), raising `exc`) until it has ended; the
    exception it ended with, and the watch (None: not watched)."""
    target = spawn(body)
    if ready is not None:
        wait_until(ready, "the thread never got ready to be watched")
    with _monitor.watching(target.thread.ident, exc) as watch:
        target.thread.join(JOIN_TIMEOUT)
    assert not target.thread.is_alive(), "not raised in the thread"
    return target.caught, watch


def wait_until_waiting(thread: threading.Thread) -> None:
    """Until `thread` waits in Condition.wait: its waiter queued, the lock
    released (bounded)."""
    deadline = time.monotonic() + JOIN_TIMEOUT
    while True:
        if _frames.READABLE:
            frame = frame_of(thread, threading.Condition.wait.__code__)
            if frame is not None and "saved_state" in frame.f_locals:  # type: ignore[attr-defined]
                return
        elif _queued_in_a_condition(thread):
            return
        assert time.monotonic() < deadline, "the thread never started waiting"
        time.sleep(0.001)


def run_python(
    code: str, backend: str, timeout: float = 60.0, args: tuple[str, ...] | list[str] = ()
) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter using `backend`; a hang fails with a stack dump."""
    env = dict(os.environ)
    env["THREADINJECT_PURE_PYTHON"] = "1" if backend == "ctypes" else "0"
    # output to a pipe is buffered, as users get it (this machine sets
    # PYTHONUNBUFFERED, which hid the demo losing its output at os._exit())
    env.pop("PYTHONUNBUFFERED", None)
    prelude = f"import faulthandler; faulthandler.dump_traceback_later({timeout - 5}, exit=True)\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code, *args],
        env=env, capture_output=True, text=True, timeout=timeout,
    )


faulthandler.enable()
