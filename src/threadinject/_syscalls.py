"""Policy for waking threads blocked in system calls (Linux x86-64 and
aarch64, C backend).

The mechanism is in csrc/wake_linux.c: the thread is sent a real-time
signal, and the handler substitutes the result of the one system call it was
found blocked in.  This module decides which calls, with which results, and
whether the call was made by the interpreter at all.

Results, chosen so that CPython's retry loop ends and the pending exception is
raised before any Python code sees the substitute:

* sleeps (nanosleep, clock_nanosleep) return 0: the sleep has completed;
* select, pselect6, poll, ppoll, epoll_wait* return 0 (timeout), select's fd
  sets cleared: selectors and select() report nothing ready;
* read, readv, pread64, recvfrom, recvmsg return 0: end of file.  The
  exception is raised at the bytecode check that follows the call, so no
  Python code acts on the empty read (C code that loops on reads, such as a
  buffered reader, returns what it had);
* wait4, waitid return 0 ("no child changed state"): os.waitpid() returns
  (0, 0) and subprocess loops, so the child is not taken for dead.

Lock waits (futex) have their own policy, in _locks.py.  Not handled before
3.15: accept/accept4: no result can stand for a new connection, and any error
(ECONNABORTED, EAGAIN) is raised by CPython as an OSError that the caller's
``except`` clause runs on before the injected exception lands; the same holds
for connect, send and write.

From CPython 3.15 (gh-144748), PyErr_CheckSignals() raises a pending
asynchronous exception, and CPython calls it when a system call returns EINTR:
there the handler only interrupts (the call returns EINTR) and changes
nothing.  That also ends the calls whose EINTR loop calls it and that no
substitute fits (_ENDED_BY_EINTR_FROM_315).
"""

from __future__ import annotations

import os
import platform
import signal
import sys
import sysconfig
import time
from typing import NamedTuple

_MACHINE = platform.machine() if sys.platform.startswith("linux") else ""


def _read_mappings() -> list[tuple[int, int, bool, str]]:
    """/proc/self/maps as (start, end, executable, path)."""
    parsed = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            start, end = (int(x, 16) for x in parts[0].split("-"))
            path = parts[5].strip() if len(parts) == 6 else ""
            parsed.append((start, end, "x" in parts[1], path))
    return parsed


_maps: tuple[float, list[tuple[int, int, bool, str]]] = (0.0, [])


def _mappings() -> list[tuple[int, int, bool, str]]:
    """_read_mappings(), re-read at most once a second: a kill wakes
    repeatedly, and parsing it each time starved the killing thread under
    load (seen on 3.13t)."""
    global _maps
    now = time.monotonic()
    if now - _maps[0] > 1.0:
        _maps = (now, _read_mappings())
    return _maps[1]


