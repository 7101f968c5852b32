/* Differences between the CPython builds threadinject._core is compiled for,
 * kept here so that the logic in the other files reads the same everywhere.
 *
 *   - Every release has a build of its own against the full API, for what
 *     active_watch.h needs; a free-threaded build cannot use the limited API
 *     at all.
 *   - With THREADINJECT_LIMITED_API=1, setup.py builds a GIL build of 3.10+
 *     against the limited API (Py_LIMITED_API): the abi3 wheel for releases
 *     that have no wheel of their own yet.
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

/* How inject() can know that threading._active has not changed without
 * looking it up (active_watch.h): by the dict's PEP 509 version on 3.9-3.11,
 * by a dict watcher on 3.12+; neither is in the limited API, and on
 * free-threaded builds inject() does not remember threads at all. */
#if defined(Py_LIMITED_API) || TI_FREE_THREADED
#  define TI_ACTIVE_STAMPS 0
#  define TI_ACTIVE_WATCHER 0
#elif PY_VERSION_HEX >= 0x030C0000
#  define TI_ACTIVE_STAMPS 1
#  define TI_ACTIVE_WATCHER 1
#else
#  define TI_ACTIVE_STAMPS 1
#  define TI_ACTIVE_WATCHER 0
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
