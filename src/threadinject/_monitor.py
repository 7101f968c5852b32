"""kill() of a running thread: let the target raise ThreadKilled itself, where its own frame says it may.

On a free-threaded build no other thread's frames can be read (_frames.py),
so kill() cannot see whether an exception it schedules into a *running*
thread would land right after a lock's ``acquire()``, before the ``try``
that releases it (README, Limits).  On a GIL build kill() reads them, but
from 3.13 a scheduled exception lands at the thread's *next* check
(_landing.py), and a thread that runs almost only through threading's
primitives (polling an ``Event`` with ``wait(0)``) is seldom where all its
next checks are safe: kill() adds the watch after it has withheld from such
a thread for a while (_kill.py).  A thread can read its own frames safely,
though, and ``sys.monitoring`` (PEP 669, 3.12+) calls a callback in the
thread that runs the monitored code.  While a kill is under way this module
enables two events for every thread (and a third for a few code objects),
with callbacks that return at once in any thread but the target:

* ``PY_START``: a Python function starts, called by a call instruction of a
  Python frame (not implicitly: an operator's dunder method, a finalizer,
  a property: C code that calls those may swallow the exception).  Raised
  there, the exception comes out of that call in the caller, as if the
  callee's first line had raised it: nothing the callee would acquire is
  acquired yet.
* ``JUMP`` backwards: the thread goes round a loop.  Raised there, the
  exception is raised at the loop's head (CPython attributes it to the jump's
  target: Python/ceval_macros.h, INSTRUMENTED_JUMP, 3.13), inside whatever
  ``try``/``with`` encloses the loop.

* ``C_RETURN`` of a C function's ``release()`` or ``__exit__`` call
  (GIL builds), in the code objects on the target's stack, as the watch
  starts, that have a ``finally`` block with a release ahead (local
  ``CALL`` events, which ``C_RETURN`` needs, asked for at release calls
  only).  Raised there, the exception comes out of the call after it let
  the lock go; only if no release is left ahead
  (_landing.released_soundly()).  A loop whose one blocking call is in
  such a block (``finally: time.sleep(0.001); lock.release()``) lets the
  GIL go only there, where kill() must withhold, and was not killed where
  loops' jumps are no raise point (3.9-3.13.0, up to 2026-11-28).

Never in the code of threading, queue or threadinject's private modules,
nor at the start of a function they call (their own lock protocols:
Condition.wait between queueing its waiter and its ``try``, Queue.get
between taking an item and returning it; a user's lock class that a
Condition takes back in its ``finally``); a function of threading or queue
called by other code is a raise point like any other (``Event.wait``: the
exception comes out of that call before it has taken anything).  Never at
the start of a function named ``release``, ``__exit__`` or ``__aexit__`` or of one such a
function calls (the lock would stay held), never at the jump of a loop
whose round takes a lock (``acquire``, ``__enter__``) without giving one
back (``release``, ``__exit__``) or the other way round (``for lock in
locks: lock.acquire()`` would leave those it took held), and never in a
``finally`` block, in any frame, before
the release it has ahead (``finally: log(); lock.release()``:
_landing.before_finally_release()).

Before 3.12 there is no sys.monitoring: while a kill is under way the C
extension sets a trace function in the target thread alone
(csrc/thread_trace.c), whose "call" events apply the PY_START rule above
(_on_call; a generator's resumption is no start), and a profile function
whose returns of C release calls apply the C_RETURN rule above, in any
code but threading's, queue's and threadinject's (_on_traced_release; not
set in a thread that has a profile function of its own).  It turns line
events off: nothing raises at loops there (kill() judges those by frames,
as it did before the watch), and it is not set in a thread that has a
trace function of its own, nor without the C extension.

The callbacks tell sys.monitoring to stop calling them (DISABLE) at each
place they never raise at: at forward jumps, at any jump in the files above
or of a loop that takes or gives back alone, and at the start of
threadinject's private functions.  Elsewhere, in threads no kill is aimed
at, they return at once.

Whether a raise at a backward jump runs the enclosing handlers is probed
once per process (_jumps_sound): measured 2026-11-26, on 3.12.1 and 3.13.0
it skipped the frame's ``finally`` and ``with`` exit (the exception unwound
the frame as if no handler covered the loop), on 3.13.15(t) it ran them.
Where it does not, only PY_START is used, and kill() falls back on its
/proc judgement for a thread that runs a loop without calls.

Exactly one delivery: kill() still schedules the exception itself into a
thread it holds at a system call or wakes from a Condition wait; it claims
the delivery first (Watch.claim), and the callbacks raise only while no
delivery is claimed and the exception has not been raised (its
``__traceback__``: both deliveries happen in the target, one after the
other).

Costs: enabling or disabling events stops the world on free-threaded builds
(every thread running Python waits at its next safe point; a thread in a long
C call without detaching delays that, as it delays the garbage collector),
and while a kill is under way every Python call and loop iteration of every
thread runs a callback: the C extension's (csrc/monitor_filter.c), which
returns at once unless the thread is watched, where it is loaded; these
Python functions otherwise (benchmarks/bench_monitor.py).  The release
calls of the code objects watched for C_RETURN run two Python callbacks
in every thread that runs them.
"""

