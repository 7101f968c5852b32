"""Choosing the backend: the C extension, or the ctypes fallback.

Both modules provide the same three primitives, ``inject``, ``cancel`` and
``pending``; everything else in threadinject is Python built on them.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType

__all__ = ["c_extension", "load", "select"]

NAMES = ("c", "ctypes")


def load(name: str) -> ModuleType:
    """Import the backend called `name` ("c" or "ctypes")."""
    if name == "c":
        from . import _core

        return _core
    if name == "ctypes":
        from . import _ctypes_backend

        return _ctypes_backend
    raise ValueError(f"load() argument 'name' must be one of {NAMES}, not {name!r}")


def _pure_python() -> bool:
    return os.environ.get("THREADINJECT_PURE_PYTHON", "") not in ("", "0")


def c_extension() -> ModuleType | None:
    """threadinject._core where select() would choose it (the C extension
    is importable and THREADINJECT_PURE_PYTHON is not set), else None;
    silent, for the parts that add what only the C extension can do."""
    if _pure_python():
        return None
    try:
        return load("c")
    except ImportError:
        return None


def select() -> tuple[str, ModuleType]:
    """The backend to use: C unless THREADINJECT_PURE_PYTHON=1 or it is missing."""
    if _pure_python():
        return "ctypes", load("ctypes")
    try:
        return "c", load("c")
    except ImportError as exc:
        warnings.warn(
            f"threadinject: C extension unavailable ({exc}); using the slower ctypes backend",
            RuntimeWarning,
            stacklevel=3,
        )
        return "ctypes", load("ctypes")
