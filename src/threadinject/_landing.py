"""Where an injected exception lands after a woken call returns.

wake() makes a blocking C call return early (a fake timeout, an end of file,
a lock not acquired) and relies on the pending exception being raised before
any Python code sees that result: at the bytecode check that follows the
call.  Two places in CPython do not check right after the call; both are
probed once per process on a call site of our own (not read from the version
number) so that the wake policy follows the interpreter actually running:

* a with statement's ``__enter__``: from 3.11 no check follows it, so the
  exception lands at the first check inside the block (or in ``__exit__``),
  and ``__exit__`` runs as if the block had been entered; 3.14.10 raises it
  at the ``__enter__`` call instead (gh-148874), 3.15 inside again;
* a keyword-argument call (``lock.acquire(timeout=5)``) whose call site has
  not been specialised yet: 3.14 and 3.15's generic CALL_KW has no check
  (Include/internal/pycore_opcode_metadata.h: CALL_KW lacks
  HAS_EVAL_BREAK_FLAG, CALL_KW_NON_PY has it), so the statements after the
  call run with the fake result first.

And where an exception lands in a thread that was not in a call but stopped
at a check to give the GIL to another thread (the thread kill() runs in):
up to 3.12 at that very check, which reads the pending exception after it
has taken the GIL back; from 3.13 at the *next* check, because
``_Py_HandlePending`` reads the thread's eval breaker once, before it gives
the GIL up, and acts on that copy (Python/ceval_gil.c, 3.13.5; the same
code in 3.14 and 3.15).  A thread looping on ``lock.acquire(); try: ...
finally: lock.release()``, seen stopped at the loop's back edge, took the
kill right after its next acquire(): killed 200 times, it left the lock held
14 times on 3.13.0 and 15 on 3.14.10 and 3.15.2, never on 3.12.1
(2026-11-27).  next_checks() says where those next checks can be.
"""

from __future__ import annotations

import dis
import functools
import gc
import sys
import threading
import time
from types import CodeType, FrameType
from typing import Callable, NamedTuple

from . import _frames

__all__ = ["LANDS_AT_NEXT_CHECK", "at_unchecked_call", "before_finally_release", "entering_with",
           "lands_inside_with", "next_checks", "release_calls", "released_soundly", "skips_a_release",
           "unprotected_cleanup", "with_exits"]

_WITH_ENTRY = {"SETUP_WITH", "BEFORE_WITH"}  # 3.9-3.10, 3.11-3.13

#: A thread stopped at a check to give up the GIL takes an exception
#: scheduled meanwhile at its next check (see the module's docstring).
LANDS_AT_NEXT_CHECK = sys.version_info >= (3, 13)

# 3.13+ opcodes (next_checks() is used there only): where the eval breaker
# is checked, in the code a thread runs on from a check (a call's end, or
# the RESUME of the Python function it calls; a loop's back edge), how a
# frame is left, and the jumps that do not fall through
_RETURNS = frozenset({"RETURN_VALUE", "RETURN_CONST", "YIELD_VALUE"})
_RAISES = frozenset({"RAISE_VARARGS", "RERAISE"})
_ALWAYS_JUMPS = frozenset({"JUMP_FORWARD", "JUMP_BACKWARD_NO_INTERRUPT", "JUMP", "JUMP_NO_INTERRUPT"})


@functools.lru_cache(maxsize=256)
def _with_entries(code: CodeType) -> frozenset[int]:
    """Offsets of the instructions that call a with statement's __enter__."""
    offsets = set()
    previous = None
    for instruction in dis.get_instructions(code):
        if instruction.opname in _WITH_ENTRY or (
            # 3.14+: LOAD_SPECIAL __enter__; CALL 0
            instruction.opname == "CALL" and previous is not None
            and previous.opname == "LOAD_SPECIAL" and previous.argrepr == "__enter__"
        ):
            offsets.add(instruction.offset)
        previous = instruction
    return frozenset(offsets)


def entering_with(frame: FrameType | None) -> bool:
    """Whether the frame is calling the __enter__ of a with statement."""
    return frame is not None and frame.f_lasti in _with_entries(frame.f_code)


@functools.lru_cache(maxsize=256)
def _keyword_calls(code: CodeType) -> frozenset[int]:
    """Offsets of the keyword calls (CALL_KW, 3.13+) in the code."""
    return frozenset(i.offset for i in dis.get_instructions(code) if i.opname == "CALL_KW")