from __future__ import annotations

import bisect
import contextlib
import dis
import os
import queue
import sys
import threading
from collections.abc import Iterator
from types import CodeType, FrameType
from typing import Any, Callable

from . import _backends, _frames, _landing

__all__ = ["Watch", "covers_loops", "deliver_again", "watching"]

#: sys.monitoring tool ids threadinject may take, in this order: those that
#: PEP 669 leaves unassigned (0-2 and 5 are the debugger's, coverage's, the
#: profiler's and the optimizer's)
_TOOL_IDS = (4, 3)
_TOOL_NAME = "threadinject"

#: sys.monitoring (3.12+); None before
_monitoring: Any = getattr(sys, "monitoring", None)

# threading's and queue's code, and threadinject's own machinery (its
# private modules: kill()'s wrappers run in the target), not the rest of
# the package (the demo's workers are its users' code)
_PACKAGE_DIR = os.path.dirname(__file__)
_PRIVATE_MODULES = ("__init__", "_backends", "_ctypes_backend", "_errors", "_frames", "_kill", "_landing",
                    "_locks", "_monitor", "_swallowed", "_sync_code", "_syscalls", "_types", "_wake")
_PRIVATE_FILES = frozenset(os.path.join(_PACKAGE_DIR, name + ".py") for name in _PRIVATE_MODULES)
_SKIPPED_FILES = frozenset({threading.__file__, queue.__file__}) | _PRIVATE_FILES
_RELEASING = _frames.RELEASING
#: threading's {ident: Thread} of running threads, mutated in place, never rebound
_active: dict[int, threading.Thread] = threading._active  # type: ignore[attr-defined]
_ACQUIRING = _frames.ACQUIRING | {"__aenter__"}  # a loop's round may take one in an `async with`
_CALLS = frozenset({"CALL", "CALL_KW", "CALL_FUNCTION_EX",
                    "CALL_FUNCTION", "CALL_FUNCTION_KW", "CALL_METHOD"})  # 3.9, 3.10