def _c_library() -> str:
    """'glibc', 'musl', or '' (another, or not known)."""
    try:
        if (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc "):  # "glibc 2.36"
            return "glibc"
    except (ValueError, OSError):  # musl answers EINVAL
        pass
    try:
        if any(_is_musl(path) for _, _, _, path in _read_mappings()):  # not cached: read once
            return "musl"
    except OSError:
        pass
    return ""


def _is_musl(path: str) -> bool:
    """musl's C library, which is also its dynamic loader: Alpine maps it as
    /lib/ld-musl-x86_64.so.1, Debian as /usr/lib/x86_64-linux-musl/libc.so."""
    name = os.path.basename(path)
    return name.startswith(("ld-musl-", "libc.musl-")) or os.path.dirname(path).endswith("-linux-musl")


_LIBC = _c_library() if _MACHINE else ""
_GIL = not sysconfig.get_config_var("Py_GIL_DISABLED")
#: aarch64 releases the system-call wake is run on (tools/arm64-vm: Debian's
#: arm64 3.9 from bullseye, 3.11 from bookworm, 3.13-3.15 from sid, GIL builds).
#: No Debian release has an arm64 3.10 or 3.12, and the free-threaded paths,
#: which judge futex waits from memory, are not run there: not enabled.
_AARCH64_BEFORE_313_RUN_ON = ((3, 9), (3, 11))
#: musl releases it is run on (x86-64, tools/musl-python: 3.13 built with
#: musl-gcc; no registry here serves a musl CPython)
_MUSL_RUN_ON = ((3, 13),)
#: System calls are woken: where that is tested.  glibc: x86-64, and aarch64
#: as above; musl: x86-64, as above.  Another C library (its semaphores, its
#: system-call wrappers) gets PLATFORM_UNSUPPORTED.
SUPPORTED = (_LIBC == "glibc" and (_MACHINE == "x86_64" or (
    _MACHINE == "aarch64" and _GIL
    and (sys.version_info[:2] in _AARCH64_BEFORE_313_RUN_ON or sys.version_info >= (3, 13))))
) or (_LIBC == "musl" and _MACHINE == "x86_64" and _GIL and sys.version_info[:2] in _MUSL_RUN_ON)
#: Lock waits are told apart (_locks.py), and the few that are sound to end
#: ended: wherever system calls are woken
LOCK_WAITS = SUPPORTED

#: CPython raises a pending asynchronous exception after EINTR (gh-144748).
CPYTHON_RAISES_AFTER_EINTR = sys.version_info >= (3, 15)


class Substitute(NamedTuple):
    name: str
    result: int
    zero_fdsets: bool = False


# What a woken call returns instead of -EINTR, by name, whatever the
# architecture: each ends CPython's retry loop before Python code can act on
# it (the module's docstring)
_SUBSTITUTES_BY_NAME = {known.name: known for known in (
    Substitute("read", 0), Substitute("pread64", 0), Substitute("readv", 0),
    Substitute("recvfrom", 0), Substitute("recvmsg", 0),
    Substitute("poll", 0), Substitute("ppoll", 0),
    Substitute("select", 0, zero_fdsets=True), Substitute("pselect6", 0, zero_fdsets=True),
    Substitute("epoll_wait", 0), Substitute("epoll_pwait", 0), Substitute("epoll_pwait2", 0),
    Substitute("nanosleep", 0), Substitute("clock_nanosleep", 0),
    Substitute("wait4", 0), Substitute("waitid", 0),
)}

# Calls whose EINTR retry loop in CPython calls PyErr_CheckSignals(), so that
# from 3.15 an interrupt alone raises the pending exception from the call
# (CPython main, checked 2026-11-26: Modules/socketmodule.c sock_call_ex() for
# accept and send, internal_connect(); Python/fileutils.c _Py_write_impl();
# Modules/posixmodule.c os_writev_impl(); Modules/fcntlmodule.c fcntl_flock_impl()).
_ENDED_BY_EINTR_FROM_315 = frozenset({
    "accept", "accept4", "connect", "sendto", "sendmsg", "write", "writev", "flock",
})
_EINTR = 4

# The numbers of the calls named above, and of a few more we name, per
# architecture.  arch/x86/entry/syscalls/syscall_64.tbl:
_X86_64 = {
    0: "read", 17: "pread64", 19: "readv", 45: "recvfrom", 47: "recvmsg", 7: "poll", 271: "ppoll",
    23: "select", 270: "pselect6", 232: "epoll_wait", 281: "epoll_pwait", 441: "epoll_pwait2",
    35: "nanosleep", 230: "clock_nanosleep", 61: "wait4", 247: "waitid",
    43: "accept", 288: "accept4", 42: "connect", 44: "sendto", 46: "sendmsg",
    1: "write", 20: "writev", 73: "flock",
    202: "futex", 72: "fcntl", 128: "rt_sigtimedwait", 130: "rt_sigsuspend", 34: "pause",
}
# The kernel's generic table, which aarch64 uses (include/uapi/asm-generic/unistd.h):
# it has no select, poll, epoll_wait or accept without 4... only their newer forms.
_GENERIC = {
    63: "read", 67: "pread64", 65: "readv", 207: "recvfrom", 212: "recvmsg", 73: "ppoll",
    72: "pselect6", 22: "epoll_pwait", 441: "epoll_pwait2",
    101: "nanosleep", 115: "clock_nanosleep", 260: "wait4", 95: "waitid",
    202: "accept", 242: "accept4", 203: "connect", 206: "sendto", 211: "sendmsg",
    64: "write", 66: "writev", 32: "flock",
    98: "futex", 25: "fcntl", 137: "rt_sigtimedwait", 133: "rt_sigsuspend",
}

# The names of the running architecture's calls that we know, and what of
# the above applies to each number
_NAMES: dict[int, str] = (
    _X86_64 if _MACHINE == "x86_64" else _GENERIC if _MACHINE == "aarch64" else {})
_SUBSTITUTES = {number: _SUBSTITUTES_BY_NAME[name] for number, name in _NAMES.items()
                if name in _SUBSTITUTES_BY_NAME}
_ENDED_BY_EINTR = {number: name for number, name in _NAMES.items() if name in _ENDED_BY_EINTR_FROM_315}


def substitute_for(number: int) -> Substitute | None:
    if not SUPPORTED:
        return None
    found = _SUBSTITUTES.get(number)
    if found is None and CPYTHON_RAISES_AFTER_EINTR and number in _ENDED_BY_EINTR:
        # the interrupt's own result, -EINTR: nothing to substitute
        found = Substitute(_ENDED_BY_EINTR[number], -_EINTR)
    return found


_NUMBERS = {name: number for number, name in _NAMES.items()}


def name_of(number: int) -> str:
    """The call's name, by the running architecture's numbers."""
    return _NAMES.get(number, f"syscall {number}")


def number_of(name: str) -> int | None:
    """The running architecture's number of the call `name`, if known."""
    return _NUMBERS.get(name)


FUTEX = _NUMBERS.get("futex", -1)


class Blocked(NamedTuple):
    number: int
    args: tuple[int, ...]
    """The call's six arguments."""
    sp: int
    ip: int

    @property
    def arg0(self) -> int:
        return self.args[0]


def _task_file(native_id: int, name: str) -> str:
    """The thread's /proc file `name`, read with plain system calls: no file
    objects, whose allocations can start a garbage collection, which on a
    free-threaded build waits for every thread to stop (seen taking 0.3 s a
    read on 3.13t with more busy threads than cores)."""
    fd = os.open(f"/proc/self/task/{native_id}/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 4096).decode("ascii", "replace")
    finally:
        os.close(fd)


def blocked_call(native_id: int) -> Blocked | None:
    """What /proc says the thread is blocked in; None if it is running."""
    fields = _task_file(native_id, "syscall").split()
    if not fields or fields[0] == "running" or int(fields[0]) < 0:
        return None
    args = tuple(int(field, 16) for field in fields[1:7])
    return Blocked(int(fields[0]), args, int(fields[7], 16), int(fields[8], 16))


# ---------------------------------------------------------------------------
# Reading memory that may go away: the stack of a thread that may end, the
# words of a lock that may be freed.  /proc/self/mem answers EIO for an
# unmapped address where a plain load would crash the process.

_mem_fd: int | None = None


def _forget_mem_fd() -> None:
    # after fork() the inherited descriptor still reads the parent's memory
    global _mem_fd
    _mem_fd = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_mem_fd)


def read_memory(address: int, size: int) -> bytes | None:
    """`size` bytes at `address` of this process, or None if unreadable."""
    global _mem_fd
    # pread()'s offset is a signed 64-bit off_t: words read from memory that
    # is not what we hoped (a futex word that is no parking-lot entry) can
    # name any address, and none at or above 2**63 is mapped
    if not 0 < address < (1 << 63) - size:
        return None
    if _mem_fd is None:
        _mem_fd = os.open("/proc/self/mem", os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.pread(_mem_fd, size, address)
    except OSError:
        return None
    return data if len(data) == size else None


def words(data: bytes) -> list[int]:
    """`data` as native 64-bit words."""
    return [int.from_bytes(data[i:i + 8], "little") for i in range(0, len(data) - 7, 8)]


def read_word(address: int) -> int | None:
    data = read_memory(address, 8)
    return None if data is None else words(data)[0]


def signal_blocked(native_id: int, signo: int) -> bool:
    """Whether the thread blocks `signo` (SigBlk in its /proc status)."""
    for line in _task_file(native_id, "status").splitlines():
        if line.startswith("SigBlk:"):
            return bool(int(line.split()[1], 16) & (1 << (signo - 1)))
    return False


def voluntary_switches(native_id: int) -> int:
    """How often the thread has blocked so far (voluntary_ctxt_switches in
    its /proc status): each new wait raises it, so two reads that show the
    same system call and the same count saw the same wait."""
    for line in _task_file(native_id, "status").splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return -1


def cpu_time(native_id: int) -> tuple[int, int]:
    """CPU time the thread has used so far, in ns, and how coarse that
    figure is (ns): exact from its /proc schedstat, else counted in clock
    ticks."""
    try:
        return int(_task_file(native_id, "schedstat").split()[0]), 1
    except FileNotFoundError:  # a kernel without CONFIG_SCHED_INFO
        tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
        return cpu_ticks(native_id) * tick, tick


def cpu_ticks(native_id: int) -> int:
    """CPU time the thread has used so far (user + system, in clock ticks:
    fields 14 and 15 of its /proc stat, after the parenthesised name)."""
    fields = _task_file(native_id, "stat").rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


# ---------------------------------------------------------------------------
# Who made the call: the interpreter (python binary, libpython, lib-dynload),
# or third-party native code, whose handling of a substituted result we
# cannot know.

_INTERPRETER_MARKERS = ("/lib-dynload/", "libpython")


def _is_libc(path: str) -> bool:
    """The C library, or a sanitizer runtime whose interceptors wrap its
    calls and hand their results back unchanged (ASan's read(), select()...:
    `nox -s asan` runs the suite with it preloaded)."""
    name = os.path.basename(path)
    return name.startswith(("libc.so", "libc-", "ld-linux", "ld-musl", "libpthread", "libasan.so"))


def _is_interpreter(path: str) -> bool:
    if any(marker in path for marker in _INTERPRETER_MARKERS):
        return True
    try:
        return os.path.realpath(path) == os.path.realpath(sys.executable)
    except OSError:
        return False


def in_c_library(ip: int) -> bool:
    """Whether the address lies in the C library (where CPython's system
    calls are made; under valgrind, for one, they are made elsewhere)."""
    return any(start <= ip < end and _is_libc(path) for start, end, executable, path in _mappings()
               if executable)


def called_from_interpreter(sp: int, depth: int = 256) -> bool | None:
    """Whether the first return address above the C library on the blocked
    thread's stack lies in the interpreter.  None: no code address found.

    On aarch64 a call keeps its return address in a register (x30), which a
    function saves on the stack only if it calls another: the C library's
    wrappers of the calls woken here do (glibc's cancellation points), but a
    third-party function calling a leaf wrapper (glibc's syscall()) leaves
    no address of its own here, so the scan reaches its caller's frame."""
    mappings = _mappings()
    stack = next(((start, end) for start, end, _, _ in mappings if start <= sp < end), None)
    if stack is None:
        return None
    code = [(start, end, path) for start, end, executable, path in mappings if executable]
    size = min(depth * 8, stack[1] - sp)
    # The thread is blocked in the kernel: its stack does not change under us
    # (and if it has just ended, the read fails instead of crashing).
    raw = read_memory(sp, size)
    if raw is None:
        return None
    for value in words(raw):
        for start, end, path in code:
            if start <= value < end:
                if _is_libc(path):
                    break  # still inside the C library's wrapper: look further up
                return _is_interpreter(path)
    return None


# ---------------------------------------------------------------------------
# The signal: a real-time signal nobody handles, chosen once per process.

_signo: int | None = None


def chosen_signal() -> int:
    """The signal to use, installing the handler on first use.

    THREADINJECT_SIGNAL=N overrides the choice; otherwise the highest
    real-time signal whose disposition is still the default.
    """
    global _signo
    if _signo is not None:
        return _signo
    from . import _core

    wanted = os.environ.get("THREADINJECT_SIGNAL")
    if wanted:
        signo = int(wanted)
    else:
        candidates = [
            n for n in range(signal.SIGRTMAX, signal.SIGRTMIN, -1)
            if signal.getsignal(n) == signal.SIG_DFL
        ]
        if not candidates:
            raise RuntimeError("threadinject: no free real-time signal for waking threads")
        signo = candidates[0]
    _core._wake_install(signo)
    _signo = signo
    return signo
