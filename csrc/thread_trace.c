/* kill()'s watch on CPython 3.9-3.11: a trace function (and a profile
 * function) in the target only.
 *
 * From 3.12, kill() lets a thread it has long withheld its exception from
 * raise it itself, where its own frame says it may, through sys.monitoring
 * callbacks (src/threadinject/_monitor.py).  Before 3.12 there is no
 * sys.monitoring, but CPython calls a C trace function set for one thread
 * at each start of a Python function in that thread, and one that returns
 * -1 with an exception set there raises it out of that function before its
 * first instruction (Python/ceval.c: 3.9 and 3.10 leave the frame at once,
 * 3.11 raises at its first instruction, RESUME).
 *
 * _PyEval_SetTrace(tstate, ...) sets another thread's trace function: it
 * needs the GIL (these versions have no free-threaded build), and it is what
 * threading.settrace_all_threads() uses from 3.12 (Python/ceval.c, 3.12.1).
 * The thread state is found with the public iteration API under the GIL,
 * without the runtime's head lock, which is internal: CPython's threads and
 * those of PyGILState_Ensure() unlink their states holding the GIL
 * (_PyThreadState_DeleteCurrent(), Python/pystate.c 3.9-3.11), and a state
 * is linked in complete, its `next` set before the head points to it.  The
 * limit: an extension that deletes a thread state of its own without the
 * GIL (PyThreadState_Delete() allows it) while this walks the list. */
#include "thread_trace.h"

#if TI_THREAD_TRACE

#include <frameobject.h>

/* Set thread `ts`'s trace function (`profile` 0) or profile function (1). */
static int
set_hook(int profile, PyThreadState *ts, Py_tracefunc func, PyObject *arg)
{
    return profile ? _PyEval_SetProfile(ts, func, arg) : _PyEval_SetTrace(ts, func, arg);
}

/* `callback(frame)`; 0, or -1 with its exception set and this thread's
 * trace (`profile` 0) or profile function (1) taken away.  As
 * sys.settrace()'s trampoline does (Python/sysmodule.c), but keeping the
 * exception: an audit hook that refuses is answered by the watch ending,
 * which takes the function away again (_untrace_thread, _unprofile_releases). */
static int
call_or_give_up(int profile, PyObject *callback, PyFrameObject *frame)
{
    PyObject *result = PyObject_CallOneArg(callback, (PyObject *)frame);
    if (result != NULL) {
        Py_DECREF(result);
        return 0;
    }
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    if (set_hook(profile, PyThreadState_Get(), NULL, NULL) < 0) {
        PyErr_Clear();
    }
    PyErr_Restore(type, value, traceback);
    return -1;
}

/* The trace function: `callback(frame)` at each call event (a Python
 * function starts, or a generator resumes); when it raises, this thread is
 * traced no more and the exception comes out of `frame` before its first
 * instruction.
 *
 * Line events are turned off, frame by frame, at the first one or at the
 * call: raising at loops ran the callback at every line, and an exception
 * kill() schedules while the thread runs the callback comes out at the
 * event, here at any line's start (a lock loop's lock was left held on
 * 3.9.18); withholding while the thread ran the callback, the thread was
 * hardly ever killed (tests/test_finally.py, 3.9.18).  kill() now withholds
 * only for callbacks at events in threading's or its own code
 * (_wake._in_a_watch_callback_in_own_code()).
 *
 * Not while an exception is scheduled for the thread (by kill(), which
 * judged where it lands, or by anyone): the callback is Python code, and
 * the exception would land in it, at its first check, and come out at this
 * event instead of where it would without the trace function. */
static int
trampoline(PyObject *callback, PyFrameObject *frame, int what, PyObject *arg)
{
    (void)arg;
    if (what != PyTrace_CALL && what != PyTrace_LINE) {
        return 0;
    }
    /* an attribute of every frame on 3.9-3.11 (the field is internal on
     * 3.11): setting it cannot fail there, and a frame that kept its line
     * events would only cost time */
    if (PyObject_SetAttrString((PyObject *)frame, "f_trace_lines", Py_False) < 0) {
        PyErr_Clear();
    }
    if (what == PyTrace_LINE || PyThreadState_Get()->async_exc != NULL) {
        return 0;
    }
    return call_or_give_up(0, callback, frame);
}

