/* `pending` maps a thread ident (int) to a one-item list, the thread's slot,
 * which holds its pending exception or None.  A slot is created on the first
 * injection into a thread and then reused: one hashed look-up per call
 * instead of the two that replacing a dict entry takes (a get, to keep the
 * old value alive, then a set).  When the dict grows, inject.c drops the
 * empty slots, which costs nothing but their re-creation.
 *
 * A slot that still holds an exception is never dropped, even when its
 * thread looks gone: there is no sound test for that.  sys._current_frames()
 * omits live threads that run no Python code (a C function started with
 * _thread.start_new_thread, a C library's thread between callbacks), and
 * such a thread would later receive the carrier and find nothing.  So an
 * exception injected into a thread that ends without running bytecode again
 * stays referenced until that ident is injected into again. */
#include "pending.h"

/* The slot of `key` (borrowed), NULL if none (an exception set on error). */
static PyObject *
slot_of(core_state *st, PyObject *key)
{
    return PyDict_GetItemWithError(st->pending, key);
}

PyObject *
ti_pending_swap(core_state *st, PyObject *key, PyObject *exc)
{
    PyObject *slot = slot_of(st, key);
    if (slot == NULL) {
        if (PyErr_Occurred() || exc == NULL) {
            return NULL;
        }
        slot = PyList_New(1);
        if (slot == NULL) {
            return NULL;
        }
        if (PyList_SetItem(slot, 0, Py_NewRef(exc)) < 0
            || PyDict_SetItem(st->pending, key, slot) < 0) {
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
    /* steals the new reference; drops the slot's old one, which `previous` keeps alive */
    if (PyList_SetItem(slot, 0, Py_NewRef(exc == NULL ? Py_None : exc)) < 0) {
        Py_XDECREF(previous);
        return NULL;
    }
    return previous;
}

PyObject *
ti_pending_get(core_state *st, PyObject *key)
{
    PyObject *slot = slot_of(st, key);
    if (slot == NULL) {
        return NULL;
    }
    PyObject *exc = PyList_GetItem(slot, 0);   /* borrowed */
    if (exc == NULL || exc == Py_None) {
        return NULL;
    }
    return Py_NewRef(exc);
}

int
ti_pending_sweep(core_state *st)
{
    PyObject *keys = PyDict_Keys(st->pending);
    if (keys == NULL) {
        return -1;
    }
    int rc = 0;
    for (Py_ssize_t i = 0; rc == 0 && i < PyList_Size(keys); i++) {
        PyObject *key = PyList_GetItem(keys, i);   /* borrowed */
        PyObject *slot = key == NULL ? NULL : slot_of(st, key);
        PyObject *exc = slot == NULL ? NULL : PyList_GetItem(slot, 0);   /* borrowed */
        if (exc == NULL) {
            rc = -1;
        }
        else if (exc == Py_None && PyDict_DelItem(st->pending, key) < 0) {
            rc = -1;
        }
    }
    Py_DECREF(keys);
    return rc;
}
