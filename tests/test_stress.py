"""A short run of benchmarks/stress_kill.py (its long runs are in the README).

Mixed workloads (busy, sleeping, socket and pipe reads, Event, Queue, a
child process, allocation), killed, injected into, woken and cancelled at
random; the script checks every outcome and exits non-zero on any failure.
Two seeds, in a child interpreter so a crash or hang is caught.

Not the shared Lock/RLock workloads here: on the free-threaded build a kill
racing the hand-over of a woken parking-lot wait leaves the lock held (README,
Limits: not fixed yet).  On GIL builds they pass (README, Reliability: 0 of
380 runs under load on 3.12); lock waits are covered by test_wake_locks.py
and test_wake_syscalls.py everywhere.
"""

from __future__ import annotations

import pathlib
import platform
import sys
import sysconfig

import pytest
from conftest import SLOWDOWN, run_python

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "stress_kill.py"
LINUX_X86_64 = sys.platform.startswith("linux") and platform.machine() == "x86_64"


# Free-threaded builds run it several times slower on this 2-core VM (the
# killer competes with busy workers for the cores): fewer kills there, to stay
# inside the suite's 50 s per-test stack-dump guard.
KILLS = "30" if sysconfig.get_config_var("Py_GIL_DISABLED") else "150"


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("backend", ["c", "ctypes"])
def test_short_stress_run(backend, seed):
    args = ["--kills", KILLS, "--seed", str(seed),
            "--workloads", "busy,sleep,recv,os.read,Event.wait,Queue.get,allocate,Popen.wait"]
    if backend == "ctypes" or not LINUX_X86_64:
        args[-1] = "busy,Event.wait,Queue.get,allocate"  # waits every platform and backend can end
    code = (f"import runpy, sys; sys.argv = {[str(SCRIPT), *args]!r}; "
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    # the child dumps its own stacks before the suite's 50 s guard dumps only
    # the parent's (a hang seen once in CI on 3.15 showed nothing of the child)
    result = run_python(code, backend, timeout=45 * SLOWDOWN)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILURE" not in result.stdout and result.stderr == "", result.stdout + result.stderr