class Watch:
    """One kill under way: the exception the target raises at its next safe
    event, unless kill() has claimed the delivery.  `owner`: the target's
    Thread (threading._active's), if it has one: a thread that has its
    ident after it ended is not it (_watched())."""

    def __init__(self, exc: BaseException, owner: threading.Thread | None = None) -> None:
        self.exc = exc
        self.owner = owner
        self.raised = False  # by a callback (tests, the stress script's counts)
        self._lock = threading.Lock()
        self._claimed = False

    def claim(self) -> bool:
        """kill() is about to schedule the exception itself: whether it may
        (it has not been raised, by a callback or a scheduling before)."""
        with self._lock:
            if self.done():
                return False
            self._claimed = True
            return True

    def unclaim(self) -> None:
        """kill() withdrew what it scheduled before it landed."""
        with self._lock:
            self._claimed = False

    def done(self) -> bool:
        """Whether the exception is delivered or being delivered (read
        without the lock, inline, by the callbacks' early exit, _watched();
        claim() and _take() ask again holding it)."""
        return self._claimed or self.exc.__traceback__ is not None

    def _again(self) -> None:
        """Its exception was swallowed (_swallowed.py): deliverable again."""
        with self._lock:
            self._claimed = self.raised = False
            self.exc.__traceback__ = None

    def _take(self) -> bool:
        """In the target: whether to raise now.  Never waits for the lock
        (kill() holds it only for a moment; the next event comes soon)."""
        if not self._lock.acquire(False):
            return False
        try:
            if self.done():
                return False
            self._claimed = self.raised = True
            return True
        finally:
            self._lock.release()


# by thread ident, read by every thread's callbacks: the watches that may
# still raise (a thread that has received its exception is taken out, so
# that its events cost it no more than any other thread's as it unwinds)
_watches: dict[int, Watch] = {}
# by thread ident, under _setup: each kill's watch, and how many kill()
# calls share it
_kills: dict[int, tuple[Watch, int]] = {}
_setup = threading.Lock()
_tool: int | None = None
_events = 0
_armed = 0
_unavailable = False


def _skipped(code: CodeType) -> bool:
    return code.co_filename in _SKIPPED_FILES


# by id(code), with the code object itself (kept alive): code objects hash
# their contents, nested code included, on every hash() (a module's code,
# run once as it is imported, made each of its loop rounds take
# milliseconds in a thread being killed, with functools.lru_cache)
_loads_cache: dict[int, tuple[CodeType, tuple[int, ...], tuple[int, ...]]] = {}
_LOADS_CACHED = 512


def _lock_loads(code: CodeType) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Offsets, in order, of the instructions that load an attribute named
    like a lock's acquire, and of those named like its release."""
    entry = _loads_cache.get(id(code))
    if entry is not None and entry[0] is code:
        return entry[1], entry[2]
    acquiring: list[int] = []
    releasing: list[int] = []
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("LOAD_ATTR", "LOAD_METHOD", "LOAD_SPECIAL"):
            # the name: LOAD_ATTR's argval, 3.14's LOAD_SPECIAL's argrepr
            if instruction.argval in _ACQUIRING or instruction.argrepr in _ACQUIRING:
                acquiring.append(instruction.offset)
            elif instruction.argval in _RELEASING or instruction.argrepr in _RELEASING:
                releasing.append(instruction.offset)
    if len(_loads_cache) >= _LOADS_CACHED:
        _loads_cache.clear()
    _loads_cache[id(code)] = (code, tuple(acquiring), tuple(releasing))
    return tuple(acquiring), tuple(releasing)


def _any_within(offsets: tuple[int, ...], start: int, end: int) -> bool:
    at = bisect.bisect_left(offsets, start)
    return at < len(offsets) and offsets[at] <= end


def _round_takes_or_gives_back_alone(code: CodeType, source: int, target: int) -> bool:
    """Whether a loop's round, from `target` to its backward jump at
    `source`, loads a lock's acquire but no release, or a release but no
    acquire: ``for lock in locks: lock.acquire()`` would leave those it took
    held if raised at its jump.  A round that does both is whole at its jump
    (``while True: lock.acquire(); try: ... finally: lock.release()``, whose
    jump 3.14 puts on the release's line), as is one that does neither.  By
    names, a heuristic that errs towards too many jumps (a lock taken in one
    round and given back in the next looks whole, and is no worse than a
    lock the thread holds anywhere else)."""
    acquiring, releasing = _lock_loads(code)
    return _any_within(acquiring, target, source) != _any_within(releasing, target, source)


