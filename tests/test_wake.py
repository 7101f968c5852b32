"""wake() and kill() on threads blocked in Condition-based waits, on both backends.

Event.wait, Queue.get/put, Semaphore.acquire and Condition.wait all block in
threading.Condition.wait, which wake() ends portably.  Each test checks the
thread ends with the injected exception *and* that the primitive still works
for the other threads.
"""

from __future__ import annotations

import contextlib
import platform
import queue
import random
import signal
import sys
import sysconfig
import threading
import time

import pytest
from conftest import JOIN_TIMEOUT, blocked_in, busy, settled_in_futex_wait, wait_until_waiting

from threadinject import ThreadKilled, ThreadNotFoundError, WakeResult, WakeStatus, _frames, _syscalls


class Waiter:
    """A thread running `call()`, recording what it returned or raised."""

    def __init__(self, call):
        self.result = self.caught = None
        self.thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self.thread.start()

    def _run(self, call):
        try:
            self.result = call()
        except BaseException as exc:
            self.caught = exc


@pytest.fixture
def waiters():
    made = []

    def make(call):
        waiter = Waiter(call)
        made.append(waiter)
        wait_until_waiting(waiter.thread)
        return waiter

    yield make
    for waiter in made:
        waiter.thread.join(JOIN_TIMEOUT)
    assert not any(w.thread.is_alive() for w in made), "a waiting thread was left running"


def test_kill_ends_event_wait_and_event_still_works(api, waiters):
    event = threading.Event()
    victim, other = waiters(event.wait), waiters(event.wait)
    assert api.kill(victim.thread, JOIN_TIMEOUT) is True
    assert type(victim.caught) is ThreadKilled
    assert other.thread.is_alive()  # the other waiter was not woken
    event.set()
    other.thread.join(JOIN_TIMEOUT)
    assert other.result is True


def test_kill_ends_queue_get_and_no_item_or_wakeup_is_lost(api, waiters):
    q: queue.Queue[int] = queue.Queue()
    victim, other = waiters(q.get), waiters(q.get)
    assert api.kill(victim.thread, JOIN_TIMEOUT) is True
    assert type(victim.caught) is ThreadKilled
    q.put(42)
    other.thread.join(JOIN_TIMEOUT)
    assert other.result == 42 and q.empty()
    assert len(q.not_empty._waiters) == 0  # type: ignore[attr-defined]


def test_kill_ends_full_queue_put(api, waiters):
    q: queue.Queue[int] = queue.Queue(maxsize=1)
    q.put(1)
    victim = waiters(lambda: q.put(2))
    assert api.kill(victim.thread, JOIN_TIMEOUT) is True
    assert type(victim.caught) is ThreadKilled
    assert q.get_nowait() == 1 and q.empty()


@pytest.mark.parametrize("kind", ["Queue.get", "Semaphore.acquire"])
def test_a_notification_a_killed_waiter_was_chosen_for_is_passed_on(api, waiters, kind):
    # put() (release()) notifies the first waiter queued; killed before it
    # runs, it would die with that notification and leave the other asleep
    # beside the item (Queue.get before 2026-11-28: 18 and 19 rounds of 20 on
    # 3.12.1 and 3.9.18).  Queue.get and Semaphore.acquire look again after
    # any wake-up, so kill() passes the notification on.  (On 3.13+ the
    # waiter is seldom found there: then it takes the item, and the round
    # checks the other is still served.)
    for _ in range(10):
        q: queue.Queue[int] = queue.Queue()
        sem = threading.Semaphore(0)

        def give(item: int) -> None:
            if kind == "Queue.get":
                q.put(item)
            else:
                sem.release()

        def take() -> int:
            if kind == "Queue.get":
                return q.get()
            assert sem.acquire()
            return 0

        victim, other = waiters(take), waiters(take)
        try:
            give(0)
            assert api.kill(victim.thread, JOIN_TIMEOUT) is True  # True too if it took the item and ended
            if victim.result is not None:
                give(0)
            other.thread.join(JOIN_TIMEOUT)
            assert other.result == 0, ("the other waiter was left asleep", victim.result, victim.caught)
            assert victim.result == 0 or type(victim.caught) is ThreadKilled
            assert q.empty() and sem._value == 0  # type: ignore[attr-defined]
        finally:
            give(0)  # the other one never stays


