#ifndef THREADINJECT_INJECT_H
#define THREADINJECT_INJECT_H

#include "state.h"

/* inject(thread, exc, /) -> None */
PyObject *ti_inject(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
/* _inject_if_at(thread, exc, frame, lasti, native_id, syscall, arg0[, wake],
 * /) -> bool: inject() only if the thread's innermost frame is still `frame`
 * at instruction `lasti` and /proc shows it in that system call (unless
 * syscall is -1), checked in the same step; with `wake`, also end that lock
 * wait in the same step and withdraw the exception unless it was ended
 * (TimeoutError if the signal was not taken).  Private: kill() uses it. */
PyObject *ti_inject_if_at(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
/* _inject_in_call(thread, exc, native_id, ip, arg0, result, zero_fdsets,
 * rewrite, judge=None, /) -> bool: have the wake signal's handler hold the
 * thread at the system call returning at `ip` with first argument `arg0` (see
 * ti_hold_in_call), inject() while it is held there, and let it go with the
 * call's result rewritten as _wake_send() would: the exception lands at that
 * call.  With `judge`, only if judge(frame) is true for the thread's
 * innermost frame, read while it is held (else it is let go, the call
 * interrupted, and False returned).  False if the thread was not at that
 * call (nothing scheduled); TimeoutError if the signal was not taken in time.
 * Private: kill() uses it on free-threaded builds, where no GIL keeps the
 * thread at the call, and no frame of a running thread can be read. */
PyObject *ti_inject_in_call(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
/* cancel(thread, /) -> bool */
PyObject *ti_cancel(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
/* pending(thread, /) -> exception class or instance, or None */
PyObject *ti_pending(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
/* _current_frames() -> sys._current_frames(), the cyclic collector paused
 * on 3.9-3.11 (gh-106883).  Private: src/threadinject/_frames.py. */
PyObject *ti_current_frames(PyObject *module, PyObject *Py_UNUSED(ignored));

#endif /* THREADINJECT_INJECT_H */