def _watched() -> Watch | None:
    """The watch on the calling thread that may still raise, if any: not
    one whose delivery is done (Watch.done(), read here without a call: the
    callbacks ask at every event of a watched thread), nor one of a thread
    that has ended, whose ident the OS gave this thread before kill() saw it
    end and let the watch go."""
    ident = threading.get_ident()
    watch = _watches.get(ident)
    if watch is None:
        return None
    if watch.exc.__traceback__ is not None:  # received, by a raise or scheduled
        _watches.pop(ident, None)
        return None
    if watch._claimed or (watch.owner is not None and _active.get(ident) is not watch.owner):
        return None
    return watch


def _raise(watch: Watch) -> None:
    """Raise the watch's exception here, if no delivery is claimed."""
    if watch._take():
        _watches.pop(threading.get_ident(), None)
        raise watch.exc


_CACHE = dis.opmap.get("CACHE", -1)


def _instruction_at(code: bytes, lasti: int) -> str:
    """The name of the instruction a frame is at: while it calls, on 3.12
    its f_lasti is the call's last inline cache entry (3.13: the call)."""
    while lasti > 0 and code[lasti] == _CACHE:
        lasti -= 2
    return dis.opname[code[lasti]]


# _call_site_raises()'s answers, by (id(code), offset) with the code itself
# (kept alive, as _loads_cache)
_sites_cache: dict[tuple[int, int], tuple[CodeType, bool]] = {}
_SITES_CACHED = 4096


def _call_site_raises(caller: FrameType) -> bool:
    """The part of the PY_START rule that the caller's code and position
    alone decide: called by a call instruction, not in threading's, queue's
    or threadinject's code, not by a release() or __exit__, not in a
    ``finally`` block before its release.  Cached: a watched thread asks at
    each call it makes, and a loop whose one call is in such a ``finally``
    spent most of each round in these questions (a round took 6-9x as long
    watched on 3.9.18-3.13.0, 2026-11-28: its kill found it at a safe moment
    that much less often)."""
    code, lasti = caller.f_code, caller.f_lasti
    entry = _sites_cache.get((id(code), lasti))
    if entry is not None and entry[0] is code:
        return entry[1]
    raises = not (_skipped(code)  # called by threading's, queue's or threadinject's own code
                  # called implicitly: by an operator, a property, a finalizer...
                  or _instruction_at(code.co_code, lasti) not in _CALLS
                  or code.co_name in _RELEASING  # by a release() or __exit__ that may not have released yet
                  or lasti in _landing.before_finally_release(code))
    if len(_sites_cache) >= _SITES_CACHED:
        _sites_cache.clear()
    _sites_cache[id(code), lasti] = code, raises
    return raises


def _start_raises(frame: FrameType, offset: int) -> bool:
    """The rest of the PY_START rule, for a call site where it may raise:
    `frame`, starting at `offset`, is not a release() or __exit__, nor
    called in a finally block further out before its release."""
    return frame.f_code.co_name not in _RELEASING and not _landing.skips_a_release(frame, offset)


def _raises_at_start(frame: FrameType, caller: FrameType | None, offset: int) -> bool:
    """Whether `frame`, a Python function starting at `offset`, may raise
    there (the PY_START rule: module docstring)."""
    if caller is None:  # called from no Python frame
        return False
    return _call_site_raises(caller) and _start_raises(frame, offset)


def _on_start(code: CodeType, offset: int) -> object:
    if code.co_filename in _PRIVATE_FILES:
        return _monitoring.DISABLE  # never raised there: not called there again
    watch = _watched()
    if watch is None:
        return None
    try:
        caller = sys._getframe(2)  # 0: this callback, 1: the frame that starts
    except ValueError:
        return None  # called from no Python frame
    # _raises_at_start(), its cached part first: a loop's call that never
    # raises costs its rounds no more (the starting frame's object is made
    # anew each call)
    if _call_site_raises(caller) and _start_raises(sys._getframe(1), offset):
        _raise(watch)
    return None


