/* Benchmark only, never shipped: the cheapest possible C call of
 * PyThreadState_SetAsyncExc from Python (METH_FASTCALL, no checks), the floor
 * that threadinject._core.inject is measured against. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *
set_async_exc(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "set_async_exc(ident, exc_class)");
        return NULL;
    }
    unsigned long ident = PyLong_AsUnsignedLong(args[0]);
    if (ident == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    return PyLong_FromLong(PyThreadState_SetAsyncExc(ident, args[1]));
}

static PyMethodDef methods[] = {
    {"set_async_exc", (PyCFunction)(void (*)(void))set_async_exc, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
#ifdef Py_GIL_DISABLED
    /* importing it must leave the GIL off, as threadinject._core does */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "floor", NULL, 0, methods, slots};

PyMODINIT_FUNC
PyInit_floor(void)
{
    return PyModuleDef_Init(&module);
}