@functools.lru_cache(maxsize=256)
def with_exits(code: CodeType) -> frozenset[int]:
    """Offsets of the calls of a with statement's __exit__, with their
    inline caches (where a frame further out is while a Python __exit__
    runs, 3.11-3.12): as its block ends (three Nones loaded, then the call,
    which 3.11 makes with PRECALL and CALL; up to 3.10 one None and two
    DUP_TOPs), and as an exception leaves it (WITH_EXCEPT_START)."""
    offsets, nones = set(), 0
    instructions = list(dis.get_instructions(code))
    for instruction, following in zip(instructions, [*instructions[1:], None]):
        name = instruction.opname
        if name == "WITH_EXCEPT_START":
            offsets.add(instruction.offset)
        elif (name.startswith("CALL") or name == "PRECALL") and nones >= 3:  # 3.11: PRECALL, then CALL
            end = following.offset if following is not None else instruction.offset + 2
            offsets.update(range(instruction.offset, end, 2))
        if name in ("LOAD_CONST", "LOAD_COMMON_CONSTANT") and instruction.argrepr == "None":
            nones = 1 if sys.version_info < (3, 11) else nones + 1  # 3.15: LOAD_COMMON_CONSTANT None
        elif name != "PRECALL":  # 3.11's CALL follows its PRECALL: still the exit's
            nones = nones + 1 if nones and name == "DUP_TOP" else 0
    return frozenset(offsets)


@functools.lru_cache(maxsize=256)
def unprotected_cleanup(code: CodeType) -> frozenset[int]:
    """Offsets of the instructions, up to 3.10, that run a ``finally``
    block or a with statement's ``__exit__`` call on the normal path: after
    the POP_BLOCK that ended the protected block and before the handler's
    own copy (a SETUP_FINALLY/SETUP_WITH target).  An exception landing
    there skips the rest of the cleanup: after ``lock.acquire(); try: ...
    finally: lock.release()`` the lock stays held.  3.9 checks for one at
    nearly every instruction (a thread looping so was killed right there in
    77 of 200 kills on 3.9.18, 2026-11-27); 3.10 only after calls and on
    back edges, so only a call in such a block can be followed by one.
    Only up to the last call there that lets a lock go (a ``release()``, the
    ``__exit__`` call), included: past it nothing is left held, and a thread
    looping on such a block would be found nowhere else to be killed (the
    release's end is one of the few checks 3.10 stops at there)."""
    instructions = list(dis.get_instructions(code))
    handlers = sorted(i.argval for i in instructions
                      if i.opname in ("SETUP_FINALLY", "SETUP_WITH", "SETUP_ASYNC_WITH"))
    releasing = _frames.calls_naming(code, _frames.RELEASING) | with_exits(code)
    offsets: set[int] = set()
    for instruction in instructions:
        if instruction.opname == "POP_BLOCK":
            end = next((h for h in handlers if h > instruction.offset), 0)
            last = max((offset for offset in releasing if instruction.offset < offset < end), default=None)
            if last is not None:
                offsets.update(range(instruction.offset + 2, last + 2, 2))
    return frozenset(offsets)


# _releases()'s answers, by id(code) with the code itself (kept alive):
# asked at every Python call a watched thread makes (_monitor.py)
_cleanup_cache: dict[int, _Releases] = {}
_CLEANUP_CACHED = 512


class _Releases(NamedTuple):
    """Where a code object lets locks go (skips_a_release())."""

    code: CodeType
    before: frozenset[int]
    """before_finally_release()"""
    calls: frozenset[int]
    """its release calls and with statements' exits, inline caches included"""
    last: int
    """the offset of its last release call; -1: none"""
    after: dict[int, int]
    """for each release call (the instruction's own offset): the offset of
    the instruction after it"""


_LEAVES = frozenset({"RETURN_VALUE", "RETURN_CONST", "RERAISE", "RAISE_VARARGS"})
_JUMPS = frozenset({"JUMP_FORWARD", "JUMP_ABSOLUTE", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "JUMP",
                    "JUMP_NO_INTERRUPT"})