/* The profile function: `callback(frame)` as a C function named release or
 * __exit__ (a lock's: by name, a filter for the callback, which judges)
 * returns in `frame`; when it raises, this thread is profiled no more and the
 * exception comes out of that call, the function having returned (ceval's
 * C_TRACE drops its result, Python/ceval.c 3.9-3.11), where the trace
 * function has no event: a loop whose only calls are C functions, in a
 * `finally` block before its release (src/threadinject/_monitor.py).  Not
 * while an exception is scheduled for the thread (see trampoline()). */
static int
release_return(PyObject *callback, PyFrameObject *frame, int what, PyObject *arg)
{
    if (what != PyTrace_C_RETURN || arg == NULL || !PyCFunction_Check(arg)
        || PyThreadState_Get()->async_exc != NULL) {
        return 0;
    }
    const char *name = ((PyCFunctionObject *)arg)->m_ml->ml_name;
    if (strcmp(name, "release") != 0 && strcmp(name, "__exit__") != 0) {
        return 0;
    }
    return call_or_give_up(1, callback, frame);
}

/* The thread state of thread `ident` in this interpreter (borrowed), or NULL. */
static PyThreadState *
thread_state_of(unsigned long ident)
{
    PyThreadState *ts = PyInterpreterState_ThreadHead(PyThreadState_GetInterpreter(PyThreadState_Get()));
    while (ts != NULL && ts->thread_id != ident) {
        ts = PyThreadState_Next(ts);
    }
    return ts;
}

/* Parse (ident, callback) and find that thread's state (NULL: no such
 * thread); 0, or -1 with TypeError/ValueError set. */
static int
thread_state_of_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyThreadState **ts)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes 2 positional arguments (ident, callback) but %zd were given", fname, nargs);
        return -1;
    }
    if (!PyLong_Check(args[0]) || PyBool_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "%s() argument 'ident' must be an int", fname);
        return -1;
    }
    unsigned long ident = PyLong_AsUnsignedLong(args[0]);
    if (ident == (unsigned long)-1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%s() argument 'ident' must be a thread ident, not %R",
                         fname, args[0]);
        }
        return -1;
    }
    if (!PyCallable_Check(args[1])) {
        PyErr_Format(PyExc_TypeError, "%s() argument 'callback' must be callable", fname);
        return -1;
    }
    *ts = thread_state_of(ident);
    return 0;
}

/* Set `func` with the callback args[1] as the trace (`profile` 0) or
 * profile function (1) of the thread args[0], unless it has one: True, or
 * False if there is no such thread or it has one. */
static PyObject *
hook_thread(const char *fname, int profile, Py_tracefunc func, PyObject *const *args, Py_ssize_t nargs)
{
    PyThreadState *ts;
    if (thread_state_of_args(fname, args, nargs, &ts) < 0) {
        return NULL;
    }
    if (ts == NULL || (profile ? ts->c_profilefunc : ts->c_tracefunc) != NULL) {
        Py_RETURN_FALSE;
    }
    if (set_hook(profile, ts, func, args[1]) < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

/* Undo hook_thread(): True, or False if `func` with the callback args[1] is
 * not that function of the thread args[0] (any more). */
static PyObject *
unhook_thread(const char *fname, int profile, Py_tracefunc func, PyObject *const *args, Py_ssize_t nargs)
{
    PyThreadState *ts;
    if (thread_state_of_args(fname, args, nargs, &ts) < 0) {
        return NULL;
    }
    if (ts == NULL || (profile ? ts->c_profilefunc : ts->c_tracefunc) != func
        || (profile ? ts->c_profileobj : ts->c_traceobj) != args[1]) {
        Py_RETURN_FALSE;
    }
    if (set_hook(profile, ts, NULL, NULL) < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

PyObject *
ti_trace_thread(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    return hook_thread("_trace_thread", 0, trampoline, args, nargs);
}

PyObject *
ti_untrace_thread(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    return unhook_thread("_untrace_thread", 0, trampoline, args, nargs);
}

PyObject *
ti_profile_releases(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    return hook_thread("_profile_releases", 1, release_return, args, nargs);
}

PyObject *
ti_unprofile_releases(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    return unhook_thread("_unprofile_releases", 1, release_return, args, nargs);
}

#endif /* TI_THREAD_TRACE */
