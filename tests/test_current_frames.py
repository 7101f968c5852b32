"""kill() reads other threads' frames at every poll (_frames.current_frames()).

On CPython 3.11.0-3.11.11 sys._current_frames() itself can hang the whole
process (gh-106883): tools/cpython_gh106883.py shows it within seconds on
the 3.11.7 here, and CI once hung so in the 3.11 stress test.  threadinject
reads it with the cyclic collector paused there.  The hang test runs on
every version; only on 3.11 before 3.11.12 (CI's 3.11 session, the aarch64
VM's 3.11.2) can it fail: elsewhere no collection starts inside the call.
"""

from __future__ import annotations

import gc
import pathlib
import sys

import pytest
from conftest import SLOWDOWN, run_python

from threadinject import _backends, _frames

TOOL = pathlib.Path(__file__).resolve().parents[1] / "tools" / "cpython_gh106883.py"


@pytest.mark.parametrize("backend", ["c", "ctypes"])
def test_reading_frames_does_not_hang_while_threads_come_and_go(backend):
    # 4 s of reading while threads start, end and make garbage whose
    # finalizers are Python code; the plain call hung 5 of 6 such runs on 3.11.7
    code = (f"import runpy, sys; sys.argv = [{str(TOOL)!r}, 'threadinject', '4']; "
            f"runpy.run_path({str(TOOL)!r}, run_name='__main__')")
    result = run_python(code, backend, timeout=40 * SLOWDOWN)
    assert result.returncode == 0 and "no hang" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("how", ["as chosen", "paused in Python (ctypes backend)", "C extension"])
@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_left_as_it_was(how, enabled):
    core = _backends.c_extension()
    if how == "C extension" and core is None:
        pytest.skip("the C extension is not used here (THREADINJECT_PURE_PYTHON=1, or not built: nox's "
                    "no_compiler session); every other session tests it")
    read = {"as chosen": _frames.current_frames,
            "paused in Python (ctypes backend)": _frames._paused_in_python,
            "C extension": getattr(core, "_current_frames", None)}[how]
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        frames = read()
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
    assert frames.keys() == sys._current_frames().keys()  # this thread and pytest's timeout thread, if any
