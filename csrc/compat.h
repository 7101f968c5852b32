/* Differences between the CPython builds threadinject._core is compiled for,
 * kept here so that the logic in the other files reads the same everywhere.
 *
 *   - GIL builds of 3.10 and 3.11 compile against the limited API
 *     (Py_LIMITED_API is set by setup.py): that abi3 wheel also serves every
 *     later release without a wheel of its own.
 *   - 3.9, 3.12+ and free-threaded builds (3.13t+) use the full API: 3.12+
 *     for dict watchers (active_watch.h); a free-threaded build cannot use
 *     the limited API at all.
 */
#ifndef THREADINJECT_COMPAT_H
#define THREADINJECT_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Which build is this?  Py_GIL_DISABLED is defined by pyconfig.h on
 * free-threaded builds (3.13+). */
#ifdef Py_GIL_DISABLED
#  define TI_FREE_THREADED 1
#else
#  define TI_FREE_THREADED 0
#endif

/* Whether inject() can know that threading._active has not changed without
 * looking it up: dict watchers are 3.12+, outside the limited API; on
 * free-threaded builds inject() does not remember threads at all. */
#if !defined(Py_LIMITED_API) && PY_VERSION_HEX >= 0x030C0000 && !TI_FREE_THREADED
#  define TI_WATCH_ACTIVE 1
#else
#  define TI_WATCH_ACTIVE 0
#endif

/* Py_NewRef is 3.10+. */
#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *
Py_NewRef(PyObject *obj)
{
    Py_INCREF(obj);
    return obj;
}
#endif

/* The qualified name of `obj`'s type, as a new reference to a str (for error
 * messages; tp_name is not part of the limited API). */
static inline PyObject *
ti_type_name(PyObject *obj)
{
    return PyObject_GetAttrString((PyObject *)Py_TYPE(obj), "__qualname__");
}

#endif /* THREADINJECT_COMPAT_H */