def _on_jump(code: CodeType, source: int, target: int) -> object:
    if target > source or _skipped(code) or _round_takes_or_gives_back_alone(code, source, target):
        return _monitoring.DISABLE  # never raised there: not called there again
    watch = _watched()
    if watch is None:
        return None
    if _landing.skips_a_release(sys._getframe(1), source):  # 0: this callback, 1: the loop's
        return None  # a loop in a finally block (here or further out) that has a release ahead
    _raise(watch)
    return None


_RESUME = dis.opmap.get("RESUME", -1)


def _starts_afresh(frame: FrameType) -> bool:
    """At a "call" event: whether `frame` starts (a call, or a generator's
    first run), rather than resumes (a generator after a yield: raising
    there would leave it without running the handlers it is inside)."""
    if _RESUME < 0:  # 3.9, 3.10: no instruction has run yet
        return frame.f_lasti < 0
    code = frame.f_code.co_code  # 3.11: at a RESUME whose argument says why
    return code[frame.f_lasti] == _RESUME and code[frame.f_lasti + 1] == 0


def _on_call(frame: FrameType) -> None:
    """The trace function of a thread kill() watches on 3.9-3.11
    (csrc/thread_trace.c), at each "call" event: the PY_START rule.  No
    line events (csrc/thread_trace.c says why): kill() judges loops by
    their frames, as it did before the watch."""
    code = frame.f_code
    if code.co_filename in _PRIVATE_FILES or not _starts_afresh(frame):
        return
    watch = _watched()
    # f_lasti is -1 at the start on 3.9 and 3.10
    if watch is not None and _raises_at_start(frame, frame.f_back, max(frame.f_lasti, 0)):
        _raise(watch)


def _on_release_call(code: CodeType, offset: int, callable: object, arg0: object) -> object:
    """CALL, in a code object whose release calls are watched
    (_watch_releases()): needed for its C_RETURN events, asked for at its
    release calls only."""
    return None if offset in _landing.release_calls(code) else _monitoring.DISABLE


def _on_release_return(code: CodeType, offset: int, callable: object, arg0: object) -> object:
    """C_RETURN of a release call (_on_release_call()): raise as the call
    returns, the lock let go, if no release is left ahead
    (_landing.released_soundly()).  Never DISABLE (sys.monitoring does not
    take it for C_RETURN: it would unregister the callback)."""
    watch = _watched()
    if watch is not None and _landing.released_soundly(sys._getframe(1), offset):  # 1: the calling frame
        _raise(watch)
    return None


def _set_events(events: int) -> None:
    assert _tool is not None
    _monitoring.set_events(_tool, events)


#: Whether the callbacks registered are the C module's filters
callbacks_in_c = False


def _callbacks() -> tuple[Callable[..., object], Callable[..., object]]:
    """The callbacks to register: the C module's (csrc/monitor_filter.c),
    which answer at once in threads no kill is aimed at and call _on_start
    and _on_jump in the others; these functions without it."""
    global callbacks_in_c
    core: Any = _backends.c_extension()
    if core is None:
        return _on_start, _on_jump
    core._monitor_setup(_watches, _on_start, _on_jump)
    callbacks_in_c = True
    return core._monitor_on_start, core._monitor_on_jump


def _register() -> bool:
    """Take a tool id and register the callbacks (once; stops the world)."""
    global _tool
    if _monitoring is None:
        return False
    for tool in _TOOL_IDS:
        try:
            _monitoring.use_tool_id(tool, _TOOL_NAME)
        except ValueError:  # in use
            continue
        on_start, on_jump = _callbacks()
        _monitoring.register_callback(tool, _monitoring.events.PY_START, on_start)
        _monitoring.register_callback(tool, _monitoring.events.JUMP, on_jump)
        _monitoring.register_callback(tool, _monitoring.events.CALL, _on_release_call)
        _monitoring.register_callback(tool, _monitoring.events.C_RETURN, _on_release_return)
        _tool = tool
        return True
    return False


