/* threadinject._core: module initialisation and the method table.
 * The functions themselves are in inject.c; the carrier type in carrier.c;
 * the system-call wake in wake_*.c; kill()'s sys.monitoring filters in
 * monitor_filter.c; their 3.9-3.11 counterpart, a trace function in one
 * thread, in thread_trace.c. */
#include "active_watch.h"
#include "carrier.h"
#include "inject.h"
#include "monitor_filter.h"
#include "pending.h"
#include "thread_trace.h"
#include "wake.h"
#include "withdrawal_signal.h"

PyDoc_STRVAR(inject_doc,
"inject(thread, exc, /)\n--\n\n"
"Schedule exception `exc` (a BaseException subclass or instance) to be raised\n"
"in `thread` (a threading.Thread or an int ident) at its next bytecode check.\n"
"A later injection into the same thread replaces one not yet raised.");
PyDoc_STRVAR(cancel_doc,
"cancel(thread, /)\n--\n\n"
"Withdraw the exception pending for `thread`; return whether one was pending.");
PyDoc_STRVAR(pending_doc,
"pending(thread, /)\n--\n\n"
"The exception class or instance injected into `thread` and not yet raised, or None.");

static PyMethodDef core_methods[] = {
    {"inject", (PyCFunction)(void (*)(void))ti_inject, METH_FASTCALL, inject_doc},
    {"cancel", (PyCFunction)(void (*)(void))ti_cancel, METH_FASTCALL, cancel_doc},
    {"_inject_if_at", (PyCFunction)(void (*)(void))ti_inject_if_at, METH_FASTCALL,
     "Private: inject() only if the thread is still at that frame, instruction and system call."},
    {"_inject_in_call", (PyCFunction)(void (*)(void))ti_inject_in_call, METH_FASTCALL,
     "Private: inject() while the wake signal's handler holds the thread at that system call."},
    {"pending", (PyCFunction)(void (*)(void))ti_pending, METH_FASTCALL, pending_doc},
    {"_current_frames", ti_current_frames, METH_NOARGS,
     "Private: sys._current_frames(), the cyclic collector paused on 3.9-3.11 (gh-106883)."},
    {"_wake_install", (PyCFunction)(void (*)(void))ti_wake_install, METH_FASTCALL,
     "Private: install the system-call wake handler on a real-time signal."},
    {"_wake_send", (PyCFunction)(void (*)(void))ti_wake_send, METH_FASTCALL,
     "Private: arm a thread's wake slot and signal it (see csrc/wake.h)."},
    {"_monitor_setup", (PyCFunction)(void (*)(void))ti_monitor_setup, METH_FASTCALL,
     "Private: the watched idents and Python callbacks of the monitoring filters."},
    {"_monitor_on_start", (PyCFunction)(void (*)(void))ti_monitor_on_start, METH_FASTCALL,
     "Private: sys.monitoring PY_START callback; None unless this thread is watched."},
    {"_monitor_on_jump", (PyCFunction)(void (*)(void))ti_monitor_on_jump, METH_FASTCALL,
     "Private: sys.monitoring JUMP callback; None unless this thread is watched."},
#if TI_THREAD_TRACE
    {"_trace_thread", (PyCFunction)(void (*)(void))ti_trace_thread, METH_FASTCALL,
     "Private: pass one thread's call events to a Python callback (3.9-3.11)."},
    {"_untrace_thread", (PyCFunction)(void (*)(void))ti_untrace_thread, METH_FASTCALL,
     "Private: undo _trace_thread() if its trace function is still the thread's."},
    {"_profile_releases", (PyCFunction)(void (*)(void))ti_profile_releases, METH_FASTCALL,
     "Private: pass the returns of one thread's C release calls to a Python callback (3.9-3.11)."},
    {"_unprofile_releases", (PyCFunction)(void (*)(void))ti_unprofile_releases, METH_FASTCALL,
     "Private: undo _profile_releases() if its profile function is still the thread's."},
#endif
    {NULL, NULL, 0, NULL},
};

/* Store a new reference to `module.name` in *slot, checking its type with
 * `check` (NULL: any object). */
static int
import_attr(PyObject *module, const char *name, int (*check)(PyObject *),
            const char *what, PyObject **slot)
{
    PyObject *value = PyObject_GetAttrString(module, name);
    if (value == NULL) {
        return -1;
    }
    if (check != NULL && !check(value)) {
        PyErr_Format(PyExc_ImportError, "threadinject: %R.%s is not %s", module, name, what);
        Py_DECREF(value);
        return -1;
    }
    *slot = value;
    return 0;
}

static int is_type(PyObject *o) { return PyType_Check(o); }
static int is_dict(PyObject *o) { return PyDict_Check(o); }
static int is_exception_class(PyObject *o) { return PyExceptionClass_Check(o); }

