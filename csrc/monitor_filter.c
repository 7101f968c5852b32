/* The sys.monitoring callbacks of free-threaded kill(), cut short in C for
 * the threads no kill is aimed at.
 *
 * While a kill is under way on a free-threaded build, sys.monitoring calls
 * threadinject's PY_START and JUMP callbacks at every Python call and loop
 * round of every thread (src/threadinject/_monitor.py).  The policy is Python
 * code, but running a Python function for every event made a bystander's
 * loop with a call about 9x slower (benchmarks/bench_monitor.py, 3.13.15t).
 * These functions answer None at once in a thread whose ident is not a key
 * of the watched dict, and pass the event on to the Python callback in one
 * that is.
 *
 * Thread safety: the three references are set once, before _monitor.py
 * enables any event (which stops the world on free-threaded builds), and
 * never replaced, so the callbacks read them without a lock; the dict is
 * read with PyDict_Contains, safe on free-threaded builds while _monitor.py
 * changes it.  Limited API (GIL builds, 3.10): a tuple and PyObject_Call
 * rather than vectorcall, paid only in a watched thread. */
#include "monitor_filter.h"

PyObject *
ti_monitor_setup(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    core_state *st = (core_state *)PyModule_GetState(module);
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError,
                     "_monitor_setup() takes 3 positional arguments (watched, on_start, on_jump) "
                     "but %zd were given", nargs);
        return NULL;
    }
    if (!PyDict_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "_monitor_setup() argument 'watched' must be a dict");
        return NULL;
    }
    if (!PyCallable_Check(args[1]) || !PyCallable_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "_monitor_setup() arguments 'on_start' and 'on_jump' must be callable");
        return NULL;
    }
    if (st->monitor_watched != NULL) {
        /* replacing them would free what a callback may be reading */
        PyErr_SetString(PyExc_RuntimeError, "_monitor_setup() was already called");
        return NULL;
    }
    st->monitor_on_start = Py_NewRef(args[1]);
    st->monitor_on_jump = Py_NewRef(args[2]);
    st->monitor_watched = Py_NewRef(args[0]);
    Py_RETURN_NONE;
}

/* `callback(*args)` if the calling thread is watched, else None. */
static PyObject *
forward_if_watched(core_state *st, PyObject *callback, PyObject *const *args, Py_ssize_t nargs)
{
    if (st->monitor_watched == NULL || callback == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *ident = PyLong_FromUnsignedLong(PyThread_get_thread_ident());
    if (ident == NULL) {
        return NULL;
    }
    int watched = PyDict_Contains(st->monitor_watched, ident);
    Py_DECREF(ident);
    if (watched <= 0) {
        return watched < 0 ? NULL : Py_NewRef(Py_None);
    }
    PyObject *tuple = PyTuple_New(nargs);
    if (tuple == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        if (PyTuple_SetItem(tuple, i, Py_NewRef(args[i])) < 0) {  /* steals the new reference */
            Py_DECREF(tuple);
            return NULL;
        }
    }
    PyObject *result = PyObject_Call(callback, tuple, NULL);
    Py_DECREF(tuple);
    return result;
}

PyObject *
ti_monitor_on_start(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    core_state *st = (core_state *)PyModule_GetState(module);
    return forward_if_watched(st, st->monitor_on_start, args, nargs);
}

PyObject *
ti_monitor_on_jump(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    core_state *st = (core_state *)PyModule_GetState(module);
    return forward_if_watched(st, st->monitor_on_jump, args, nargs);
}