def before_finally_release(code: CodeType) -> frozenset[int]:
    """Offsets in a ``finally`` block of `code` from which a call that
    lets a lock go (``release()``, ``__exit__``) is still ahead in that
    block, up to that call (a frame *at* the call: skips_a_release()).  An
    exception landing there skips it: after ``lock.acquire(); try: ...
    finally: log(); lock.release()``, one landing in ``log()`` leaves the
    lock held (killed 100 times at random moments, such a loop kept the
    lock 92 times on 3.9.18, 88 on 3.12.1 and 23 on 3.13.0, 2026-11-27).

    Found by lines, on every version: the compiler emits a ``finally`` body
    once for each way out of its ``try`` (the normal path, the exceptional
    one, each return/break/continue), so its lines occur in more than one
    run of instructions, where other code's lines occur in one (a few
    others, a 3.12 ``while`` condition copied to the loop's end, say, only
    make the answer err towards too many).  From each such call on a
    repeated line, back over the instructions on repeated lines (or none)
    up to where that copy of the block begins: after an earlier release,
    an instruction that does not fall through (a return, a raise, a jump
    past the call), or a back edge to a line outside finally blocks (an
    enclosing loop's)."""
    return _releases(code).before


def _releases(code: CodeType) -> _Releases:
    """Where `code` lets locks go, found once per code object."""
    entry = _cleanup_cache.get(id(code))
    if entry is not None and entry[0] is code:
        return entry
    instructions = list(dis.get_instructions(code))
    lines = _frames.line_numbers(instructions)
    runs: dict[int, int] = {}
    previous = None
    for line in lines:
        if line is not None and line != previous:
            runs[line] = runs.get(line, 0) + 1
            previous = line
    repeated = {line for line, count in runs.items() if count > 1}
    line_at = {instruction.offset: line for instruction, line in zip(instructions, lines)}
    releases = _frames.calls_naming(code, _frames.RELEASING)
    calls = [i for i, instruction in enumerate(instructions)
             if instruction.offset in releases and instruction.opname.startswith("CALL")]
    # where a frame is once it has made the call: 3.11 makes a C call in a
    # specialised PRECALL, before the CALL
    made = {i: instructions[i - 1].offset if i and instructions[i - 1].opname == "PRECALL"
            else instructions[i].offset for i in calls}
    offsets: set[int] = set()
    for i in calls:
        if lines[i] not in repeated:
            continue
        call = instructions[i].offset
        start = i
        while start > 0:
            before = instructions[start - 1]
            line = lines[start - 1]
            if (line is not None and line not in repeated) or start - 1 in calls or before.opname in _LEAVES:
                break  # other code's line, an earlier release, or the end of code it cannot come from
            if before.opname in _JUMPS and isinstance(before.argval, int) and (
                    before.argval > call or (before.argval < before.offset
                    and line_at.get(before.argval) not in repeated)):
                break  # a jump past this release (the end of another copy), or an enclosing loop's back edge
            start -= 1
        offsets.update(range(instructions[start].offset, made[i], 2))
    if len(_cleanup_cache) >= _CLEANUP_CACHED:
        _cleanup_cache.clear()
    last = made[calls[-1]] if calls else -1
    every = releases | with_exits(code)
    after = {instruction.offset: following.offset
             for instruction, following in zip(instructions, instructions[1:]) if instruction.offset in every}
    found = _cleanup_cache[id(code)] = _Releases(code, frozenset(offsets), every, last, after)
    return found


def skips_a_release(frame: FrameType, offset: int) -> bool:
    """Whether an exception landing in `frame` at `offset` (the frames it
    called having returned) would skip a call that lets a lock go, on its
    way out through the frames further out (GIL builds, or the thread's own
    frames): one of them is in a ``finally`` block before its release
    (before_finally_release()), or one further out is at such a call or at
    a with statement's exit (with_exits()), in a Python ``release()`` or
    ``__exit__`` that has yet to make its own last such call.  A frame at
    such a call has made it, unless that call is under way in the frame it
    called (a C function's call: ended, or under way as a woken system
    call is; a wrapper's ``release()`` lets go of its lock with its last
    line, as a rule)."""
    current: FrameType | None = frame
    position, released = offset, False
    while current is not None:
        found = _releases(current.f_code)
        if position in found.before or (current is not frame and not released and position in found.calls):
            return True
        released = position >= found.last >= 0
        current = current.f_back
        position = current.f_lasti if current is not None else -1
    return False


def release_calls(code: CodeType) -> frozenset[int]:
    """Offsets of the calls of `code` that let a lock go: ``release()``
    (by name: _frames.calls_naming()) and a with statement's exit, their
    inline caches included."""
    return _releases(code).calls


