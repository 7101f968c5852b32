"""Instructions per injection, counted by valgrind's callgrind: a deterministic
complement to bench_inject.py, whose wall-clock numbers this 2-core VM makes noisy.

    python benchmarks/bench_instructions.py      (needs valgrind and a C compiler)

Each variant runs CALLS calls in a fresh interpreter under callgrind, and the same
program without the calls is subtracted, so the figure is what one call costs:
the interpreter's call overhead, the function, and the loop's own bytecode.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CALLS = 20_000

DRIVER = r"""
import ctypes, sys, threading
sys.path.insert(0, sys.argv[2])
import floor, threadinject
from threadinject import _backends
c, py = _backends.load("c"), _backends.load("ctypes")
ready = threading.Event()
target = threading.Thread(target=ready.wait, daemon=True)
target.start()
ident = target.ident
lean = ctypes.pythonapi["PyThreadState_SetAsyncExc"]
lean.argtypes = (ctypes.c_ulong, ctypes.py_object)
instance = LookupError("an instance")
variant, n = sys.argv[1], int(sys.argv[3])
def async_raise(tid, exctype):  # the widely pasted recipe
    import inspect
    if not inspect.isclass(exctype):
        raise TypeError("Only types can be raised (not instances)")
    res = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_long(tid), ctypes.py_object(exctype))
    if res == 0:
        raise ValueError("invalid thread id")
fn, a, b = {
    "ctypes recipe (_async_raise)": (async_raise, ident, LookupError),
    "lean ctypes call": (lean, ident, LookupError),
    "threadinject ctypes backend": (py.inject, target, LookupError),
    "threadinject C, Thread + class": (c.inject, target, LookupError),
    "threadinject C, Thread + instance": (c.inject, target, instance),
    "threadinject C, ident + class": (c.inject, ident, LookupError),
    "floor: bare SetAsyncExc C call": (floor.set_async_exc, ident, LookupError),
    "empty": (None, None, None),
}[variant]
if fn is not None:
    for _ in range(n):
        fn(a, b)
else:
    for _ in range(n):
        pass
c.cancel(target); py.cancel(target)
ready.set(); target.join()
"""

VARIANTS = [
    "ctypes recipe (_async_raise)",
    "lean ctypes call",
    "threadinject ctypes backend",
    "threadinject C, Thread + class",
    "threadinject C, Thread + instance",
    "threadinject C, ident + class",
    "floor: bare SetAsyncExc C call",
]


def count(driver: str, floor_dir: str, variant: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             sys.executable, driver, variant, floor_dir, str(n)],
            capture_output=True, text=True, check=True)
        match = re.search(r"Collected : (\d+)", run.stderr)
        assert match, run.stderr
        return int(match.group(1))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        driver = os.path.join(tmp, "driver.py")
        with open(driver, "w") as f:
            f.write(DRIVER)
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        subprocess.run([os.environ.get("CC", "cc"), "-shared", "-fPIC", "-O2",
                        f"-I{sysconfig.get_paths()['include']}", os.path.join(HERE, "floor.c"),
                        "-o", os.path.join(tmp, "floor" + suffix)], check=True)
        per_call = {}
        for variant in VARIANTS:
            calls = count(driver, tmp, variant, CALLS) - count(driver, tmp, "empty", CALLS)
            per_call[variant] = calls / CALLS
    floor = per_call["floor: bare SetAsyncExc C call"]
    lean = per_call["lean ctypes call"]
    recipe = per_call["ctypes recipe (_async_raise)"]
    print(f"CPython {sys.version.split()[0]}: instructions per call (callgrind, {CALLS} calls, "
          "empty loop subtracted)")
    print(f"{'variant':<40}{'instr/call':>11}{'recipe/x':>10}{'lean/x':>8}{'x/floor':>9}")
    for variant, instr in per_call.items():
        print(f"{variant:<40}{instr:11.0f}{recipe / instr:10.1f}{lean / instr:8.1f}{instr / floor:9.2f}")


if __name__ == "__main__":
    main()