def test_kill_ends_condition_wait_and_notify_reaches_the_others(api, waiters):
    cond = threading.Condition()

    def wait():
        with cond:
            return cond.wait()

    victim, other = waiters(wait), waiters(wait)
    assert api.kill(victim.thread, JOIN_TIMEOUT) is True
    assert type(victim.caught) is ThreadKilled
    with cond:
        assert len(cond._waiters) == 1  # type: ignore[attr-defined]  # only the other one
        cond.notify()
    other.thread.join(JOIN_TIMEOUT)
    assert other.result is True
    assert cond.acquire(timeout=JOIN_TIMEOUT)  # the victim's `with cond:` released it
    cond.release()


def test_kill_ends_semaphore_acquire(api, waiters):
    sem = threading.Semaphore(0)
    victim, other = waiters(sem.acquire), waiters(sem.acquire)
    assert api.kill(victim.thread, JOIN_TIMEOUT) is True
    assert type(victim.caught) is ThreadKilled
    sem.release()
    other.thread.join(JOIN_TIMEOUT)
    assert other.result is True


def test_kill_ends_a_wait_in_a_python_enter(api, waiters):
    # a with statement whose Python __enter__ waits (a resource taken from a
    # pool, say): the frame of the with statement is at the call of it,
    # which must not be taken for a release under way (3.14 loads the
    # __exit__ on that line, before the __enter__)
    sem = threading.Semaphore(0)

    @contextlib.contextmanager
    def taken():
        sem.acquire()
        try:
            yield
        finally:
            sem.release()

    def enter():
        with taken():
            return True

    victim, other = waiters(enter), waiters(enter)
    assert api.kill(victim.thread, JOIN_TIMEOUT) is True
    assert type(victim.caught) is ThreadKilled
    sem.release()
    other.thread.join(JOIN_TIMEOUT)
    assert other.result is True


def test_kill_ends_timed_wait(api, waiters):
    event = threading.Event()
    victim = waiters(lambda: event.wait(JOIN_TIMEOUT * 100))
    assert api.kill(victim.thread, JOIN_TIMEOUT) is True
    assert type(victim.caught) is ThreadKilled


def test_wake_reports_woken_and_the_exception_lands(api, waiters):
    event = threading.Event()
    victim = waiters(event.wait)
    exc = LookupError("woken up")
    api.inject(victim.thread, exc)
    deadline = time.monotonic() + JOIN_TIMEOUT
    # NOT_BLOCKED while it is still on its way into the wait
    while (result := api.wake(victim.thread)).status is WakeStatus.NOT_BLOCKED:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    assert result == WakeResult(WakeStatus.WOKEN, "threading.Condition.wait") and result
    victim.thread.join(JOIN_TIMEOUT)
    assert victim.caught is exc


def test_wake_without_pending_exception_does_nothing(api, waiters):
    event = threading.Event()
    victim = waiters(event.wait)
    result = api.wake(victim.thread)
    assert result.status is WakeStatus.NOTHING_PENDING and not result
    assert victim.thread.is_alive()  # no fake wake-up: Event.wait did not return
    event.set()
    victim.thread.join(JOIN_TIMEOUT)
    assert victim.result is True


def test_wake_running_thread_reports_not_blocked(api, spawn):
    target = spawn(busy)
    api.inject(target.thread, KeyError)
    try:
        result = api.wake(target.thread)
    except ThreadNotFoundError:
        # it has taken the exception and ended before wake() looked: nothing
        # holds it back on a free-threaded build (seen in CI, 3.13t).  Ended
        # means unregistered from threading._active, which comes before the
        # OS thread is done: is_alive() was still True right after (CI,
        # 3.13.15t, 2026-11-28), so wait for that with the usual bound
        target.thread.join(JOIN_TIMEOUT)
        assert not target.thread.is_alive()
    else:
        # it may already have received it (nothing pending any more), or,
        # with a GIL, be waiting for the GIL, which the kernel shows as a
        # futex wait
        assert (result.status in (WakeStatus.NOT_BLOCKED, WakeStatus.NOTHING_PENDING)
                or result.call == "futex"), result
    target.join()
    assert type(target.caught) is KeyError


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="names system calls from /proc: Linux only")
def test_wake_names_the_system_call_it_cannot_end(api):
    # signal.sigwait(): glibc retries the wait after EINTR itself, so no
    # interrupt or result reaches CPython; nothing can end it
    ready = threading.Event()

    def body():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        ready.set()
        signal.sigwait({signal.SIGUSR1})  # blocked in the kernel, in a call wake() does not end

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    ready.wait(JOIN_TIMEOUT)
    try:
        api.inject(thread, KeyError)
        deadline = time.monotonic() + JOIN_TIMEOUT
        while (result := api.wake(thread)).status is WakeStatus.NOT_BLOCKED:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        # the ctypes backend has no system-call wake at all, nor has aarch64
        # where it is not enabled (_syscalls.SUPPORTED); both still name the call
        wakes_calls = api.name == "c" and _syscalls.SUPPORTED
        expected = WakeStatus.UNSUPPORTED_CALL if wakes_calls else WakeStatus.PLATFORM_UNSUPPORTED
        assert result.status is expected
        if platform.machine() in ("x86_64", "aarch64"):
            assert result.call == "rt_sigtimedwait"
        assert api.kill(thread, 0.05) is False  # documented: not woken
        assert api.cancel(thread)
    finally:
        signal.pthread_kill(thread.ident, signal.SIGUSR1)  # sigwait() returns
        thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive()


