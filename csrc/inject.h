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
/* cancel(thread, /) -> bool */
PyObject *ti_cancel(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
/* pending(thread, /) -> exception class or instance, or None */
PyObject *ti_pending(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

#endif /* THREADINJECT_INJECT_H */