class _ProbeRaised(BaseException):
    pass


_JUMP_PROBE = """
def probe(started, go, ran):
    n = 0
    started.set()
    go.wait()
    try:
        while n < 100_000_000:
            n += 1
    finally:
        ran.append(n)
"""


def _jumps_sound() -> bool:
    """Whether an exception raised by a JUMP callback runs the handlers that
    enclose the loop (called with PY_START|JUMP enabled, under _setup)."""
    namespace: dict[str, object] = {}
    exec(compile(_JUMP_PROBE, "<threadinject jump probe>", "exec"), namespace)
    probe = namespace["probe"]
    started, go = threading.Event(), threading.Event()
    ran: list[int] = []
    escaped: list[bool] = []

    def run() -> None:
        try:
            probe(started, go, ran)  # type: ignore[operator]
        except _ProbeRaised:
            escaped.append(True)

    thread = threading.Thread(target=run, name="threadinject jump probe", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # no new thread now (interpreter shutdown): JUMP unused
        return False
    started.wait()  # past the probe's own start, where PY_START would raise
    watch = Watch(_ProbeRaised())
    _watches[thread.ident] = watch  # type: ignore[index]
    try:
        go.set()
        thread.join(10)
    finally:
        _watches.pop(thread.ident, None)  # type: ignore[arg-type]  # (a raise takes it out)
    return not thread.is_alive() and watch.raised and bool(escaped) and bool(ran) and ran[0] < 100_000_000


def _arm() -> bool:
    """Enable the events (the first of the kills under way); False if this
    interpreter cannot."""
    global _events, _armed, _unavailable
    with _setup:
        if _unavailable:
            return False
        if _armed == 0:
            if _tool is None and not _register():
                _unavailable = True
                return False
            events = _monitoring.events
            if _events == 0:
                _set_events(events.PY_START | events.JUMP)
                _events = events.PY_START | (events.JUMP if _jumps_sound() else 0)
            _set_events(_events)
        _armed += 1
        return True


def _disarm() -> None:
    global _armed
    with _setup:
        _armed -= 1
        if _armed == 0:
            _set_events(0)


def _thread_tracer() -> Any:
    """The C module where it can trace one thread (3.9-3.11,
    csrc/thread_trace.c), else None."""
    if _monitoring is not None:
        return None
    core: Any = _backends.c_extension()
    return core if hasattr(core, "_trace_thread") else None


def _on_traced_release(frame: FrameType) -> None:
    """The profile function of a thread kill() watches on 3.9-3.11
    (csrc/thread_trace.c), as a C function named release or __exit__
    returns in `frame`: _on_release_return()'s rule, in any code but
    threading's, queue's and threadinject's."""
    if _skipped(frame.f_code):
        return
    watch = _watched()
    if watch is not None and _landing.released_soundly(frame, frame.f_lasti):
        _raise(watch)


def _trace(ident: int) -> bool:
    """Set the thread's trace function (its first watch, under _setup), and
    its profile function unless it has one of its own (a profiler's); False
    if this interpreter cannot, or the thread has a trace function of its
    own."""
    tracer = _thread_tracer()
    if tracer is None or not tracer._trace_thread(ident, _on_call):
        return False
    tracer._profile_releases(ident, _on_traced_release)
    return True


def _untrace(ident: int) -> None:
    """Undo _trace() (its last watch, under _setup), unless the thread took
    them away itself as it raised."""
    from . import _core  # it set the trace function (whatever the environment says now)

    _core._untrace_thread(ident, _on_call)
    _core._unprofile_releases(ident, _on_traced_release)


# by id(code), under _setup: the code objects whose release calls are
# watched (local CALL events, for their C_RETURN), and by how many watches
_releases_watched: dict[int, tuple[CodeType, int]] = {}


def _finally_releases_on_stack(ident: int) -> list[CodeType]:
    """The code objects of the thread's frames (GIL builds: none where
    frames cannot be read) that have a ``finally`` block with a release
    ahead (_landing.before_finally_release()), but not threading's, queue's
    or threadinject's."""
    codes: list[CodeType] = []
    frame = _frames.innermost(ident)
    while frame is not None:
        code = frame.f_code
        # by identity: code objects compare (and hash) by their whole contents
        if not _skipped(code) and _landing.before_finally_release(code) and all(c is not code for c in codes):
            codes.append(code)
        frame = frame.f_back
    return codes


def _watch_releases(codes: list[CodeType], watched: bool) -> None:
    """Watch the release calls of `codes` (or, `watched` False, stop one
    watch of them), under _setup."""
    assert _tool is not None
    for code in codes:
        _, count = _releases_watched.get(id(code), (code, 0))
        count += 1 if watched else -1
        if count == 0:
            del _releases_watched[id(code)]
        else:
            _releases_watched[id(code)] = code, count
        if count == int(watched):  # the first watch of it, or the last one gone
            _monitoring.set_local_events(_tool, code, _monitoring.events.CALL if watched else 0)


def deliver_again(ident: int, watch: Watch) -> None:
    """The thread `ident` did not get `watch`'s exception (CPython swallowed
    it: _swallowed.py): let the watch raise it again, where it may (as
    before: on 3.9-3.11 the trace and profile functions, which took
    themselves away as they raised, are set again)."""
    with _setup:
        watch._again()
        if _kills.get(ident, (None, 0))[0] is watch:
            _watches[ident] = watch
            if _monitoring is None:
                tracer = _thread_tracer()
                if tracer is not None:  # each False if still set
                    tracer._trace_thread(ident, _on_call)
                    tracer._profile_releases(ident, _on_traced_release)


def covers_loops() -> bool:
    """Whether the events raise in a thread that loops without calling a
    Python function (JUMP is used here: _jumps_sound)."""
    return bool(_events & _monitoring.events.JUMP) if _tool is not None else False


@contextlib.contextmanager
def watching(ident: int | None, exc: BaseException) -> Iterator[Watch | None]:
    """Within the block the thread `ident` raises `exc` at its next safe
    event (module docstring), unless the Watch yielded is claimed; a kill of
    that thread already under way shares its Watch, whose `exc` is then that
    kill's: the caller must deliver `watch.exc`, whatever way.  Before
    3.12 the thread's own trace function (csrc/thread_trace.c) applies
    PY_START's rule at its calls (_on_call), and nothing watches its loops.  Yields None where that
    cannot be done: no free tool id; 3.9-3.11 without the C extension, or
    a thread with a trace function of its own (a debugger's, coverage's);
    no thread (`ident` None: not started).  Free-threaded builds watch
    every kill; GIL builds only one that has withheld its exception for a
    while (_kill._WATCH_AFTER)."""
    traced = _monitoring is None
    if ident is None or not (traced or _arm()):
        yield None
        return
    releases = [] if traced else _finally_releases_on_stack(ident)
    with _setup:
        # kills of the same thread at once share one watch (and exception):
        # two would raise twice, the second maybe in the first's `finally`
        shared, sharing = _kills.get(ident, (None, 0))
        if shared is None and traced and not _trace(ident):
            watch = None
        else:
            watch = shared if shared is not None else Watch(exc, _active.get(ident))
            _kills[ident] = watch, sharing + 1
            if sharing == 0:
                _watches[ident] = watch
            if releases:
                _watch_releases(releases, True)
    if watch is None:
        yield None
        return
    try:
        yield watch
    finally:
        with _setup:
            watch, sharing = _kills.pop(ident)
            if sharing > 1:
                _kills[ident] = watch, sharing - 1
            else:
                _watches.pop(ident, None)
                if traced:
                    _untrace(ident)
            if releases:
                _watch_releases(releases, False)
        if not traced:
            _disarm()