@pytest.mark.parametrize("bad", [None, "1", 1.5, True])
def test_wake_bad_thread(api, bad):
    with pytest.raises(TypeError, match=r"wake\(\) argument 'thread'"):
        api.wake(bad)


@pytest.mark.skipif(
    bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    reason="runs on GIL builds: on free-threaded builds a consumer woken by a put() just before "
    "the kill can be running Condition.wait's first lines when it lands, the limit README "
    "'Landing in threading's own critical lines' documents",
)
def test_killing_a_queue_consumer_under_traffic_keeps_the_queue_sound(api):
    # A consumer blocked in Queue.get() is killed while a producer puts items
    # at random moments: the other consumers keep being served, no stale
    # waiter is left, and every item is consumed or still queued, but one: a
    # consumer that a notify() woke just before the kill landed may have
    # taken its item with it.
    rng = random.Random(1234)
    for _ in range(30):
        q: queue.Queue[int | None] = queue.Queue()
        got: list[int] = []

        def consume(q=q, got=got):
            try:
                while True:
                    item = q.get()
                    if item is None:
                        return
                    got.append(item)
            except ThreadKilled:
                pass

        consumers = [threading.Thread(target=consume, daemon=True) for _ in range(3)]
        for c in consumers:
            c.start()
        n = rng.randint(0, 5)
        delays = [rng.random() * 0.0005 for _ in range(n)]

        def produce(q=q, delays=delays):
            for i, delay in enumerate(delays):
                q.put(i)
                time.sleep(delay)

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        time.sleep(rng.random() * 0.002)
        # kill it while it waits: an exception landing while it runs through
        # Condition.wait's first lines would break the condition (README, Limits)
        wait_until_waiting(consumers[0])
        assert api.kill(consumers[0], JOIN_TIMEOUT) is True
        producer.join(JOIN_TIMEOUT)
        for _ in consumers[1:]:
            q.put(None)
        for c in consumers[1:]:
            c.join(JOIN_TIMEOUT)
        assert not any(c.is_alive() for c in consumers)
        left = [x for x in (q.get_nowait() for _ in range(q.qsize())) if x is not None]
        accounted = sorted(got + left)
        assert len(set(accounted)) == len(accounted) and set(accounted) <= set(range(n))
        assert n - len(accounted) in (0, 1)
        assert len(q.not_empty._waiters) == 0  # type: ignore[attr-defined]


def _joining(thread):
    """Whether `thread` blocks in Thread.join (frame-free on free-threaded
    builds)."""
    if _frames.READABLE:
        return blocked_in(thread, threading.Thread.join.__code__)
    return settled_in_futex_wait(thread)


def test_wake_never_wakes_a_join(api):
    release = threading.Event()
    joined = threading.Thread(target=release.wait, daemon=True)
    joined.start()
    joiner = threading.Thread(target=joined.join, daemon=True)
    joiner.start()
    deadline = time.monotonic() + JOIN_TIMEOUT
    while not _joining(joiner):
        assert time.monotonic() < deadline
        time.sleep(0.001)
    try:
        api.inject(joiner, KeyError)
        while (result := api.wake(joiner)).status is WakeStatus.NOT_BLOCKED:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        if _frames.READABLE:
            assert result == WakeResult(WakeStatus.UNSUPPORTED_CALL, "threading.Thread.join")
        else:
            # no frame names the join: as any futex wait but a Condition's,
            # left alone and reported as one kill() withholds its exception from
            assert result.status is WakeStatus.UNSAFE_TO_LAND
            assert result.call is not None and result.call.startswith("futex")
        assert joined.is_alive()
        assert api.cancel(joiner) is True
    finally:
        release.set()
        joined.join(JOIN_TIMEOUT)
        joiner.join(JOIN_TIMEOUT)
    assert not joiner.is_alive()
