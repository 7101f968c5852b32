"""Read a valgrind memcheck XML report; fail if any error involves threadinject.

    python tools/memcheck_report.py REPORT.xml

memcheck also reports what is not ours and not a bug of ours: CPython's
allocations still held at exit ("definitely lost" once the interpreter stops
tracking them), glibc's vectorised string functions reading whole words past
a string's end (Invalid read in __wmemcmp_avx2_movbe), and tracemalloc's own
bookkeeping (the traceback records its hooks allocate, traceback_new, for
allocations that happened to be made under our calls; tests/test_refleaks.py
runs tracemalloc).  An error counts when a frame of its stack lies in
threadinject's extension module and it is not tracemalloc's bookkeeping.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import Counter


def main(path: str) -> int:
    root = ET.parse(path).getroot()
    ours, others = [], Counter()
    for error in root.iter("error"):
        kind = error.findtext("kind", "?")
        frames = [(f.findtext("obj", ""), f.findtext("fn", "?")) for f in error.iter("frame")]
        tracemalloc_record = any(fn == "traceback_new" for _, fn in frames[:4])
        if any("threadinject" in obj for obj, _ in frames) and not tracemalloc_record:
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
