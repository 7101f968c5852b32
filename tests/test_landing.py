"""The probes of src/threadinject/_landing.py when their exception is taken
by other code: Python code the interpreter runs in the probe thread while
the exception is pending (a finalizer, a gc.callbacks entry during a
collection) raises it there, where it is printed as "Exception ignored in
..." and never reaches the probe.  The probe must then answer "unknown"
(True: the answer that defers a wake) and probe again next time, not cache
what it did not see.

A collection cannot be made to fall into those few bytecodes on every
version (3.9-3.11 collect during an allocation, 3.12+ at the next check), so
the tests make a finalizer run at the very point: the probe's C-level
schedule drops the last reference to an object whose __del__ schedules the
probe's exception and then takes it.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable

import pytest

from threadinject import _landing

core = pytest.importorskip("threadinject._core", reason="the probes run with the C backend only")


class _TakesTheException:
    """Schedules the probe's exception as it is finalized, then takes it."""

    def __del__(self) -> None:
        core.inject(threading.get_ident(), _landing._Landed)
        time.sleep(0)  # a check: it lands here, in __del__


class _FinalizerCore:
    """A stand-in for the C module whose inject() is C code (a dict's
    __setitem__) that drops a _TakesTheException, like a collection running
    a finalizer at that point."""

    @property
    def inject(self) -> Callable[[int, object], None]:
        # read in the probe thread, before it schedules anything
        holder: dict[int, object] = {threading.get_ident(): _TakesTheException()}
        return holder.__setitem__


@pytest.fixture
def unraisable(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What the interpreter prints as "Exception ignored in ...", captured."""
    seen: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    return seen


def test_with_probe_answers_unknown_and_probes_again(monkeypatch: pytest.MonkeyPatch,
                                                     unraisable: list[Any]) -> None:
    monkeypatch.setattr(_landing, "_inside_with", None)
    assert _landing.lands_inside_with(_FinalizerCore()) is True
    assert [u.exc_type for u in unraisable] == [_landing._Landed]
    assert _landing._inside_with is None  # not cached: probed again below
    answer = _landing.lands_inside_with(core)
    assert _landing._inside_with is answer
    assert len(unraisable) == 1


def test_keyword_call_probe_answers_unknown_and_probes_again(monkeypatch: pytest.MonkeyPatch,
                                                             unraisable: list[Any]) -> None:
    monkeypatch.setattr(_landing, "_late_after_keyword_call", None)
    assert _landing._lands_late_after_keyword_call(_FinalizerCore()) is True
    assert [u.exc_type for u in unraisable] == [_landing._Landed]
    assert _landing._late_after_keyword_call is None
    answer = _landing._lands_late_after_keyword_call(core)
    assert _landing._late_after_keyword_call is answer
    assert len(unraisable) == 1
