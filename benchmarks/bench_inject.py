"""Cost of one injection, and kill-to-joined latency, against the ctypes recipe.

    python benchmarks/bench_inject.py            (or: tools/test -s bench)

Every variant is timed in this one process, interleaved, on the same target
thread, which waits on an Event (blocked in C), so injections stay pending and
each call replaces the previous one.  Reported: the median over repeats of
ns per call, net of the empty loop, and ratios.  Needs a C compiler (it builds
benchmarks/floor.c and two builds of csrc/: limited API and full API).
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import inspect
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from types import ModuleType
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, os.pardir, "csrc")

import threadinject  # noqa: E402
from threadinject import _backends  # noqa: E402

LOOPS = 10_000
REPEATS = 31


def compile_module(name: str, sources: list[str], out_dir: str, macros: list[str]) -> ModuleType:
    """Build `sources` into a module file and load it under the import name `name`."""
    include = sysconfig.get_paths()["include"]
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    path = os.path.join(out_dir, name.rsplit(".", 1)[-1] + suffix)
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-std=c11", f"-I{include}", *macros,
                    *sources, "-o", path], check=True)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # a second instance: not put in sys.modules
    return module


def async_raise(tid: int, exctype: type) -> None:
    """The widely pasted recipe, as people paste it."""
    if not inspect.isclass(exctype):
        raise TypeError("Only types can be raised (not instances)")
    res = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_long(tid), ctypes.py_object(exctype))
    if res == 0:
        raise ValueError("invalid thread id")
    elif res != 1:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_long(tid), None)
        raise SystemError("PyThreadState_SetAsyncExc failed")


def time_loop(fn: Callable[..., object], a: object, b: object) -> float:
    """ns per call of fn(a, b), gross."""
    rng = range(LOOPS)
    start = time.perf_counter_ns()
    for _ in rng:
        fn(a, b)
    return (time.perf_counter_ns() - start) / LOOPS


def empty_loop(fn: Callable[..., object], a: object, b: object) -> float:
    """ns per iteration of the same loop without the call."""
    rng = range(LOOPS)
    start = time.perf_counter_ns()
    for _ in rng:
        pass
    return (time.perf_counter_ns() - start) / LOOPS


def main() -> None:
    release = threading.Event()
    target = threading.Thread(target=release.wait, daemon=True)
    target.start()
    ident = target.ident
    assert ident is not None

    lean = ctypes.pythonapi["PyThreadState_SetAsyncExc"]
    lean.argtypes = (ctypes.c_ulong, ctypes.py_object)
    lean.restype = ctypes.c_int
    ctypes_backend = _backends.load("ctypes")
    c_backend = _backends.load("c")
    instance = LookupError("an instance")

    with tempfile.TemporaryDirectory() as tmp:
        floor = compile_module("floor", [os.path.join(HERE, "floor.c")], tmp, [])
        sources = sorted(glob.glob(os.path.join(CSRC, "*.c")))
        full_dir, limited_dir = os.path.join(tmp, "full"), os.path.join(tmp, "limited")
        os.mkdir(full_dir)
        os.mkdir(limited_dir)
        full = compile_module("threadinject._core", sources, full_dir, [])
        variants: list[tuple[str, Callable[..., object], object, object]] = [
            ("ctypes recipe (_async_raise)", async_raise, ident, LookupError),
            ("lean ctypes call (argtypes preset)", lean, ident, LookupError),
            ("threadinject ctypes backend", ctypes_backend.inject, target, LookupError),
            ("threadinject C, Thread + class", c_backend.inject, target, LookupError),
            ("threadinject C, Thread + instance", c_backend.inject, target, instance),
            ("threadinject C, ident + class", c_backend.inject, ident, LookupError),
            ("threadinject C full API, Thread + class", full.inject, target, LookupError),
            ("floor: bare SetAsyncExc C call", floor.set_async_exc, ident, LookupError),
            ("empty loop (subtracted)", len, ident, LookupError),
        ]
        if sys.version_info >= (3, 10) and not sysconfig.get_config_var("Py_GIL_DISABLED"):
            limited = compile_module("threadinject._core", sources, limited_dir,
                                     ["-DPy_LIMITED_API=0x030A0000"])
            variants.insert(7, ("threadinject C limited API, Thread + class", limited.inject,
                                target, LookupError))

        samples: dict[str, list[float]] = {name: [] for name, *_ in variants}
        for _ in range(REPEATS):  # interleaved, so drifts hit every variant alike
            for name, fn, a, b in variants:
                timer = empty_loop if name.startswith("empty") else time_loop
                samples[name].append(timer(fn, a, b))
        for backend in (c_backend, ctypes_backend, full):
            backend.cancel(target)  # clears (with NULL) whatever is pending

    empty = statistics.median(samples["empty loop (subtracted)"])
    net = {name: statistics.median(s) - empty for name, s in samples.items() if not name.startswith("empty")}
    recipe = net["ctypes recipe (_async_raise)"]
    lean_ns = net["lean ctypes call (argtypes preset)"]
    floor_ns = net["floor: bare SetAsyncExc C call"]
    core = sys.modules.get("threadinject._core")
    build = "none" if core is None else (
        f"{'abi3' if '.abi3.' in (core.__file__ or '') else 'version-specific'} build, "
        f"checks threading._active by {getattr(core, '_ACTIVE_CHECK', '?')}")
    print(f"CPython {sys.version.split()[0]} {sysconfig.get_platform()}, default backend "
          f"{threadinject.backend!r} ({build}); median of {REPEATS} x {LOOPS} calls, "
          f"empty loop {empty:.1f} ns subtracted")
    print(f"{'variant':<44}{'ns/call':>9}{'recipe/x':>10}{'lean/x':>8}{'x/floor':>9}")
    for name, ns in net.items():
        print(f"{name:<44}{ns:9.1f}{recipe / ns:10.1f}{lean_ns / ns:8.1f}{ns / floor_ns:9.2f}")

    release.set()
    target.join(5)
    print()
    kill_latency()


def kill_latency(rounds: int = 200) -> None:
    """kill() -> joined, for a thread in a busy loop, both backends."""
    from threadinject._kill import make_kill
    from threadinject._wake import Judgement, make_wake

    print(f"kill() until joined, busy-loop target, {rounds} kills per backend")
    print(f"{'backend':<10}{'median ms':>11}{'p99 ms':>9}{'max ms':>9}")
    for name in _backends.NAMES:
        backend = _backends.load(name)
        wake = make_wake(backend.pending, backend if name == "c" else None)
        kill = make_kill(backend.inject, backend.pending, backend.cancel, wake,
                         lambda thread: Judgement(False, None, -1), backend._inject_if_at)
        times = []
        for _ in range(rounds):
            started = threading.Event()

            def spin(started: threading.Event = started) -> None:
                started.set()
                while True:
                    pass

            thread = threading.Thread(target=spin, daemon=True)
            thread.start()
            started.wait()
            begin = time.perf_counter()
            assert kill(thread, 10)
            times.append((time.perf_counter() - begin) * 1000)
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(f"{name:<10}{statistics.median(times):11.3f}{p99:9.3f}{times[-1]:9.3f}")


if __name__ == "__main__":
    main()