static int
core_exec(PyObject *module)
{
    core_state *st = (core_state *)PyModule_GetState(module);
    st->sweep_at = 64;

    PyObject *threading = PyImport_ImportModule("threading");
    if (threading == NULL) {
        return -1;
    }
    int found = import_attr(threading, "Thread", is_type, "a class", &st->thread_type) == 0
                && import_attr(threading, "_active", is_dict, "a dict", &st->active) == 0
                && import_attr(threading, "_limbo", is_dict, "a dict", &st->limbo) == 0;
    Py_DECREF(threading);
    if (!found) {
        return -1;
    }
    PyObject *errors = PyImport_ImportModule("threadinject._errors");
    if (errors == NULL) {
        return -1;
    }
    int rc = import_attr(errors, "ThreadNotFoundError", is_exception_class,
                         "an exception class", &st->not_found_error);
    Py_DECREF(errors);
    if (rc < 0) {
        return -1;
    }
    if (ti_active_watch_start(module, st) < 0) {
        return -1;
    }

    /* The running interpreter's version, not the headers': an abi3 build of
     * this module runs on several. */
    PyObject *hexversion = PySys_GetObject("hexversion");   /* borrowed */
    long version = hexversion == NULL ? -1 : PyLong_AsLong(hexversion);
    if (version == -1) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ImportError, "threadinject: sys.hexversion is missing");
        }
        return -1;
    }
    st->deliver_by_raising = version < 0x030C0000;
    st->collect_on_alloc = version < 0x030C0000;

    st->str_ident = PyUnicode_InternFromString("_ident");
    st->str_f_lasti = PyUnicode_InternFromString("f_lasti");
    st->gc = PyImport_ImportModule("gc");
    if (st->str_ident == NULL || st->str_f_lasti == NULL || st->gc == NULL) {
        return -1;
    }
    if (ti_withdrawal_signal_init(st) < 0) {
        return -1;
    }
    st->carrier = ti_carrier_type_new(module);
    if (st->carrier == NULL) {
        return -1;
    }
    /* Private, for the tests: calling it in a thread is what CPython does
     * when it delivers an injection there (carrier.c). */
    Py_INCREF(st->carrier);
    if (PyModule_AddObject(module, "_InjectedException", st->carrier) < 0) {
        Py_DECREF(st->carrier);
        return -1;
    }
    return PyModule_AddIntConstant(module, "WAKE_SUPPORTED", ti_wake_supported);
}

static int
core_traverse(PyObject *module, visitproc visit, void *arg)
{
    core_state *st = (core_state *)PyModule_GetState(module);
    Py_VISIT(st->carrier);
    int rc = ti_pending_traverse(st, visit, arg);
    if (rc != 0) {
        return rc;
    }
    Py_VISIT(st->thread_type);
    Py_VISIT(st->active);
    Py_VISIT(st->limbo);
    Py_VISIT(st->not_found_error);
    Py_VISIT(st->gc);
    Py_VISIT(st->monitor_watched);
    Py_VISIT(st->monitor_on_start);
    Py_VISIT(st->monitor_on_jump);
    Py_VISIT(st->withdrawal_signal);
    Py_VISIT(st->withdrawal_receiver);
    return 0;
}

static int
core_clear(PyObject *module)
{
    core_state *st = (core_state *)PyModule_GetState(module);
    Py_CLEAR(st->carrier);
    ti_pending_clear(st);
    ti_active_watch_stop(st);
    Py_CLEAR(st->thread_type);
    Py_CLEAR(st->active);
    Py_CLEAR(st->limbo);
    Py_CLEAR(st->not_found_error);
    st->last_thread = NULL;
    Py_CLEAR(st->last_key);
    Py_CLEAR(st->str_ident);
    Py_CLEAR(st->str_f_lasti);
    Py_CLEAR(st->gc);
    Py_CLEAR(st->monitor_watched);
    Py_CLEAR(st->monitor_on_start);
    Py_CLEAR(st->monitor_on_jump);
    Py_CLEAR(st->withdrawal_signal);
    Py_CLEAR(st->withdrawal_receiver);
    return 0;
}

static void
core_free(void *module)
{
    core_clear((PyObject *)module);
}

static PyModuleDef_Slot core_slots[] = {
    {Py_mod_exec, (void *)core_exec},
#if !defined(Py_LIMITED_API) && PY_VERSION_HEX >= 0x030C0000
    /* all state is per module object: safe with a per-interpreter GIL */
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#if TI_FREE_THREADED
    /* `pending` is guarded by its own mutex and registration is checked under
     * threading._active_limbo_lock (inject.c): no need for the GIL. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "threadinject._core",
    .m_doc = "C backend of threadinject: PyThreadState_SetAsyncExc without ctypes.",
    .m_size = sizeof(core_state),
    .m_methods = core_methods,
    .m_slots = core_slots,
    .m_traverse = core_traverse,
    .m_clear = core_clear,
    .m_free = core_free,
};

PyMODINIT_FUNC
PyInit__core(void)
{
    return PyModuleDef_Init(&core_module);
}
