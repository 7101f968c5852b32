"""Backend selection, the ctypes fallback's manners, free-threaded builds."""

from __future__ import annotations

import ctypes
import sys
import sysconfig
import textwrap

import pytest
from conftest import busy, run_python

import threadinject
from threadinject import _backends

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def test_c_backend_is_the_default():
    # CI builds the extension (THREADINJECT_REQUIRE_EXTENSION=1): it must load.
    result = run_python("import threadinject; print(threadinject.backend)", "c")
    assert (result.stdout, result.stderr) == ("c\n", "")


def test_pure_python_can_be_forced():
    result = run_python("import threadinject; print(threadinject.backend)", "ctypes")
    assert (result.stdout, result.stderr) == ("ctypes\n", "")


def test_missing_extension_falls_back_with_one_warning():
    code = textwrap.dedent("""
        import sys, warnings
        sys.modules["threadinject._core"] = None  # as if it had not been built
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import threadinject
        print(threadinject.backend, [(w.category.__name__, str(w.message).count(chr(10))) for w in caught])
    """)
    result = run_python(code, "c")
    assert result.stdout == "ctypes [('RuntimeWarning', 0)]\n", result.stderr


def test_c_extension_follows_the_backend_choice_silently():
    # what the watch's C callbacks and trace function are taken from
    code = textwrap.dedent("""
        import sys, warnings
        if sys.argv[1:] == ["missing"]:
            sys.modules["threadinject._core"] = None  # as if it had not been built
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            from threadinject import _backends  # select() warns here if missing
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            core = _backends.c_extension()
        print(getattr(core, "__name__", None), len(caught))
    """)
    assert run_python(code, "c").stdout == "threadinject._core 0\n"
    assert run_python(code, "ctypes").stdout == "None 0\n"
    assert run_python(code, "c", args=["missing"]).stdout == "None 0\n"


def test_unknown_backend_name():
    with pytest.raises(ValueError, match="argument 'name'"):
        _backends.load("rust")


def test_ctypes_backend_leaves_shared_ctypes_state_alone(spawn):
    shared = ctypes.pythonapi.PyThreadState_SetAsyncExc
    before = (shared.argtypes, shared.restype)
    backend = _backends.load("ctypes")
    target = spawn(busy)
    backend.inject(target.thread, KeyError)
    target.join()
    assert (shared.argtypes, shared.restype) == before
    # the widely pasted recipe still works beside it
    target = spawn(busy)
    assert shared(ctypes.c_ulong(target.thread.ident), ctypes.py_object(LookupError)) == 1
    target.join()
    assert type(target.caught) is LookupError


def test_public_api():
    assert threadinject.backend in ("c", "ctypes")
    for name in threadinject.__all__:
        assert getattr(threadinject, name) is not None


@pytest.mark.skipif(
    not FREE_THREADED, reason="GIL build: this check runs in the 3.13t session (noxfile.py)"
)
def test_importing_keeps_the_gil_disabled():
    result = run_python("import threadinject, sys; print(threadinject.backend, sys._is_gil_enabled())", "c")
    assert (result.stdout, result.stderr) == ("c False\n", "")


def test_module_declares_its_build():
    from threadinject import _core

    assert _core.__name__ == "threadinject._core"
    abi3 = ".abi3." in _core.__file__
    if abi3:
        # built with THREADINJECT_LIMITED_API=1, for releases without a wheel
        # of their own (noxfile.py tests it on 3.15): no dict version or
        # watchers in the limited API
        assert not FREE_THREADED and sys.version_info >= (3, 10)
        assert _core._ACTIVE_CHECK == "look-up"
    elif FREE_THREADED:
        assert _core._ACTIVE_CHECK == "look-up"  # inject() remembers no Thread there
    else:
        assert _core._ACTIVE_CHECK == ("watcher" if sys.version_info >= (3, 12) else "version")
