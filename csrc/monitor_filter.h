#ifndef THREADINJECT_MONITOR_FILTER_H
#define THREADINJECT_MONITOR_FILTER_H

#include "state.h"

/* _monitor_setup(watched, on_start, on_jump, /) -> None: keep the dict of
 * watched thread idents and the two Python callbacks (once per module). */
PyObject *ti_monitor_setup(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
/* _monitor_on_start(*args) / _monitor_on_jump(*args): None at once unless the
 * calling thread's ident is a key of `watched`; else the Python callback's
 * result for the same arguments.  Registered with sys.monitoring by
 * src/threadinject/_monitor.py. */
PyObject *ti_monitor_on_start(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *ti_monitor_on_jump(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

#endif /* THREADINJECT_MONITOR_FILTER_H */
