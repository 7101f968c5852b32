/* CPython 3.11: a withdrawal leaves the interpreter's eval breaker signalled.
 *
 * PyThreadState_SetAsyncExc(id, NULL) signals the interpreter as if an
 * exception had been scheduled (_PyEval_SignalAsyncExc()), and only a
 * thread that receives an exception clears that signal (UNSIGNAL_ASYNC_EXC
 * in eval_frame_handle_pending(), Python/ceval.c 3.11).  Left set, every
 * check of every thread finds nothing to do, and a thread with a trace
 * function (a debugger's, coverage's, kill()'s watch: thread_trace.c) never
 * gets past its next function start: with tracing on, RESUME checks the
 * breaker and is dispatched again, for ever (DO_TRACING, 3.11 only).
 * Measured: after a bare PyThreadState_SetAsyncExc(ident, NULL) on 3.11.7,
 * `sys.settrace(f); g()` hangs; on 3.9.18, 3.10.13 and 3.12.1 it returns.
 * The ctypes recipe's "undo" call does this, and so did cancel() here.
 *
 * The one public way to clear it: make this thread receive an exception of
 * our own at once (schedule it for itself, call a Python function, whose
 * first check receives it) and drop it.  Other threads lose nothing: one
 * with an exception still scheduled signals it again as it takes the GIL
 * (take_gil(), Python/ceval_gil.h 3.11), and none holds the GIL now. */
#include "withdrawal_signal.h"

#if TI_WITHDRAWAL_SIGNAL

int
ti_withdrawal_signal_init(core_state *st)
{
    st->withdrawal_signal = PyErr_NewException("threadinject._core._WithdrawalSignal",
                                               PyExc_BaseException, NULL);
    if (st->withdrawal_signal == NULL) {
        return -1;
    }
    PyObject *globals = Py_BuildValue("{sO}", "__builtins__", PyEval_GetBuiltins());
    if (globals == NULL) {
        return -1;
    }
    st->withdrawal_receiver = PyRun_String("lambda: None", Py_eval_input, globals, globals);
    Py_DECREF(globals);
    return st->withdrawal_receiver == NULL ? -1 : 0;
}

int
ti_clear_withdrawal_signal(core_state *st)
{
    unsigned long me = PyThread_get_thread_ident();
    if (PyThreadState_Get()->async_exc != NULL) {
        return 0;   /* this thread receives its own soon, which clears it */
    }
    if (PyThreadState_SetAsyncExc(me, st->withdrawal_signal) != 1) {
        return 0;   /* cannot happen: this thread is running */
    }
    PyObject *result = PyObject_CallNoArgs(st->withdrawal_receiver);
    if (result == NULL && PyErr_ExceptionMatches(st->withdrawal_signal)) {
        PyErr_Clear();
        return 0;
    }
    /* Not received: a signal handler raised first (the main thread's
     * pending signals are handled before exceptions are received), or
     * received elsewhere, which the receiver's first check rules out.  Take
     * ours back: the breaker stays signalled, as before this call. */
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyThreadState_SetAsyncExc(me, NULL);
    PyErr_Restore(type, value, traceback);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

#else

int
ti_withdrawal_signal_init(core_state *st)
{
    (void)st;
    return 0;
}

int
ti_clear_withdrawal_signal(core_state *st)
{
    (void)st;
    return 0;
}

#endif /* TI_WITHDRAWAL_SIGNAL */