def released_soundly(frame: FrameType, offset: int) -> bool:
    """Whether `frame` may raise an exception as its call at `offset`
    returns, that call being a C function's ``release()`` or ``__exit__``
    (which has let its lock go): it is one of the code's release calls
    (_releases()), and an exception coming out of it skips no release ahead,
    in this frame (a later one in the same ``finally`` block) or further out
    (skips_a_release() from the instruction after the call)."""
    found = _releases(frame.f_code)
    following = found.after.get(offset)
    return following is not None and not skips_a_release(frame, following)


# _checks_after()'s answers, by id(code) with the code itself (kept alive):
# a code object hashes its whole contents on every hash()
_checks_cache: dict[int, tuple[CodeType, dict[int, tuple[frozenset[int], bool, bool]]]] = {}
_CHECKS_CACHED = 512


def _checks_after(code: CodeType, offset: int) -> tuple[frozenset[int], bool, bool]:
    """_scan_checks(), cached."""
    entry = _checks_cache.get(id(code))
    if entry is None or entry[0] is not code:
        if len(_checks_cache) >= _CHECKS_CACHED:
            _checks_cache.clear()
        entry = _checks_cache[id(code)] = (code, {})
    found = entry[1].get(offset)
    if found is None:
        found = entry[1][offset] = _scan_checks(code, offset)
    return found


def _scan_checks(code: CodeType, offset: int) -> tuple[frozenset[int], bool, bool]:
    """From the instruction after `offset`, every path through `code` up to
    its first check: the offsets of those checks (calls and back edges),
    whether a path leaves the frame first (a return or a yield: the caller
    goes on), and whether one raises first (the handlers' checks are not
    followed).  A generic CALL_KW may not check (see the module's
    docstring): counted, and followed past."""
    instructions = list(dis.get_instructions(code))
    index = {instruction.offset: i for i, instruction in enumerate(instructions)}
    start = next((i for i, instruction in enumerate(instructions) if instruction.offset > offset),
                 len(instructions))
    if start and instructions[start - 1].opname == "JUMP_BACKWARD":  # stopped at a back edge: it goes on
        start = index.get(instructions[start - 1].argval, start)     # at the loop's head
    checks: set[int] = set()
    leaves = raises = False
    todo, seen = [start], set()
    while todo:
        i = todo.pop()
        while i < len(instructions) and i not in seen:
            seen.add(i)
            instruction = instructions[i]
            name = instruction.opname
            if name.startswith("CALL") and not name.startswith("CALL_INTRINSIC"):
                checks.add(instruction.offset)
                if name != "CALL_KW":
                    break
            elif name == "JUMP_BACKWARD":
                checks.add(instruction.offset)
                break
            elif name in _RETURNS:
                leaves = True
                break
            elif name in _RAISES:
                raises = True
                break
            if instruction.opcode in getattr(dis, "hasjump", ()) and instruction.argval in index:
                if name in _ALWAYS_JUMPS:
                    i = index[instruction.argval]
                    continue
                todo.append(index[instruction.argval])
            i += 1
    return frozenset(checks), leaves, raises


def next_checks(frame: FrameType, lasti: int, depth: int = 16) -> list[tuple[FrameType, int]] | None:
    """Where a thread stopped at a check in `frame` (at `lasti`) can
    next check for an asynchronous exception, 3.13+: (frame, offset of the
    call or back edge) pairs, in this frame or, where a path returns first,
    in its callers.  A call's check is at its end, or at the start of the
    Python function it calls (the exception then comes out of the call,
    nothing of the callee done).  None if it cannot be told: a path raises
    first, or leaves more than `depth` frames."""
    found: list[tuple[FrameType, int]] = []
    current: FrameType | None = frame
    while current is not None and depth > 0:
        checks, leaves, raises = _checks_after(current.f_code, lasti if current is frame else current.f_lasti)
        if raises:
            return None
        found.extend((current, offset) for offset in sorted(checks))
        if not leaves:
            return found
        current, depth = current.f_back, depth - 1
    return found if current is None else None


def _live_opname(frame: FrameType) -> str | None:
    """The instruction the frame executes, as specialised now (3.12+)."""
    if sys.version_info < (3, 12):
        return None
    for instruction in dis.get_instructions(frame.f_code, adaptive=True):
        if instruction.offset == frame.f_lasti:
            return instruction.opname
    return None


class _Landed(BaseException):
    pass


