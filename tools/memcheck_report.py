"""Read a valgrind memcheck XML report; fail if any error involves threadinject.

    python tools/memcheck_report.py REPORT.xml

memcheck also reports what is not ours and not a bug of ours: CPython's
allocations still held at exit ("definitely lost" once the interpreter stops
tracking them), glibc's vectorised string functions reading whole words past
a string's end (Invalid read in __wmemcmp_avx2_movbe), and tracemalloc's own
bookkeeping (the traceback records its hooks allocate, traceback_new, for
allocations that happened to be made under our calls; tests/test_refleaks.py
runs tracemalloc), and the interned key strings of module attributes
(PyModule_AddObject and friends intern the name through
PyDict_SetItemString; CPython 3.12 makes interned strings immortal, PEP 683,
and leaves them allocated at exit: seen once for our module's init, "lost"
only because the table that pointed to it was freed first).  An error
counts when a frame of its stack lies in threadinject's extension module and
it is none of these.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import Counter


def _attribute_name(frames: list[tuple[str, str]]) -> bool:
    """Whether the allocation is a module attribute's name, made by
    PyDict_SetItemString called from PyModule_AddObject & co. (through 3.12's
    _PyModule_Add, which PyModule_AddStringConstant tail-calls)."""
    names = [fn for _, fn in frames]
    return any(fn == "PyDict_SetItemString" and i + 1 < len(names)
               and names[i + 1].lstrip("_").startswith("PyModule_Add")
               for i, fn in enumerate(names))


def main(path: str) -> int:
    root = ET.parse(path).getroot()
    ours, others = [], Counter()
    for error in root.iter("error"):
        kind = error.findtext("kind", "?")
        frames = [(f.findtext("obj", ""), f.findtext("fn", "?")) for f in error.iter("frame")]
        not_ours = any(fn == "traceback_new" for _, fn in frames[:4]) or _attribute_name(frames)
        if any("threadinject" in obj for obj, _ in frames) and not not_ours:
            ours.append((kind, frames))
        else:
            others[kind] += 1
    print(f"memcheck: {len(ours)} errors in threadinject's code; outside it: "
          f"{dict(others) or 'none'} (CPython's exit-time leaks, glibc's vector reads)")
    for kind, frames in ours:
        print(f"\n{kind}:")
        for obj, fn in frames[:12]:
            print(f"    {fn}  ({obj})")
    return 1 if ours else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
