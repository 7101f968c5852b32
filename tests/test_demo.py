"""The demo README's first command runs: every stuck worker killed, the program exits.

`python -m threadinject.demo` starts non-daemon workers that would keep the
program alive for ever (a busy loop, sleeps, a socket read, a queue wait),
kills each, and delivers an exception instance to another.  Run in a fresh
interpreter per backend, on every CPython of the matrix.
"""

from __future__ import annotations

import pytest
from conftest import run_python

from threadinject import _syscalls

DEMO = "import runpy; runpy.run_module('threadinject.demo', run_name='__main__')"


@pytest.mark.skipif(not _syscalls.SUPPORTED, reason="the demo's blocked workers are woken where the "
                    "system-call wake is (README, Backends and platforms); CI runs it on Linux x86-64")
def test_the_demo_kills_every_worker_and_exits():
    result = run_python(DEMO, "c")
    assert result.returncode == 0, result.stdout + result.stderr
    killed = [line for line in result.stdout.splitlines() if "killed:" in line]
    assert len(killed) == 5 and all("killed: True" in line for line in killed), result.stdout
    assert "it arrived as the same object: True" in result.stdout
    assert "Threads still running: 0." in result.stdout
    assert result.stderr == ""


# the C backend wakes system calls where _syscalls.SUPPORTED (README's platform table)
@pytest.mark.parametrize("backend", ["ctypes"] if _syscalls.SUPPORTED else ["ctypes", "c"])
def test_without_a_system_call_wake_the_demo_says_which_workers_it_could_not_end(backend):
    # the sleeping and reading workers stay (README, Backends and
    # platforms); the busy loop and the queue wait end
    result = run_python(DEMO, backend)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = {line.split("killed:")[0].strip(): line.split("killed:")[1].split()[0]
             for line in result.stdout.splitlines() if "killed:" in line}
    assert len(lines) == 5, result.stdout + result.stderr
    assert lines["busy loop (while True: n += 1)"] == "True"
    assert lines["queue.Queue().get()"] == "True"
    assert lines["time.sleep(1000000)"] == "False"
    assert "Some could not be woken here" in result.stdout