def _in_probe_thread(probe: Callable[[], None]) -> bool:
    """Run `probe` in a thread of its own; False if no thread can be started
    (at interpreter exit): the caller then answers conservatively.

    A collection that runs in the probe thread while its exception is
    pending (CPython handles a due collection before the asynchronous
    exception) runs finalizers and gc.callbacks there, and their code takes
    the exception: it is printed as "Exception ignored in ..." and the probe
    learns nothing (each probe then answers "unknown", uncached).  A young
    collection first makes one due in those few bytecodes unlikely (one
    needs hundreds of allocations), though other threads allocating can
    still make one due."""

    def run() -> None:
        gc.collect(0)
        probe()

    # threading.Thread: the C backend's inject() wants a registered thread
    prober = threading.Thread(target=run, name="threadinject-landing-probe")
    try:
        prober.start()
    except RuntimeError:
        return False
    prober.join()
    return True


_inside_with: bool | None = None


def lands_inside_with(core: object) -> bool:
    """Whether an exception scheduled while a C-level __enter__ runs (as a
    lock's is, when its acquire returns) lets the with statement call
    __exit__ (landing inside the block, or in an __exit__ called as the block
    ends), rather than landing before the block."""
    global _inside_with
    if _inside_with is None:
        landed: list[BaseException] = []
        exits: list[object] = []

        class EnterSchedules:
            def __exit__(self, *exc_info: object) -> None:
                exits.append(exc_info[0])

        def probe() -> None:
            # C code as __enter__, like a lock's: no Python frame to land in
            schedule = functools.partial(core.inject, threading.get_ident(), _Landed)  # type: ignore[attr-defined]
            EnterSchedules.__enter__ = staticmethod(schedule)  # type: ignore[attr-defined]
            try:
                with EnterSchedules():  # type: ignore[attr-defined]
                    pass
                time.sleep(0)  # a call: lands here at the latest
            except _Landed as landing:
                landed.append(landing)

        if not _in_probe_thread(probe):
            return True  # unknown: the answer that defers the wake
        if not landed:
            # taken by code the GC ran in the probe thread (_in_probe_thread):
            # seen once in the suite.  Unknown: not cached
            return True
        # Called with the exception once it has landed in the block (3.9,
        # 3.10); else, being Python code, it is where the exception lands, as
        # it starts (3.11+): then the traceback shows it was called.
        exit_code = EnterSchedules.__exit__.__code__
        called = bool(exits)
        tb = landed[0].__traceback__ if landed else None
        while tb is not None:
            called = called or tb.tb_frame.f_code is exit_code
            tb = tb.tb_next
        _inside_with = called
    return _inside_with


_KEYWORD_CALL_PROBE = """
def probe(items, schedule, ran_on):
    sorted(items, key=schedule)   # a keyword call of C code, first run
    ran_on.append(True)
"""

_late_after_keyword_call: bool | None = None


def _lands_late_after_keyword_call(core: object) -> bool:
    """Whether an exception scheduled inside a C function called with
    keywords, from a call site running for the first time, lets the next
    statement run first."""
    global _late_after_keyword_call
    if _late_after_keyword_call is None:
        ran_on: list[bool] = []
        landed: list[bool] = []

        def probe() -> None:
            namespace: dict[str, object] = {}
            exec(compile(_KEYWORD_CALL_PROBE, "<threadinject probe>", "exec"), namespace)
            # key(_Landed) is inject(ident, _Landed): C code all the way
            schedule = functools.partial(core.inject, threading.get_ident())  # type: ignore[attr-defined]
            try:
                namespace["probe"]([_Landed], schedule, ran_on)  # type: ignore[operator]
                time.sleep(0)
            except _Landed:
                landed.append(True)

        if not _in_probe_thread(probe) or not landed:
            return True  # unknown (see lands_inside_with): the answer that defers the wake
        _late_after_keyword_call = bool(ran_on)
    return _late_after_keyword_call


def at_unchecked_call(frame: FrameType | None, core: object) -> bool:
    """Whether the frame waits in a call after which no check follows, so
    that code after it would see a woken call's fake result first."""
    # only a keyword call site can be the unspecialised CALL_KW: the adaptive
    # disassembly (not cacheable, it changes as the site specialises) is
    # done for those alone, as kill() asks every few milliseconds
    if frame is None or frame.f_lasti not in _keyword_calls(frame.f_code):
        return False
    if _live_opname(frame) != "CALL_KW":
        return False
    return _lands_late_after_keyword_call(core)
