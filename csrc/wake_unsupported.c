/* Platforms other than Linux x86-64 and aarch64: no system-call wake.  The Python layer
 * reads _core.WAKE_SUPPORTED and reports "platform unsupported" instead of
 * calling these; they raise if called anyway. */
#if !(defined(__linux__) && (defined(__x86_64__) || defined(__aarch64__)))
#include "wake.h"

#include <errno.h>

const int ti_wake_supported = 0;

static PyObject *
unsupported(void)
{
    PyErr_SetString(PyExc_NotImplementedError,
                    "threadinject cannot wake system calls on this platform");
    return NULL;
}

PyObject *
ti_wake_install(PyObject *Py_UNUSED(module), PyObject *const *Py_UNUSED(args), Py_ssize_t Py_UNUSED(nargs))
{
    return unsupported();
}

PyObject *
ti_wake_send(PyObject *Py_UNUSED(module), PyObject *const *Py_UNUSED(args), Py_ssize_t Py_UNUSED(nargs))
{
    return unsupported();
}

int
ti_lock_wake_parse(PyObject *Py_UNUSED(wake), unsigned long Py_UNUSED(arg0), ti_lock_wake *Py_UNUSED(out))
{
    unsupported();
    return -1;
}

int
ti_wake_and_wait(long Py_UNUSED(tid), const ti_lock_wake *Py_UNUSED(wait))
{
    return -ENOSYS;   /* not reached: ti_lock_wake_parse() failed */
}

int
ti_call_parse(const char *Py_UNUSED(fname), PyObject *const *Py_UNUSED(args), ti_call *Py_UNUSED(out))
{
    unsupported();
    return -1;
}

int
ti_hold_in_call(long Py_UNUSED(tid), const ti_call *Py_UNUSED(call), ti_hold *Py_UNUSED(hold))
{
    return -ENOSYS;   /* not reached: ti_call_parse() failed */
}

int
ti_keep_held(const ti_hold *Py_UNUSED(hold))
{
    return 0;   /* not reached */
}

int
ti_let_go(const ti_hold *Py_UNUSED(hold), int Py_UNUSED(open))
{
    return 0;   /* not reached */
}
#endif
