#ifndef THREADINJECT_THREAD_TRACE_H
#define THREADINJECT_THREAD_TRACE_H

#include "state.h"

/* kill()'s watch before sys.monitoring (CPython 3.9-3.11, full API): a C
 * trace function set in one other thread, that passes its "call" events to a
 * Python callback (src/threadinject/_monitor.py), and a profile function
 * that passes on the returns of its C release calls.  TI_THREAD_TRACE is 0 where
 * these functions are not compiled (3.12+, the limited API). */
#if !defined(Py_LIMITED_API) && PY_VERSION_HEX < 0x030C0000
#  define TI_THREAD_TRACE 1
/* _trace_thread(ident, callback, /) -> bool: make the thread `ident` (of this
 * interpreter) call `callback(frame)` at each Python function's start (a
 * call, or a generator's resumption), with its line events turned off.
 * False, changing nothing, if there is no such thread or it has a trace
 * function already (a debugger's, coverage's). */
PyObject *ti_trace_thread(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
/* _untrace_thread(ident, callback, /) -> bool: undo _trace_thread(ident,
 * callback) if that trace function is still the thread's (the callback
 * takes it away itself when it raises). */
PyObject *ti_untrace_thread(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
/* _profile_releases(ident, callback, /) -> bool: make the thread `ident` call
 * `callback(frame)` as each C function named release or __exit__ returns in
 * `frame` (sys.monitoring's C_RETURN, before 3.12).  False, changing
 * nothing, if there is no such thread or it has a profile function already
 * (a profiler's). */
PyObject *ti_profile_releases(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
/* _unprofile_releases(ident, callback, /) -> bool: undo
 * _profile_releases(ident, callback) if that profile function is still the
 * thread's. */
PyObject *ti_unprofile_releases(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
#else
#  define TI_THREAD_TRACE 0
#endif

#endif /* THREADINJECT_THREAD_TRACE_H */
