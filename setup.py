"""Declares the C extension threadinject._core; metadata is in pyproject.toml.

Each CPython release gets a build of its own against the full C API, which
inject() needs to skip a dict look-up (csrc/active_watch.h).  With
THREADINJECT_LIMITED_API=1, a GIL build of 3.10+ compiles against the
limited API instead and tags the wheel cp310-abi3: the wheel for releases
that have no wheel of their own yet.  If the compiler fails, the package
installs without the extension and uses its ctypes backend, unless
THREADINJECT_REQUIRE_EXTENSION=1 (as in CI and wheel builds).
"""

import os
import sys
import sysconfig
from glob import glob

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

REQUIRE_EXTENSION = os.environ.get("THREADINJECT_REQUIRE_EXTENSION", "") not in ("", "0")
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
CPYTHON = sys.implementation.name == "cpython"
LIMITED_API = os.environ.get("THREADINJECT_LIMITED_API", "") not in ("", "0")
if LIMITED_API and not (CPYTHON and not FREE_THREADED and sys.version_info >= (3, 10)):
    sys.exit("THREADINJECT_LIMITED_API=1 needs a GIL build of CPython 3.10 or later "
             f"(this is {sys.implementation.name} {sys.version.split()[0]}"
             f"{', free-threaded' if FREE_THREADED else ''})")


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing, unless the extension is required."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # distutils raises several unrelated types here
            self._give_up(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._give_up(exc)

    def _give_up(self, exc):
        if REQUIRE_EXTENSION:
            raise exc
        sys.stderr.write(
            f"WARNING: threadinject's C extension was not built ({exc}); "
            "the ctypes backend will be used.\n"
        )


ext_modules = []
if CPYTHON:
    ext_modules.append(
        Extension(
            "threadinject._core",
            sources=sorted(glob("csrc/*.c")),
            depends=sorted(glob("csrc/*.h")),
            define_macros=[("Py_LIMITED_API", "0x030A0000")] if LIMITED_API else [],
            py_limited_api=LIMITED_API,
            # Name the C library explicitly: the module calls nothing in it
            # directly, and without a DT_NEEDED entry auditwheel cannot tell
            # glibc from musl and refuses to repair the wheel.
            extra_link_args=["-Wl,--no-as-needed", "-lc"]
            if sys.platform.startswith("linux")
            else [],
            extra_compile_args=[]
            if os.name == "nt"
            else [
                "-std=c11", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
                # a function outside the limited API would otherwise fail only at import
                "-Werror=implicit-function-declaration",
            ],
        )
    )

setup(
    ext_modules=ext_modules,
    cmdclass={"build_ext": OptionalBuildExt},
    # own build directory: setuptools would reuse the full-API objects of
    # the same interpreter (it tracks source times, not compiler flags)
    options={"bdist_wheel": {"py_limited_api": "cp310"}, "build": {"build_base": "build/abi3"}}
    if LIMITED_API
    else {},
)
