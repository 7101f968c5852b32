/* The carrier: how an exception *instance*, or any exception at all, crosses
 * into another thread through PyThreadState_SetAsyncExc, which only takes a
 * class.
 *
 * inject() records the user's exception as the target's pending one
 * (pending.c), then schedules the carrier class.  When the target
 * thread next checks its eval breaker, CPython instantiates the scheduled
 * class *in that thread* (Python/ceval_gil.c `_Py_HandlePending` calls
 * `_PyErr_SetNone(tstate, exc)`, which creates the exception by calling the
 * class, in Python/errors.c `_PyErr_CreateException`).  The carrier's tp_new
 * therefore runs in the target thread: it takes its pending exception
 * and hands over the user's exception (instantiating a class without
 * arguments, as CPython itself would).
 *
 * How it hands it over depends on the CPython version (checked at run time,
 * since one abi3 build serves several):
 *   - 3.12+: return the instance.  `_PyErr_SetObject` normalises at once
 *     and takes the type from the instance.  Raising instead would make it
 *     attach a "Normalization failed" note.
 *   - 3.9 to 3.11: raise the instance.  Returning it would leave the carrier
 *     as the exception *type* (`PyErr_NormalizeException` keeps the type when
 *     the value is not an instance of it): on 3.9 and 3.10 `except TheirType`
 *     would not match; on 3.11, which keeps only the value on the stack, the
 *     `except` matches, but whatever reads the raised type before that (C
 *     code's PyErr_ExceptionMatches, an unraisable report: seen in
 *     tests/test_landing.py) sees the carrier.  Raising makes normalisation
 *     restart from the instance's type.
 * Both paths keep implicit chaining: the instance's __context__ is the
 * exception the target was handling, if any.
 */
#include "carrier.h"
#include "pending.h"

static PyObject *
carrier_new(PyTypeObject *type, PyObject *Py_UNUSED(args), PyObject *Py_UNUSED(kwargs))
{
    core_state *st = (core_state *)PyType_GetModuleState(type);
    if (st == NULL) {
        return NULL;
    }
    PyObject *exc;
    TI_PENDING_LOCK(st);
    /* take it, pending or withdrawn by a cancel() that came too late */
    exc = ti_pending_swap(st, PyThread_get_thread_ident(), NULL);
    TI_PENDING_UNLOCK(st);
    if (exc == NULL) {
        /* Reachable when someone calls this private class directly, and
         * where CPython takes the carrier out of the thread state before
         * this runs (3.9-3.11, free-threaded builds): when a second
         * inject() lands in that window, the first carrier delivers its
         * exception and the second one finds nothing. */
        PyErr_SetString(PyExc_RuntimeError,
                        "threadinject: this thread received an injection whose "
                        "exception had already been delivered (an inject() "
                        "raced the delivery of an earlier one)");
        return NULL;
    }
    if (PyExceptionClass_Check(exc)) {
        PyObject *instance = PyObject_CallNoArgs(exc);
        Py_DECREF(exc);
        if (instance == NULL) {
            return NULL;
        }
        if (!PyExceptionInstance_Check(instance)) {
            PyErr_Format(PyExc_TypeError,
                         "calling the injected exception class should have "
                         "returned a BaseException instance, not %R", instance);
            Py_DECREF(instance);
            return NULL;
        }
        exc = instance;
    }
    if (st->deliver_by_raising) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
        return NULL;
    }
    return exc;
}

static PyType_Slot carrier_slots[] = {
    {Py_tp_new, (void *)carrier_new},
    {Py_tp_doc, (void *)"Private: delivers an exception injected by threadinject "
                        "in the thread that receives it."},
    {0, NULL},
};

static PyType_Spec carrier_spec = {
    .name = "threadinject._core.InjectedException",
    .basicsize = 0,           /* inherit BaseException's layout */
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT,   /* not subclassable */
    .slots = carrier_slots,
};

PyObject *
ti_carrier_type_new(PyObject *module)
{
    /* a tuple: 3.9 does not accept a single base */
    PyObject *bases = PyTuple_Pack(1, PyExc_BaseException);
    if (bases == NULL) {
        return NULL;
    }
    PyObject *type = PyType_FromModuleAndSpec(module, &carrier_spec, bases);
    Py_DECREF(bases);
    return type;
}
