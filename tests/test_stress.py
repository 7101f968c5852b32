"""A short run of benchmarks/stress_kill.py (its long runs are in the README).

Mixed workloads (busy, sleeping, socket and pipe reads, Event, Queue, Lock
and RLock in `with` and bare acquire/try/finally, a child process,
allocation), killed, injected into, woken and cancelled at random; the
script checks every outcome and exits non-zero on any failure.  Two seeds,
in a child interpreter so a crash or hang is caught.
"""

from __future__ import annotations

import pathlib
import platform
import sys

import pytest
from conftest import SLOWDOWN, run_python

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "stress_kill.py"
LINUX_X86_64 = sys.platform.startswith("linux") and platform.machine() == "x86_64"


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("backend", ["c", "ctypes"])
def test_short_stress_run(backend, seed):
    args = ["--kills", "150", "--seed", str(seed)]
    if backend == "ctypes" or not LINUX_X86_64:
        args.append("--portable")  # only waits every platform and backend can end
    code = f"import sys; sys.argv = {[str(SCRIPT), *args]!r}; exec(open({str(SCRIPT)!r}).read())"
    result = run_python(code, backend, timeout=240 * SLOWDOWN)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILURE" not in result.stdout and result.stderr == "", result.stdout + result.stderr
