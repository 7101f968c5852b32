/* `pending` maps a thread ident (int) to the thread's slot, a two-item list
 * [exception or None, withdrawn (bool)].  A slot is created on the first
 * injection into a thread and then reused: one hashed look-up per call
 * instead of the two that replacing a dict entry takes (a get, to keep the
 * old value alive, then a set).  When the dict grows, inject.c drops the
 * slots that hold no pending exception, which costs nothing but their
 * re-creation.
 *
 * cancel() does not empty a slot but marks its exception withdrawn.  Where
 * CPython takes the scheduled carrier class out of the thread state before
 * the carrier runs (3.9-3.11, and free-threaded builds, where the target
 * runs in parallel with cancel()), a cancel() can come in between: the
 * delivery can no longer be stopped, and the carrier then delivers the
 * withdrawn exception, the one the user injected, rather than failing.
 *
 * A slot that still holds a pending exception is never dropped, even when
 * its thread looks gone: there is no sound test for that.
 * sys._current_frames() omits live threads that run no Python code (a C
 * function started with _thread.start_new_thread, a C library's thread
 * between callbacks), and such a thread would later receive the carrier and
 * find nothing.  So an exception injected into a thread that ends without
 * running bytecode again stays referenced until that ident is injected into
 * again. */
#include "pending.h"

/* The slot of `key` (borrowed), NULL if none (an exception set on error). */
static PyObject *
slot_of(core_state *st, PyObject *key)
{
    return PyDict_GetItemWithError(st->pending, key);
}

/* Store `exc` (or None) and the withdrawn flag in `slot`.  Drops the slot's
 * old exception: the caller keeps its own reference to it. */
static int
slot_set(PyObject *slot, PyObject *exc, int withdrawn)
{
    if (PyList_SetItem(slot, 0, Py_NewRef(exc == NULL ? Py_None : exc)) < 0) {
        return -1;
    }
    return PyList_SetItem(slot, 1, PyBool_FromLong(withdrawn));
}

PyObject *
ti_pending_swap(core_state *st, PyObject *key, PyObject *exc)
{
    PyObject *slot = slot_of(st, key);
    if (slot == NULL) {
        if (PyErr_Occurred() || exc == NULL) {
            return NULL;
        }
        slot = PyList_New(2);
        if (slot == NULL) {
            return NULL;
        }
        if (slot_set(slot, exc, 0) < 0 || PyDict_SetItem(st->pending, key, slot) < 0) {
            Py_DECREF(slot);
            return NULL;   /* with the exception set */
        }
        Py_DECREF(slot);
        return NULL;       /* nothing was replaced */
    }
    PyObject *previous = PyList_GetItem(slot, 0);   /* borrowed */
    if (previous == NULL) {
        return NULL;
    }
    previous = previous == Py_None ? NULL : Py_NewRef(previous);
    if (slot_set(slot, exc, 0) < 0) {
        Py_XDECREF(previous);
        return NULL;
    }
    return previous;
}

int
ti_pending_withdraw(core_state *st, PyObject *key)
{
    PyObject *slot = slot_of(st, key);
    if (slot == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    PyObject *exc = PyList_GetItem(slot, 0);        /* borrowed */
    PyObject *withdrawn = PyList_GetItem(slot, 1);  /* borrowed */
    if (exc == NULL || withdrawn == NULL) {
        return -1;
    }
    if (exc == Py_None || withdrawn == Py_True) {
        return 0;
    }
    return PyList_SetItem(slot, 1, Py_NewRef(Py_True)) < 0 ? -1 : 1;
}

PyObject *
ti_pending_get(core_state *st, PyObject *key)
{
    PyObject *slot = slot_of(st, key);
    if (slot == NULL) {
        return NULL;
    }
    PyObject *exc = PyList_GetItem(slot, 0);        /* borrowed */
    PyObject *withdrawn = PyList_GetItem(slot, 1);  /* borrowed */
    if (exc == NULL || withdrawn == NULL || exc == Py_None || withdrawn == Py_True) {
        return NULL;
    }
    return Py_NewRef(exc);
}

int
ti_pending_sweep(core_state *st, PyObject *dropped)
{
    PyObject *keys = PyDict_Keys(st->pending);
    if (keys == NULL) {
        return -1;
    }
    int rc = 0;
    for (Py_ssize_t i = 0; rc == 0 && i < PyList_Size(keys); i++) {
        PyObject *key = PyList_GetItem(keys, i);   /* borrowed */
        PyObject *slot = key == NULL ? NULL : slot_of(st, key);
        PyObject *exc = slot == NULL ? NULL : PyList_GetItem(slot, 0);        /* borrowed */
        PyObject *withdrawn = slot == NULL ? NULL : PyList_GetItem(slot, 1);  /* borrowed */
        if (exc == NULL || withdrawn == NULL) {
            rc = -1;
        }
        else if (exc == Py_None || withdrawn == Py_True) {
            /* the list keeps a withdrawn exception alive past the deletion */
            if ((exc != Py_None && PyList_Append(dropped, exc) < 0)
                || PyDict_DelItem(st->pending, key) < 0) {
                rc = -1;
            }
        }
    }
    Py_DECREF(keys);
    return rc;
}
